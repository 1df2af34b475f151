/**
 * The nine ways a user lost acknowledged writes or wedged the server (issue 9), each replayed against the
 * server as a user runs it: `node dist/api/main.js` in a child process on its embedded store, killed with
 * SIGKILL and started again on the same DATA_DIR where the failure needs it; the store outage on PostgreSQL
 * through a TCP proxy that cuts the connection. Only HTTP and WebSocket clients touch the server.
 *
 * The world of these tests sits in Oslo, far from the fixture city (London) every empty store is seeded with.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../store/store.js';
import { startTcpProxy } from '../store/tcp-proxy.js';
import { testDatabaseUrl } from '../store/test-database.js';
import { Authenticator, type Role } from './auth.js';
import { type ServerProcess, startServerProcess } from './server-process.js';
import { type HttpReply, StreamClient, call, eventually } from './test-server.js';

const SECRET = 'integrity-test-secret-integrity-test-secret';
const auth = new Authenticator({ secret: SECRET, algorithm: 'HS256' }, []);
const token = (role: Role, sub: string): string => auth.signToken({ sub, role }, 3600);
const ADMIN = token('admin', 'ops');
const DESK = token('dispatcher', 'desk');
const WARD = token('requester', 'oslo-ward');
const OSLO = { lat: 59.9139, lng: 10.7522 };
const BANK = { lat: 59.92, lng: 10.75 };
const HOSP = { lat: 59.93, lng: 10.76 };
const DAY = 86_400_000;
const ENV = {
  JWT_SECRET: SECRET, DISPATCH_MODE: 'greedy', RATE_PER_SEC: '100000', RATE_BURST: '100000', INGEST_PER_SEC: '10000', INGEST_BURST: '10000',
  OPEN_REQUESTS_PER_REQUESTER: '5000', POSITION_FLUSH_MS: '200', CELL_SPEEDS_SAVE_MS: '300', OFFER_TTL_MS: '15000',
};

const put = (base: string, path: string, body: unknown, t = ADMIN) => call(base, 'PUT', path, { token: t, body });
const post = (base: string, path: string, body: unknown, t: string, headers?: Record<string, string>) => call(base, 'POST', path, { token: t, body, headers });
const get = (base: string, path: string, t = DESK) => call(base, 'GET', path, { token: t });

function expectStatus(r: HttpReply, status: number, what: string): void {
  expect(r.status, `${what}: ${JSON.stringify(r.body)?.slice(0, 400)}`).toBe(status);
}

/** A courier registered, on shift and placed in Oslo (dLat north of the centre). */
async function courierInOslo(base: string, id: string, dLat: number): Promise<void> {
  expectStatus(await put(base, `/v1/couriers/${id}`, { vehicle: 'car', capabilities: ['cold_chain'], capacity: 4 }), 200, `register ${id}`);
  expectStatus(await put(base, `/v1/couriers/${id}/status`, { status: 'available' }, token('driver', id)), 200, `${id} on shift`);
  expectStatus(await post(base, `/v1/couriers/${id}/location`, { lat: OSLO.lat + dLat, lng: OSLO.lng, ts: Date.now() }, token('driver', id)), 204, `${id} placed`);
}

/** Creates a delivery next to `courier` and has that courier accept it; returns the request id. */
async function acceptedDelivery(base: string, courier: string, dLat: number): Promise<string> {
  const driver = await StreamClient.connect(`${base.replace('http', 'ws')}/v1/stream`, { token: token('driver', courier) });
  try {
    const created = await post(base, '/v1/requests', { kind: 'delivery', pickup: { lat: OSLO.lat + dLat, lng: OSLO.lng + 0.001 }, dropoff: HOSP }, WARD);
    expectStatus(created, 201, 'delivery created');
    const offer = await driver.next((f) => f.t === 'offer' && f.requestId === created.body.id, `an offer to ${courier}`, 10_000);
    expectStatus(await post(base, `/v1/offers/${offer.offerId}/accept`, undefined, token('driver', courier)), 200, 'offer accepted');
    return created.body.id as string;
  } finally {
    driver.close();
  }
}

describe('the failures of issue 9, replayed against `node dist/api/main.js` on its embedded store', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'geodispatch-integrity-'));
  let srv: ServerProcess;
  const restart = async (how: 'kill' | 'stop'): Promise<void> => {
    await (how === 'kill' ? srv.kill() : srv.stop());
    srv = await startServerProcess({ ...ENV, DATA_DIR: dataDir });
  };

  beforeAll(async () => {
    srv = await startServerProcess({ ...ENV, DATA_DIR: dataDir });
  });
  afterAll(async () => {
    await srv?.kill();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('8: donor positions and blood types answer dispatchers and admins only', async () => {
    expectStatus(await put(srv.base, '/v1/donors/it-don', { bloodType: 'O-', lat: OSLO.lat, lng: OSLO.lng, available: true }), 200, 'donor registered');
    const q = `/v1/nearby?lat=${OSLO.lat}&lng=${OSLO.lng}&kind=donor&k=1`;
    for (const t of [token('driver', 'it-k1'), WARD]) {
      const r = await get(srv.base, q, t);
      expectStatus(r, 403, 'donor nearby for a driver or requester');
      expect(r.body.error.code).toBe('E_FORBIDDEN');
    }
    const r = await get(srv.base, q, DESK);
    expectStatus(r, 200, 'donor nearby for a dispatcher');
    expect(r.body.results[0]).toMatchObject({ id: 'it-don', bloodType: 'O-' });
  });

  it('7: sockets per principal are bounded, garbage frames close a socket, big frames are refused unless admin', async () => {
    const ws = srv.ws;
    const mine: StreamClient[] = [];
    try {
      for (let i = 0; i < 8; i++) mine.push(await StreamClient.connect(ws, { token: token('requester', 'hoarder') }));
      await expect(StreamClient.connect(ws, { token: token('requester', 'hoarder') })).rejects.toThrow(/429/);
      const other = await StreamClient.connect(ws, { token: token('requester', 'someone-else') });
      mine.push(other);
      const garbage = await StreamClient.connect(ws, { token: token('requester', 'garbler') });
      for (let i = 0; i < 25; i++) garbage.sendRaw(`not a frame ${i}`);
      expect((await garbage.waitClosed(5000)).code).toBe(1008);
      const big = await StreamClient.connect(ws, { token: token('requester', 'big-sender') });
      mine.push(big);
      big.send({ t: 'track', requestId: 'r_x', pad: 'x'.repeat(100 * 1024) });
      expect((await big.next((f) => f.t === 'error', 'an error frame for a 100 KiB frame')).code).toBe('E_FRAME_TOO_LARGE');
      expect(big.closed).toBeUndefined();
      expectStatus(await get(srv.base, '/health'), 200, 'health');
    } finally {
      for (const c of mine) c.close();
    }
  });

  it('6: a requester cannot cancel a load that is in the courier\'s box; a dispatcher can', async () => {
    await courierInOslo(srv.base, 'it-k2', 0.05);
    const id = await acceptedDelivery(srv.base, 'it-k2', 0.05);
    expectStatus(await post(srv.base, `/v1/requests/${id}/progress`, { status: 'picked_up' }, token('driver', 'it-k2')), 200, 'picked up');
    const refused = await post(srv.base, `/v1/requests/${id}/cancel`, undefined, WARD);
    expectStatus(refused, 409, 'requester cancel after pickup');
    expect(refused.body.error.code).toBe('E_ALREADY_PICKED_UP');
    expect((await get(srv.base, `/v1/requests/${id}`, WARD)).body.status).toBe('picked_up');
    const cancelled = await post(srv.base, `/v1/requests/${id}/cancel`, undefined, DESK);
    expectStatus(cancelled, 200, 'dispatcher cancel after pickup');
    expect(cancelled.body.status).toBe('cancelled');
  });

  it('4: a ping from the far future is refused and freezes nobody; an old one is reported stale', async () => {
    await courierInOslo(srv.base, 'it-k3', 0.08);
    const driver = token('driver', 'it-k3');
    const future = await post(srv.base, '/v1/couriers/it-k3/location', { lat: OSLO.lat, lng: OSLO.lng, ts: Date.UTC(2286, 0, 1) }, driver);
    expectStatus(future, 400, 'a ping in 2286');
    expect(future.body.error.code).toBe('E_FUTURE_TIMESTAMP');
    const now = Date.now();
    expectStatus(await post(srv.base, '/v1/couriers/it-k3/location', { lat: OSLO.lat + 0.081, lng: OSLO.lng, ts: now }, driver), 204, 'a ping of now');
    const stale = await post(srv.base, '/v1/couriers/it-k3/location', { lat: OSLO.lat, lng: OSLO.lng, ts: now - 60_000 }, driver);
    expectStatus(stale, 409, 'an older ping');
    expect(stale.body.error.code).toBe('E_STALE');
    const near = await get(srv.base, `/v1/nearby?lat=${OSLO.lat + 0.081}&lng=${OSLO.lng}&kind=courier&k=1`);
    expect(near.body.results[0]).toMatchObject({ id: 'it-k3', lat: OSLO.lat + 0.081 });
  });

  it('2: reusing the first of 1,001 Idempotency-Keys replays it, and a key kept over a cancel and a restart never wedges writes', async () => {
    const body = { kind: 'rescue', pickup: { lat: OSLO.lat - 0.05, lng: OSLO.lng }, dropoff: { lat: OSLO.lat - 0.04, lng: OSLO.lng } };
    const keyed = (key: string, b: unknown = body) => post(srv.base, '/v1/requests', b, WARD, { 'idempotency-key': key });
    const first = await keyed('bulk-0');
    expectStatus(first, 201, 'first keyed create');
    for (let i = 1; i <= 1000; i += 50) {
      const batch = await Promise.all(Array.from({ length: Math.min(50, 1001 - i) }, (_, j) => keyed(`bulk-${i + j}`)));
      for (const r of batch) expectStatus(r, 201, 'keyed create');
    }
    const again = await keyed('bulk-0');
    expectStatus(again, 201, 'the first key reused');
    expect(again.body.id).toBe(first.body.id);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const mismatch = await keyed('bulk-0', { ...body, dropoff: { lat: OSLO.lat - 0.03, lng: OSLO.lng } });
    expectStatus(mismatch, 422, 'the first key with another body');
    expect(mismatch.body.error.code).toBe('E_IDEMPOTENCY_MISMATCH');
    expectStatus(await get(srv.base, '/ready'), 200, 'ready after the reuse');
    expectStatus(await post(srv.base, '/v1/requests', body, token('requester', 'other-ward')), 201, "another requester's create");
    await courierInOslo(srv.base, 'it-k4', -0.2);

    const kept = await keyed('kept-over-restart');
    expectStatus(kept, 201, 'keyed create before the restart');
    expectStatus(await post(srv.base, `/v1/requests/${kept.body.id}/cancel`, undefined, WARD), 200, 'cancel');
    await restart('kill');
    const retried = await keyed('kept-over-restart');
    expectStatus(retried, 201, 'the key retried after a restart');
    expect(retried.body.id).toBe(kept.body.id);
    expect(retried.body).toEqual(kept.body);
    expectStatus(await get(srv.base, '/ready'), 200, 'ready after the retry');
    expectStatus(await post(srv.base, '/v1/requests', body, token('requester', 'third-ward')), 201, "another requester's create after the retry");
    expectStatus(await put(srv.base, '/v1/couriers/it-k4/status', { status: 'offline' }, token('driver', 'it-k4')), 200, "a driver's status change after the retry");
  });

  it('1 and 9: every acknowledged admin write, acceptance and blood plan survives a SIGKILL, and reads show what the create answered', async () => {
    const base = srv.base;
    const expiresAt = Date.now() + 10 * DAY;
    expectStatus(await put(base, '/v1/sites/it-bank', { kind: 'blood_bank', name: 'Oslo blood bank', ...BANK }), 200, 'bank');
    expectStatus(await put(base, '/v1/sites/it-bank/inventory', { units: [{ product: 'red_cells', bloodType: 'O+', count: 5, expiresAt }] }), 200, 'stock');
    expectStatus(await put(base, '/v1/sites/it-hosp', { kind: 'hospital', name: 'Oslo hospital', ...HOSP }), 200, 'hospital');
    const ring = [[10.6, 59.85], [10.9, 59.85], [10.9, 60.0], [10.6, 60.0], [10.6, 59.85]];
    expectStatus(await put(base, '/v1/geofences/it-zone', { kind: 'zone', geometry: { type: 'Polygon', coordinates: [ring] } }), 200, 'fence');
    // two pings 10 s apart teach the engine a neighbourhood speed
    expectStatus(await put(base, '/v1/couriers/it-k1', { vehicle: 'car', capabilities: ['cold_chain'], capacity: 4 }), 200, 'courier');
    expectStatus(await put(base, '/v1/couriers/it-k1/status', { status: 'available' }, token('driver', 'it-k1')), 200, 'on shift');
    const t0 = Date.now() - 10_000;
    expectStatus(await post(base, '/v1/couriers/it-k1/location', { lat: BANK.lat - 0.001, lng: BANK.lng, ts: t0 }, token('driver', 'it-k1')), 204, 'ping 1');
    expectStatus(await post(base, '/v1/couriers/it-k1/location', { lat: BANK.lat, lng: BANK.lng, ts: t0 + 10_000 }, token('driver', 'it-k1')), 204, 'ping 2');
    const delivery = await acceptedDelivery(base, 'it-k1', BANK.lat - OSLO.lat);
    const blood = await post(base, '/v1/requests', { kind: 'blood', hospitalSiteId: 'it-hosp', product: 'red_cells', bloodType: 'O+', units: 2, urgency: 'urgent', reference: 'ward 7 / bed 3' }, WARD);
    expectStatus(blood, 201, 'blood request');
    expect(blood.body.plan.sources).toEqual([expect.objectContaining({ siteId: 'it-bank', count: 2, units: [expect.objectContaining({ product: 'red_cells', bloodType: 'O+', count: 2, expiresAt })] })]);
    const read = await get(base, `/v1/requests/${blood.body.id}`, WARD);
    expectStatus(read, 200, 'blood request read back');
    expect(read.body.plan).toEqual(blood.body.plan);
    expect(read.body.reference).toBe('ward 7 / bed 3');

    await new Promise((r) => setTimeout(r, 1500)); // positions and speeds written behind
    await restart('kill');
    const after = srv.base;
    const courier = await get(after, `/v1/nearby?lat=${BANK.lat}&lng=${BANK.lng}&kind=courier&k=1`);
    expect(courier.body.results[0]).toMatchObject({ id: 'it-k1', vehicle: 'car', status: 'busy', lat: BANK.lat, lng: BANK.lng });
    const stock = await get(after, `/v1/nearby?lat=${BANK.lat}&lng=${BANK.lng}&kind=site&siteKind=blood_bank&product=red_cells&bloodType=O%2B&units=1`);
    expect(stock.body.results[0]).toMatchObject({ id: 'it-bank', name: 'Oslo blood bank', units: 3 });
    expect((await get(after, `/v1/nearby?lat=${HOSP.lat}&lng=${HOSP.lng}&kind=site&siteKind=hospital&k=1`)).body.results[0]).toMatchObject({ id: 'it-hosp' });
    expect((await get(after, `/v1/nearby?lat=${OSLO.lat}&lng=${OSLO.lng}&kind=donor&k=1`)).body.results[0]).toMatchObject({ id: 'it-don', bloodType: 'O-' });
    const watcher = await StreamClient.connect(srv.ws, { token: DESK });
    watcher.send({ t: 'watch', bbox: [10.5, 59.8, 11.0, 60.1], kinds: ['fences'] });
    const snapshot = await watcher.next((f) => f.t === 'snapshot', 'a watch snapshot');
    watcher.close();
    expect(snapshot.fences.map((f: { id: string }) => f.id)).toContain('it-zone');
    const d = await get(after, `/v1/requests/${delivery}`, WARD);
    expectStatus(d, 200, 'the accepted delivery after the restart');
    expect(d.body).toMatchObject({ status: 'assigned', assignment: { courierId: 'it-k1' } });
    const b = await get(after, `/v1/requests/${blood.body.id}`, WARD);
    expectStatus(b, 200, 'the blood request after the restart');
    expect(b.body.plan).toEqual(blood.body.plan);
    expect(b.body.reference).toBe('ward 7 / bed 3');

    await srv.stop();
    const store = await openStore({ dataDir });
    try {
      expect((await store.loadState()).cellSpeeds.length, 'learned cell speeds saved').toBeGreaterThan(0);
    } finally {
      await store.close();
    }
    srv = await startServerProcess({ ...ENV, DATA_DIR: dataDir });
  });

  it("3: nobody can post a request under another requester's id, before or after a restart", async () => {
    const body = { kind: 'rescue', pickup: { lat: OSLO.lat - 0.06, lng: OSLO.lng }, dropoff: { lat: OSLO.lat - 0.05, lng: OSLO.lng } };
    const mine = await post(srv.base, '/v1/requests', body, WARD, { 'idempotency-key': 'ward-own-1' });
    expectStatus(mine, 201, "the ward's request");
    expectStatus(await post(srv.base, `/v1/requests/${mine.body.id}/cancel`, undefined, WARD), 200, 'finished by a cancel');
    await restart('kill');
    const thief = token('requester', 'another-ward');
    const taken = await post(srv.base, '/v1/requests', { ...body, id: mine.body.id }, thief);
    expectStatus(taken, 400, 'a create naming an existing id');
    expect(taken.body.error.message).toMatch(/reference/);
    const still = await get(srv.base, `/v1/requests/${mine.body.id}`, WARD);
    expectStatus(still, 200, "the ward's request read by the ward");
    expect(still.body.status).toBe('cancelled');
    const cancelAgain = await post(srv.base, `/v1/requests/${mine.body.id}/cancel`, undefined, WARD);
    expectStatus(cancelAgain, 409, 'cancelling an ended request after the restart');
    expectStatus(await post(srv.base, `/v1/requests/${mine.body.id}/cancel`, undefined, thief), 404, "cancelling the ward's request as another requester");
    expectStatus(await get(srv.base, `/v1/requests/${mine.body.id}`, thief), 404, "the ward's request read by another requester");
    const replay = await post(srv.base, '/v1/requests', body, WARD, { 'idempotency-key': 'ward-own-1' });
    expect([replay.status, replay.body.id]).toEqual([201, mine.body.id]);
  });
});

describe('5: a write the store refuses changes nothing in memory (PostgreSQL through a cut connection)', () => {
  it('answers 503 while the connection is cut, keeps the driver on shift, and takes the same write once the store is back', async () => {
    const databaseUrl = testDatabaseUrl();
    const url = new URL(databaseUrl);
    const schema = `gd_integrity_${process.pid}`;
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    const viaProxy = new URL(databaseUrl);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    viaProxy.searchParams.set('options', `-c search_path=${schema},public`);
    let srv: ServerProcess | undefined;
    try {
      srv = await startServerProcess({ ...ENV, DATABASE_URL: viaProxy.toString(), DATA_DIR: 'unused' });
      const driver = token('driver', 'c0');
      const where = `/v1/nearby?lat=51.541587&lng=-0.076359&kind=courier&k=1`;
      expect((await get(srv.base, where)).body.results[0]).toMatchObject({ id: 'c0', status: 'available' });
      proxy.cut('reset');
      const refused = await put(srv.base, '/v1/couriers/c0/status', { status: 'offline' }, driver);
      expectStatus(refused, 503, 'a status change while the store is cut off');
      expect(refused.body.error.code).toBe('E_STORE_UNAVAILABLE');
      expect((await get(srv.base, where)).body.results[0]).toMatchObject({ id: 'c0', status: 'available' });
      expectStatus(await post(srv.base, '/v1/requests', { kind: 'delivery', pickup: { lat: 51.54, lng: -0.07 }, dropoff: { lat: 51.55, lng: -0.07 } }, WARD), 503, 'a create while the store is cut off');
      expectStatus(await get(srv.base, '/ready'), 503, 'not ready while the store is cut off');
      proxy.restore();
      await eventually(async () => ((await get(srv!.base, '/ready')).status === 200 ? true : undefined), 'ready again after the store is back', 20_000);
      expectStatus(await put(srv.base, '/v1/couriers/c0/status', { status: 'offline' }, driver), 200, 'the same status change once the store is back');
      expect((await get(srv.base, where)).body.results[0]).toMatchObject({ id: 'c0', status: 'offline' });
    } finally {
      await srv?.kill();
      await proxy.close();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    }
  }, 120_000);
});
