/**
 * End-to-end over HTTP: the instance as `npm start` builds it (store, journal, write-behind, worker pool) on a
 * free port and a throwaway store — PGlite, and PostgreSQL when TEST_DATABASE_URL is set — driven with fetch
 * in [send, expect] steps.
 */
import { createHmac } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpReply, type TestServer, TEST_SECRET, TEST_STORES, call, startTestServer } from './test-server.js';

type Step = [send: () => Promise<HttpReply>, expect: { status: number; code?: string; body?: (b: any, r: HttpReply) => void }];

async function run(steps: Step[]): Promise<void> {
  for (const [i, [send, want]] of steps.entries()) {
    const reply = await send();
    const label = `step ${i + 1}: got ${reply.status} ${JSON.stringify(reply.body)?.slice(0, 300)}`;
    expect(reply.status, label).toBe(want.status);
    if (want.code !== undefined) expect(reply.body?.error?.code, label).toBe(want.code);
    want.body?.(reply.body, reply);
  }
}

const LONDON = { lat: 51.5074, lng: -0.1278 };

describe.each(TEST_STORES)('HTTP API end to end on %s', (store) => {
  let t: TestServer;
  let admin: string;
  let dispatcher: string;
  let requester: string;
  const put = (path: string, body: unknown, token = admin) => () => call(t.base, 'PUT', path, { token, body });
  const post = (path: string, body: unknown, token: string, headers?: Record<string, string>) => () => call(t.base, 'POST', path, { token, body, headers });
  const get = (path: string, token?: string) => () => call(t.base, 'GET', path, { token });

  beforeAll(async () => {
    t = await startTestServer({ RATE_PER_SEC: '1000', RATE_BURST: '1000' }, store);
    admin = t.token('admin', 'ops');
    dispatcher = t.token('dispatcher', 'desk');
    requester = t.token('requester', 'hospital-1');
  });
  afterAll(async () => t.close());

  it('serves health, readiness, metrics and the OpenAPI document without a token', async () => {
    await run([
      [get('/health'), { status: 200, body: (b) => expect(b).toEqual({ status: 'ok' }) }],
      [get('/ready'), { status: 200 }],
      [get('/metrics'), { status: 200, body: (b) => expect(b).toContain('geodispatch_') }],
      [get('/openapi.json'), { status: 200, body: (b) => expect(b.openapi).toMatch(/^3\./) }],
      [get('/nope'), { status: 404, code: 'E_NOT_FOUND' }],
    ]);
  });

  it('lets an admin load a site, its stock, a donor, a courier and a fence, and anyone find them nearest first', async () => {
    const soon = Date.now() + 10 * 86_400_000;
    await run([
      [put('/v1/sites/bank-1', { kind: 'blood_bank', name: 'Bank One', lat: 51.51, lng: -0.12 }), { status: 200, body: (b) => expect(b.id).toBe('bank-1') }],
      [put('/v1/sites/bank-1/inventory', { units: [{ product: 'red_cells', bloodType: 'O-', count: 6, expiresAt: soon }] }), { status: 200 }],
      [put('/v1/sites/hosp-1', { kind: 'hospital', name: 'Hospital', lat: 51.5, lng: -0.13 }), { status: 200 }],
      [put('/v1/donors/don-1', { bloodType: 'O-', lat: 51.505, lng: -0.125, available: true }), { status: 200 }],
      [put('/v1/couriers/k1', { vehicle: 'car', capabilities: ['cold_chain'], capacity: 4 }), { status: 200, body: (b) => expect(b.status).toBe('offline') }],
      [post('/v1/couriers/k1/location', { lat: 51.508, lng: -0.125, ts: Date.now() }, admin), { status: 204 }],
      [put('/v1/geofences/zone-1', { kind: 'zone', geometry: { type: 'Polygon', coordinates: [[[-0.2, 51.4], [0, 51.4], [0, 51.6], [-0.2, 51.6], [-0.2, 51.4]]] } }), { status: 200 }],
      [get('/v1/nearby?lat=51.5074&lng=-0.1278&kind=site&siteKind=blood_bank&product=red_cells&bloodType=A%2B&units=2', requester), {
        status: 200, body: (b) => expect(b.results.map((r: any) => [r.id, r.units])).toEqual([['bank-1', 6]]),
      }],
      [get('/v1/nearby?lat=51.5074&lng=-0.1278&kind=courier&k=5', dispatcher), { status: 200, body: (b) => expect(b.results[0]).toMatchObject({ id: 'k1', kind: 'courier' }) }],
      [get('/v1/nearby?lat=51.5074&lng=-0.1278&kind=donor&bloodType=O-&product=red_cells', dispatcher), { status: 200, body: (b) => expect(b.results.map((r: any) => r.id)).toEqual(['don-1']) }],
    ]);
  });

  it('answers bad input with 400 and a code, and too large a body with 413', async () => {
    await put('/v1/couriers/bad1', { vehicle: 'bike', capacity: 2 })();
    const loc = (body: unknown) => post('/v1/couriers/bad1/location', body, admin);
    const raw = (text: string) => () => call(t.base, 'POST', '/v1/couriers/bad1/location', { token: admin, raw: text, headers: { 'content-type': 'application/json' } });
    await run([
      [raw('{"lat": 51.5, "lng":'), { status: 400, code: 'E_BAD_JSON' }],
      [raw('{"lat": 51.5, "lng": -0.1, "ts": 1, "__proto__": {"admin": true}}'), { status: 400, code: 'E_BAD_JSON' }],
      [raw('{"lat": NaN, "lng": -0.1, "ts": 1}'), { status: 400, code: 'E_BAD_JSON' }],
      [loc({ lat: 91, lng: -0.1, ts: 1 }), { status: 400, code: 'E_VALIDATION' }],
      [loc({ lat: -0.1278, lng: 151.5074, ts: 1 }), { status: 204 }], // swapped but in range: a valid point at sea
      [loc({ lat: 151.5074, lng: -0.1278, ts: 1 }), { status: 400, code: 'E_VALIDATION', body: (b) => expect(b.error.message).toMatch(/swapped/) }],
      [loc({ lat: 51.5, lng: -0.1, ts: 1, mood: 'happy' }), { status: 400, code: 'E_VALIDATION', body: (b) => expect(b.error.message).toMatch(/unknown field 'mood'/) }],
      [loc({ lat: '51.5', lng: -0.1, ts: 1 }), { status: 400, code: 'E_VALIDATION' }],
      [raw(JSON.stringify({ lat: 51.5, lng: -0.1, ts: 1, pad: 'x'.repeat(20_000) })), { status: 413, code: 'E_BODY_TOO_LARGE' }],
      [get('/v1/nearby?lat=abc&lng=0', admin), { status: 400, code: 'E_VALIDATION' }],
      [put('/v1/sites/s-bad', { kind: 'castle', name: 'x', lat: 1, lng: 1 }), { status: 400, code: 'E_VALIDATION' }],
      [raw('{"lat": 51.5, "lng": -0.1, "ts": 1.5}'), { status: 400, code: 'E_VALIDATION' }],
      [raw('{"lat": 51.5, "lng": -0.1, "ts": 5e-324}'), { status: 400, code: 'E_VALIDATION' }],
      [() => call(t.base, 'POST', '/v1/requests', { token: requester, raw: '{"kind":"rescue","pickup":{"lat":1,"lng":1},"reference":"a\\u0000b"}', headers: { 'content-type': 'application/json' } }), { status: 400, code: 'E_BAD_JSON' }],
      [put('/v1/sites/s-odd', { kind: 'hospital', name: 'half \ud800 pair', lat: 1, lng: 1 }), { status: 400, code: 'E_BAD_JSON' }],
      [get('/v1/requests/a%00b', requester), { status: 404, code: 'E_UNKNOWN_REQUEST' }],
      [get('/v1/requests/..%2F..%2Fetc', requester), { status: 404, code: 'E_UNKNOWN_REQUEST' }],
      [post('/v1/offers/%00/accept', undefined, t.token('driver', 'bad1')), { status: 404, code: 'E_UNKNOWN_OFFER' }],
      [get('/health'), { status: 200 }], // still serving
    ]);
  });

  it('refuses a blood request to a site that is not a hospital, and a deadline already past', async () => {
    await put('/v1/sites/not-a-hospital', { kind: 'restaurant', name: 'Diner', lat: 51.5, lng: -0.12 })();
    await run([
      [post('/v1/requests', { kind: 'blood', hospitalSiteId: 'not-a-hospital', product: 'red_cells', bloodType: 'O+', units: 1, urgency: 'urgent' }, requester), { status: 422, code: 'E_NOT_A_HOSPITAL' }],
      [post('/v1/requests', { kind: 'delivery', pickup: LONDON, dropoff: LONDON, deadline: Date.now() - 1000 }, requester), { status: 422, code: 'E_DEADLINE_PASSED' }],
    ]);
  });

  it('charges a body its size from the rate budget: a 64 KiB body costs 16 requests, so parsing cannot eat a principal\'s whole share', async () => {
    const t2 = await startTestServer({ RATE_PER_SEC: '1', RATE_BURST: '20', BODY_LIMIT_BYTES: '65536' }, store);
    try {
      const token = t2.token('admin', 'big-bodies');
      const big = { kind: 'hospital', name: 'x'.repeat(180), lat: 1, lng: 1 };
      const raw = JSON.stringify(big).padEnd(60_000, ' ');
      const send = () => call(t2.base, 'PUT', '/v1/sites/b1', { token, raw, headers: { 'content-type': 'application/json' } });
      expect((await send()).status).toBe(200); // 15 tokens: 1 for the request, 14 more for 60,000 bytes
      const second = await send();
      expect(second.status).toBe(429);
      expect(second.body.error.code).toBe('E_RATE_LIMITED');
      expect((await call(t2.base, 'GET', '/v1/nearby?lat=1&lng=1', { token })).status).toBe(200); // small calls still fit
    } finally {
      await t2.close();
    }
  });

  it('refuses missing, expired, forged and alg:none tokens with 401, and the wrong role or another driver with 403', async () => {
    const expired = t.token('admin', 'ops', 60, Date.now() - 3_600_000);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = b64({ sub: 'ops', role: 'admin', exp: Math.floor(Date.now() / 1000) + 600 });
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${claims}.`;
    const forged = `${b64({ alg: 'HS256', typ: 'JWT' })}.${claims}.${createHmac('sha256', 'wrong-secret').update(`${b64({ alg: 'HS256', typ: 'JWT' })}.${claims}`).digest('base64url')}`;
    expect(TEST_SECRET.length).toBeGreaterThanOrEqual(32);
    await put('/v1/couriers/d7', { vehicle: 'bike', capacity: 1 })();
    const driver8 = t.token('driver', 'd8');
    await run([
      [get('/v1/nearby?lat=51.5&lng=0'), { status: 401, code: 'E_UNAUTHENTICATED' }],
      [get('/v1/nearby?lat=51.5&lng=0', expired), { status: 401, code: 'E_TOKEN_EXPIRED' }],
      [get('/v1/nearby?lat=51.5&lng=0', none), { status: 401, code: 'E_UNAUTHENTICATED' }],
      [get('/v1/nearby?lat=51.5&lng=0', forged), { status: 401, code: 'E_UNAUTHENTICATED' }],
      [put('/v1/sites/x1', { kind: 'hospital', name: 'x', lat: 1, lng: 1 }, requester), { status: 403, code: 'E_FORBIDDEN' }],
      [post('/v1/couriers/d7/location', { lat: 51.5, lng: -0.1, ts: Date.now() }, driver8), { status: 403, code: 'E_FORBIDDEN' }],
      [put('/v1/couriers/d7/status', { status: 'available' }, driver8), { status: 403, code: 'E_FORBIDDEN' }],
      [post('/v1/requests', { kind: 'delivery', pickup: LONDON, dropoff: LONDON }, driver8), { status: 403, code: 'E_FORBIDDEN' }],
    ]);
  });

  it('returns the same request for a retried Idempotency-Key, and hides it from other requesters', async () => {
    const body = { kind: 'delivery', pickup: { lat: 51.51, lng: -0.12 }, dropoff: { lat: 51.52, lng: -0.11 } };
    const first = await post('/v1/requests', body, requester, { 'idempotency-key': 'order-42' })();
    expect(first.status).toBe(201);
    const other = t.token('requester', 'hospital-2');
    await run([
      [post('/v1/requests', body, requester, { 'idempotency-key': 'order-42' }), { status: 201, body: (b, r) => {
        expect(b.id).toBe(first.body.id);
        expect(r.headers.get('idempotent-replayed')).toBe('true');
      } }],
      [post('/v1/requests', body, requester, { 'idempotency-key': 'order-43' }), { status: 201, body: (b) => expect(b.id).not.toBe(first.body.id) }],
      [get(`/v1/requests/${first.body.id}`, requester), { status: 200, body: (b) => expect(b).toMatchObject({ id: first.body.id, kind: 'delivery' }) }],
      [get(`/v1/requests/${first.body.id}`, other), { status: 404, code: 'E_UNKNOWN_REQUEST' }],
      [post(`/v1/requests/${first.body.id}/cancel`, undefined, other), { status: 404, code: 'E_UNKNOWN_REQUEST' }],
      [post(`/v1/requests/${first.body.id}/cancel`, undefined, requester), { status: 200, body: (b) => expect(b.status).toBe('cancelled') }],
    ]);
  });

  it('speaks MessagePack both ways', async () => {
    const reply = await call(t.base, 'PUT', '/v1/couriers/mp1', { token: admin, body: { vehicle: 'van', capabilities: [], capacity: 9 }, msgpack: true });
    expect(reply.status).toBe(200);
    expect(reply.headers.get('content-type')).toContain('msgpack');
    expect(reply.body).toMatchObject({ id: 'mp1', vehicle: 'van', capacity: 9 });
    const bad = await call(t.base, 'POST', '/v1/couriers/mp1/location', { token: admin, body: { lat: 95, lng: 0, ts: 1 }, msgpack: true });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('E_VALIDATION');
  });

  it('answers nearest couriers the same in JSON and MessagePack, each concurrent query with its own answer', async () => {
    const now = Date.now();
    const spots = [[51.5011, -0.1411], [51.5155, -0.0922], [51.4613, -0.1156], [51.5412, -0.1430]];
    for (let i = 0; i < spots.length; i++) {
      await put(`/v1/couriers/nb${i}`, { vehicle: i % 2 ? 'car' : 'bike', capacity: 1 })();
      const r = await call(t.base, 'POST', `/v1/couriers/nb${i}/location`, { token: admin, body: { lat: spots[i][0], lng: spots[i][1], ts: now } });
      expect(r.status).toBe(204);
    }
    const path = (i: number): string => `/v1/nearby?lat=${spots[i][0]}&lng=${spots[i][1]}&k=1`;
    const json = await call(t.base, 'GET', path(2), { token: dispatcher });
    const packed = await call(t.base, 'GET', path(2), { token: dispatcher, msgpack: true });
    expect(packed.headers.get('content-type')).toContain('msgpack');
    expect(packed.body).toEqual(json.body);
    expect(json.body.results[0]).toMatchObject({ id: 'nb2', kind: 'courier', lat: spots[2][0], lng: spots[2][1], distance: 0, vehicle: 'bike' });
    // the answer bytes are written into one reused buffer: many queries in flight must never see another's
    const answers = await Promise.all(Array.from({ length: 40 }, (_, j) => call(t.base, 'GET', path(j % spots.length), { token: dispatcher })));
    answers.forEach((a, j) => expect(a.body.results[0].id, `query ${j}`).toBe(`nb${j % spots.length}`));
  });

  it('takes a fleet batch and reports bad items by index', async () => {
    await put('/v1/couriers/f1', { vehicle: 'bike', capacity: 1 })();
    const now = Date.now();
    await run([
      [post('/v1/locations', [{ id: 'f1', lat: 51.5, lng: -0.1, ts: now }, { id: 'f1', lat: 99, lng: 0, ts: 1 }, { id: 'ghost', lat: 51.5, lng: -0.1, ts: 1 }, { id: 'f1', lat: 51.5, lng: -0.1, ts: now - 1 }, { id: 'f1', lat: 51.5, lng: -0.1, ts: now + 3_600_000 }], admin), {
        status: 200, body: (b) => expect(b).toEqual({ accepted: 1, rejected: [{ index: 1, code: 'E_VALIDATION' }, { index: 2, code: 'E_UNKNOWN_COURIER' }, { index: 3, code: 'E_STALE' }, { index: 4, code: 'E_FUTURE_TIMESTAMP' }] }),
      }],
    ]);
  });

  it('takes 10,000 items in one batch body (past the 64 KiB limit of other bodies), and answers a larger body 413 the client reads', async () => {
    await put('/v1/couriers/f2', { vehicle: 'van', capacity: 9 })();
    const t0 = Date.now() - 20_000;
    const items = Array.from({ length: 10_000 }, (_, i) => ({ id: 'f2', lat: 51.5 + i * 1e-6, lng: -0.1, ts: t0 + i, speed: 5, heading: 90, accuracy: 8 }));
    const big = await call(t.base, 'POST', '/v1/locations', { token: admin, body: items });
    expect(big.status).toBe(200);
    expect(big.body).toEqual({ accepted: 10_000, rejected: [] });
    const tooBig = await call(t.base, 'POST', '/v1/locations', { token: admin, raw: JSON.stringify(items.map((x) => ({ ...x, pad: 'p'.repeat(400) }))), headers: { 'content-type': 'application/json' } });
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.error.code).toBe('E_BODY_TOO_LARGE');
    const small = await call(t.base, 'POST', '/v1/couriers/f2/location', { token: admin, raw: JSON.stringify({ lat: 1, lng: 1, ts: 1, pad: 'p'.repeat(70_000) }), headers: { 'content-type': 'application/json' } });
    expect(small.status).toBe(413);
  });
});

describe('HTTP limits and shutdown', () => {
  it('answers 429 with Retry-After once a principal spends its burst', async () => {
    const t = await startTestServer({ RATE_PER_SEC: '1', RATE_BURST: '3' });
    try {
      const token = t.token('dispatcher', 'busy-desk');
      const statuses: number[] = [];
      let limited: HttpReply | undefined;
      for (let i = 0; i < 5; i++) {
        const r = await call(t.base, 'GET', '/v1/nearby?lat=51.5&lng=0', { token });
        statuses.push(r.status);
        if (r.status === 429) limited = r;
      }
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      expect(limited?.body.error.code).toBe('E_RATE_LIMITED');
      expect(Number(limited?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      // another principal is unaffected
      expect((await call(t.base, 'GET', '/v1/nearby?lat=51.5&lng=0', { token: t.token('dispatcher', 'calm-desk') })).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('answers /ready with 503 while draining, then stops accepting', async () => {
    const t = await startTestServer({ DRAIN_GRACE_MS: '400' });
    expect((await call(t.base, 'GET', '/ready')).status).toBe(200);
    const drained = t.server.drain();
    const during = await call(t.base, 'GET', '/ready');
    expect(during.status).toBe(503);
    expect(during.body).toMatchObject({ status: 'not-ready', reason: 'draining' });
    await drained;
    // a new connection is refused: the listen socket is closed
    const refused = await new Promise<string>((resolve) => {
      const socket = connect(t.port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
  });
});

describe('Idempotency-Key racing its own first attempt', () => {
  it('creates one request when the same key arrives twice before the first commit lands', async () => {
    const t = await startTestServer({ RATE_PER_SEC: '1000', RATE_BURST: '1000' });
    try {
      const requester = t.token('requester', 'hospital-race');
      const body = JSON.stringify({ kind: 'delivery', pickup: { lat: 51.5, lng: -0.13 }, dropoff: { lat: 51.51, lng: -0.1 } });
      // two connections write the same keyed request at once: the server reads both before the first commit
      // lands (pipelining both on one connection is not an option: uWS aborts a pipelined request whose answer
      // waits for the store, uNetworking/uWebSockets.js#277)
      const one = `POST /v1/requests HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${requester}\r\ncontent-type: application/json\r\nidempotency-key: order-77\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      const answer = (socket: Socket): Promise<string> =>
        new Promise<string>((resolve, reject) => {
          let got = '';
          socket.on('data', (d) => {
            got += String(d);
            if (/\}\s*$/.test(got)) {
              socket.destroy();
              resolve(got);
            }
          });
          socket.on('error', reject);
          setTimeout(() => reject(new Error(`an answer expected, got: ${got.slice(0, 500)}`)), 5000).unref();
        });
      const sockets = await Promise.all([0, 1].map(() => new Promise<Socket>((resolve) => { const s = connect(t.port, '127.0.0.1', () => resolve(s)); })));
      const answers = sockets.map(answer);
      for (const s of sockets) s.write(one);
      const raw = (await Promise.all(answers)).join('\n');
      const statuses = [...raw.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
      expect(statuses).toEqual(['201', '201']);
      const ids = [...raw.matchAll(/"id":"(r_[^"]+)"/g)].map((m) => m[1]);
      expect(new Set(ids).size).toBe(1);
      expect(raw).toContain('idempotent-replayed: true');
    } finally {
      await t.close();
    }
  });
});
