/**
 * An edge whose line to Redis goes away (a TCP proxy: reset, then a black hole that answers nothing) while a core
 * keeps its own line: the edge answers 503 on every write and never acknowledges a ping Redis does not hold,
 * /ready says why, the process stays up, and once the line is back pings are acknowledged and applied again.
 */
import { cellToBoundary } from 'h3-js';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../api/auth.js';
import { loadConfig } from '../api/config.js';
import { type ServerProcess, coreStarted, edgeStarted, startServerProcess } from '../api/server-process.js';
import { StreamClient, call, eventually } from '../api/test-server.js';
import { type Store, openStore } from '../store/store.js';
import { type TcpProxy, startTcpProxy } from '../store/tcp-proxy.js';
import { dropTestSchema, testDatabaseUrl, testSchemaName } from '../store/test-database.js';
import { RegionLeases } from './region-lease.js';
import { regionOf } from './regions.js';
import { TEST_REDIS_URL, connectTestRedis } from './test-redis.js';

const SECRET = 'edge-outage-secret-0123456789abcdef';
const [VLAT, VLNG] = cellToBoundary(regionOf(51.5074, -0.1278))[0];

describe('an edge across a Redis outage', () => {
  const url = testDatabaseUrl();
  const schema = testSchemaName('gd_edge_out');
  const auth = new Authenticator(loadConfig({ JWT_SECRET: SECRET }).jwt, []);
  let store: Store;
  let redis: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  let proxy: TcpProxy;
  let core: ServerProcess;
  let edge: ServerProcess;
  const ids = Array.from({ length: 20 }, (_, i) => `e${i}`);

  beforeAll(async () => {
    ({ redis, prefix, cleanup } = await connectTestRedis());
    const target = new URL(TEST_REDIS_URL);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
    store = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
    await store.migrate();
    await store.upsertCouriers(ids.map((id) => ({ id, vehicle: 'car' as const, capabilities: [], capacity: 1, status: 'available' as const })));
    await store.writePositions({ ids, lat: Float64Array.from(ids, (_, i) => VLAT + i * 1e-3), lng: new Float64Array(ids.length).fill(VLNG), ts: new Float64Array(ids.length).fill(Date.now() - 60_000) });
    const common = { GD_CLUSTER_PREFIX: prefix, JWT_SECRET: SECRET, GD_LEASE_TTL_MS: '1000', DRAIN_GRACE_MS: '0' };
    core = await startServerProcess({ ...common, GD_ROLE: 'core', GD_NODE_NAME: 'core-x', REDIS_URL: TEST_REDIS_URL, DATABASE_URL: url, DATABASE_SCHEMA: schema }, 60_000, coreStarted);
    edge = await startServerProcess({ ...common, GD_ROLE: 'edge', GD_NODE_NAME: 'edge-x', REDIS_URL: `redis://${proxy.host}:${proxy.port}` }, 60_000, edgeStarted);
    const region = regionOf(VLAT, VLNG);
    const leases = new RegionLeases(redis, { owner: 'test', prefix });
    await eventually(async () => ((await leases.holders([region]))[0] !== undefined ? true : undefined), 'the region owned', 10_000);
  }, 90_000);

  afterAll(async () => {
    await edge?.kill();
    await core?.kill();
    await proxy?.close();
    await cleanup();
    await store.close();
    await dropTestSchema(url, schema);
  });

  const driver = (id: string): string => auth.signToken({ sub: id, role: 'driver' }, 3600);
  const ping = (id: string, lat: number) => call(edge.base, 'POST', `/v1/couriers/${id}/location`, { token: driver(id), body: { lat, lng: VLNG, ts: Date.now() } });
  /** The courier's position as nearest through the edge reports it (undefined while it cannot answer). */
  async function seenAt(id: string, lat: number): Promise<true | undefined> {
    const r = await call(edge.base, 'GET', `/v1/nearby?lat=${lat}&lng=${VLNG}&k=1&radius=50`, { token: auth.signToken({ sub: `d-${Math.random()}`, role: 'dispatcher' }, 60) });
    return r.status === 200 && r.body.results[0]?.id === id ? true : undefined;
  }

  for (const mode of ['reset', 'blackhole'] as const) {
    it(`answers 503 on writes while the line is cut (${mode}), acknowledges nothing, and resumes after`, async () => {
      const [id, other, base] = mode === 'reset' ? ['e1', 'e2', VLAT + 0.02] : ['e3', 'e4', VLAT + 0.05];
      expect((await ping(id, base)).status).toBe(204);
      await eventually(() => seenAt(id, base), 'a ping before the outage applied', 5_000);
      const socket = await StreamClient.connect(edge.ws, { token: driver(other) });

      proxy.cut(mode);
      const during = base + 0.01;
      const r = await ping(id, during);
      expect(r.status).toBe(503);
      expect(['E_UNAVAILABLE', 'E_OVERLOADED']).toContain(r.body.error.code);
      socket.send({ t: 'loc', lat: during + 0.001, lng: VLNG, ts: Date.now() });
      expect(['E_UNAVAILABLE', 'E_OVERLOADED']).toContain((await socket.next((f) => f.t === 'error', 'error frame', 6_000)).code);
      // reset: the connection is down; black hole: the PING probe goes unanswered
      await eventually(async () => ((await call(edge.base, 'GET', '/ready')).status === 503 ? true : undefined), '/ready 503', 5_000);
      expect((await call(edge.base, 'GET', '/health')).status).toBe(200);

      proxy.restore();
      await eventually(async () => ((await call(edge.base, 'GET', '/ready')).status === 200 ? true : undefined), 'ready again', 10_000);
      // what was refused was never stored: the courier is still where the last acknowledged ping put it
      await eventually(() => seenAt(id, base), 'nearest answering again, the courier where it was', 5_000);
      const after = base + 0.02;
      await eventually(async () => ((await ping(id, after)).status === 204 ? true : undefined), 'a ping acknowledged after the outage', 10_000);
      await eventually(() => seenAt(id, after), 'the ping after the outage applied', 5_000);
      socket.close();
      expect(edge.child.exitCode).toBeNull();
    }, 40_000);
  }
});
