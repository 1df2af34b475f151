/**
 * The cluster on one machine: applied ingest and nearest through 1 and then 2 cores (real `GD_ROLE=core`
 * processes on the machine's Redis and PostgreSQL), against one process's own engine on the same pings and
 * queries, and the CPU each hop spends per ping.
 *
 *   bench (the edge's part): PingPublisher ─► Redis streams ─► core(s): XREADGROUP ─► CourierIndex.move ─► XACK
 *   applied = the cores' own count of pings applied (/health), not what the bench sent
 *   nearest: NearestScatter over RedisBus ─► the owners ─► merged top k (closed loop, --concurrency in flight)
 *   hop cost: CPU (user + system) of the bench, redis-server and each core over the ingest phase ÷ pings applied
 *   through an edge (a real GD_ROLE=edge process): a gateway socket sends MessagePack `locs` frames, 8 awaiting
 *   their acks ─► applied by the cores, with the edge process's CPU per ping; nearest over HTTP with wrk (a C
 *   client: the client is not the bottleneck), non-2xx answers counted, not as queries
 *
 *   npm run bench:cluster -- --quick          (5,000 couriers, 3 s phases)
 *   npm run bench:cluster -- --couriers 40000 --duration 10 [--cores 1,2] [--concurrency 32]
 * Needs PostgreSQL + PostGIS (DATABASE_URL, default the local `test` database) and Redis (REDIS_URL, default local).
 * On a 2-core machine every process shares two cores: read the ratios as the cost of the hops, not as scaling.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Packr, unpack } from 'msgpackr';
import WebSocket from 'ws';
import { Authenticator } from '../api/auth.js';
import { loadConfig } from '../api/config.js';
import { type ServerProcess, coreStarted, edgeStarted, startServerProcess } from '../api/server-process.js';
import { NearestScatter, type RankedHit } from '../cluster/nearest-scatter.js';
import { PingPublisher } from '../cluster/ping-streams.js';
import { RedisBus } from '../cluster/redis-bus.js';
import { RegionLeases } from '../cluster/region-lease.js';
import { leaseDirectory } from '../cluster/region-ownership.js';
import { regionOf } from '../cluster/regions.js';
import { CourierIndex } from '../engine/courier-index.js';
import { seededRandom } from '../fixtures/prng.js';
import { openStore } from '../store/store.js';
import { dropTestSchema, testSchemaName } from '../store/test-database.js';
import { parseArgs, quantile, rateRatio, report } from './bench-report.js';

const args = parseArgs(process.argv.slice(2));
const quick = args.has('quick');
const COURIERS = Number(args.get('couriers') ?? (quick ? 5_000 : 40_000));
const SECONDS = Number(args.get('duration') ?? (quick ? 3 : 10));
const CONCURRENCY = Number(args.get('concurrency') ?? 32);
const CORE_COUNTS = (args.get('cores') ?? '1,2').split(',').map(Number);
const FRAME = 1_000;
const IN_FLIGHT = 8;
const databaseUrl = args.get('database-url') ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const redisUrl = args.get('redis-url') ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const CENTRE = [51.5074, -0.1278] as const;

const rand = seededRandom(42);
const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
const ids = Array.from({ length: COURIERS }, (_, i) => `b${i}`);
const lat = Float64Array.from(ids, () => CENTRE[0] + gauss() * 0.3);
const lng = Float64Array.from(ids, () => CENTRE[1] + gauss() * 0.5);
const regions = [...new Set(ids.map((_, i) => regionOf(lat[i], lng[i])))];
const queries = Array.from({ length: 2_000 }, () => [CENTRE[0] + gauss() * 0.3, CENTRE[1] + gauss() * 0.5] as const);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  process.stderr.write(`cluster: ${COURIERS} couriers over ${regions.length} regions, ${SECONDS} s phases, frames of ${FRAME}, nearest concurrency ${CONCURRENCY}\n`);
  const schema = testSchemaName('gd_cluster_bench');
  await seedCouriers(schema);
  const redis = new Redis(redisUrl);
  const redisPid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]);
  const local: Baselines = { ...localBaselines(), requestsPerSec: await oneProcessRequests() };
  try {
    for (const cores of CORE_COUNTS) await runWith(cores, schema, redis, redisPid, local);
  } finally {
    redis.disconnect();
    await dropTestSchema(databaseUrl, schema);
  }
}

/** The bench's couriers, stored in `schema` (migrated). */
async function seedCouriers(schema: string): Promise<void> {
  const store = await openStore({ databaseUrl, dataDir: 'unused', schema });
  await store.migrate();
  await store.upsertCouriers(ids.map((id) => ({ id, vehicle: 'bike' as const, capabilities: [], capacity: 1, status: 'available' as const })));
  await store.writePositions({ ids, lat, lng, ts: new Float64Array(COURIERS).fill(Date.now() - 60_000) });
  await store.close();
}

/** What the cluster's figures are measured against: one process's engine, and one process creating requests. */
interface Baselines {
  movePerSec: number;
  nearestPerSec: number;
  requestsPerSec: number | undefined;
}

/** One process's own engine on the same pings and queries: what the hops are measured against. */
function localBaselines(): { movePerSec: number; nearestPerSec: number } {
  const index = new CourierIndex();
  ids.forEach((id, i) => (index.upsert(id, { vehicle: 'bike', capabilities: [], capacity: 1, status: 'available' }), index.move(id, lat[i], lng[i], 1)));
  const n = 500_000;
  let t0 = performance.now();
  for (let j = 0; j < n; j++) {
    const i = j % COURIERS;
    index.move(ids[i], lat[i] + 1e-5 * (j % 7), lng[i], 2 + j);
  }
  const movePerSec = n / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  for (let j = 0; j < 50_000; j++) {
    const [qlat, qlng] = queries[j % queries.length];
    index.nearby(qlat, qlng, { k: 10, radius: 5_000 });
  }
  return { movePerSec, nearestPerSec: 50_000 / ((performance.now() - t0) / 1000) };
}

async function runWith(cores: number, schema: string, redis: Redis, redisPid: number, local: Baselines): Promise<void> {
  const prefix = `gd:bench:${process.pid}:${cores}:`;
  const procs: ServerProcess[] = [];
  for (let c = 0; c < cores; c++) {
    procs.push(await startServerProcess({ GD_ROLE: 'core', GD_NODE_NAME: `bench-core-${c + 1}`, GD_CLUSTER_PREFIX: prefix, REDIS_URL: redisUrl, DATABASE_URL: databaseUrl, DATABASE_SCHEMA: schema, ...UNLIMITED }, 120_000, coreStarted));
  }
  const leases = new RegionLeases(redis, { owner: 'bench-edge', prefix });
  const busConn = redis.duplicate();
  const edge = new NearestScatter<RankedHit>(new RedisBus(busConn, { prefix }), 'bench-edge', leaseDirectory(redis, leases, prefix), 2_000);
  try {
    await edge.start();
    const t0 = Date.now();
    // settled: every region held, by every core, and each courier held once
    const settled = async (): Promise<boolean> => {
      const h = await leases.holders(regions);
      return h.every((x) => x !== undefined) && new Set(h.map((x) => x?.owner)).size === cores && (await coreStats(procs)).couriers === COURIERS;
    };
    while (!(await settled())) {
      if (Date.now() - t0 > 60_000) throw new Error(`the cores did not own every region within 60 s:\n${procs.map((p) => p.output()).join('\n')}`);
      await sleep(100);
    }
    await ingest(cores, procs, redis, redisPid, prefix, local.movePerSec);
    await nearest(cores, edge, local.nearestPerSec);
    await throughEdge(cores, procs, prefix, redisPid, local);
  } finally {
    await edge.stop();
    busConn.disconnect();
    for (const p of procs) await p.stop().catch(() => p.kill());
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
}

async function ingest(cores: number, procs: ServerProcess[], redis: Redis, redisPid: number, prefix: string, baseline: number): Promise<void> {
  const conn = redis.duplicate();
  const publisher = new PingPublisher(conn, prefix);
  const before = await coreStats(procs);
  const cpu0 = { bench: process.cpuUsage(), redis: ticks(redisPid), cores: procs.map((p) => ticks(p.child.pid!)) };
  const t0 = performance.now();
  let sent = 0;
  let next = 0;
  const inFlight = new Set<Promise<unknown>>();
  while (performance.now() - t0 < SECONDS * 1000) {
    const frame = { ids: [] as string[], lat: [] as number[], lng: [] as number[], ts: [] as number[] };
    const now = Date.now();
    for (let j = 0; j < FRAME; j++, next++) {
      const i = next % COURIERS;
      frame.ids.push(ids[i]);
      frame.lat.push(lat[i] + 1e-5 * (next % 7));
      frame.lng.push(lng[i]);
      frame.ts.push(now + (next % 1000) / 1000);
    }
    const p = publisher.publish(frame).then(() => (sent += FRAME));
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const published = performance.now() - t0;
  // done when the cores have dealt with every ping sent (a refused one, e.g. stale, is never applied)
  let now = await coreStats(procs);
  while (now.settled - before.settled < sent && performance.now() - t0 < (SECONDS + 60) * 1000) now = (await sleep(20), await coreStats(procs));
  const applied = now.pingsApplied - before.pingsApplied;
  const took = (performance.now() - t0) / 1000;
  const benchCpu = process.cpuUsage(cpu0.bench);
  const cpuUs = {
    edge: (benchCpu.user + benchCpu.system) / applied,
    redis: ((ticks(redisPid) - cpu0.redis) * 1e6) / USER_HZ / applied,
    cores: (procs.reduce((s, p, c) => s + ticks(p.child.pid!) - cpu0.cores[c], 0) * 1e6) / USER_HZ / applied,
  };
  const rate = applied / took;
  report({ bench: `cluster.ingest.cores${cores}`, n: applied, value: rate, unit: 'pings/s', basis: 'applied by the cores (their own count)', sent, notApplied: now.settled - before.settled - applied, publishPerSec: Math.round(sent / (published / 1000)), baseline: 'one-process-engine-move', baselineValue: baseline, ratio: rateRatio(rate, baseline) });
  for (const [hop, us] of Object.entries(cpuUs)) report({ bench: `cluster.hop.${hop}.cores${cores}`, n: applied, value: us, unit: 'µs CPU/ping', basis: 'process CPU over the ingest phase ÷ pings applied' });
  conn.disconnect();
}

async function nearest(cores: number, edge: NearestScatter<RankedHit>, baseline: number): Promise<void> {
  const latencies: number[] = [];
  const incomplete = new Map<string, number>();
  let q = 0;
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        const [qlat, qlng] = queries[q++ % queries.length];
        const s = performance.now();
        const r = await edge.nearest({ lat: qlat, lng: qlng, k: 10, radius: 5_000 });
        latencies.push(performance.now() - s);
        for (const m of r.missing) incomplete.set(m, (incomplete.get(m) ?? 0) + 1);
      }
    }),
  );
  const rate = latencies.length / ((performance.now() - t0) / 1000);
  report({ bench: `cluster.nearest.cores${cores}`, n: latencies.length, value: rate, unit: 'queries/s', incomplete: Object.fromEntries(incomplete), baseline: 'one-process-engine-nearby', baselineValue: baseline, ratio: rateRatio(rate, baseline) });
  report({ bench: `cluster.nearest.cores${cores}.p50`, n: latencies.length, value: quantile(latencies, 0.5), unit: 'ms' });
  report({ bench: `cluster.nearest.cores${cores}.p99`, n: latencies.length, value: quantile(latencies, 0.99), unit: 'ms' });
}

const SECRET = 'bench-edge-secret-0123456789abcdefghij';
const UNLIMITED_N = '10000000';
/** Rate limits and open-request bounds out of the way: the bench measures the machine, not the allowance. */
const UNLIMITED = { RATE_PER_SEC: UNLIMITED_N, RATE_BURST: UNLIMITED_N, GATEWAY_INGEST_PER_SEC: UNLIMITED_N, GATEWAY_INGEST_BURST: UNLIMITED_N };
/** Requesters the request phase rotates through (a city's shops; each stays far below the open-requests bound). */
const REQUESTERS = 200;

/** Ingest and nearest through one real edge process in front of the cores. */
async function throughEdge(cores: number, procs: ServerProcess[], prefix: string, redisPid: number, local: Baselines): Promise<void> {
  const edge = await startServerProcess(
    { GD_ROLE: 'edge', GD_NODE_NAME: 'bench-edge-proc', GD_CLUSTER_PREFIX: prefix, REDIS_URL: redisUrl, JWT_SECRET: SECRET, ...UNLIMITED },
    60_000,
    edgeStarted,
  );
  const auth = new Authenticator(loadConfig({ JWT_SECRET: SECRET }).jwt, []);
  try {
    await edgeIngest(cores, procs, edge, redisPid, auth.signToken({ sub: 'bench-gw', role: 'admin' }, 3600), local.movePerSec);
    edgeNearest(cores, edge, auth.signToken({ sub: 'bench-map', role: 'dispatcher' }, 3600), local.nearestPerSec);
    edgeRequests(cores, edge, local.requestsPerSec);
  } finally {
    await edge.stop().catch(() => edge.kill());
  }
}

/** A gateway socket on the edge: MessagePack `locs` frames, IN_FLIGHT awaiting acks; applied = the cores' count. */
async function edgeIngest(cores: number, procs: ServerProcess[], edge: ServerProcess, redisPid: number, token: string, baseline: number): Promise<void> {
  const ws = new WebSocket(`${edge.ws}?access_token=${token}`);
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  const packr = new Packr({ useRecords: false });
  let acked = 0;
  let rejectedItems = 0;
  let refused = 0;
  let waiting: (() => void) | undefined;
  ws.on('message', (data: Buffer) => {
    const f = unpack(data) as { t: string; accepted?: number; rejected?: unknown[] };
    if (f.t === 'ack') {
      acked += f.accepted ?? 0;
      rejectedItems += f.rejected?.length ?? 0;
    } else refused++;
    waiting?.();
  });
  ws.on('close', () => waiting?.());
  const answered = (): number => acked + rejectedItems + refused * FRAME;
  const before = await coreStats(procs);
  const cpu0 = { edge: ticks(edge.child.pid!), redis: ticks(redisPid), cores: procs.map((p) => ticks(p.child.pid!)) };
  const t0 = performance.now();
  let sentFrames = 0;
  let next = 0;
  while (performance.now() - t0 < SECONDS * 1000) {
    const now = Date.now();
    const items: [string, number, number, number][] = [];
    for (let j = 0; j < FRAME; j++, next++) {
      const i = next % COURIERS;
      // whole milliseconds, as the API requires (a gateway's pings of one frame share the frame's clock)
      items.push([ids[i], lat[i] + 1e-5 * (next % 7), lng[i], now]);
    }
    ws.send(packr.pack({ t: 'locs', items }));
    sentFrames++;
    while (sentFrames * FRAME - answered() >= IN_FLIGHT * FRAME && ws.readyState === WebSocket.OPEN) await new Promise<void>((r) => (waiting = r));
  }
  while (answered() < sentFrames * FRAME && ws.readyState === WebSocket.OPEN) await new Promise<void>((r) => (waiting = r));
  if (ws.readyState !== WebSocket.OPEN) throw new Error(`the edge closed the gateway socket:\n${edge.output().slice(-2000)}`);
  let now = await coreStats(procs);
  while (now.settled - before.settled < acked && performance.now() - t0 < (SECONDS + 60) * 1000) now = (await sleep(20), await coreStats(procs));
  const applied = now.pingsApplied - before.pingsApplied;
  const took = (performance.now() - t0) / 1000;
  ws.close();
  const rate = applied / took;
  report({ bench: `cluster.edge.ingest.cores${cores}`, n: applied, value: rate, unit: 'pings/s', basis: 'applied by the cores after the edge acknowledged them', acked, rejectedItems, notApplied: now.settled - before.settled - applied, refusedFrames: refused, baseline: 'one-process-engine-move', baselineValue: baseline, ratio: rateRatio(rate, baseline) });
  const perPing = (t: number): number => (t * 1e6) / USER_HZ / applied;
  report({ bench: `cluster.edge.hop.edge.cores${cores}`, n: applied, value: perPing(ticks(edge.child.pid!) - cpu0.edge), unit: 'µs CPU/ping', basis: 'the edge process (WebSocket, decode, check, XADD)' });
  report({ bench: `cluster.edge.hop.redis.cores${cores}`, n: applied, value: perPing(ticks(redisPid) - cpu0.redis), unit: 'µs CPU/ping' });
  report({ bench: `cluster.edge.hop.cores.cores${cores}`, n: applied, value: perPing(procs.reduce((s, p, c) => s + ticks(p.child.pid!) - cpu0.cores[c], 0)), unit: 'µs CPU/ping' });
}

/** wrk over the edge's /v1/nearby, cycling the bench's queries (a Lua script); only 2xx answers count. */
function edgeNearest(cores: number, edge: ServerProcess, token: string, baseline: number): void {
  const paths = queries.slice(0, 500).map(([qlat, qlng]) => `"/v1/nearby?lat=${qlat.toFixed(6)}&lng=${qlng.toFixed(6)}&k=10&radius=5000"`);
  const run = wrk(edge.base, `local paths = {${paths.join(',')}}\nlocal i = 0\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format("GET", paths[i], { ["Authorization"] = "Bearer ${token}" })\nend\n`);
  if (run === undefined) return;
  report({ bench: `cluster.edge.nearest.cores${cores}`, n: run.ok, value: run.rate, unit: 'queries/s', basis: '2xx answers over HTTP through the edge (wrk)', non2xx: run.bad, baseline: 'one-process-engine-nearby', baselineValue: baseline, ratio: rateRatio(run.rate, baseline) });
  report({ bench: `cluster.edge.nearest.cores${cores}.p50`, n: run.total, value: run.p50, unit: 'ms' });
  report({ bench: `cluster.edge.nearest.cores${cores}.p99`, n: run.total, value: run.p99, unit: 'ms' });
}

/** Deliveries created over HTTP by REQUESTERS requesters (wrk POSTs cycling the bench's points as pickups); only 201s count: each is committed to PostgreSQL. */
function createRequests(base: string): WrkRun | undefined {
  const auth = new Authenticator(loadConfig({ JWT_SECRET: SECRET }).jwt, []);
  const tokens = Array.from({ length: REQUESTERS }, (_, i) => `"${auth.signToken({ sub: `bench-shop-${i}`, role: 'requester' }, 3600)}"`);
  const bodies = queries.slice(0, 500).map(([qlat, qlng]) => `'${JSON.stringify({ kind: 'delivery', urgency: 'routine', pickup: { lat: Number(qlat.toFixed(6)), lng: Number(qlng.toFixed(6)) }, dropoff: { lat: Number((qlat + 0.01).toFixed(6)), lng: Number(qlng.toFixed(6)) } })}'`);
  return wrk(base, `local bodies = {${bodies.join(',')}}\nlocal tokens = {${tokens.join(',')}}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format("POST", "/v1/requests", { ["Authorization"] = "Bearer " .. tokens[i % #tokens + 1], ["Content-Type"] = "application/json" }, bodies[i % #bodies + 1])\nend\n`);
}

/** Requests created and committed through the edge into the cores, against one process (GD_ROLE=all) on the same PostgreSQL. */
function edgeRequests(cores: number, edge: ServerProcess, baseline: number | undefined): void {
  const run = createRequests(edge.base);
  if (run === undefined) return;
  report({ bench: `cluster.edge.requests.cores${cores}`, n: run.ok, value: run.rate, unit: 'requests/s', basis: '201 answers through the edge: committed by the owning core under its epoch (wrk)', non2xx: run.bad, baseline: 'one-process-GD_ROLE=all-same-postgres', baselineValue: baseline ?? Number.NaN, ratio: baseline === undefined ? Number.NaN : rateRatio(run.rate, baseline) });
  report({ bench: `cluster.edge.requests.cores${cores}.p50`, n: run.total, value: run.p50, unit: 'ms' });
  report({ bench: `cluster.edge.requests.cores${cores}.p99`, n: run.total, value: run.p99, unit: 'ms' });
}

interface WrkRun {
  total: number;
  ok: number;
  bad: number;
  rate: number;
  p50: number;
  p99: number;
}

/** Runs wrk with a Lua script against `base` for the phase's duration; undefined (and a note) without wrk. */
function wrk(base: string, lua: string): WrkRun | undefined {
  const script = join(tmpdir(), `gd-cluster-bench-${process.pid}.lua`);
  writeFileSync(script, lua);
  let out: string;
  try {
    out = execFileSync('wrk', ['-t1', `-c${CONCURRENCY}`, `-d${SECONDS}s`, '--latency', '-s', script, base], { encoding: 'utf8' });
  } catch (err) {
    process.stderr.write(`wrk not run (${err instanceof Error ? err.message : String(err)}): apt-get install wrk for the HTTP figures\n`);
    return undefined;
  }
  const total = Number(/(\d+) requests in ([\d.]+)s/.exec(out)?.[1] ?? 0);
  const secs = Number(/requests in ([\d.]+)s/.exec(out)?.[1] ?? SECONDS);
  const bad = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const ms = (label: string): number => {
    const m = new RegExp(`\\s${label}\\s+([\\d.]+)(us|ms|s)`).exec(out);
    return m === null ? Number.NaN : Number(m[1]) * (m[2] === 'us' ? 1e-3 : m[2] === 's' ? 1e3 : 1);
  };
  return { total, ok: total - bad, bad, rate: (total - bad) / secs, p50: ms('50%'), p99: ms('99%') };
}

/** One process (GD_ROLE=all) on the same PostgreSQL and the same couriers, in a schema of its own: the baseline for requests through a cluster. */
async function oneProcessRequests(): Promise<number | undefined> {
  const schema = testSchemaName('gd_cluster_bench_one');
  await seedCouriers(schema);
  const proc = await startServerProcess({ DATABASE_URL: databaseUrl, DATABASE_SCHEMA: schema, SEED_CITY: 'none', JWT_SECRET: SECRET, ...UNLIMITED }, 120_000);
  try {
    const run = createRequests(proc.base);
    if (run === undefined) return undefined;
    report({ bench: 'one-process.requests', n: run.ok, value: run.rate, unit: 'requests/s', basis: '201 answers from GD_ROLE=all on the same PostgreSQL (wrk)', non2xx: run.bad });
    return run.rate;
  } finally {
    await proc.stop().catch(() => proc.kill());
    await dropTestSchema(databaseUrl, schema);
  }
}

/** The cores' counters summed (their /health); `settled` counts every ping a core has dealt with, applied or not. */
async function coreStats(procs: ServerProcess[]): Promise<{ pingsApplied: number; couriers: number; settled: number }> {
  type Health = { pingsApplied: number; couriers: number; pingsRefused: number; pingsUnknown: number; pingsQueueFull: number; pingsNotOwned: number };
  const all = await Promise.all(procs.map((p) => fetch(`http://127.0.0.1:${p.port}/health`).then((r) => r.json() as Promise<Health>)));
  return all.reduce(
    (a, s) => ({ pingsApplied: a.pingsApplied + s.pingsApplied, couriers: a.couriers + s.couriers, settled: a.settled + s.pingsApplied + s.pingsRefused + s.pingsUnknown + s.pingsQueueFull + s.pingsNotOwned }),
    { pingsApplied: 0, couriers: 0, settled: 0 },
  );
}

/** User + system clock ticks of a process so far. */
function ticks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** Clock ticks per second in /proc/<pid>/stat (USER_HZ: 100 on Linux whatever the kernel's HZ). */
const USER_HZ = 100;

// exit when done: a server process's pipes or a Redis reconnect timer must not hold a finished bench open
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
