/**
 * The part of the API that belongs to no region, through a cluster as users run it (two cores, two edges,
 * `GD_ROLE=core|edge node dist/api/main.js`, the machine's Redis and PostgreSQL):
 *
 * - sites, stock and donors written through edge A are read back, listed and found nearby through edge B (the
 *   hub: one core at a time serves them), with one process's roles (donors are health data);
 * - a delivery picked up at a site (pickupSiteId) through an edge is created in the site's region;
 * - the request list through an edge shows a requester its own requests only;
 * - couriers onboarded in bulk through an edge are stored (bad items rejected by index), listed page by page, and deleted through
 *   the other; a courier holding a live offer is not deleted (409); its track (history) is read through an edge;
 * - a webhook registered through an edge gets what every core commits, signed, once each, in outbox order;
 * - blood requests through an edge reserve units at a bank (the hub's reads follow), reach a cold-chain driver,
 *   and issue the units at pickup; a rescue gets a recipient with room;
 * - a geofence written through an edge reaches every core: a courier crossing it shows on a map on either edge and
 *   the crossing reaches a webhook;
 * - the core holding the hub SIGKILLed: the other serves the hub within 10 s, from PostgreSQL.
 */
import { cellToBoundary } from 'h3-js';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator, type Role } from '../api/auth.js';
import { loadConfig } from '../api/config.js';
import { type ServerProcess, coreStarted, edgeStarted, startServerProcess } from '../api/server-process.js';
import { StreamClient, call, eventually } from '../api/test-server.js';
import { startWebhookReceiver } from '../api/webhook-receiver.js';
import { type Store, openStore } from '../store/store.js';
import { testDatabaseUrl, testSchemaName } from '../store/test-database.js';
import { HUB } from './owner-commands.js';
import { RegionLeases } from './region-lease.js';
import { regionOf } from './regions.js';
import { TEST_REDIS_URL, connectTestRedis } from './test-redis.js';

const SECRET = 'cluster-hub-e2e-secret-0123456789abcdef';
const HOOK_SECRET = 'hub-hook-secret-0123456789';
const LEASE_MS = 2_000;
const [VLAT, VLNG] = cellToBoundary(regionOf(48.8566, 2.3522))[0];
const SPOT: [number, number] = [VLAT + 0.02, VLNG + 0.03];

describe('the hub through a cluster: sites, stock, donors, lists and couriers on any edge', () => {
  const url = testDatabaseUrl();
  const schema = testSchemaName('gd_hub');
  const auth = new Authenticator(loadConfig({ JWT_SECRET: SECRET }).jwt, []);
  const token = (role: Role, sub: string): string => auth.signToken({ sub, role }, 3600);
  const admin = token('admin', 'ops');
  const dispatcher = token('dispatcher', 'desk');
  let store: Store;
  let redis: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  let leases: RegionLeases;
  const cores = new Map<string, ServerProcess>();
  const edges: ServerProcess[] = [];
  let edgeA = '';
  let edgeB = '';

  beforeAll(async () => {
    ({ redis, prefix, cleanup } = await connectTestRedis());
    leases = new RegionLeases(redis, { owner: 'test', prefix });
    store = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
    await store.migrate();
    const common = { GD_CLUSTER_PREFIX: prefix, REDIS_URL: TEST_REDIS_URL, JWT_SECRET: SECRET, GD_LEASE_TTL_MS: String(LEASE_MS), DRAIN_GRACE_MS: '0', DISPATCH_MODE: 'greedy', OFFER_TTL_MS: '60000', RATE_PER_SEC: '5000', RATE_BURST: '5000', WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_POLL_MS: '100' };
    for (const name of ['core-1', 'core-2']) cores.set(name, await startServerProcess({ ...common, GD_ROLE: 'core', GD_NODE_NAME: name, DATABASE_URL: url, DATABASE_SCHEMA: schema }, 60_000, coreStarted));
    for (const name of ['edge-a', 'edge-b']) edges.push(await startServerProcess({ ...common, GD_ROLE: 'edge', GD_NODE_NAME: name }, 60_000, edgeStarted));
    [edgeA, edgeB] = edges.map((e) => e.base);
    await eventually(async () => (await leases.holder(HUB)) ?? undefined, 'a core holds the hub', 15_000);
  }, 120_000);

  afterAll(async () => {
    for (const p of [...edges, ...cores.values()]) await p.kill();
    await cleanup();
    await store.close();
  });

  it('sites and their stock written through edge A are read, listed and found nearby through edge B', async () => {
    const bank = { kind: 'blood_bank', name: 'Bank North', lat: SPOT[0], lng: SPOT[1] };
    expect((await call(edgeA, 'PUT', '/v1/sites/bank-n', { token: admin, body: bank })).status).toBe(200);
    const units = [{ product: 'red_cells', bloodType: 'A+', count: 4, expiresAt: Date.now() + 86_400_000 }];
    expect((await call(edgeA, 'PUT', '/v1/sites/bank-n/inventory', { token: admin, body: { units } })).status).toBe(200);

    const read = await call(edgeB, 'GET', '/v1/sites/bank-n', { token: dispatcher });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id: 'bank-n', ...bank, lots: [{ product: 'red_cells', bloodType: 'A+', available: 4 }] });
    const list = await call(edgeB, 'GET', '/v1/sites?kind=blood_bank', { token: dispatcher });
    expect(list.body.items.map((s: { id: string }) => s.id)).toEqual(['bank-n']);
    const near = await call(edgeB, 'GET', `/v1/nearby?lat=${SPOT[0]}&lng=${SPOT[1]}&kind=site&product=red_cells&bloodType=A%2B&units=2`, { token: token('requester', 'ward-7') });
    expect(near.status).toBe(200);
    expect(near.body.results).toMatchObject([{ id: 'bank-n', kind: 'site', units: 4 }]);
    // roles as one process: a requester reads no site, a dispatcher writes none; bad bodies are refused
    expect((await call(edgeA, 'GET', '/v1/sites/bank-n', { token: token('requester', 'ward-7') })).status).toBe(403);
    expect((await call(edgeA, 'PUT', '/v1/sites/x', { token: dispatcher, body: bank })).status).toBe(403);
    expect((await call(edgeA, 'PUT', '/v1/sites/x', { token: admin, body: { ...bank, lat: 95 } })).body.error.code).toBe('E_VALIDATION');
    expect((await call(edgeA, 'PUT', '/v1/sites/nope/inventory', { token: admin, body: { units } })).body.error.code).toBe('E_UNKNOWN_SITE');

    expect((await call(edgeB, 'DELETE', '/v1/sites/bank-n', { token: admin })).status).toBe(204);
    expect((await call(edgeA, 'GET', '/v1/sites/bank-n', { token: dispatcher })).status).toBe(404);
  });

  it('donors are kept by the hub and shown to dispatchers and admins only', async () => {
    const donor = { bloodType: 'O-', lat: SPOT[0] + 0.001, lng: SPOT[1], available: true };
    expect((await call(edgeA, 'PUT', '/v1/donors/dn-1', { token: admin, body: donor })).status).toBe(200);
    expect((await call(edgeB, 'GET', '/v1/donors/dn-1', { token: admin })).body).toMatchObject({ bloodType: 'O-', available: true });
    expect((await call(edgeB, 'GET', '/v1/donors/dn-1', { token: dispatcher })).status).toBe(403);
    const near = await call(edgeB, 'GET', `/v1/nearby?lat=${SPOT[0]}&lng=${SPOT[1]}&kind=donor`, { token: dispatcher });
    expect(near.body.results).toMatchObject([{ id: 'dn-1', kind: 'donor', bloodType: 'O-' }]);
    const asRequester = await call(edgeA, 'GET', `/v1/nearby?lat=${SPOT[0]}&lng=${SPOT[1]}&kind=donor`, { token: token('requester', 'ward-7') });
    expect([asRequester.status, asRequester.body.error.code]).toEqual([403, 'E_FORBIDDEN']);
    expect((await call(edgeA, 'DELETE', '/v1/donors/dn-1', { token: admin })).status).toBe(204);
    expect((await call(edgeB, 'GET', '/v1/donors/dn-1', { token: admin })).status).toBe(404);
  });

  it('a delivery picked up at a site is created in the site\'s region; the request list shows a requester its own', async () => {
    const restaurant = { kind: 'restaurant', name: 'Chez Hub', lat: SPOT[0], lng: SPOT[1] };
    expect((await call(edgeA, 'PUT', '/v1/sites/rest-1', { token: admin, body: restaurant })).status).toBe(200);
    const shop = token('requester', 'shop-h');
    const made = await call(edgeB, 'POST', '/v1/requests', { token: shop, body: { kind: 'delivery', pickupSiteId: 'rest-1', dropoff: { lat: SPOT[0] + 0.01, lng: SPOT[1] } } });
    expect(made.status).toBe(201);
    expect(made.body.id).toContain(`.${regionOf(...SPOT)}.`);
    const back = await call(edgeA, 'GET', `/v1/requests/${made.body.id}`, { token: shop });
    expect(back.body.pickup).toEqual({ lat: SPOT[0], lng: SPOT[1] });
    const other = await call(edgeA, 'POST', '/v1/requests', { token: token('requester', 'shop-x'), body: { kind: 'delivery', pickup: { lat: SPOT[0], lng: SPOT[1] }, dropoff: { lat: SPOT[0] + 0.01, lng: SPOT[1] } } });
    expect(other.status).toBe(201);

    const mine = await call(edgeA, 'GET', '/v1/requests', { token: shop });
    expect(mine.body.items.map((r: { id: string }) => r.id)).toEqual([made.body.id]);
    const all = await call(edgeB, 'GET', '/v1/requests?limit=1', { token: dispatcher });
    expect(all.body.items).toHaveLength(1);
    const next = await call(edgeA, 'GET', `/v1/requests?limit=1&cursor=${encodeURIComponent(all.body.next)}`, { token: dispatcher });
    expect(new Set([all.body.items[0].id, next.body.items[0].id])).toEqual(new Set([made.body.id, other.body.id]));
    expect((await call(edgeA, 'POST', '/v1/requests', { token: shop, body: { kind: 'delivery', pickupSiteId: 'no-such', dropoff: { lat: SPOT[0], lng: SPOT[1] } } })).body.error.code).toBe('E_UNKNOWN_SITE');
  });

  it('couriers onboarded in bulk through one edge are deleted through the other, not while offered work; their tracks are read', async () => {
    const items = [
      { id: 'hb-1', vehicle: 'bike', capabilities: [], capacity: 1 },
      { id: 'hb-2', vehicle: 'hovercraft', capabilities: [], capacity: 1 },
      { id: 'hb-3', vehicle: 'car', capabilities: ['cold_chain'], capacity: 2 },
    ];
    const put = await call(edgeA, 'PUT', '/v1/couriers', { token: admin, body: items });
    expect(put.status).toBe(200);
    expect(put.body.accepted).toBe(2);
    expect(put.body.rejected.map((r: { index: number }) => r.index)).toEqual([1]);
    expect((await call(edgeB, 'GET', '/v1/couriers/hb-3', { token: dispatcher })).body).toMatchObject({ id: 'hb-3', capabilities: ['cold_chain'], capacity: 2 });
    // the fleet list, page by page through either edge (the registry as PostgreSQL has it)
    const first = await call(edgeA, 'GET', '/v1/couriers?limit=1', { token: dispatcher });
    expect(first.body.items.map((c: { id: string }) => c.id)).toEqual(['hb-1']);
    const second = await call(edgeB, 'GET', `/v1/couriers?limit=1&cursor=${encodeURIComponent(first.body.next)}`, { token: dispatcher });
    expect(second.body.items.map((c: { id: string }) => c.id)).toEqual(['hb-3']);
    expect((await call(edgeB, 'GET', '/v1/couriers?capability=cold_chain', { token: admin })).body.items.map((c: { id: string }) => c.id)).toEqual(['hb-3']);
    expect((await call(edgeA, 'GET', '/v1/couriers', { token: token('requester', 'shop-d') })).status).toBe(403);
    expect((await call(edgeA, 'GET', '/v1/couriers?limit=1&cursor=forged', { token: dispatcher })).body.error.code).toBe('E_BAD_CURSOR');

    // hb-3 drives: its pings place it on a core, its track is stored, and a request's offer holds it
    const driver = await StreamClient.connect(`${edgeB.replace('http', 'ws')}/v1/stream`, { token: token('driver', 'hb-3') });
    const t0 = Date.now();
    // samples 40 s apart, so the track keeps each (one per 30 s at most); the last one is fresh
    for (let i = 0; i < 3; i++) {
      const ping = await call(edgeA, 'POST', '/v1/couriers/hb-3/location', { token: token('driver', 'hb-3'), body: { lat: SPOT[0] + i * 0.001, lng: SPOT[1], ts: t0 + i * 40_000 - 80_000 } });
      expect(ping.status).toBe(204);
    }
    await eventually(async () => ((await call(edgeA, 'GET', '/v1/couriers/hb-3', { token: dispatcher })).body.lat !== undefined ? true : undefined), 'hb-3 placed', 10_000);
    expect((await call(edgeB, 'PUT', '/v1/couriers/hb-3/status', { token: token('driver', 'hb-3'), body: { status: 'available' } })).status).toBe(200);
    const made = await call(edgeA, 'POST', '/v1/requests', { token: token('requester', 'shop-d'), body: { kind: 'delivery', urgency: 'emergency', coldChain: true, pickup: { lat: SPOT[0] + 0.002, lng: SPOT[1] }, dropoff: { lat: SPOT[0] + 0.01, lng: SPOT[1] } } });
    expect(made.status).toBe(201);
    await driver.next((f) => f.t === 'offer', 'an offer (of this request, or one waiting from before)', 10_000);
    const busy = await call(edgeB, 'DELETE', '/v1/couriers/hb-3', { token: admin });
    expect([busy.status, busy.body.error.code]).toEqual([409, 'E_COURIER_BUSY']);

    const track = await eventually(async () => {
      const r = await call(edgeB, 'GET', `/v1/couriers/hb-3/history?from=${t0 - 300_000}`, { token: dispatcher });
      return r.body.geometry?.type === 'LineString' ? r.body : undefined;
    }, 'hb-3\'s track stored', 15_000);
    expect(track.properties.courierId).toBe('hb-3');
    expect((await call(edgeB, 'GET', '/v1/couriers/nobody/history', { token: dispatcher })).status).toBe(404);
    driver.close();

    // a courier no core holds, but which a region's commit put on a leg (it pings into another core's regions now):
    // the store says so, and the delete is refused
    await store.commitTransition({ seq: 7_000_001, at: Date.now(), assignmentsStarted: [{ requestId: 'r-elsewhere', courierId: 'hb-1', createdAt: Date.now() }] });
    const carried = await call(edgeA, 'DELETE', '/v1/couriers/hb-1', { token: dispatcher });
    expect([carried.status, carried.body.error.code]).toEqual([409, 'E_COURIER_BUSY']);
    await store.commitTransition({ seq: 7_000_002, at: Date.now(), assignmentsEnded: [{ requestId: 'r-elsewhere' }] });
    // hb-1 never pinged: no core holds it, so any core deletes it from PostgreSQL
    expect((await call(edgeB, 'DELETE', '/v1/couriers/hb-1', { token: dispatcher })).status).toBe(204);
    expect((await call(edgeA, 'GET', '/v1/couriers/hb-1', { token: dispatcher })).status).toBe(404);
    expect((await call(edgeA, 'DELETE', '/v1/couriers/hb-1', { token: dispatcher })).status).toBe(404);
    expect((await store.loadCouriers({ ids: ['hb-1'] })).length).toBe(0);
  }, 60_000);

  it('a webhook registered through an edge gets the events both cores commit, each once, in commit order', async () => {
    const receiver = await startWebhookReceiver(HOOK_SECRET, 0);
    try {
      const put = await call(edgeA, 'PUT', '/v1/webhooks/wh-1', { token: admin, body: { url: receiver.url, events: ['request.created'], secret: HOOK_SECRET } });
      expect(put.status).toBe(200);
      expect(put.body.secret).toBeUndefined();
      expect((await call(edgeA, 'PUT', '/v1/webhooks/wh-2', { token: dispatcher, body: { url: receiver.url, events: ['*'], secret: HOOK_SECRET } })).status).toBe(403);
      // creates in two regions (two owners when both cores hold one), through both edges
      const spots: [number, number][] = [SPOT, [VLAT - 0.02, VLNG - 0.03]];
      const made: string[] = [];
      for (let i = 0; i < 10; i++) {
        const at = spots[i % 2];
        const r = await call(i % 2 === 0 ? edgeA : edgeB, 'POST', '/v1/requests', { token: token('requester', 'shop-w'), body: { kind: 'delivery', pickup: { lat: at[0], lng: at[1] }, dropoff: { lat: at[0] + 0.01, lng: at[1] }, reference: `w-${i}` } });
        expect(r.status).toBe(201);
        made.push(r.body.id);
      }
      const got = await eventually(() => (receiver.accepted().length >= made.length ? receiver.accepted() : undefined), 'every create delivered', 15_000);
      expect(got.every((d) => d.signatureOk && d.type === 'request.created')).toBe(true);
      expect(new Set(got.map((d) => d.data.requestId))).toEqual(new Set(made));
      expect(got.map((d) => d.seq)).toEqual([...got.map((d) => d.seq)].sort((x, y) => x - y));
      const log = await eventually(async () => {
        const r = await call(edgeB, 'GET', '/v1/webhooks/wh-1/deliveries?limit=100', { token: admin });
        return r.body.items?.filter((d: { deliveredAt?: number }) => d.deliveredAt !== undefined).length >= made.length ? r.body.items : undefined;
      }, 'the delivery log', 10_000);
      expect(log.length).toBe(made.length);
      expect((await call(edgeB, 'DELETE', '/v1/webhooks/wh-1', { token: admin })).status).toBe(204);
      expect((await call(edgeA, 'GET', '/v1/webhooks/wh-1/deliveries', { token: admin })).status).toBe(404);
    } finally {
      await receiver.close();
    }
  }, 40_000);

  it('geofences written through an edge reach every core: a courier crossing one shows on maps and reaches webhooks', async () => {
    const [lat, lng] = [SPOT[0] + 0.05, SPOT[1] + 0.05];
    const ring = [[lng - 0.01, lat - 0.01], [lng + 0.01, lat - 0.01], [lng + 0.01, lat + 0.01], [lng - 0.01, lat + 0.01], [lng - 0.01, lat - 0.01]];
    const put = await call(edgeA, 'PUT', '/v1/geofences/zone-1', { token: admin, body: { kind: 'no_parking', geometry: { type: 'Polygon', coordinates: [ring] } } });
    expect(put.status).toBe(200);
    expect((await call(edgeB, 'GET', '/v1/geofences', { token: admin })).body.items.map((f: { id: string }) => f.id)).toEqual(['zone-1']);
    const receiver = await startWebhookReceiver(HOOK_SECRET, 0);
    const map = await StreamClient.connect(`${edgeB.replace('http', 'ws')}/v1/stream`, { token: dispatcher });
    try {
      expect((await call(edgeB, 'PUT', '/v1/webhooks/wh-f', { token: admin, body: { url: receiver.url, events: ['fence.*'], secret: HOOK_SECRET } })).status).toBe(200);
      map.send({ t: 'watch', bbox: [lng - 0.05, lat - 0.05, lng + 0.05, lat + 0.05], hz: 10 });
      const snapshot = await map.next((f) => f.t === 'snapshot', 'a snapshot', 5_000);
      expect(snapshot.fences).toMatchObject([{ id: 'zone-1', kind: 'no_parking' }]);

      expect((await call(edgeA, 'PUT', '/v1/couriers/fz-1', { token: admin, body: { vehicle: 'bike', capabilities: [], capacity: 1 } })).status).toBe(200);
      const ping = (dLat: number) => call(edgeA, 'POST', '/v1/couriers/fz-1/location', { token: token('driver', 'fz-1'), body: { lat: lat + dLat, lng, ts: Date.now() } });
      expect((await ping(-0.03)).status).toBe(204);
      await eventually(async () => ((await call(edgeA, 'GET', '/v1/couriers/fz-1', { token: dispatcher })).body.lat !== undefined ? true : undefined), 'fz-1 placed', 10_000);
      await new Promise((r) => setTimeout(r, 300)); // the cores have heard which crossings webhooks want
      expect((await ping(0)).status).toBe(204);
      const delta = await map.next((f) => f.t === 'delta' && f.fences?.length > 0, 'a crossing on the map', 10_000);
      expect(delta.fences).toMatchObject([{ type: 'enter', courierId: 'fz-1', fenceId: 'zone-1' }]);
      const hooked = await eventually(() => receiver.accepted().find((d) => d.type === 'fence.enter'), 'fence.enter delivered', 10_000);
      expect(hooked.data).toMatchObject({ courierId: 'fz-1', fenceId: 'zone-1' });

      expect((await call(edgeB, 'DELETE', '/v1/geofences/zone-1', { token: admin })).status).toBe(204);
      expect((await call(edgeA, 'GET', '/v1/geofences', { token: admin })).body.items).toEqual([]);
      expect((await call(edgeA, 'DELETE', '/v1/webhooks/wh-f', { token: admin })).status).toBe(204);
    } finally {
      map.close();
      await receiver.close();
    }
  }, 40_000);

  it('blood and rescue through the cluster: units reserved, issued and seen by the hub; a rescue gets a recipient with room', async () => {
    const L: [number, number] = [45.764, 4.8357]; // Lyon: a region of its own
    const expiresAt = Date.now() + 5 * 86_400_000;
    expect((await call(edgeA, 'PUT', '/v1/sites/bank-l', { token: admin, body: { kind: 'blood_bank', name: 'Bank L', lat: L[0], lng: L[1] } })).status).toBe(200);
    expect((await call(edgeA, 'PUT', '/v1/sites/bank-l/inventory', { token: admin, body: { units: [{ product: 'red_cells', bloodType: 'A+', count: 2, expiresAt }] } })).status).toBe(200);
    expect((await call(edgeA, 'PUT', '/v1/sites/hosp-l', { token: admin, body: { kind: 'hospital', name: 'Hospital L', lat: L[0] + 0.01, lng: L[1] } })).status).toBe(200);
    expect((await call(edgeA, 'PUT', '/v1/sites/fb-l', { token: admin, body: { kind: 'food_bank', name: 'Food bank L', lat: L[0] + 0.005, lng: L[1], capacity: 50 } })).status).toBe(200);
    expect((await call(edgeA, 'PUT', '/v1/couriers/bl-1', { token: admin, body: { vehicle: 'car', capabilities: ['cold_chain'], capacity: 1 } })).status).toBe(200);
    const driver = await StreamClient.connect(`${edgeA.replace('http', 'ws')}/v1/stream`, { token: token('driver', 'bl-1') });
    try {
      expect((await call(edgeA, 'POST', '/v1/couriers/bl-1/location', { token: token('driver', 'bl-1'), body: { lat: L[0], lng: L[1] + 0.002, ts: Date.now() } })).status).toBe(204);
      await eventually(async () => ((await call(edgeB, 'GET', '/v1/couriers/bl-1', { token: dispatcher })).body.lat !== undefined ? true : undefined), 'bl-1 placed', 10_000);
      expect((await call(edgeB, 'PUT', '/v1/couriers/bl-1/status', { token: token('driver', 'bl-1'), body: { status: 'available' } })).status).toBe(200);

      const ward = token('requester', 'ward-l');
      const blood = await call(edgeB, 'POST', '/v1/requests', { token: ward, body: { kind: 'blood', hospitalSiteId: 'hosp-l', product: 'red_cells', bloodType: 'A+', units: 2, urgency: 'emergency' } });
      expect(blood.status, JSON.stringify(blood.body)).toBe(201);
      expect(blood.body.id).toContain(`.${regionOf(L[0] + 0.01, L[1])}.`);
      // the hub's copy follows the units the hospital's region owner reserved
      await eventually(async () => {
        const lots = (await call(edgeA, 'GET', '/v1/sites/bank-l', { token: dispatcher })).body.lots;
        return lots?.[0]?.reserved === 2 && lots[0].available === 0 ? true : undefined;
      }, 'two units reserved, as the hub sees them', 10_000);
      // nothing left for a second patient
      const none = await call(edgeA, 'POST', '/v1/requests', { token: ward, body: { kind: 'blood', hospitalSiteId: 'hosp-l', product: 'red_cells', bloodType: 'AB+', units: 1, urgency: 'urgent' } });
      expect([none.status, none.body.error.code]).toEqual([422, 'E_NO_STOCK']);

      const offer = await driver.next((f) => f.t === 'offer' && f.requestId === blood.body.id, 'the blood leg offered', 10_000);
      driver.send({ t: 'accept', offerId: offer.offerId });
      await driver.next((f) => f.t === 'assigned' && f.requestId === blood.body.id, 'assigned', 5_000);
      expect((await call(edgeB, 'POST', `/v1/requests/${blood.body.id}/progress`, { token: token('driver', 'bl-1'), body: { status: 'picked_up' } })).status).toBe(200);
      await eventually(async () => {
        const lots = (await call(edgeA, 'GET', '/v1/sites/bank-l', { token: dispatcher })).body.lots;
        return Array.isArray(lots) && lots.length === 0 ? true : undefined;
      }, 'the units issued (off the shelf), as the hub sees them', 10_000);
      expect((await call(edgeA, 'POST', `/v1/requests/${blood.body.id}/progress`, { token: token('driver', 'bl-1'), body: { status: 'delivered' } })).status).toBe(200);
      expect((await call(edgeA, 'GET', `/v1/requests/${blood.body.id}`, { token: ward })).body.status).toBe('delivered');

      const rescue = await call(edgeB, 'POST', '/v1/requests', { token: dispatcher, body: { kind: 'rescue', pickup: { lat: L[0] - 0.003, lng: L[1] } } });
      expect(rescue.status, JSON.stringify(rescue.body)).toBe(201);
      expect(rescue.body.plan.recipient.siteId).toBe('fb-l');
    } finally {
      driver.close();
    }
  }, 60_000);

  it('the core holding the hub SIGKILLed: the other serves it within 10 s, from PostgreSQL', async () => {
    const site = { kind: 'shelter', name: 'Shelter K', lat: SPOT[0] - 0.01, lng: SPOT[1], capacity: 40 };
    expect((await call(edgeA, 'PUT', '/v1/sites/shelter-k', { token: admin, body: site })).status).toBe(200);
    const holder = (await leases.holder(HUB))!.owner;
    const killedAt = Date.now();
    await cores.get(holder)!.kill();
    const read = await eventually(async () => {
      const r = await call(edgeB, 'GET', '/v1/sites/shelter-k', { token: dispatcher });
      return r.status === 200 ? r : undefined;
    }, 'the hub served again', 15_000);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(read.body).toMatchObject({ id: 'shelter-k', name: 'Shelter K', capacity: 40 });
    expect((await leases.holder(HUB))!.owner).not.toBe(holder);
    expect((await call(edgeA, 'PUT', '/v1/sites/shelter-k', { token: admin, body: { ...site, name: 'Shelter K2' } })).status).toBe(200);
    expect((await call(edgeB, 'GET', '/v1/sites/shelter-k', { token: dispatcher })).body.name).toBe('Shelter K2');
  }, 30_000);
});
