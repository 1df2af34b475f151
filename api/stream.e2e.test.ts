/**
 * End-to-end over the WebSocket `/v1/stream`: the instance as `npm start` builds it on a throwaway store
 * (PGlite, and PostgreSQL when TEST_DATABASE_URL is set), real `ws` clients, [send, expect] steps.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadScenario } from '../fixtures/load-scenario.js';
import { StreamClient, type TestServer, TEST_STORES, call, eventually, startTestServer } from './test-server.js';

const FENCE = { type: 'Polygon', coordinates: [[[-0.14, 51.5], [-0.1, 51.5], [-0.1, 51.52], [-0.14, 51.52], [-0.14, 51.5]]] };
const BBOX = [-0.2, 51.4, 0, 51.6];

describe.each(TEST_STORES)('stream end to end on %s', (store) => {
  let t: TestServer;
  let admin: string;
  const sockets: StreamClient[] = [];
  const open = async (token: string, header = false): Promise<StreamClient> => {
    const c = await StreamClient.connect(t.ws, { token, header });
    sockets.push(c);
    return c;
  };
  const courier = async (id: string, lat: number, lng: number) => {
    expect((await call(t.base, 'PUT', `/v1/couriers/${id}`, { token: admin, body: { vehicle: 'car', capabilities: ['cold_chain'], capacity: 4 } })).status).toBe(200);
    expect((await call(t.base, 'PUT', `/v1/couriers/${id}/status`, { token: t.token('driver', id), body: { status: 'available' } })).status).toBe(200);
    expect((await call(t.base, 'POST', `/v1/couriers/${id}/location`, { token: t.token('driver', id), body: { lat, lng, ts: Date.now() } })).status).toBe(204);
  };

  beforeAll(async () => {
    t = await startTestServer({ OFFER_TTL_MS: '1000' }, store);
    admin = t.token('admin', 'ops');
    expect((await call(t.base, 'PUT', '/v1/geofences/centre', { token: admin, body: { kind: 'low_emission', geometry: FENCE } })).status).toBe(200);
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await t.close();
  });

  it('refuses an upgrade without a valid token before any socket exists', async () => {
    await expect(StreamClient.connect(t.ws)).rejects.toThrow(/401/);
    await expect(StreamClient.connect(t.ws, { token: t.token('driver', 'x', 60, Date.now() - 3_600_000) })).rejects.toThrow(/401/);
    await expect(StreamClient.connect(t.ws, { token: 'not.a.jwt' })).rejects.toThrow(/401/);
    const viaHeader = await open(t.token('dispatcher', 'desk'), true);
    expect(viaHeader.closed).toBeUndefined();
  });

  it('takes a driver from location to offer, acceptance, pickup and delivery while the requester tracks it', async () => {
    await courier('drv1', 51.5, -0.125);
    const driver = await open(t.token('driver', 'drv1'));
    driver.send({ t: 'loc', lat: 51.5005, lng: -0.125, ts: Date.now() });
    const requesterToken = t.token('requester', 'ward-9');
    const created = await call(t.base, 'POST', '/v1/requests', { token: requesterToken, body: { kind: 'delivery', pickup: { lat: 51.501, lng: -0.124 }, dropoff: { lat: 51.51, lng: -0.12 } } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const requester = await open(requesterToken);
    requester.send({ t: 'track', requestId: id });
    const offer = await driver.next((f) => f.t === 'offer', 'an offer on the driver socket');
    expect(offer).toMatchObject({ t: 'offer', requestId: id, kind: 'delivery', pickup: { lat: 51.501, lng: -0.124 }, dropoff: { lat: 51.51, lng: -0.12 } });
    expect(offer.expiresAt).toBeGreaterThan(Date.now());
    expect(typeof offer.eta).toBe('number');
    driver.send({ t: 'accept', offerId: offer.offerId });
    const assigned = await driver.next((f) => f.t === 'assigned', 'assigned after accept');
    expect(assigned.seq).toBeGreaterThan(offer.seq);
    const tracked = await requester.next((f) => f.t === 'request' && f.status === 'assigned', 'the requester seeing assigned');
    expect(tracked.id).toBe(id);
    expect(tracked.courier).toEqual({ lat: 51.5005, lng: -0.125 });
    expect(typeof tracked.eta).toBe('number');
    const drv = t.token('driver', 'drv1');
    expect((await call(t.base, 'POST', `/v1/requests/${id}/progress`, { token: t.token('driver', 'other'), body: { status: 'picked_up' } })).status).toBe(403);
    expect((await call(t.base, 'POST', `/v1/requests/${id}/progress`, { token: drv, body: { status: 'picked_up' } })).body.status).toBe('picked_up');
    expect((await call(t.base, 'POST', `/v1/requests/${id}/progress`, { token: drv, body: { status: 'delivered' } })).body.status).toBe('delivered');
    await requester.next((f) => f.t === 'request' && f.status === 'delivered', 'the requester seeing delivered');
    const seqs = requester.frames.map((f) => f.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });

  it('hands a driver who (re)connects the offer it holds and then the leg it carries', async () => {
    await courier('drv5', 51.42, -0.18);
    const created = await call(t.base, 'POST', '/v1/requests', { token: t.token('requester', 'ward-11'), body: { kind: 'delivery', pickup: { lat: 51.421, lng: -0.18 }, dropoff: { lat: 51.43, lng: -0.18 } } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    await eventually(async () => ((await call(t.base, 'GET', `/v1/requests/${id}`, { token: t.token('dispatcher', 'desk') })).body.status === 'offered' ? true : undefined), 'the offer made before the driver connects');
    const late = await open(t.token('driver', 'drv5'));
    const offer = await late.next((f) => f.t === 'offer' && f.requestId === id, 'the held offer on connect');
    late.send({ t: 'accept', offerId: offer.offerId });
    await late.next((f) => f.t === 'assigned' && f.requestId === id, 'assigned');
    late.close();
    const again = await open(t.token('driver', 'drv5'));
    expect(await again.next((f) => f.t === 'assigned', 'the carried leg on reconnect')).toMatchObject({ requestId: id, legId: id, offerId: offer.offerId });
    const view = await call(t.base, 'GET', `/v1/requests/${id}`, { token: t.token('dispatcher', 'desk') });
    expect(view.body.assignment).toEqual({ courierId: 'drv5', offerId: offer.offerId });
  });

  it('lets a driver accept over HTTP, refuses another driver the same offer, and revokes an offer left to expire', async () => {
    await courier('drv2', 51.45, -0.05);
    const driver = await open(t.token('driver', 'drv2'));
    const req = t.token('requester', 'ward-10');
    const first = await call(t.base, 'POST', '/v1/requests', { token: req, body: { kind: 'delivery', pickup: { lat: 51.451, lng: -0.05 }, dropoff: { lat: 51.46, lng: -0.05 } } });
    const offer = await driver.next((f) => f.t === 'offer' && f.requestId === first.body.id, 'first offer');
    expect((await call(t.base, 'POST', `/v1/offers/${offer.offerId}/accept`, { token: t.token('driver', 'drv1') })).status).toBe(403);
    expect((await call(t.base, 'POST', `/v1/offers/${offer.offerId}/decline`, { token: t.token('driver', 'drv2') })).status).toBe(200);
    // declined: the request waits again and drv2 is never offered it again; a new request comes to drv2 and is left to expire
    const second = await call(t.base, 'POST', '/v1/requests', { token: req, body: { kind: 'delivery', pickup: { lat: 51.452, lng: -0.05 }, dropoff: { lat: 51.46, lng: -0.05 } } });
    const offer2 = await driver.next((f) => f.t === 'offer' && f.requestId === second.body.id, 'second offer');
    const revoked = await driver.next((f) => f.t === 'revoked' && f.offerId === offer2.offerId, 'revoked after OFFER_TTL', 3000);
    expect(revoked.reason).toBe('expired');
  });

  it('streams a dispatcher a snapshot, then coalesced deltas with fence entries and couriers leaving the view', async () => {
    await courier('drv3', 51.49, -0.12); // inside the bbox, south of the fence
    const dispatcher = await open(t.token('dispatcher', 'desk'));
    dispatcher.send({ t: 'watch', bbox: BBOX, hz: 10 });
    const snapshot = await dispatcher.next((f) => f.t === 'snapshot', 'snapshot');
    expect(snapshot.couriers).toContainEqual(['drv3', 51.49, -0.12, 'available']);
    expect(snapshot.fences.map((f: any) => f.id)).toEqual(['centre']);
    const driver = await open(t.token('driver', 'drv3'));
    driver.send({ t: 'loc', lat: 51.51, lng: -0.12, ts: Date.now() }); // into the fence
    const entered = await dispatcher.next((f) => f.t === 'delta' && f.fences.some((x: any) => x.courierId === 'drv3'), 'a delta with the fence entry');
    expect(entered.fences).toContainEqual(expect.objectContaining({ type: 'enter', courierId: 'drv3', fenceId: 'centre' }));
    expect(entered.moved).toContainEqual(['drv3', 51.51, -0.12, 'available']);
    for (let i = 1; i <= 5; i++) driver.send({ t: 'loc', lat: 51.51, lng: -0.12 + i * 0.001, ts: Date.now() + i });
    const moved = await dispatcher.next((f) => f.t === 'delta' && f.moved.some((m: any) => m[0] === 'drv3' && m[2] > -0.1151), 'the latest position');
    expect(moved.moved.filter((m: any) => m[0] === 'drv3')).toHaveLength(1); // coalesced: one entry per courier
    driver.send({ t: 'loc', lat: 52.5, lng: 1.0, ts: Date.now() + 100 }); // out of the bbox
    const left = await dispatcher.next((f) => f.t === 'delta' && f.removed.includes('drv3'), 'drv3 in removed');
    expect(left.moved.some((m: any) => m[0] === 'drv3')).toBe(false);
  });

  it('answers every bad frame with an error frame and keeps the socket open', async () => {
    await courier('drv4', 51.48, -0.1);
    const driver = await open(t.token('driver', 'drv4'));
    const steps: [send: () => void, code: string][] = [
      [() => driver.sendRaw('{"t":"loc", "lat": 51.5,'), 'E_BAD_JSON'],
      [() => driver.sendRaw('{"t":"loc","lat":51.5,"lng":-0.1,"ts":1,"__proto__":{"x":1}}'), 'E_BAD_JSON'],
      [() => driver.sendRaw('{"t":"loc","lat":NaN,"lng":-0.1,"ts":1}'), 'E_BAD_JSON'],
      [() => driver.send({ t: 'loc', lat: 91, lng: -0.1, ts: 1 }), 'E_VALIDATION'],
      [() => driver.send({ t: 'loc', lat: -0.1, lng: 251.48, ts: 1 }), 'E_VALIDATION'],
      [() => driver.send({ t: 'loc', lat: 51.5, lng: -0.1, ts: 1, extra: true }), 'E_VALIDATION'],
      [() => driver.send({ t: 'loc', lat: '51.5', lng: -0.1, ts: 1 }), 'E_VALIDATION'],
      [() => driver.send({ t: 'teleport' }), 'E_UNKNOWN_FRAME'],
      [() => driver.send({ t: 'watch', bbox: BBOX }), 'E_FORBIDDEN'],
      [() => driver.send({ t: 'accept', offerId: 'no-such-offer' }), 'E_UNKNOWN_OFFER'],
      [() => driver.send({ t: 'loc', lat: 51.48, lng: -0.1, ts: 1 }), 'E_STALE'],
      [() => driver.send({ t: 'loc', lat: 51.48, lng: -0.1, ts: Date.now() + 3_600_000 }), 'E_FUTURE_TIMESTAMP'],
    ];
    for (const [i, [send, code]] of steps.entries()) {
      send();
      const err = await driver.next((f) => f.t === 'error', `error frame for step ${i + 1}`);
      expect(err.code, `step ${i + 1}: ${JSON.stringify(err)}`).toBe(code);
    }
    expect(driver.closed).toBeUndefined();
    // MessagePack in, MessagePack out
    driver.send({ t: 'decline', offerId: 'no-such-offer' }, true);
    const err = await driver.next((f) => f.t === 'error', 'error frame in MessagePack');
    expect(driver.lastBinary).toBe(true);
    expect(err.code).toBe('E_UNKNOWN_OFFER');
  });

  it('plans blood from a bank with stock and a rescue to a food bank with room, and offers the blood leg to a cold-chain driver at once', async () => {
    const soon = Date.now() + 10 * 86_400_000;
    const put = (path: string, body: unknown) => call(t.base, 'PUT', path, { token: admin, body });
    expect((await put('/v1/sites/bank', { kind: 'blood_bank', name: 'Bank', lat: 51.6, lng: 0.1 })).status).toBe(200);
    expect((await put('/v1/sites/bank/inventory', { units: [{ product: 'red_cells', bloodType: 'O+', count: 3, expiresAt: soon }, { product: 'red_cells', bloodType: 'A+', count: 2, expiresAt: soon }] })).status).toBe(200);
    expect((await put('/v1/sites/hosp', { kind: 'hospital', name: 'Hospital', lat: 51.61, lng: 0.11 })).status).toBe(200);
    expect((await put('/v1/sites/fb', { kind: 'food_bank', name: 'Food bank', lat: 51.62, lng: 0.1, capacity: 50 })).status).toBe(200);
    await courier('cold1', 51.601, 0.101);
    const driver = await open(t.token('driver', 'cold1'));
    const desk = t.token('dispatcher', 'er-desk');
    const blood = await call(t.base, 'POST', '/v1/requests', { token: desk, body: { kind: 'blood', hospitalSiteId: 'hosp', product: 'red_cells', bloodType: 'A+', units: 3, urgency: 'emergency' } });
    expect(blood.status, JSON.stringify(blood.body)).toBe(201);
    expect(blood.body.plan.sources).toHaveLength(1);
    expect(blood.body.plan.sources[0]).toMatchObject({ siteId: 'bank', count: 3 });
    const offer = await driver.next((f) => f.t === 'offer' && f.requestId === blood.body.id, 'the blood offer');
    expect(offer.kind).toBe('blood');
    expect(offer.pickup).toEqual({ lat: 51.6, lng: 0.1 });
    const rescue = await call(t.base, 'POST', '/v1/requests', { token: desk, body: { kind: 'rescue', pickup: { lat: 51.615, lng: 0.1 } } });
    expect(rescue.status, JSON.stringify(rescue.body)).toBe(201);
    expect(rescue.body.plan.recipient.siteId).toBe('fb');
    const short = await call(t.base, 'POST', '/v1/requests', { token: desk, body: { kind: 'blood', hospitalSiteId: 'hosp', product: 'platelets', bloodType: 'O-', units: 2, urgency: 'urgent' } });
    expect(short.status).toBe(422);
    expect(short.body.error.code).toBe('E_NO_STOCK');
  });

  it('hides another requester\'s request from track', async () => {
    const mine = await call(t.base, 'POST', '/v1/requests', { token: t.token('requester', 'owner-a'), body: { kind: 'rescue', pickup: { lat: 51.3, lng: -0.3 }, dropoff: { lat: 51.31, lng: -0.3 } } });
    expect(mine.status).toBe(201);
    const other = await open(t.token('requester', 'owner-b'));
    other.send({ t: 'track', requestId: mine.body.id });
    expect((await other.next((f) => f.t === 'error', 'refusal')).code).toBe('E_UNKNOWN_REQUEST');
  });

  it('takes a gateway batch of locations in MessagePack', async () => {
    await courier('g1', 51.4, -0.2);
    const gateway = await open(admin);
    gateway.send({ t: 'locs', items: [['g1', 51.41, -0.2, Date.now()], ['nobody', 51, 0, 1]] }, true);
    const ack = await gateway.next((f) => f.t === 'ack', 'ack');
    expect(gateway.lastBinary).toBe(true);
    expect(ack).toMatchObject({ accepted: 1, rejected: [{ index: 1, code: 'E_UNKNOWN_COURIER' }] });
    // every item is checked on its own: bad ones are refused by index, the good one applied
    const now = Date.now();
    gateway.send({ t: 'locs', items: [['g1', 95, 0, now], ['g1', 51.42, -0.2, now + 1], ['g1', 51.4, -0.2, 1], 'junk', ['g1', 51.5, -0.2, now + 3_600_000]] }, true);
    const mixed = await gateway.next((f) => f.t === 'ack', 'ack of a mixed batch');
    expect(mixed).toMatchObject({ accepted: 1, rejected: [
      { index: 0, code: 'E_BAD_COORDINATE' }, { index: 2, code: 'E_STALE' }, { index: 3, code: 'E_VALIDATION' }, { index: 4, code: 'E_FUTURE_TIMESTAMP' },
    ] });
    // a frame that breaks the frame schema is refused whole, and the socket stays open
    gateway.send({ t: 'locs', items: 'junk' }, true);
    expect((await gateway.next((f) => f.t === 'error', 'schema refusal')).code).toBe('E_VALIDATION');
    expect(gateway.closed).toBeUndefined();
    const nearby = await call(t.base, 'GET', '/v1/nearby?lat=51.42&lng=-0.2&kind=courier&k=1', { token: admin });
    expect(nearby.body.results[0]).toMatchObject({ id: 'g1', lat: 51.42 });
  });
});

describe('stream limits', () => {
  it('answers a flood with rate-limit error frames, then closes the socket', async () => {
    const t = await startTestServer({ RATE_PER_SEC: '1', RATE_BURST: '2' });
    try {
      const c = await StreamClient.connect(t.ws, { token: t.token('requester', 'spammer') });
      for (let i = 0; i < 40; i++) c.send({ t: 'track', requestId: 'nope' });
      const limited = await c.next((f) => f.t === 'error' && f.code === 'E_RATE_LIMITED', 'a rate-limit error frame');
      expect(limited.message).toMatch(/retry after/);
      const closed = await c.waitClosed();
      expect(closed.code).toBe(1008);
      // others are unaffected
      const calm = await StreamClient.connect(t.ws, { token: t.token('requester', 'calm') });
      calm.send({ t: 'track', requestId: 'nope' });
      expect((await calm.next((f) => f.t === 'error', 'normal error')).code).toBe('E_UNKNOWN_REQUEST');
      calm.close();
    } finally {
      await t.close();
    }
  });

  it('closes a dispatcher that stays over the backpressure limit and keeps serving the others', async () => {
    // the fixture city's 2,000 couriers (seeded into the store as `npm start` does) moved by a gateway
    const t = await startTestServer({ WS_MAX_BACKPRESSURE_BYTES: '1024', WS_SLOW_CLOSE_MS: '300', SEED_CITY: 'small-city' });
    try {
      const city = loadScenario('small-city').couriers;
      const slow = await StreamClient.connect(t.ws, { token: t.token('dispatcher', 'slow') });
      const fast = await StreamClient.connect(t.ws, { token: t.token('dispatcher', 'fast') });
      const gateway = await StreamClient.connect(t.ws, { token: t.token('admin', 'gw') });
      for (const c of [slow, fast]) c.send({ t: 'watch', bbox: BBOX, hz: 20 });
      await slow.next((f) => f.t === 'snapshot', 'slow snapshot');
      await fast.next((f) => f.t === 'snapshot', 'fast snapshot');
      slow.pause();
      let step = 0;
      const pump = setInterval(() => {
        step++;
        const ts = Date.now();
        gateway.send({ t: 'locs', items: city.map((c) => [c.id, c.lat + (step % 2) * 1e-4, c.lng, ts]) }, true);
      }, 40);
      try {
        await eventually(() => (t.server.hub.size === 2 ? true : undefined), 'the slow dispatcher to be closed', 15_000);
        fast.frames.length = 0;
        await fast.next((f) => f.t === 'delta' && f.moved.length > 0, 'deltas still reaching the fast dispatcher');
      } finally {
        clearInterval(pump);
      }
      fast.close();
      gateway.close();
    } finally {
      await t.close();
    }
  }, 25_000);

  it('closes sockets with 1001 on drain', async () => {
    const t = await startTestServer();
    const c = await StreamClient.connect(t.ws, { token: t.token('dispatcher', 'd') });
    await t.server.drain();
    expect((await c.waitClosed()).code).toBe(1001);
  });
});
