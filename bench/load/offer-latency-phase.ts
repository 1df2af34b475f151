/**
 * One mode of the offer-latency bench, on its own server: prepared first (every mode's server at once, since
 * a cold start mostly waits), then measured alone.
 *
 *   prepareServer: spawnServer (server-target.ts; DISPATCH_MODE, a fresh store — embedded PGlite in a temp dir,
 *                  or a schema of --database-url — no fixture city, rate limits lifted)
 *                  ─► PUT /v1/couriers/{id} ×N, POST /v1/locations, PUT /v1/couriers/{id}/status available ×N
 *   runPhase:      DriverFleet (N driver sockets: accept; complete or hold) ─► /metrics
 *                  ─► POST /v1/requests open loop at R/s ─► /metrics ─► offers and answers settle (≤ timeout)
 *                  ─► /metrics ─► fleet closed, server stopped (also on failure, through the run's cleanups)
 *
 * A request is timed from its scheduled send (start + (i+1)/R) to its offer frame on a driver's socket.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { setMaxListeners } from 'node:events';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { CourierFixture, RequestFixture } from '../../fixtures/city-scenario.js';
import { mintToken } from './dev-tokens.js';
import { HttpClient, runClosedLoop } from './http-client.js';
import { authHeaders, describeFailures, setupCouriers } from './http-queries.js';
import type { DispatchMode, OfferBenchConfig } from './offer-latency-config.js';
import { DriverFleet, type DriverCounts } from './offer-latency-drivers.js';
import { type Histogram, histogramDelta, readHistogram, readSample } from './offer-latency-histogram.js';
import { type MatchOutcome, OfferMatcher } from './offer-latency-matcher.js';
import { RatePacer } from './rate-pacer.js';
import { spawnServer, type ServerTarget } from './server-target.js';
import { requestBody } from './workload.js';

/** The couriers and request bodies every mode replays. */
export interface OfferWorld {
  couriers: CourierFixture[];
  /** Delivery requests, cycled (each send gets fresh times and a server-made id). */
  requests: RequestFixture[];
}

/** What the caller owns: its log, notes, and the cleanup stack (run last-first on exit, failure, SIGINT, watchdog). */
export interface PhaseContext {
  log: (s: string) => void;
  cleanups: (() => Promise<void>)[];
  notes: string[];
}

/** A server with the run's couriers registered and available, waiting for its phase. */
export interface PreparedServer {
  mode: DispatchMode;
  target: ServerTarget;
  /** Setup's keep-alive pool (the timed requests get one of their own). */
  client: HttpClient;
  /** /health and /metrics on a connection of their own, so a scrape never queues behind the requests. */
  probe: HttpClient;
  spawnedAt: number;
  setupMs: number;
  /** Stops the server and removes its store (idempotent; also registered as a cleanup). */
  stop: () => Promise<void>;
}

/** Figures of one mode. */
export interface PhaseResult {
  mode: DispatchMode;
  outcome: MatchOutcome;
  sent: number;
  /** Requests answered 2xx, per second, from the first scheduled send to the last acknowledgement. */
  ackRate: number;
  /** Actual send − scheduled send (ms), ascending: the client's own lateness, charged to the latency. */
  sendLag: Float64Array;
  /** Server histograms over the phase (undefined when /metrics lacks them). */
  server: { offer?: Histogram; plan?: Histogram; createHttp?: Histogram; cpuCores?: number; loopLagP99Ms?: number; loopLagMaxMs?: number };
  /** Client CPU from the first send to the end of the settle wait, in cores (the server's over the same span). */
  clientCores: number;
  drivers: DriverCounts;
  setupMs: number;
  connectMs: number;
  /** Seconds since the server was spawned: where the send window sits in its --cpu-prof profile. */
  window: { fromS: number; toS: number };
}

const OFFER_METRIC = 'geodispatch_offer_latency_seconds';
const PLAN_METRIC = 'geodispatch_dispatch_latency_seconds';
const HTTP_METRIC = 'geodispatch_http_request_duration_seconds';
const CPU_METRIC = 'geodispatch_process_cpu_seconds_total';
const LAG_P99_METRIC = 'geodispatch_nodejs_eventloop_lag_p99_seconds';
const LAG_MAX_METRIC = 'geodispatch_nodejs_eventloop_lag_max_seconds';
// a late send keeps its scheduled time (charged to its latency) instead of being dropped: no coordinated omission
const NO_DROP_MS = 3_600_000;
// setup answers are store writes at a few hundred per second; beyond this something is wrong
const SETUP_TIMEOUT_MS = 300_000;
// under --profile: how long a server may take to work off its backlog before it is stopped anyway
const PROFILE_IDLE_WAIT_MS = 180_000;

/**
 * Spawns the mode's server and registers the couriers (profile, start position, available). `spawned` is
 * called once the server process exists (its environment is copied): start the next mode's server after it.
 */
export async function prepareServer(cfg: OfferBenchConfig, mode: DispatchMode, world: OfferWorld, ctx: PhaseContext, spawned: () => void): Promise<PreparedServer> {
  const client = new HttpClient(cfg.httpConnections);
  const probe = new HttpClient(1);
  const store = freshStore(cfg, mode);
  let target: ServerTarget | undefined;
  const child: { pid?: number } = {};
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      client.close();
      probe.close();
      if (target !== undefined) await target.stop();
      else if (child.pid !== undefined) killQuietly(child.pid); // still starting (SIGINT, watchdog): nothing to drain
      await store.remove();
    })());
  ctx.cleanups.push(stop);
  const spawnedAt = performance.now();
  target = await spawnWith(cfg, mode, store.env, probe, ctx.log, (pid) => {
    child.pid = pid;
    spawned();
  });
  const admin = authHeaders({ token: target.devTokens.get('admin') ?? mintToken(target.jwtSecret!, 'bench-admin', 'admin') });
  const t0 = performance.now();
  await setupCouriers(client, target.url, admin, world.couriers, cfg.httpConnections, SETUP_TIMEOUT_MS);
  const url = target.url;
  const statuses = await runClosedLoop(
    (i) => client.request('PUT', `${url}/v1/couriers/${encodeURIComponent(world.couriers[i].id)}/status`, { status: 'available' }, admin),
    cfg.httpConnections,
    { maxCount: world.couriers.length, durationMs: SETUP_TIMEOUT_MS },
  );
  if (statuses.ok < world.couriers.length) throw new Error(`setup: ${statuses.ok}/${world.couriers.length} couriers set available (${describeFailures(statuses)})`);
  const setupMs = performance.now() - t0;
  ctx.log(`${mode}: ${world.couriers.length} couriers registered and available in ${(setupMs / 1000).toFixed(1)} s`);
  return { mode, target, client, probe, spawnedAt, setupMs, stop };
}

/** Connects the drivers, measures the mode, and stops its server whatever happens. */
export async function runPhase(cfg: OfferBenchConfig, server: PreparedServer, world: OfferWorld, ctx: PhaseContext): Promise<PhaseResult> {
  let fleet: DriverFleet | undefined;
  try {
    const { mode, target, probe } = server;
    const secret = target.jwtSecret!;
    const total = Math.max(1, Math.round(cfg.rate * cfg.durationS));
    const matcher = new OfferMatcher(total);
    const t0 = performance.now();
    fleet = await DriverFleet.connect({
      url: target.url, courierIds: world.couriers.map((c) => c.id), jwtSecret: secret, action: cfg.driverAction, tripMs: cfg.tripMs,
      httpConnections: cfg.driverHttpConnections, onOffer: (id, at) => matcher.offered(id, at),
    });
    const connectMs = performance.now() - t0;
    ctx.log(`${mode}: ${fleet.size} driver sockets open in ${(connectMs / 1000).toFixed(1)} s; ${cfg.rate} requests/s for ${cfg.durationS} s${mode === 'batched' ? `, ${Math.round(cfg.emergencyShare * 100)} % emergency` : ''}`);

    const requesters = Array.from({ length: cfg.requesters }, (_, k) => authHeaders({ token: mintToken(secret, `bench-requester-${k}`, 'requester') }));
    const m0 = await scrape(probe, target.url);
    const [cpu0, at0] = [process.cpuUsage(), performance.now()];
    const sent = await sendRequests(cfg, mode, world, target.url, requesters, matcher);
    const m1 = await scrape(probe, target.url);
    // answers and offers still on their way: until every request has both, or the timeout after the last send
    const settleBy = sent.lastScheduled + cfg.offerTimeoutMs;
    while ((sent.inFlight.size > 0 || matcher.waiting > 0) && performance.now() < settleBy) await sleep(20);
    const outcome = matcher.outcome(cfg.offerTimeoutMs);
    const ackRate = sent.acknowledged() / ((sent.lastAckAt() - sent.start) / 1000);
    const m2 = await scrape(probe, target.url);
    const [cpu1, cpuSeconds] = [process.cpuUsage(cpu0), (performance.now() - at0) / 1000];
    const drivers = { ...fleet.counts, errors: new Map(fleet.counts.errors) };
    fleet.close();
    sent.abandon(); // requests still unanswered (queued in the pool or at the server) are dropped
    // --cpu-prof writes its profile only on a clean exit, and a server still working off a backlog outlives
    // spawnServer's 3 s SIGTERM grace: let it finish first
    if (cfg.profileDir !== undefined) await waitIdle(probe, target.url, ctx.log, mode);

    return {
      mode,
      outcome,
      sent: total,
      ackRate,
      sendLag: sent.sendLag,
      server: serverFigures(m0, m1, m2, cpuSeconds),
      clientCores: (cpu1.user + cpu1.system) / 1e6 / cpuSeconds,
      drivers,
      setupMs: server.setupMs,
      connectMs,
      window: { fromS: (sent.start - server.spawnedAt) / 1000, toS: (sent.lastScheduled - server.spawnedAt) / 1000 },
    };
  } finally {
    fleet?.close();
    await server.stop();
  }
}

/** The server's own view of the phase from its three scrapes (before, after the sends, after the settle wait). */
function serverFigures(m0: string | undefined, m1: string | undefined, m2: string | undefined, seconds: number): PhaseResult['server'] {
  const sample = (m: string | undefined, name: string, scale = 1): number | undefined => {
    const v = m === undefined ? undefined : readSample(m, name);
    return v === undefined ? undefined : v * scale;
  };
  const [c0, c2] = [sample(m0, CPU_METRIC), sample(m2, CPU_METRIC)];
  return {
    offer: delta(m2, m0, OFFER_METRIC),
    plan: delta(m2, m0, PLAN_METRIC),
    createHttp: delta(m2, m0, HTTP_METRIC, { route: 'POST /v1/requests' }),
    cpuCores: c0 === undefined || c2 === undefined ? undefined : (c2 - c0) / seconds,
    // prom-client resets its event-loop histogram at each scrape: m1 covers the sends, m2 the settle wait
    loopLagP99Ms: maxOf(sample(m1, LAG_P99_METRIC, 1000), sample(m2, LAG_P99_METRIC, 1000)),
    loopLagMaxMs: maxOf(sample(m1, LAG_MAX_METRIC, 1000), sample(m2, LAG_MAX_METRIC, 1000)),
  };
}

/**
 * Spawns the server with this mode's env: spawnServer passes the parent's environment through (then lifts the
 * rate limits), so the env is set here until the child exists — its "spawned …" log line — and then restored.
 */
async function spawnWith(cfg: OfferBenchConfig, mode: DispatchMode, storeEnv: Record<string, string>, client: HttpClient, log: (s: string) => void, spawned: (pid?: number) => void): Promise<ServerTarget> {
  const env: Record<string, string> = {
    ...storeEnv,
    DISPATCH_MODE: mode,
    // no fixture city: the only couriers are this run's, each with a socket to hear its offer
    SEED_CITY: 'none',
  };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  let restored = false;
  const restore = (pid?: number): void => {
    if (restored) return;
    restored = true;
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    spawned(pid);
  };
  Object.assign(process.env, env);
  try {
    const nodeArgs = cfg.profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${cfg.profileDir}`];
    const onLog = (s: string): void => {
      if (s.startsWith('spawned ')) restore(Number(/\(pid (\d+)\)/.exec(s)?.[1]) || undefined);
      log(`${mode}: ${s}`);
    };
    return await spawnServer((u) => healthy(client, u), onLog, nodeArgs);
  } finally {
    restore();
  }
}

interface SendResult {
  start: number;
  lastScheduled: number;
  /** Requests not answered yet (they settle after the send loop). */
  inFlight: Set<Promise<void>>;
  /** Aborts every request still unanswered and closes the connections. */
  abandon: () => void;
  acknowledged: () => number;
  lastAckAt: () => number;
  sendLag: Float64Array;
}

/** POST /v1/requests open loop: request i is due at start + (i+1)/rate and sent then, however the others fare. */
async function sendRequests(cfg: OfferBenchConfig, mode: DispatchMode, world: OfferWorld, url: string, requesters: Record<string, string>[], matcher: OfferMatcher): Promise<SendResult> {
  const total = matcher.capacity;
  const lags = new Float64Array(total);
  const inFlight = new Set<Promise<void>>();
  const post = abortablePoster(cfg.httpConnections);
  const start = performance.now();
  const pacer = new RatePacer(cfg.rate, start, NO_DROP_MS);
  let acknowledged = 0;
  let lastAckAt = start;
  let n = 0;
  while (n < total) {
    const due = Math.min(pacer.due(performance.now()), total - n);
    for (let j = 0; j < due; j++, n++) {
      const i = n;
      const body = requestBody(world.requests[i % world.requests.length], Date.now());
      if (mode === 'batched' && isEmergency(i, cfg.emergencyShare)) body.urgency = 'emergency';
      const auth = requesters[i % requesters.length];
      const headers = cfg.idempotency ? { ...auth, 'idempotency-key': `${cfg.runId}-${mode}-${i}` } : auth;
      const scheduled = start + ((i + 1) * 1000) / cfg.rate;
      matcher.sent(i, scheduled, String(body.urgency ?? 'routine'));
      lags[i] = performance.now() - scheduled;
      const p = post.send(`${url}/v1/requests`, body, headers).then(
        (res) => {
          const id = res.status >= 200 && res.status < 300 ? idOf(res.body) : undefined;
          if (id === undefined) return matcher.failed(i, `HTTP ${res.status}`);
          matcher.acknowledged(i, id);
          acknowledged++;
          lastAckAt = performance.now();
        },
        (e: NodeJS.ErrnoException) => matcher.failed(i, e.code ?? e.message),
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    pacer.take(due);
    if (n < total) await sleep(pacer.waitMs(performance.now()));
  }
  return { start, lastScheduled: start + (total * 1000) / cfg.rate, inFlight, abandon: post.abandon, acknowledged: () => acknowledged, lastAckAt: () => lastAckAt, sendLag: lags.sort() };
}

/**
 * JSON POSTs over `connections` keep-alive connections (http-client.ts's shape) that can all be abandoned at
 * once: an overloaded server leaves thousands queued in the pool, and they must not go on feeding it after
 * the phase.
 */
function abortablePoster(connections: number): { send: (url: string, body: unknown, headers: Record<string, string>) => Promise<{ status: number; body: string }>; abandon: () => void } {
  const agent = new Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one listener per request in flight: thousands when the server falls behind
  const send = (url: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const payload = JSON.stringify(body);
      const h = { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) };
      const req = httpRequest(url, { method: 'POST', agent, headers: h, signal: abort.signal }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  return { send, abandon: () => (abort.abort(), agent.destroy()) };
}

/** Spreads `share` of the requests evenly over the run: request i is an emergency when ⌊(i+1)·share⌋ > ⌊i·share⌋. */
export function isEmergency(i: number, share: number): boolean {
  return Math.floor((i + 1) * share) > Math.floor(i * share);
}

function idOf(body: string): string | undefined {
  try {
    const id = (JSON.parse(body) as { id?: unknown }).id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

function delta(after: string | undefined, before: string | undefined, name: string, labels?: Record<string, string>): Histogram | undefined {
  const a = after === undefined ? undefined : readHistogram(after, name, labels);
  if (a === undefined) return undefined;
  return histogramDelta(a, before === undefined ? undefined : readHistogram(before, name, labels));
}

/** Polls the server's CPU counter until it rests (< 10 % of a core over a second), at most PROFILE_IDLE_WAIT_MS. */
async function waitIdle(probe: HttpClient, url: string, log: (s: string) => void, mode: DispatchMode): Promise<void> {
  const until = performance.now() + PROFILE_IDLE_WAIT_MS;
  const cpu = async (): Promise<number | undefined> => {
    const m = await scrape(probe, url);
    return m === undefined ? undefined : readSample(m, 'geodispatch_process_cpu_seconds_total');
  };
  let last = await cpu();
  while (last !== undefined && performance.now() < until) {
    await sleep(1_000);
    const now = await cpu();
    if (now === undefined || now - last < 0.1) return;
    last = now;
  }
  log(`${mode}: the server was still busy ${PROFILE_IDLE_WAIT_MS / 1000} s after the phase; its profile may be lost to SIGKILL`);
}

/**
 * An empty store for one server: the embedded PGlite in a fresh temp directory on disk (as `npm start` keeps
 * it), or with --database-url a fresh schema of that PostgreSQL; `remove` deletes it after the server stopped.
 */
function freshStore(cfg: OfferBenchConfig, mode: DispatchMode): { env: Record<string, string>; remove: () => Promise<void> } {
  if (cfg.databaseUrl === undefined) {
    const dataDir = mkdtempSync(join(tmpdir(), 'gd-offers-'));
    // an empty DATABASE_URL reads as unset: an inherited one must not send this run's writes elsewhere
    return { env: { DATA_DIR: dataDir, DATABASE_URL: '', DATABASE_SCHEMA: '' }, remove: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  const url = cfg.databaseUrl;
  const schema = `gd_offers_${cfg.runId}_${mode}`; // runId is hex: a safe identifier
  const remove = async (): Promise<void> => {
    const db = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
    try {
      await db.connect();
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    } finally {
      await db.end().catch(() => undefined);
    }
  };
  return { env: { DATABASE_URL: url, DATABASE_SCHEMA: schema }, remove };
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function maxOf(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}

async function scrape(client: HttpClient, url: string): Promise<string | undefined> {
  const r = await client.request('GET', `${url}/metrics`).catch(() => undefined);
  return r !== undefined && r.status === 200 ? r.body : undefined;
}

async function healthy(client: HttpClient, url: string): Promise<boolean> {
  const r = await client.request('GET', `${url}/health`).catch(() => undefined);
  return r !== undefined && r.status === 200;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
