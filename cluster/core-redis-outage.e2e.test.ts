/**
 * A core whose Redis goes away for three leases and comes back (a TCP proxy cuts the line; the shared Redis
 * itself keeps running for the other suites): the process stays up, its leases lapse, and once the line is back it
 * takes its regions again under larger epochs, reloads them and applies pings, with nearest matching a brute force.
 */
import { cellToBoundary } from 'h3-js';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, coreStarted, startServerProcess } from '../api/server-process.js';
import { distanceMeters } from '../engine/geodesy.js';
import { seededRandom } from '../fixtures/prng.js';
import { type Store, openStore } from '../store/store.js';
import { type TcpProxy, startTcpProxy } from '../store/tcp-proxy.js';
import { dropTestSchema, testDatabaseUrl, testSchemaName } from '../store/test-database.js';
import { NearestScatter, type RankedHit } from './nearest-scatter.js';
import { PingPublisher } from './ping-streams.js';
import { RedisBus } from './redis-bus.js';
import { RegionLeases } from './region-lease.js';
import { leaseDirectory } from './region-ownership.js';
import { regionOf } from './regions.js';
import { TEST_REDIS_URL, connectTestRedis } from './test-redis.js';

const LEASE_MS = 1_000;
const [VLAT, VLNG] = cellToBoundary(regionOf(51.5074, -0.1278))[0];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('a core across a Redis outage', () => {
  const url = testDatabaseUrl();
  const schema = testSchemaName('gd_outage');
  let store: Store;
  let redis: Redis;
  let busConn: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  let proxy: TcpProxy;
  let core: ServerProcess;
  let leases: RegionLeases;
  let edge: NearestScatter<RankedHit>;
  const fleet = new Map<string, [number, number]>();
  let regions: string[] = [];

  beforeAll(async () => {
    ({ redis, prefix, cleanup } = await connectTestRedis());
    const target = new URL(TEST_REDIS_URL);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
    store = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
    await store.migrate();
    const rand = seededRandom(9);
    for (let i = 0; i < 300; i++) fleet.set(`o${i}`, [VLAT + (rand() - 0.5) * 0.2, VLNG + (rand() - 0.5) * 0.3]);
    const ids = [...fleet.keys()];
    await store.upsertCouriers(ids.map((id) => ({ id, vehicle: 'car' as const, capabilities: [], capacity: 1, status: 'available' as const })));
    await store.writePositions({ ids, lat: Float64Array.from(ids, (id) => fleet.get(id)![0]), lng: Float64Array.from(ids, (id) => fleet.get(id)![1]), ts: new Float64Array(ids.length).fill(Date.now() - 10_000) });
    regions = [...new Set([...fleet.values()].map((p) => regionOf(...p)))].sort();
    const viaProxy = `redis://${proxy.host}:${proxy.port}`;
    core = await startServerProcess({ GD_ROLE: 'core', GD_NODE_NAME: 'core-o', GD_CLUSTER_PREFIX: prefix, GD_LEASE_TTL_MS: String(LEASE_MS), REDIS_URL: viaProxy, DATABASE_URL: url, DATABASE_SCHEMA: schema }, 60_000, coreStarted);
    leases = new RegionLeases(redis, { owner: 'edge', prefix });
    busConn = redis.duplicate();
    edge = new NearestScatter<RankedHit>(new RedisBus(busConn, { prefix }), 'edge-o', leaseDirectory(redis, leases, prefix), 1_000);
    await edge.start();
  });

  afterAll(async () => {
    await core?.kill();
    busConn?.disconnect();
    await proxy?.close();
    await cleanup();
    await store.close();
    await dropTestSchema(url, schema);
  });

  async function until(what: string, ok: () => Promise<boolean>, ms: number): Promise<void> {
    const t0 = Date.now();
    while (!(await ok())) {
      if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms\n${core.output()}`);
      await sleep(100);
    }
  }

  const epochs = async (): Promise<(number | undefined)[]> => (await leases.holders(regions)).map((h) => (h?.owner === 'core-o' ? h.epoch : undefined));

  async function matches(): Promise<boolean> {
    for (const [lat, lng] of [[VLAT, VLNG], [VLAT + 0.05, VLNG - 0.08], [VLAT - 0.04, VLNG + 0.1]]) {
      const q = { lat, lng, k: 12, radius: 8_000 };
      const want = [...fleet]
        .map(([id, [plat, plng]]) => ({ id, distance: distanceMeters(lat, lng, plat, plng) }))
        .filter((h) => h.distance <= q.radius)
        .sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1))
        .slice(0, q.k);
      const got = await edge.nearest(q);
      if (got.missing.length > 0 || JSON.stringify(got.hits.map((h) => h.id)) !== JSON.stringify(want.map((h) => h.id))) return false;
    }
    return true;
  }

  it('owns its regions and answers before the outage', async () => {
    expect(regions.length).toBeGreaterThanOrEqual(2);
    await until('every region owned', async () => (await epochs()).every((e) => e !== undefined), 10_000);
    await until('nearest matches', matches, 5_000);
  });

  it('stays up while Redis is unreachable, its leases lapse, and it takes its regions back after, under larger epochs', async () => {
    const before = await epochs();
    proxy.cut('reset');
    await sleep(3 * LEASE_MS);
    expect((await leases.holders(regions)).every((h) => h === undefined)).toBe(true);
    const health = await fetch(`http://127.0.0.1:${core.port}/health`);
    expect(health.status).toBe(200);
    proxy.restore();
    await until('every region owned again, under a larger epoch', async () => {
      const now = await epochs();
      return now.every((e, i) => e !== undefined && e > before[i]!);
    }, 10_000);
    await until('nearest matches after the outage', matches, 5_000);
    const moved = [...fleet.keys()].slice(0, 50);
    for (const id of moved) fleet.set(id, [fleet.get(id)![0] + 0.002, fleet.get(id)![1]]);
    await new PingPublisher(redis, prefix).publish({ ids: moved, lat: moved.map((id) => fleet.get(id)![0]), lng: moved.map((id) => fleet.get(id)![1]), ts: moved.map(() => Date.now()) });
    await until('pings after the outage applied', matches, 5_000);
    expect(core.child.exitCode).toBeNull();
  });
});
