/**
 * Two cores as users run them (`GD_ROLE=core node dist/api/main.js`) on the machine's Redis and PostgreSQL; the
 * test plays the edge with the same pieces an edge uses (PingPublisher, NearestScatter over RedisBus, owners
 * from the leases). Nearest answers match a brute force over the fleet across region borders, before and after
 * pings move couriers between regions, and after one core is SIGKILLed: its regions are served by the other
 * within 10 s.
 */
import { cellToBoundary } from 'h3-js';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, coreStarted, startServerProcess } from '../api/server-process.js';
import { distanceMeters } from '../engine/geodesy.js';
import { seededRandom } from '../fixtures/prng.js';
import { type Store, openStore } from '../store/store.js';
import { dropTestSchema, testDatabaseUrl, testSchemaName } from '../store/test-database.js';
import { type NearestQuery, NearestScatter, type RankedHit } from './nearest-scatter.js';
import { PingPublisher } from './ping-streams.js';
import { RedisBus } from './redis-bus.js';
import { RegionLeases } from './region-lease.js';
import { leaseDirectory } from './region-ownership.js';
import { regionOf, regionsTouched } from './regions.js';
import { TEST_REDIS_URL, connectTestRedis } from './test-redis.js';

const LEASE_MS = 2_000;
// a vertex of London's region: three regions meet there
const [VLAT, VLNG] = cellToBoundary(regionOf(51.5074, -0.1278))[0];
const N = 600;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('two cluster cores: region ownership, pings, nearest across borders, failover', () => {
  const url = testDatabaseUrl();
  const schema = testSchemaName('gd_cluster');
  let store: Store;
  let redis: Redis;
  let busConn: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  let leases: RegionLeases;
  let edge: NearestScatter<RankedHit>;
  let publisher: PingPublisher;
  const cores = new Map<string, ServerProcess>();
  /** Where each courier is now, as the test moved it. */
  const fleet = new Map<string, [number, number]>();
  const rand = seededRandom(5);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  let fleetRegions: string[] = [];

  const startCore = (name: string): Promise<ServerProcess> =>
    startServerProcess(
      { GD_ROLE: 'core', GD_NODE_NAME: name, GD_CLUSTER_PREFIX: prefix, GD_LEASE_TTL_MS: String(LEASE_MS), REDIS_URL: TEST_REDIS_URL, DATABASE_URL: url, DATABASE_SCHEMA: schema },
      60_000,
      coreStarted,
    );

  beforeAll(async () => {
    ({ redis, prefix, cleanup } = await connectTestRedis());
    store = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
    await store.migrate();
    const ids = Array.from({ length: N }, (_, i) => `k${i}`);
    for (const id of ids) fleet.set(id, [VLAT + gauss() * 0.12, VLNG + gauss() * 0.2]);
    await store.upsertCouriers(ids.map((id) => ({ id, vehicle: 'bike' as const, capabilities: [], capacity: 1, status: 'available' as const })));
    const at = Date.now() - 10_000;
    await store.writePositions({ ids, lat: Float64Array.from(ids.map((id) => fleet.get(id)![0])), lng: Float64Array.from(ids.map((id) => fleet.get(id)![1])), ts: new Float64Array(N).fill(at) });
    fleetRegions = [...new Set([...fleet.values()].map(([lat, lng]) => regionOf(lat, lng)))].sort();
    cores.set('core-a', await startCore('core-a'));
    cores.set('core-b', await startCore('core-b'));
    leases = new RegionLeases(redis, { owner: 'edge', prefix });
    busConn = redis.duplicate();
    edge = new NearestScatter<RankedHit>(new RedisBus(busConn, { prefix }), 'edge-1', leaseDirectory(redis, leases, prefix), 1_000);
    await edge.start();
    publisher = new PingPublisher(redis, prefix);
  });

  afterAll(async () => {
    for (const c of cores.values()) await c.kill();
    busConn?.disconnect();
    await cleanup();
    await store.close();
    await dropTestSchema(url, schema);
  });

  /** Holder of each of the fleet's regions (undefined where none). */
  async function holders(): Promise<(string | undefined)[]> {
    return (await leases.holders(fleetRegions)).map((h) => h?.owner);
  }

  async function until(what: string, ok: () => Promise<boolean>, ms: number): Promise<number> {
    const t0 = Date.now();
    while (!(await ok())) {
      if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms\n${[...cores.values()].map((c) => c.output()).join('\n---\n')}`);
      await sleep(100);
    }
    return Date.now() - t0;
  }

  function bruteForce(q: NearestQuery): RankedHit[] {
    return [...fleet]
      .map(([id, [lat, lng]]) => ({ id, distance: distanceMeters(q.lat, q.lng, lat, lng) }))
      .filter((h) => h.distance <= q.radius)
      .sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1))
      .slice(0, q.k);
  }

  const queries: NearestQuery[] = Array.from({ length: 25 }, (_, i) => ({
    lat: VLAT + ((i % 5) - 2) * 0.04,
    lng: VLNG + (Math.floor(i / 5) - 2) * 0.07,
    k: 5 + (i % 4) * 5,
    radius: 4_000 + (i % 3) * 6_000,
  }));

  /** Every query answered in full and as the brute force does. */
  async function allMatch(): Promise<boolean> {
    for (const q of queries) {
      const { hits, missing } = await edge.nearest(q);
      if (missing.length > 0) return false;
      if (JSON.stringify(hits.map((h) => h.id)) !== JSON.stringify(bruteForce(q).map((h) => h.id))) return false;
    }
    return true;
  }

  it('shares the fleet\'s regions between both cores, each region held once', async () => {
    expect(fleetRegions.length).toBeGreaterThanOrEqual(3);
    expect(queries.some((q) => { const t = regionsTouched(q.lat, q.lng, q.radius); return t !== 'all' && t.length >= 3; })).toBe(true);
    await until('every region owned, by both cores', async () => {
      const h = await holders();
      return h.every((o) => o !== undefined) && new Set(h).size === 2;
    }, 3 * LEASE_MS + 5_000);
  });

  it('answers nearest through the owners as a brute force over the whole fleet does', async () => {
    await until('nearest matches the stored fleet', allMatch, 10_000);
  });

  it('applies pings from the region streams, couriers crossing into the other core\'s regions included', async () => {
    const moved = [...fleet.keys()].filter((_, i) => i % 3 === 0);
    const batch = { ids: moved, lat: [] as number[], lng: [] as number[], ts: [] as number[] };
    let crossed = 0;
    for (const id of moved) {
      const p: [number, number] = [VLAT + gauss() * 0.12, VLNG + gauss() * 0.2];
      if (regionOf(...p) !== regionOf(...fleet.get(id)!)) crossed++;
      fleet.set(id, p);
      batch.lat.push(p[0]);
      batch.lng.push(p[1]);
      batch.ts.push(Date.now());
    }
    expect(crossed).toBeGreaterThan(20);
    await publisher.publish(batch);
    await until('nearest matches the moved fleet', allMatch, 10_000);
  });

  it('serves a SIGKILLed core\'s regions from the other within 10 s, with the positions it had written', async () => {
    await sleep(1_500); // the write-behind's flush (POSITION_FLUSH_MS = 1 s): pings older than this are stored
    const before = await holders();
    const victim = before.filter((h) => h === 'core-a').length >= before.filter((h) => h === 'core-b').length ? 'core-a' : 'core-b';
    const survivor = victim === 'core-a' ? 'core-b' : 'core-a';
    await cores.get(victim)!.kill();
    const took = await until(`${survivor} owns every region`, async () => (await holders()).every((h) => h === survivor), 10_000);
    expect(took).toBeLessThan(10_000);
    await until('nearest matches after failover', allMatch, 5_000);
    // pings keep flowing into the regions the dead core held
    const id = [...fleet.keys()].find((k) => before[fleetRegions.indexOf(regionOf(...fleet.get(k)!))] === victim)!;
    const p: [number, number] = [fleet.get(id)![0] + 0.001, fleet.get(id)![1]];
    fleet.set(id, p);
    await publisher.publish({ ids: [id], lat: [p[0]], lng: [p[1]], ts: [Date.now()] });
    await until('the survivor applies a ping in a region it took over', allMatch, 5_000);
    const health = await fetch(`http://127.0.0.1:${cores.get(survivor)!.port}/health`).then((r) => r.json());
    expect(health).toMatchObject({ ok: true, role: 'core', node: survivor, regions: expect.any(Number), couriers: N });
    await cores.get(survivor)!.stop();
  });
});
