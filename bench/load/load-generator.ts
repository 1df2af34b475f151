/**
 * GeoDispatch load generator (PRODUCT.md §4, §6): real WebSocket and HTTP clients against a running server, with
 * Redis GEO and PostGIS KNN as baselines on the same points and queries, in the same run.
 *
 *   args ─► workload (seeded couriers, ping pool, query points, requests)
 *        ─► server: --url (GET /health) | --spawn (dist/api/main.js, dev tokens)     [skipped with --peers-only]
 *        ─► setup: PUT /v1/couriers/{id} ×N, POST /v1/locations
 *        ─► timed: WS ingest per mode (msgpack batches, JSON batches, JSON driver pings)
 *                  GET /v1/nearby closed loop · POST /v1/requests open loop
 *        ─► peers: Redis GEOADD / GEOSEARCH · PostGIS upsert / KNN   (skipped with a note when unreachable)
 *        ─► one JSON line per figure (bench-report) with ratio GeoDispatch / peer; cleanup (key, table, server)
 *
 *   node dist/bench/load/load-generator.js --couriers 100000 --rate 500000 --duration 20 --spawn
 *   node dist/bench/load/load-generator.js --url http://127.0.0.1:8080 --token <admin JWT> --quick
 *   node dist/bench/load/load-generator.js --peers-only --quick
 */
import { generateMoveStream } from '../../fixtures/move-stream.js';
import { costRatio, parseArgs, rateRatio, report, type Figure } from '../bench-report.js';
import { mintToken, type Role } from './dev-tokens.js';
import { HttpClient, type LoopResult } from './http-client.js';
import { authHeaders, describeFailures, runNearby, runRequests, setupCouriers } from './http-queries.js';
import { PingCursor, type IngestMode } from './ping-frames.js';
import { closePostgis, connectPostgis, ingestPostgis, loadPostgis, queryPostgis, type PostgisPeer } from './postgis-peer.js';
import { closeRedis, connectRedis, ingestRedis, loadRedis, queryRedis, type RedisPeer } from './redis-peer.js';
import { connectServer, readCounter, ServerUnreachableError, spawnServer, type ServerTarget } from './server-target.js';
import { buildWorkload, type Workload } from './workload.js';
import { runIngest, type Credential, type IngestResult, type PingerLane } from './ws-pingers.js';

const ACCEPTED_METRIC = 'geodispatch_pings_accepted_total';
const cfg = readConfig(process.argv.slice(2));
const notes: string[] = [];
const cleanups: (() => Promise<void>)[] = [];

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    process.stderr.write(`\nload generator failed: ${e instanceof Error ? e.message : String(e)}\n`);
    await cleanUp();
    process.exit(e instanceof ServerUnreachableError ? 2 : 1);
  },
);

async function main(): Promise<number> {
  // the run stops itself: a watchdog cleans up and exits if anything hangs past the budget
  const watchdog = setTimeout(() => {
    process.stderr.write(`\nload generator: --max-seconds ${cfg.maxSeconds} exceeded; cleaning up and exiting\n`);
    void cleanUp().finally(() => process.exit(3));
  }, cfg.maxSeconds * 1000);
  watchdog.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanUp().finally(() => process.exit(130)));

  log(`load: ${cfg.couriers} couriers, rate ${cfg.rate} pings/s, ${cfg.durationS} s per phase, ${cfg.connections} WS connections, batch ${cfg.batch}, HTTP concurrency ${cfg.httpConcurrency}, run ${cfg.runId}${cfg.quick ? ', quick' : ''}`);
  const t0 = performance.now();
  const w = buildWorkload({ seed: cfg.seed, couriers: cfg.couriers, cities: cfg.cities, pingPool: cfg.pingPool, pingRate: cfg.rate, queries: cfg.queries, requests: cfg.requests });
  log(`workload built in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${w.pings.index.length} pooled pings, ${w.queries.lat.length} query points, ${w.requests.length} requests`);

  const gd = cfg.peersOnly ? undefined : await runGeoDispatch(w);
  const redis = cfg.redis ? await runRedisPeer(w, gd?.ingest.get('msgpack')?.sentPings) : undefined;
  const pgis = cfg.postgis ? await runPostgisPeer(w) : undefined;

  reportAll(gd, redis, pgis);
  await cleanUp();
  for (const n of notes) log(`note: ${n}`);
  log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return 0;
}

// ─── GeoDispatch ────────────────────────────────────────────────────────────────────────────────────────────

interface GeoDispatchResults {
  ingest: Map<IngestMode, IngestResult & { accepted?: number; acceptedMs?: number }>;
  nearby?: LoopResult;
  requests?: LoopResult;
}

async function runGeoDispatch(w: Workload): Promise<GeoDispatchResults> {
  const client = new HttpClient(cfg.httpConcurrency);
  cleanups.push(async () => client.close());
  const target = await resolveServer(client);
  const url = target.url;
  const admin = adminCredential(target);
  const adminAuth = authHeaders(admin);

  let t = performance.now();
  const setup = await setupCouriers(client, url, adminAuth, w.couriers, cfg.httpConcurrency, 120_000);
  log(`setup: ${w.couriers.length} couriers created in ${((performance.now() - t) / 1000).toFixed(1)} s (${Math.round((setup.profiles.ok * 1000) / setup.profiles.elapsedMs)} PUT/s), start positions posted`);

  const out: GeoDispatchResults = { ingest: new Map() };
  const tsShift = Date.now() - w.pings.ts[0];
  for (const mode of cfg.modes) {
    const lanes = ingestLanes(mode, w, admin, target, tsShift);
    if (lanes === undefined) continue;
    const before = await scrapeAccepted(client, url);
    const started = performance.now();
    log(`ws ingest ${mode}: ${lanes.length} connections, target ${cfg.rate} pings/s for ${cfg.durationS} s`);
    const r = await runIngest({ url, mode, lanes, batch: cfg.batch, rate: mode === 'json-single' ? Math.min(cfg.rate, cfg.driverRate) : cfg.rate, durationMs: cfg.durationS * 1000, maxPings: cfg.maxPings });
    const after = before === undefined ? undefined : await settleAccepted(client, url, before);
    out.ingest.set(mode, { ...r, accepted: after?.accepted, acceptedMs: after === undefined ? undefined : after.at - started });
    if (r.errorSample) notes.push(`ws ${mode}: server error frames, e.g. ${r.errorSample}`);
    if (r.closedEarly > 0) notes.push(`ws ${mode}: ${r.closedEarly}/${r.connections} sockets closed by the server during the phase`);
  }
  if (!out.ingest.size) notes.push('no WS ingest mode could run');

  const bounds = { maxCount: cfg.maxQueries, durationMs: cfg.durationS * 1000 };
  log(`http nearby: ${cfg.httpConcurrency} in flight for ${cfg.durationS} s`);
  out.nearby = await runNearby(client, url, adminAuth, w.queries, cfg.k, cfg.radiusM, cfg.httpConcurrency, bounds);
  if (out.nearby.failed > 0) notes.push(`GET /v1/nearby failures: ${describeFailures(out.nearby)}`);

  if (w.requests.length > 0 && cfg.requestRate > 0) {
    const requester = requestCredential(target, admin);
    log(`http requests: ${cfg.requestRate}/s for ${cfg.durationS} s`);
    out.requests = await runRequests(client, url, authHeaders(requester), cfg.runId, w.requests, cfg.requestRate, cfg.httpConcurrency, { maxCount: Math.ceil(cfg.requestRate * cfg.durationS), durationMs: cfg.durationS * 1000 });
    if (out.requests.failed > 0) notes.push(`POST /v1/requests failures: ${describeFailures(out.requests)}`);
  }
  return out;
}

async function resolveServer(client: HttpClient): Promise<ServerTarget> {
  const target = cfg.spawn ? await spawnServer((u) => healthy(client, u), log) : await connectServer(cfg.url, client);
  cleanups.push(() => target.stop());
  return target;
}

function adminCredential(target: ServerTarget): Credential {
  if (cfg.token) return { token: cfg.token };
  if (cfg.apiKey) return { apiKey: cfg.apiKey };
  const dev = target.devTokens.get('admin');
  if (dev) return { token: dev };
  const secret = cfg.jwtSecret ?? target.jwtSecret;
  if (secret) return { token: mintToken(secret, 'load-admin', 'admin') };
  throw new Error('no admin credentials: pass --token <admin JWT>, --api-key <key>, --jwt-secret <JWT_SECRET>, or --spawn');
}

// POST /v1/requests is for requesters and dispatchers; an admin token is the last resort
function requestCredential(target: ServerTarget, admin: Credential): Credential {
  if (cfg.requestToken) return { token: cfg.requestToken };
  for (const role of ['dispatcher', 'requester'] as const) {
    const dev = target.devTokens.get(role);
    if (dev) return { token: dev };
  }
  const secret = cfg.jwtSecret ?? target.jwtSecret;
  if (secret) return { token: mintToken(secret, 'load-dispatcher', 'dispatcher') };
  notes.push('POST /v1/requests sent with the admin credential (no --request-token, dev dispatcher token or JWT secret)');
  return admin;
}

/** Lanes for one mode, or undefined (with a note) when the mode cannot run with the credentials at hand. */
function ingestLanes(mode: IngestMode, w: Workload, admin: Credential, target: ServerTarget, tsShift: number): PingerLane[] | undefined {
  const secret = cfg.jwtSecret ?? target.jwtSecret;
  if (mode !== 'json-single') {
    const cursor = new PingCursor(w.pings, w.ids, tsShift);
    // with the secret each gateway socket is its own principal, as separate gateways would be (own rate bucket)
    const own = secret !== undefined && cfg.token === undefined && cfg.apiKey === undefined;
    return Array.from({ length: cfg.connections }, (_, i) => ({ credential: own ? { token: mintToken(secret, `load-gateway-${i}`, 'admin') } : admin, cursor }));
  }
  if (!secret) {
    notes.push('json-single skipped: driver tokens need the JWT secret (--jwt-secret, or --spawn); gateway JSON batches ran instead');
    return undefined;
  }
  // driver i is courier c_i and streams only its own track, on its own socket
  const drivers = Math.min(cfg.drivers, w.ids.length);
  const lanes: PingerLane[] = [];
  const perDriver = Math.max(10, Math.ceil(cfg.pingPool / drivers / 4));
  for (let i = 0; i < drivers; i++) {
    const track = generateMoveStream({ lat: w.start.lat.subarray(i, i + 1), lng: w.start.lng.subarray(i, i + 1) }, { seed: cfg.seed + i, count: perDriver, intervalMs: 1000 });
    lanes.push({ credential: { token: mintToken(secret, w.ids[i], 'driver' satisfies Role) }, cursor: new PingCursor(track, [w.ids[i]], Date.now() - track.ts[0]) });
  }
  return lanes;
}

async function healthy(client: HttpClient, url: string): Promise<boolean> {
  const r = await client.request('GET', `${url}/health`).catch(() => undefined);
  return r !== undefined && r.status === 200;
}

async function scrapeAccepted(client: HttpClient, url: string): Promise<number | undefined> {
  const r = await client.request('GET', `${url}/metrics`).catch(() => undefined);
  const v = r && r.status === 200 ? readCounter(r.body, ACCEPTED_METRIC) : undefined;
  if (v === undefined && !notes.some((n) => n.includes(ACCEPTED_METRIC))) notes.push(`/metrics has no ${ACCEPTED_METRIC}: ingest figures are client send rates, not server-accepted rates`);
  return v;
}

/** Polls the accepted counter until it stops rising (server queue drained), at most 10 s; `at` = last rise. */
async function settleAccepted(client: HttpClient, url: string, before: number): Promise<{ accepted: number; at: number } | undefined> {
  let last = before;
  let at = performance.now();
  const until = at + (cfg.quick ? 4_000 : 10_000);
  let quiet = 0;
  while (performance.now() < until && quiet < 3) {
    await new Promise((r) => setTimeout(r, 150));
    const v = await scrapeAccepted(client, url);
    if (v === undefined) return undefined;
    if (v > last) {
      last = v;
      at = performance.now();
      quiet = 0;
    } else quiet++;
  }
  return { accepted: last - before, at };
}

// ─── peers ──────────────────────────────────────────────────────────────────────────────────────────────────

interface PeerResults {
  ingest?: { pings: number; elapsedMs: number };
  queries?: LoopResult;
}

async function runRedisPeer(w: Workload, gdPings: number | undefined): Promise<PeerResults | undefined> {
  const c = await connectRedis(cfg.redisUrl, cfg.runId);
  if ('skipped' in c) return skipPeer(c.skipped);
  const peer: RedisPeer = c;
  cleanups.push(() => closeRedis(peer));
  const loadMs = await loadRedis(peer, w.ids, w.start.lat, w.start.lng);
  log(`redis: ${w.ids.length} start positions loaded in ${(loadMs / 1000).toFixed(1)} s under ${peer.key}`);
  // the same pings in the same order and batch size as the WS msgpack phase (at least one pool's worth)
  const pings = Math.min(cfg.maxPings, Math.max(gdPings ?? 0, w.pings.index.length));
  const ingest = await ingestRedis(peer, new PingCursor(w.pings, w.ids), cfg.batch, { maxCount: pings, durationMs: cfg.durationS * 1000 });
  const queries = await queryRedis(peer, w.queries, cfg.k, cfg.radiusM, cfg.httpConcurrency, { maxCount: cfg.maxQueries, durationMs: cfg.durationS * 1000 });
  if (queries.failed > 0) notes.push(`Redis GEOSEARCH failures: ${describeFailures(queries)}`);
  return { ingest, queries };
}

async function runPostgisPeer(w: Workload): Promise<PeerResults | undefined> {
  const c = await connectPostgis(cfg.pgUrl, cfg.runId, cfg.pgConcurrency);
  if ('skipped' in c) return skipPeer(c.skipped);
  const peer: PostgisPeer = c;
  cleanups.push(() => closePostgis(peer));
  const loadMs = await loadPostgis(peer, w.ids, w.start.lat, w.start.lng);
  log(`postgis ${peer.version}: ${w.ids.length} points loaded + GiST in ${(loadMs / 1000).toFixed(1)} s into ${peer.table}`);
  // writers beyond a few only queue on row locks and WAL; 4 is the best case for the peer on 2 cores
  const ingest = await ingestPostgis(peer, new PingCursor(w.pings, w.ids), cfg.batch, Math.min(4, cfg.pgConcurrency), { maxCount: w.pings.index.length, durationMs: cfg.durationS * 1000 });
  if (ingest.failed > 0) notes.push(`PostGIS upsert failures: ${ingest.firstFailure}`);
  const queries = await queryPostgis(peer, w.queries, cfg.k, cfg.pgConcurrency, { maxCount: cfg.maxQueries, durationMs: cfg.durationS * 1000 });
  if (queries.failed > 0) notes.push(`PostGIS KNN failures: ${describeFailures(queries)}`);
  return { ingest, queries };
}

function skipPeer(why: string): undefined {
  log(`note: ${why}`);
  notes.push(why);
  return undefined;
}

// ─── report ─────────────────────────────────────────────────────────────────────────────────────────────────

function reportAll(gd: GeoDispatchResults | undefined, redis: PeerResults | undefined, pgis: PeerResults | undefined): void {
  log('\nfigures (JSON lines on stdout):');
  const redisIngest = redis?.ingest ? perSecond(redis.ingest.pings, redis.ingest.elapsedMs) : undefined;
  const redisQps = redis?.queries ? perSecond(redis.queries.ok, redis.queries.elapsedMs) : undefined;
  const pgQps = pgis?.queries ? perSecond(pgis.queries.ok, pgis.queries.elapsedMs) : undefined;

  if (redis?.ingest) report({ bench: 'load.redis.geoadd', n: redis.ingest.pings, value: redisIngest!, unit: 'pings/s', batch: cfg.batch });
  if (redis?.queries) reportQueries('load.redis.geosearch', redis.queries);
  if (pgis?.ingest) report({ bench: 'load.pg.upsert', n: pgis.ingest.pings, value: perSecond(pgis.ingest.pings, pgis.ingest.elapsedMs), unit: 'pings/s', batch: cfg.batch, concurrency: Math.min(4, cfg.pgConcurrency) });
  if (pgis?.queries) reportQueries('load.pg.knn', pgis.queries, cfg.pgConcurrency);
  if (gd === undefined) return;

  for (const [mode, r] of gd.ingest) {
    const sentRate = perSecond(r.sentPings, r.elapsedMs);
    const byServer = r.accepted !== undefined && r.acceptedMs !== undefined;
    const value = ingestRate(r);
    const f: Figure = {
      bench: `load.ws.ingest.${mode}`, n: r.sentPings, value, unit: 'pings/s', basis: byServer ? 'server-accepted' : r.ackAccepted > 0 ? 'acked' : 'client-sent',
      sentPerSec: Math.round(sentRate), accepted: r.accepted ?? r.ackAccepted, connections: r.connections, batch: mode === 'json-single' ? 1 : cfg.batch,
      targetRate: Number.isFinite(cfg.rate) ? cfg.rate : 'max', behind: r.behind, mbPerSec: Number((r.bytes / 1e3 / r.elapsedMs).toFixed(1)),
      serverFrames: Object.fromEntries(r.received), errors: Object.fromEntries(r.errorCodes),
    };
    report(withBaseline(f, 'redis-geoadd', redisIngest, rateRatio));
    if (r.ackLatency.count > 0) reportLatency(`load.ws.ack.${mode}`, r.ackLatency.summary(), undefined);
  }
  if (gd.nearby) {
    const qps = perSecond(gd.nearby.ok, gd.nearby.elapsedMs);
    const extra = { concurrency: cfg.httpConcurrency, k: cfg.k, radius: cfg.radiusM, failed: gd.nearby.failed };
    report(withBaseline({ bench: 'load.http.nearby', n: gd.nearby.ok, value: qps, unit: 'queries/s', ...extra }, 'redis-geosearch', redisQps, rateRatio));
    report(withBaseline({ bench: 'load.http.nearby.vs-pg', n: gd.nearby.ok, value: qps, unit: 'queries/s', ...extra }, 'postgis-knn', pgQps, rateRatio));
    reportLatency('load.http.nearby', gd.nearby.latency.summary(), redis?.queries?.latency.summary(), 'redis-geosearch');
  }
  if (gd.requests) {
    report({ bench: 'load.http.requests', n: gd.requests.ok, value: perSecond(gd.requests.ok, gd.requests.elapsedMs), unit: 'requests/s', targetRate: cfg.requestRate, failed: gd.requests.failed, behind: gd.requests.behind });
    reportLatency('load.http.requests', gd.requests.latency.summary(), undefined);
  }
  summarizeTargets(gd, redisQps, pgQps);
}

function reportQueries(bench: string, r: LoopResult, concurrency = cfg.httpConcurrency): void {
  report({ bench, n: r.ok, value: perSecond(r.ok, r.elapsedMs), unit: 'queries/s', concurrency, k: cfg.k, failed: r.failed });
  reportLatency(bench, r.latency.summary(), undefined);
}

function reportLatency(bench: string, s: ReturnType<LoopResult['latency']['summary']>, base: typeof s | undefined, baseName?: string): void {
  for (const p of ['p50', 'p95', 'p99', 'max'] as const) {
    if (!Number.isFinite(s[p])) continue;
    report(withBaseline({ bench: `${bench}.${p}`, n: s.count, value: s[p], unit: 'ms' }, baseName ?? '', base?.[p], costRatio));
  }
}

function withBaseline(f: Figure, name: string, value: number | undefined, ratio: (v: number, b: number) => number): Figure {
  if (value === undefined || !Number.isFinite(value) || value <= 0 || name === '') return f;
  return { ...f, baseline: name, baselineValue: value, ratio: ratio(f.value, value) };
}

function summarizeTargets(gd: GeoDispatchResults, redisQps: number | undefined, pgQps: number | undefined): void {
  const lines: string[] = [];
  const mp = gd.ingest.get('msgpack');
  if (mp) {
    const v = ingestRate(mp);
    lines.push(`WS ingest (MessagePack batches) ≥ 500,000 pings/s: ${Math.round(v).toLocaleString('en')} → ${v >= 500_000 ? 'met' : 'not met'}`);
  }
  if (gd.nearby && gd.nearby.ok > 0) {
    const qps = perSecond(gd.nearby.ok, gd.nearby.elapsedMs);
    if (redisQps) lines.push(`HTTP nearest ≥ 10× Redis GEOSEARCH: ×${(qps / redisQps).toFixed(2)} → ${qps >= 10 * redisQps ? 'met' : 'not met'}`);
    if (pgQps) lines.push(`HTTP nearest ≥ 20× PostGIS KNN: ×${(qps / pgQps).toFixed(2)} → ${qps >= 20 * pgQps ? 'met' : 'not met'}`);
  }
  if (lines.length) log(`\ntargets (PRODUCT §6):\n  ${lines.join('\n  ')}`);
}

// ─── config and plumbing ────────────────────────────────────────────────────────────────────────────────────

interface Config {
  quick: boolean;
  url: string;
  spawn: boolean;
  peersOnly: boolean;
  token?: string;
  apiKey?: string;
  jwtSecret?: string;
  requestToken?: string;
  couriers: number;
  rate: number;
  driverRate: number;
  durationS: number;
  connections: number;
  drivers: number;
  batch: number;
  httpConcurrency: number;
  pgConcurrency: number;
  requestRate: number;
  k: number;
  radiusM: number;
  seed: number;
  cities: number;
  modes: IngestMode[];
  pingPool: number;
  maxPings: number;
  maxQueries: number;
  queries: number;
  requests: number;
  redis: boolean;
  postgis: boolean;
  redisUrl: string;
  pgUrl: string;
  maxSeconds: number;
  runId: string;
}

function readConfig(argv: string[]): Config {
  const a = parseArgs(argv);
  if (a.has('help')) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const quick = a.has('quick');
  const num = (name: string, dflt: number, min = 0): number => {
    const raw = a.get(name);
    if (raw === undefined) return dflt;
    const v = raw === 'max' ? Infinity : Number(raw);
    if (!(v >= min)) throw new Error(`--${name} must be a number ≥ ${min} (or 'max' for --rate), got ${raw}`);
    return v;
  };
  const url = (a.get('url') ?? `http://127.0.0.1:${process.env.PORT ?? 8080}`).replace(/\/$/, '');
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) throw new Error(`--url must point at this machine (127.0.0.1/localhost), got ${host}`);
  const rate = num('rate', quick ? 200_000 : 500_000, 1);
  const durationS = num('duration', quick ? 3 : 15, 0.5);
  const modes = (a.get('modes') ?? 'msgpack,json-batch,json-single').split(',') as IngestMode[];
  for (const m of modes) if (!['msgpack', 'json-batch', 'json-single'].includes(m)) throw new Error(`--modes: unknown mode '${m}' (msgpack, json-batch, json-single)`);
  const token = a.get('token');
  if (token !== undefined && a.has('api-key')) throw new Error('pass --token or --api-key, not both');
  const couriers = Math.floor(num('couriers', quick ? 10_000 : 100_000, 1));
  // the pool holds one phase's worth of pings at the target rate, capped so it builds in seconds (cycled beyond)
  const pingPool = Math.max(1000, Math.min(Number.isFinite(rate) ? Math.ceil(rate * durationS) : Infinity, quick ? 300_000 : 2_000_000));
  return {
    quick, url, spawn: a.has('spawn'), peersOnly: a.has('peers-only'),
    token, apiKey: a.get('api-key'), jwtSecret: a.get('jwt-secret') ?? process.env.JWT_SECRET, requestToken: a.get('request-token'),
    couriers, rate, durationS, pingPool,
    driverRate: num('driver-rate', 20_000, 1),
    connections: Math.floor(num('connections', quick ? 4 : 8, 1)),
    drivers: Math.floor(num('drivers', quick ? 50 : 200, 1)),
    batch: Math.floor(num('batch', 1000, 1)),
    httpConcurrency: Math.floor(num('http-concurrency', quick ? 16 : 32, 1)),
    pgConcurrency: Math.floor(num('pg-concurrency', a.has('http-concurrency') ? Number(a.get('http-concurrency')) : quick ? 16 : 32, 1)),
    requestRate: num('request-rate', quick ? 100 : 500),
    k: Math.floor(num('k', 10, 1)),
    radiusM: num('radius', 5000, 1),
    seed: num('seed', 42),
    cities: Math.floor(num('cities', 10, 1)),
    modes,
    // hard caps behind every loop, whatever the rate and duration say
    maxPings: Math.floor(num('max-pings', 50_000_000, 1)),
    maxQueries: Math.floor(num('max-queries', 5_000_000, 1)),
    queries: 20_000,
    requests: Math.floor(num('requests', quick ? 2_000 : 10_000, 0)),
    redis: !a.has('no-redis'),
    postgis: !a.has('no-postgis'),
    redisUrl: a.get('redis-url') ?? 'redis://127.0.0.1:6379',
    pgUrl: a.get('pg-url') ?? 'postgres://postgres@127.0.0.1:5432/test',
    maxSeconds: num('max-seconds', quick ? 58 : 900, 5),
    runId: `${Date.now().toString(36)}_${process.pid}`,
  };
}

async function cleanUp(): Promise<void> {
  // last registered first: peers before the HTTP client before the server
  while (cleanups.length > 0) {
    const c = cleanups.pop()!;
    await c().catch((e: Error) => log(`cleanup: ${e.message}`));
  }
}

/** Server-accepted pings/s (metrics counter), else acked pings/s, else what the client sent per second. */
function ingestRate(r: IngestResult & { accepted?: number; acceptedMs?: number }): number {
  if (r.accepted !== undefined && r.acceptedMs !== undefined) return perSecond(r.accepted, Math.max(r.acceptedMs, r.elapsedMs));
  if (r.ackAccepted > 0) return perSecond(r.ackAccepted, r.elapsedMs);
  return perSecond(r.sentPings, r.elapsedMs);
}

function perSecond(count: number, ms: number): number {
  return ms > 0 ? (count * 1000) / ms : 0;
}

function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

const USAGE = `GeoDispatch load generator (bench/load/README.md)

  node dist/bench/load/load-generator.js [options]

  --couriers N          couriers created before the timed phases (default 100000; quick 10000)
  --rate R              target WS pings/s, or 'max' (default 500000; quick 200000)
  --duration S          seconds per timed phase (default 15; quick 3)
  --connections C       gateway WebSocket connections (default 8; quick 4)
  --batch B             pings per gateway frame and per GEOADD / upsert batch (default 1000)
  --modes LIST          msgpack,json-batch,json-single (default all)
  --drivers D           driver sockets in json-single mode (default 200; quick 50), --driver-rate (default 20000)
  --http-concurrency C  GET /v1/nearby in flight, also Redis GEOSEARCH (default 32; quick 16); --pg-concurrency
  --request-rate R      POST /v1/requests per second (default 500; quick 100; 0 = off)
  --k K --radius M      nearest query (default 10, 5000 m)
  --url U               server (default http://127.0.0.1:$PORT or :8080); loopback only
  --token JWT | --api-key KEY   admin (fleet gateway) credential; --request-token JWT for POST /v1/requests
  --jwt-secret S        the server's JWT_SECRET (or env JWT_SECRET): mint admin/driver/dispatcher tokens
  --spawn               start dist/api/main.js on a free port (GEODISPATCH_DEV=1, own JWT_SECRET)
  --peers-only          only the Redis and PostGIS baselines
  --no-redis --no-postgis --redis-url U --pg-url U
  --seed N --cities N --max-seconds S --quick
`;
