/**
 * Event sources beyond the request lifecycle, end to end through a loopback receiver: `donor.callout` and
 * `stock.low` from a blood request the stock cannot cover, `stock.low` from an inventory PUT, and
 * `fence.enter` / `fence.exit` from position pings (written behind, every POSITION_FLUSH_MS).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestServer, TEST_STORES, call, eventually, startTestServer } from './test-server.js';
import { type WebhookReceiver, startWebhookReceiver } from './webhook-receiver.js';

const SECRET = 'whsec-events-0123456789';
const BANK = { lat: 51.52, lng: -0.1 };
const HOSPITAL = { lat: 51.5, lng: -0.12 };
const expiresAt = Date.now() + 10 * 86_400_000;

describe.each(TEST_STORES)('webhook event sources on %s', (store) => {
  let t: TestServer;
  let admin: string;
  let r: WebhookReceiver;
  const put = (path: string, body: unknown) => call(t.base, 'PUT', path, { token: admin, body });

  beforeAll(async () => {
    t = await startTestServer({ WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_POLL_MS: '100', STOCK_LOW_UNITS: '5', POSITION_FLUSH_MS: '100', RATE_PER_SEC: '1000', RATE_BURST: '1000' }, store);
    admin = t.token('admin', 'ops');
    r = await startWebhookReceiver(SECRET);
    expect((await put('/v1/webhooks/src-1', { url: r.url, events: ['donor.callout', 'stock.low', 'fence.*'], secret: SECRET })).status).toBe(200);
  });
  afterAll(async () => {
    await r.close();
    await t.close();
  });

  it('a blood request short of stock calls donors and reports the bank low, in its create transaction', async () => {
    expect((await put('/v1/sites/bank-1', { kind: 'blood_bank', name: 'Bank', ...BANK })).status).toBe(200);
    expect((await put('/v1/sites/hosp-1', { kind: 'hospital', name: 'Hospital', ...HOSPITAL })).status).toBe(200);
    expect((await put('/v1/sites/bank-1/inventory', { units: [{ product: 'red_cells', bloodType: 'O-', count: 6, expiresAt }] })).status).toBe(200);
    for (const [i, d] of [[1, 0.001], [2, 0.002], [3, 0.003]] as const) {
      expect((await put(`/v1/donors/dn${i}`, { bloodType: 'O-', lat: HOSPITAL.lat + d, lng: HOSPITAL.lng, available: true })).status).toBe(200);
    }
    const dispatcher = t.token('dispatcher', 'desk');
    const created = await call(t.base, 'POST', '/v1/requests', { token: dispatcher, body: { kind: 'blood', hospitalSiteId: 'hosp-1', product: 'red_cells', bloodType: 'O-', units: 7, urgency: 'urgent' } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const callout = await eventually(() => r.accepted().find((d) => d.type === 'donor.callout'), 'donor.callout', 5000);
    expect(callout.data).toEqual({ requestId: id, called: 3, target: 3, enough: true, waves: [{ radius: 5000, donorIds: ['dn1', 'dn2', 'dn3'] }] });
    const low = await eventually(() => r.accepted().find((d) => d.type === 'stock.low'), 'stock.low', 5000);
    expect(low.data).toEqual({ siteId: 'bank-1', product: 'red_cells', bloodType: 'O-', available: 0, level: 5 });
    expect(low.seq).toBeGreaterThan(callout.seq);
    expect(r.received.every((d) => d.signatureOk)).toBe(true);
  });

  it('an inventory PUT that takes a product below the level reports it once', async () => {
    expect((await put('/v1/sites/bank-2', { kind: 'blood_bank', name: 'Bank 2', ...BANK })).status).toBe(200);
    const stock = (count: number) => put('/v1/sites/bank-2/inventory', { units: [{ product: 'platelets', bloodType: 'A+', count, expiresAt }] });
    expect((await stock(9)).status).toBe(200);
    expect((await stock(3)).status).toBe(200);
    expect((await stock(2)).status).toBe(200); // already below: no second event
    await eventually(() => r.accepted().find((d) => d.type === 'stock.low' && d.data.siteId === 'bank-2'), 'stock.low of bank-2', 5000);
    await new Promise((res) => setTimeout(res, 300));
    expect(r.accepted().filter((d) => d.type === 'stock.low' && d.data.siteId === 'bank-2').map((d) => d.data.available)).toEqual([3]);
  });

  it('fence crossings from pings reach the receiver after the position flush', async () => {
    const ring = [[-0.2, 51.45], [-0.19, 51.45], [-0.19, 51.46], [-0.2, 51.46], [-0.2, 51.45]];
    expect((await put('/v1/geofences/zone-1', { kind: 'low_emission', geometry: { type: 'Polygon', coordinates: [ring] } })).status).toBe(200);
    expect((await put('/v1/couriers/fc1', { vehicle: 'car', capacity: 1 })).status).toBe(200);
    const ping = (lat: number, lng: number, ts: number) => call(t.base, 'POST', '/v1/couriers/fc1/location', { token: admin, body: { lat, lng, ts } });
    const now = Date.now();
    expect((await ping(51.40, -0.25, now - 3000)).status).toBe(204);
    expect((await ping(51.455, -0.195, now - 2000)).status).toBe(204);
    expect((await ping(51.40, -0.25, now - 1000)).status).toBe(204);
    await eventually(() => r.accepted().find((d) => d.type === 'fence.exit'), 'fence.exit', 5000);
    const fences = r.accepted().filter((d) => d.type.startsWith('fence.'));
    expect(fences.map((d) => [d.type, d.data.courierId, d.data.fenceId])).toEqual([['fence.enter', 'fc1', 'zone-1'], ['fence.exit', 'fc1', 'zone-1']]);
    expect(fences[0].at).toBe(now - 2000);
  });
});
