/**
 * A cluster as users run it, on the machine's Redis and PostgreSQL: two cores and two edges, each started as
 * `npm run cluster` starts them (`GD_ROLE=core|edge node dist/api/main.js`). Clients talk only to the edges:
 *
 * - pings sent through edge B (a driver's HTTP ping, a gateway's HTTP batch, a gateway's WebSocket `locs`)
 *   show in nearest answers through edge A and edge B, which match a brute force across three regions;
 * - a dispatcher on edge A watching a box across regions gets the couriers in it, then the ones a driver moves
 *   through edge B (in, and out);
 * - HTTP rate limits are one allowance across edges; refusals are one process's (dispatch through
 *   a cluster: cluster-dispatch.e2e.test.ts), bad pings the
 *   same errors as one process.
 */
import { cellToBoundary } from 'h3-js';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator, type Role } from '../api/auth.js';
import { loadConfig } from '../api/config.js';
import { type ServerProcess, coreStarted, edgeStarted, startServerProcess } from '../api/server-process.js';
import { StreamClient, call, eventually } from '../api/test-server.js';
import { distanceMeters } from '../engine/geodesy.js';
import { seededRandom } from '../fixtures/prng.js';
import { type Store, openStore } from '../store/store.js';
import { dropTestSchema, testDatabaseUrl, testSchemaName } from '../store/test-database.js';
import { RegionLeases } from './region-lease.js';
import { regionOf } from './regions.js';
import { TEST_REDIS_URL, connectTestRedis } from './test-redis.js';

const SECRET = 'cluster-e2e-secret-0123456789abcdef';
const LEASE_MS = 2_000;
// a vertex of London's region: three regions meet there
const [VLAT, VLNG] = cellToBoundary(regionOf(51.5074, -0.1278))[0];
const N = 400;
const RATE_BURST = 10;

describe('a cluster of two edges and two cores, used through the edges only', () => {
  const url = testDatabaseUrl();
  const schema = testSchemaName('gd_cl');
  const auth = new Authenticator(loadConfig({ JWT_SECRET: SECRET }).jwt, []);
  const token = (role: Role, sub: string): string => auth.signToken({ sub, role }, 3600);
  let store: Store;
  let redis: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  const procs: ServerProcess[] = [];
  let edgeA = '';
  let edgeB = '';
  /** Where each courier is now, as the test moved it. */
  const fleet = new Map<string, [number, number]>();
  const rand = seededRandom(13);
  const near = (): [number, number] => [VLAT + (rand() - 0.5) * 0.3, VLNG + (rand() - 0.5) * 0.5];
  let queryNo = 0;

  beforeAll(async () => {
    ({ redis, prefix, cleanup } = await connectTestRedis());
    store = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
    await store.migrate();
    for (let i = 0; i < N; i++) fleet.set(`m${i}`, near());
    const ids = [...fleet.keys()];
    await store.upsertCouriers(ids.map((id) => ({ id, vehicle: 'bike' as const, capabilities: [], capacity: 1, status: 'available' as const })));
    const at = Date.now() - 60_000;
    await store.writePositions({ ids, lat: Float64Array.from(ids, (id) => fleet.get(id)![0]), lng: Float64Array.from(ids, (id) => fleet.get(id)![1]), ts: new Float64Array(N).fill(at) });
    const common = { GD_CLUSTER_PREFIX: prefix, REDIS_URL: TEST_REDIS_URL, JWT_SECRET: SECRET, GD_LEASE_TTL_MS: String(LEASE_MS), DRAIN_GRACE_MS: '0' };
    for (const name of ['core-1', 'core-2']) {
      procs.push(await startServerProcess({ ...common, GD_ROLE: 'core', GD_NODE_NAME: name, DATABASE_URL: url, DATABASE_SCHEMA: schema }, 60_000, coreStarted));
    }
    for (const name of ['edge-a', 'edge-b']) {
      const p = await startServerProcess({ ...common, GD_ROLE: 'edge', GD_NODE_NAME: name, RATE_PER_SEC: '1', RATE_BURST: String(RATE_BURST) }, 60_000, edgeStarted);
      procs.push(p);
    }
    edgeA = procs[2].base;
    edgeB = procs[3].base;
    // every region of the fleet owned before clients start
    const regions = [...new Set([...fleet.values()].map((p) => regionOf(...p)))];
    const leases = new RegionLeases(redis, { owner: 'test', prefix });
    await eventually(async () => ((await leases.holders(regions)).every((h) => h !== undefined) ? true : undefined), 'every region owned', 15_000);
  }, 120_000);

  afterAll(async () => {
    for (const p of procs) await p.kill();
    await cleanup();
    await store.close();
    await dropTestSchema(url, schema);
  });

  /** Nearest through an edge, as a dispatcher of its own (each query its own principal: the edges' burst is small). */
  async function nearby(edge: string, lat: number, lng: number, k: number, radius: number): Promise<string[] | undefined> {
    const r = await call(edge, 'GET', `/v1/nearby?lat=${lat}&lng=${lng}&k=${k}&radius=${radius}`, { token: token('dispatcher', `q${++queryNo}`) });
    if (r.status === 503) return undefined; // an owner not answering right now: retried
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return (r.body.results as { id: string }[]).map((h) => h.id);
  }

  function bruteForce(lat: number, lng: number, k: number, radius: number): string[] {
    return [...fleet]
      .map(([id, [plat, plng]]) => ({ id, d: distanceMeters(lat, lng, plat, plng) }))
      .filter((h) => h.d <= radius)
      .sort((a, b) => a.d - b.d || (a.id < b.id ? -1 : 1))
      .slice(0, k)
      .map((h) => h.id);
  }

  const queries = Array.from({ length: 16 }, (_, i) => ({
    lat: VLAT + ((i % 4) - 1.5) * 0.05,
    lng: VLNG + (Math.floor(i / 4) - 1.5) * 0.08,
    k: 5 + (i % 3) * 5,
    radius: 5_000 + (i % 4) * 4_000,
  }));

  /** Every query through `edge` answers as the brute force does (waiting for pings to be applied). */
  async function allMatch(edge: string): Promise<void> {
    await eventually(
      async () => {
        for (const q of queries) {
          const got = await nearby(edge, q.lat, q.lng, q.k, q.radius);
          if (got === undefined || JSON.stringify(got) !== JSON.stringify(bruteForce(q.lat, q.lng, q.k, q.radius))) return undefined;
        }
        return true;
      },
      `nearest through ${edge} matches the brute force`,
      10_000,
    );
  }

  it('answers nearest through either edge as a brute force across three regions does', async () => {
    expect(new Set([...fleet.values()].map((p) => regionOf(...p))).size).toBeGreaterThanOrEqual(3);
    await allMatch(edgeA);
    await allMatch(edgeB);
  });

  it('pings sent through edge B in three ways show in nearest answers through edge A', async () => {
    const ids = [...fleet.keys()];
    const moves = ids.slice(0, 90).map((id) => [id, ...near(), Date.now()] as [string, number, number, number]);
    let crossed = 0;
    for (const [id, lat, lng] of moves) if (regionOf(lat, lng) !== regionOf(...fleet.get(id)!)) crossed++;
    expect(crossed).toBeGreaterThan(20);
    // a driver's own HTTP ping, 30 of them
    for (const [id, lat, lng, ts] of moves.slice(0, 30)) {
      const r = await call(edgeB, 'POST', `/v1/couriers/${id}/location`, { token: token('driver', id), body: { lat, lng, ts } });
      expect(r.status, JSON.stringify(r.body)).toBe(204);
    }
    // a gateway's HTTP batch, with one bad item that is refused alone
    const batch = moves.slice(30, 60).map(([id, lat, lng, ts]) => ({ id, lat, lng, ts }));
    const r = await call(edgeB, 'POST', '/v1/locations', { token: token('admin', 'gw'), body: [...batch, { id: 'm1', lat: 95, lng: 0, ts: Date.now() }] });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toEqual({ accepted: 30, rejected: [{ index: 30, code: 'E_VALIDATION' }] });
    // a gateway's WebSocket batch, acknowledged once Redis holds it
    const gw = await StreamClient.connect(`${edgeB.replace('http', 'ws')}/v1/stream`, { token: token('admin', 'gw-ws') });
    gw.send({ t: 'locs', items: moves.slice(60).map(([id, lat, lng, ts]) => [id, lat, lng, ts]) });
    expect(await gw.next((f) => f.t === 'ack', 'ack')).toMatchObject({ accepted: 30, rejected: [] });
    gw.close();
    for (const [id, lat, lng] of moves) fleet.set(id, [lat, lng]);
    await allMatch(edgeA);
  });

  it('a dispatcher on edge A watching a box across regions sees the couriers in it, then moves made through edge B', async () => {
    const bbox = [VLNG - 0.1, VLAT - 0.06, VLNG + 0.1, VLAT + 0.06] as const;
    const inBox = ([lat, lng]: [number, number]): boolean => lat >= bbox[1] && lat <= bbox[3] && lng >= bbox[0] && lng <= bbox[2];
    const expected = [...fleet].filter(([, p]) => inBox(p)).map(([id]) => id).sort();
    expect(new Set(expected.map((id) => regionOf(...fleet.get(id)!))).size).toBeGreaterThanOrEqual(2);
    const map = await StreamClient.connect(`${edgeA.replace('http', 'ws')}/v1/stream`, { token: token('dispatcher', 'map-1') });
    map.send({ t: 'watch', bbox, hz: 20 });
    const snap = await map.next((f) => f.t === 'snapshot', 'snapshot', 5_000);
    expect(snap.missing).toBeUndefined();
    expect((snap.couriers as [string][]).map((c) => c[0]).sort()).toEqual(expected);

    // one courier driven into the box and one out of it, both through edge B's sockets
    const outside = [...fleet].find(([id, p]) => !inBox(p) && !expected.includes(id))![0];
    const inside = expected[0];
    const into: [number, number] = [VLAT + 0.01, VLNG - 0.02];
    const away: [number, number] = [VLAT + 0.2, VLNG + 0.3];
    for (const [id, [lat, lng]] of [[outside, into], [inside, away]] as const) {
      const driver = await StreamClient.connect(`${edgeB.replace('http', 'ws')}/v1/stream`, { token: token('driver', id) });
      driver.send({ t: 'loc', lat, lng, ts: Date.now() });
      await new Promise((r) => setTimeout(r, 200));
      expect(driver.frames.filter((f) => f.t === 'error')).toEqual([]);
      driver.close();
      fleet.set(id, [lat, lng]);
    }
    const seen = { moved: false, removed: false };
    await eventually(
      async () => {
        for (const f of map.frames.splice(0)) {
          if (f.t !== 'delta') continue;
          if ((f.moved as [string, number, number][]).some((m) => m[0] === outside && Math.abs(m[1] - into[0]) < 1e-6)) seen.moved = true;
          if ((f.removed as string[]).includes(inside)) seen.removed = true;
        }
        return seen.moved && seen.removed ? true : undefined;
      },
      'the moved-in courier in a delta, and the moved-out one removed',
      8_000,
    );
    map.close();
  });

  it('shares HTTP rate limits across edges: one principal gets one allowance, not one per edge', async () => {
    const t = token('dispatcher', 'limited');
    const statuses: number[] = [];
    const retryAfter: (string | null)[] = [];
    for (let i = 0; i < 2 * RATE_BURST; i++) {
      const r = await call(i % 2 === 0 ? edgeA : edgeB, 'GET', `/v1/nearby?lat=${VLAT}&lng=${VLNG}&k=1&radius=100`, { token: t });
      statuses.push(r.status);
      if (r.status === 429) retryAfter.push(r.headers.get('retry-after'));
    }
    const admitted = statuses.filter((s) => s === 200).length;
    // burst, plus at most one token refilled (1/s) while the calls ran; per-edge buckets would admit all 20
    expect(admitted).toBeGreaterThanOrEqual(RATE_BURST);
    expect(admitted).toBeLessThanOrEqual(RATE_BURST + 1);
    expect(statuses.filter((s, i) => s === 429 && i % 2 === 0).length).toBeGreaterThan(0);
    expect(statuses.filter((s, i) => s === 429 && i % 2 === 1).length).toBeGreaterThan(0);
    expect(retryAfter.every((v) => Number(v) >= 1)).toBe(true);
  });

  it('refuses what it must as one process does, and says clearly what an edge does not serve yet', async () => {
    const id = 'm5';
    const ping = (body: unknown, who = token('driver', id)) => call(edgeA, 'POST', `/v1/couriers/${id}/location`, { token: who, body });
    expect((await ping({ lat: 95, lng: 0, ts: Date.now() })).body.error.code).toBe('E_VALIDATION');
    expect((await ping({ lat: 51.5, lng: 0, ts: Date.now() + 3_600_000 })).body.error.code).toBe('E_FUTURE_TIMESTAMP');
    expect((await ping({ lat: 51.5, lng: 0, ts: Date.now() }, token('driver', 'm6'))).status).toBe(403);
    expect((await call(edgeA, 'POST', `/v1/couriers/${id}/location`, { body: { lat: 51.5, lng: 0, ts: Date.now() } })).status).toBe(401);
    const site = await call(edgeA, 'GET', `/v1/nearby?lat=${VLAT}&lng=${VLNG}&kind=site`, { token: token('admin', 'a1') });
    expect([site.status, site.body]).toEqual([200, { results: [] }]); // the hub's answer: no site registered
    const blood = await call(edgeA, 'POST', '/v1/requests', { token: token('requester', 'ward-1'), body: { kind: 'blood', urgency: 'emergency', product: 'red_cells', bloodType: 'A+', units: 2, dropoff: { lat: VLAT, lng: VLNG } } });
    expect([blood.status, blood.body.error?.code]).toEqual([422, 'E_NO_STOCK']); // no bank has units: as one process
    const create = await call(edgeA, 'POST', '/v1/requests', { token: token('requester', 'r1'), body: {} });
    expect([create.status, create.body.error.code]).toEqual([400, 'E_VALIDATION']);
    const bySite = await call(edgeA, 'POST', '/v1/requests', { token: token('requester', 'r1'), body: { kind: 'delivery', pickupSiteId: 's1', dropoff: { lat: VLAT, lng: VLNG } } });
    expect([bySite.status, bySite.body.error.code]).toEqual([404, 'E_UNKNOWN_SITE']);
    expect((await call(edgeA, 'GET', '/v1/nope', { token: token('admin', 'a1') })).status).toBe(404);
    const donors = await call(edgeA, 'GET', `/v1/nearby?lat=${VLAT}&lng=${VLNG}&kind=donor`, { token: token('driver', id) });
    expect([donors.status, donors.body.error.code]).toEqual([403, 'E_FORBIDDEN']);
    for (const q of ['lat=Infinity&lng=0', 'lat=0x10&lng=0', `lat=${VLAT}&lng=${VLNG}&radius=Infinity`]) {
      const r = await call(edgeA, 'GET', `/v1/nearby?${q}`, { token: token('admin', 'a1') });
      expect([q, r.status, r.body.error.code]).toEqual([q, 400, 'E_VALIDATION']);
    }
    const ws = await StreamClient.connect(`${edgeA.replace('http', 'ws')}/v1/stream`, { token: token('driver', id) });
    ws.send({ t: 'accept', offerId: 'o1' });
    expect(await ws.next((f) => f.t === 'error', 'error')).toMatchObject({ code: 'E_UNKNOWN_OFFER', offerId: 'o1' });
    ws.send({ t: 'track', requestId: 'r1' });
    expect((await ws.next((f) => f.t === 'error', 'error')).code).toBe('E_FORBIDDEN');
    ws.close();
    // a map view costs by the regions it spans: big boxes re-watched quickly are refused, huge ones outright
    const map = await StreamClient.connect(`${edgeA.replace('http', 'ws')}/v1/stream`, { token: token('dispatcher', 'zoomer') });
    map.send({ t: 'watch', bbox: [-20, 40, -10, 50] });
    expect((await map.next((f) => f.t === 'error', 'error')).code).toBe('E_BBOX_TOO_LARGE');
    for (let i = 0; i < 5; i++) map.send({ t: 'watch', bbox: [-3 + i * 0.1, 50, 1 + i * 0.1, 53] });
    await eventually(() => (map.frames.filter((f) => f.t === 'error' && f.code === 'E_RATE_LIMITED').length >= 3 ? true : undefined), 'big re-watches refused', 5_000);
    map.close();
    const again = await StreamClient.connect(`${edgeA.replace('http', 'ws')}/v1/stream`, { token: token('driver', id) });
    again.send({ t: 'loc', lat: 91, lng: 0, ts: Date.now() });
    expect((await again.next((f) => f.t === 'error', 'error')).code).toBe('E_VALIDATION');
    again.close();
    for (const edge of [edgeA, edgeB]) {
      expect((await call(edge, 'GET', '/ready')).status).toBe(200);
      expect((await call(edge, 'GET', '/metrics')).status).toBe(200);
    }
  });

  it('keeps serving the fleet\'s regions after a gateway pings 3,000 random points of the globe (3,000 new regions)', async () => {
    const gw = await StreamClient.connect(`${edgeB.replace('http', 'ws')}/v1/stream`, { token: token('admin', 'gw-spray') });
    const spray = Array.from({ length: 3_000 }, (_, i) => [`ghost-${i}`, (rand() - 0.5) * 160, (rand() - 0.5) * 358, Date.now()]);
    gw.send({ t: 'locs', items: spray });
    expect(await gw.next((f) => f.t === 'ack', 'ack')).toMatchObject({ accepted: 3_000 });
    gw.close();
    expect(await redis.zcard(`${prefix}regions`)).toBeGreaterThan(2_000);
    // for three leases, every answer about the fleet is complete and right (leases renewed while regions pile up)
    for (const end = Date.now() + 3 * LEASE_MS; Date.now() < end; ) {
      for (const q of queries.slice(0, 6)) {
        const got = await nearby(edgeA, q.lat, q.lng, q.k, q.radius);
        expect(got, 'a 503 while the cores take the sprayed regions').toBeDefined();
        expect(got).toEqual(bruteForce(q.lat, q.lng, q.k, q.radius));
      }
    }
  });

  it('serves every region through the edges within 10 s of a core being SIGKILLed under ping load', async () => {
    const moving = [...fleet.keys()].slice(100, 160);
    let pinging = true;
    let acked = 0;
    // a gateway on edge B re-sends every moving courier's position every 100 ms; the fleet follows only acked batches
    const pinger = (async () => {
      while (pinging) {
        const items = moving.map((id) => ({ id, lat: near()[0], lng: near()[1], ts: Date.now() }));
        const r = await call(edgeB, 'POST', '/v1/locations', { token: token('admin', 'gw-load'), body: items });
        if (r.status === 200 && r.body.accepted === items.length) {
          for (const it of items) fleet.set(it.id, [it.lat, it.lng]);
          acked++;
        }
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    await eventually(() => (acked >= 5 ? true : undefined), 'pings flowing', 5_000);
    const killedAt = Date.now();
    await procs[0].kill(); // core-1
    await new Promise((res) => setTimeout(res, LEASE_MS + 1_000));
    pinging = false;
    await pinger;
    expect(acked).toBeGreaterThan(10);
    await allMatch(edgeA);
    // PRODUCT §7: a dead core's regions are served by another within 10 s (here: the lease, a tick, a reload)
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    await allMatch(edgeB);
  });
});
