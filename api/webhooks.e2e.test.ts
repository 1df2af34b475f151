/**
 * Webhooks end to end: the instance as `npm start` builds it (startTestServer), real loopback receivers
 * (node:http), the registry over HTTP, deliveries signed, in order, retried and caught up.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type TestServer, TEST_STORES, call, eventually, startTestServer } from './test-server.js';
import { type WebhookReceiver, startWebhookReceiver } from './webhook-receiver.js';

const SECRET = 'whsec-0123456789abcdef';
const LONDON = { lat: 51.5074, lng: -0.1278 };
// short back-off and poll so retries happen within a test's seconds
const FAST = { WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_BACKOFF_MIN_MS: '50', WEBHOOK_BACKOFF_MAX_MS: '400', WEBHOOK_POLL_MS: '100', WEBHOOK_TIMEOUT_MS: '1000', RATE_PER_SEC: '1000', RATE_BURST: '1000' };

describe.each(TEST_STORES)('webhooks end to end on %s', (store) => {
  let t: TestServer;
  let admin: string;
  let requester: string;
  const receivers: WebhookReceiver[] = [];
  const receiver = async (port = 0) => {
    const r = await startWebhookReceiver(SECRET, port);
    receivers.push(r);
    return r;
  };
  const putHook = (id: string, url: string, events: string[], secret = SECRET) => call(t.base, 'PUT', `/v1/webhooks/${id}`, { token: admin, body: { url, events, secret } });
  const createRequest = (i: number) => call(t.base, 'POST', '/v1/requests', { token: requester, body: { kind: 'delivery', pickup: { lat: LONDON.lat + i * 1e-4, lng: LONDON.lng }, dropoff: LONDON, reference: `ref-${i}` } });

  beforeAll(async () => {
    t = await startTestServer(FAST, store);
    admin = t.token('admin', 'ops');
    requester = t.token('requester', 'shop-1');
  });
  afterEach(async () => {
    for (const r of receivers.splice(0)) await r.close();
  });
  afterAll(async () => t.close());

  it('registers, lists deliveries and deletes a webhook, admin only, never echoing the secret', async () => {
    const r = await receiver();
    const put = await putHook('reg-1', r.url, ['request.*', 'offer.*', 'request.*']);
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ id: 'reg-1', url: r.url, events: ['request.*', 'offer.*'], createdAt: expect.any(Number), updatedAt: expect.any(Number) });
    expect(JSON.stringify(put.body)).not.toContain(SECRET);
    expect((await call(t.base, 'PUT', '/v1/webhooks/reg-1', { token: requester, body: { url: r.url, events: ['request.*'], secret: SECRET } })).status).toBe(403);
    expect((await putHook('reg-1', r.url, ['request.*'], 'short')).body.error.code).toBe('E_VALIDATION');
    // a typo would subscribe to nothing, silently: unknown names are refused; blank secrets and port 0 too
    expect((await putHook('reg-1', r.url, ['request.nonsense'])).body.error.code).toBe('E_VALIDATION');
    expect((await putHook('reg-1', r.url, ['request.*'], ' '.repeat(16))).body.error.code).toBe('E_VALIDATION');
    expect((await putHook('reg-1', 'http://127.0.0.1:0/x', ['request.*'])).body.error.code).toBe('E_WEBHOOK_URL');
    expect((await putHook('reg-1', 'ftp://127.0.0.1/x', ['request.*'])).body.error.code).toBe('E_WEBHOOK_URL');
    expect((await putHook('bad id!', r.url, ['request.*'])).status).toBe(400);
    const log = await call(t.base, 'GET', '/v1/webhooks/reg-1/deliveries', { token: admin });
    expect(log).toMatchObject({ status: 200, body: { items: [] } });
    expect((await call(t.base, 'GET', '/v1/webhooks/reg-1/deliveries?limit=0', { token: admin })).status).toBe(400);
    expect((await call(t.base, 'DELETE', '/v1/webhooks/reg-1', { token: admin })).status).toBe(204);
    expect((await call(t.base, 'DELETE', '/v1/webhooks/reg-1', { token: admin })).body.error.code).toBe('E_UNKNOWN_WEBHOOK');
    expect((await call(t.base, 'GET', '/v1/webhooks/reg-1/deliveries', { token: admin })).status).toBe(404);
    const doc = (await call(t.base, 'GET', '/openapi.json')).body;
    expect(Object.keys(doc.paths['/v1/webhooks/{id}']).sort()).toEqual(['delete', 'put']);
    expect(doc.paths['/v1/webhooks/{id}/deliveries'].get).toBeDefined();
  });

  it('delivers a request lifecycle signed and in order, starting after the events stored at registration', async () => {
    await createRequest(1000); // before registration: never delivered
    const r = await receiver();
    expect((await putHook('life-1', r.url, ['request.*', 'offer.*'])).status).toBe(200);
    // a courier at the pickup, available: greedy dispatch offers it the request at once
    const driver = t.token('driver', 'wk1');
    expect((await call(t.base, 'PUT', '/v1/couriers/wk1', { token: admin, body: { vehicle: 'bike', capacity: 2 } })).status).toBe(200);
    expect((await call(t.base, 'POST', '/v1/couriers/wk1/location', { token: admin, body: { ...LONDON, ts: Date.now() } })).status).toBe(204);
    expect((await call(t.base, 'PUT', '/v1/couriers/wk1/status', { token: driver, body: { status: 'available' } })).status).toBe(200);
    const created = await createRequest(0);
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const offer = await eventually(() => r.accepted().find((d) => d.type === 'offer.created' && d.data.requestId === id), 'offer.created delivered', 5000);
    expect((await call(t.base, 'POST', `/v1/offers/${offer.data.offerId as string}/accept`, { token: driver })).status).toBe(200);
    expect((await call(t.base, 'POST', `/v1/requests/${id}/progress`, { token: driver, body: { status: 'picked_up' } })).status).toBe(200);
    expect((await call(t.base, 'POST', `/v1/requests/${id}/progress`, { token: driver, body: { status: 'delivered' } })).status).toBe(200);
    await eventually(() => r.accepted().find((d) => d.type === 'request.delivered') ?? undefined, 'request.delivered delivered', 5000);

    const mine = r.accepted().filter((d) => d.data.requestId === id);
    expect(mine.map((d) => d.type)).toEqual(['request.created', 'offer.created', 'request.offered', 'offer.accepted', 'request.assigned', 'request.picked_up', 'request.delivered']);
    expect(r.received.every((d) => d.signatureOk)).toBe(true);
    expect(r.received.every((d) => d.eventIdHeader === d.id && d.id === `evt_${d.seq}`)).toBe(true);
    const seqs = r.accepted().map((d) => d.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(r.accepted().some((d) => d.data.requestId !== id)).toBe(false); // the request made before registration is not replayed
    // the log row of a delivery is written once the receiver has answered: the receiver can see it a moment before
    const log = await eventually(async () => {
      const l = await call(t.base, 'GET', '/v1/webhooks/life-1/deliveries?limit=3', { token: admin });
      return l.body.items?.[0]?.type === 'request.delivered' ? l : undefined;
    }, 'the last delivery in the log', 5000);
    expect(log.body.items).toHaveLength(3);
    expect(log.body.items[0]).toMatchObject({ type: 'request.delivered', attempts: 1, lastStatus: 204, deliveredAt: expect.any(Number) });
    const older = await call(t.base, 'GET', `/v1/webhooks/life-1/deliveries?before=${log.body.next as string}&limit=500`, { token: admin });
    expect(older.body.items.map((x: { seq: number }) => x.seq)).toEqual(seqs.slice(0, -3).reverse());
    await call(t.base, 'DELETE', '/v1/webhooks/life-1', { token: admin });
  });

  it('retries a delivery the receiver answered 500 and records both attempts', async () => {
    const r = await receiver();
    r.answer = ({ n }) => ({ status: n === 1 ? 500 : 200 });
    await putHook('retry-1', r.url, ['request.created']);
    const created = await createRequest(1);
    const got = await eventually(() => r.accepted().find((d) => d.data.requestId === created.body.id), 'the retried delivery', 5000);
    expect(r.received.filter((d) => d.id === got.id).map((d) => d.status)).toEqual([500, 200]);
    const log = await eventually(async () => {
      const items = (await call(t.base, 'GET', '/v1/webhooks/retry-1/deliveries', { token: admin })).body.items;
      return items.find((x: { seq: number; deliveredAt?: number }) => x.seq === got.seq && x.deliveredAt !== undefined);
    }, 'the delivery log row', 3000);
    expect(log).toMatchObject({ type: 'request.created', attempts: 2, lastStatus: 200 });
    // and /metrics counts both attempts, so an operator sees a failing receiver without reading logs
    const metrics = String((await call(t.base, 'GET', '/metrics')).body);
    const count = (outcome: string) => Number(new RegExp(`geodispatch_webhook_deliveries_total\\{outcome="${outcome}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    expect(count('failed')).toBeGreaterThanOrEqual(1);
    expect(count('delivered')).toBeGreaterThanOrEqual(1);
    expect(metrics).toMatch(/geodispatch_webhook_lag_seconds_count [1-9]/);
    await call(t.base, 'DELETE', '/v1/webhooks/retry-1', { token: admin });
  });

  it('gives a receiver that was down everything, in order, once it is back', async () => {
    const first = await receiver();
    const port = first.port;
    await putHook('down-1', first.url, ['request.created']);
    await first.close(); // down: connections refused
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await createRequest(100 + i)).body.id);
    await new Promise((res) => setTimeout(res, 600)); // several refused attempts, back-off grown to its cap
    const log = (await call(t.base, 'GET', '/v1/webhooks/down-1/deliveries', { token: admin })).body.items;
    expect(log[0]).toMatchObject({ type: 'request.created', lastError: expect.stringMatching(/ECONNREFUSED/) });
    expect(log[0].attempts).toBeGreaterThan(1);
    const back = await receiver(port);
    await eventually(() => (back.accepted().length >= ids.length ? true : undefined), 'every event after the receiver came back', 5000);
    expect(back.accepted().map((d) => d.data.requestId)).toEqual(ids);
    await call(t.base, 'DELETE', '/v1/webhooks/down-1', { token: admin });
  });

  it('keeps POST /v1/requests fast while a receiver takes 5 s to answer', async () => {
    const r = await receiver();
    r.answer = () => ({ status: 200, delayMs: 5000 });
    await putHook('slow-1', r.url, ['request.*']);
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      expect((await createRequest(200 + i)).status).toBe(201);
      times.push(performance.now() - started);
    }
    expect(r.accepted()).toEqual([]); // the receiver was still sitting on its first delivery all along
    times.sort((a, b) => a - b);
    expect(times[times.length - 1]).toBeLessThan(1000);
    expect(times[Math.floor(times.length / 2)]).toBeLessThan(200);
    await call(t.base, 'DELETE', '/v1/webhooks/slow-1', { token: admin });
  });
});

describe('webhook URLs without WEBHOOK_ALLOW_PRIVATE', () => {
  let t: TestServer;
  beforeAll(async () => { t = await startTestServer({}); });
  afterAll(async () => t.close());

  it('refuses URLs that resolve to loopback, private or link-local addresses with 400 E_WEBHOOK_URL_PRIVATE', async () => {
    const admin = t.token('admin', 'ops');
    for (const url of ['http://127.0.0.1:9/x', 'http://localhost/x', 'http://[::1]/x', 'http://169.254.169.254/latest', 'https://10.0.0.8/', 'http://[::ffff:192.168.0.1]/']) {
      const r = await call(t.base, 'PUT', '/v1/webhooks/p1', { token: admin, body: { url, events: ['request.*'], secret: SECRET } });
      expect([url, r.status, r.body.error?.code]).toEqual([url, 400, 'E_WEBHOOK_URL_PRIVATE']);
    }
    expect((await call(t.base, 'GET', '/v1/webhooks/p1/deliveries', { token: admin })).status).toBe(404);
  });
});

describe('the number of webhooks', () => {
  let t: TestServer;
  beforeAll(async () => { t = await startTestServer({ WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_MAX: '2' }); });
  afterAll(async () => t.close());

  it('is bounded by WEBHOOK_MAX: a new one past it gets 409 E_WEBHOOK_LIMIT, a change to a registered one does not', async () => {
    const admin = t.token('admin', 'ops');
    const put = (id: string) => call(t.base, 'PUT', `/v1/webhooks/${id}`, { token: admin, body: { url: 'http://127.0.0.1:9/x', events: ['*'], secret: SECRET } });
    expect((await put('w1')).status).toBe(200);
    expect((await put('w2')).status).toBe(200);
    expect(await put('w3')).toMatchObject({ status: 409, body: { error: { code: 'E_WEBHOOK_LIMIT' } } });
    expect((await put('w2')).status).toBe(200);
    expect((await call(t.base, 'DELETE', '/v1/webhooks/w1', { token: admin })).status).toBe(204);
    expect((await put('w3')).status).toBe(200);
  });
});
