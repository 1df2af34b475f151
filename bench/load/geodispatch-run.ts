/**
 * The GeoDispatch side of a run: find or start the server, create the couriers, then the timed phases.
 *
 *   server (--url | --spawn) ─► PUT /v1/couriers ×N ─► per mode: WS ingest, /metrics accepted counter until it settles
 *                            ─► GET /v1/nearby closed loop ─► POST /v1/requests open loop
 */
import { generateMoveStream, type MoveStream } from '../../fixtures/move-stream.js';
import { mintToken, type Role } from './dev-tokens.js';
import { HttpClient, type LoopResult } from './http-client.js';
import { authHeaders, describeFailures, nearbyPath, runNearby, runRequests, setupCouriers } from './http-queries.js';
import type { Config, LoadRun } from './load-config.js';
import { log } from './load-report.js';
import { PingCursor, splitByCourier, type IngestMode } from './ping-frames.js';
import { connectServer, readCounter, spawnServer, type ServerTarget } from './server-target.js';
import type { Workload } from './workload.js';
import { runIngest, type Credential, type IngestResult, type PingerLane } from './ws-pingers.js';
import { pooledWrk, runWrk, type WrkResult } from './wrk-runner.js';

const ACCEPTED_METRIC = 'geodispatch_pings_accepted_total';

/** What the GeoDispatch phases measured, per ingest mode and per HTTP loop. */
export interface GeoDispatchResults {
  ingest: Map<IngestMode, IngestResult & { accepted?: number; acceptedMs?: number }>;
  nearby?: LoopResult;
  /** With --http-client wrk: nearest queries and /health of the same server, each for the phase's duration. */
  wrk?: { nearby: WrkResult; health: WrkResult; connections: number };
  requests?: LoopResult;
  /** Every courier's first ping (its start position), MessagePack over WS, as fast as the sockets drain. */
  firstPings?: IngestResult & { accepted?: number; acceptedMs?: number };
}

/** Runs every GeoDispatch phase against one server; the server and client are registered for cleanup. */
export async function runGeoDispatch(run: LoadRun, w: Workload): Promise<GeoDispatchResults> {
  const { cfg, notes, cleanups } = run;
  const client = new HttpClient(cfg.httpConcurrency);
  cleanups.push(async () => client.close());
  const target = await resolveServer(run, client);
  const url = target.url;
  const admin = adminCredential(cfg, target);
  const adminAuth = authHeaders(admin);

  let t = performance.now();
  // with MessagePack ingest, the start positions are the first-ping phase: each courier's first ever ping
  const firstPings = cfg.modes.includes('msgpack');
  const setup = await setupCouriers(client, url, adminAuth, w.couriers, cfg.httpConcurrency, 120_000, !firstPings);
  log(`setup: ${w.couriers.length} couriers created in ${((performance.now() - t) / 1000).toFixed(1)} s (${Math.round((setup.profiles.ok * 1000) / setup.profiles.elapsedMs)} PUT/s)${firstPings ? '' : ', start positions posted'}`);

  const out: GeoDispatchResults = { ingest: new Map() };
  if (firstPings) out.firstPings = await runFirstPings(run, w, admin, target, client, url);
  const tsShift = Date.now() - w.pings.ts[0];
  for (const mode of cfg.modes) {
    const lanes = ingestLanes(run, mode, w, admin, target, tsShift);
    if (lanes === undefined) continue;
    const before = await scrapeAccepted(notes, client, url);
    const started = performance.now();
    log(`ws ingest ${mode}: ${lanes.length} connections, target ${cfg.rate} pings/s for ${cfg.durationS} s`);
    const r = await runIngest({ url, mode, lanes, batch: cfg.batch, rate: mode === 'json-single' ? Math.min(cfg.rate, cfg.driverRate) : cfg.rate, durationMs: cfg.durationS * 1000, maxPings: cfg.maxPings });
    const after = before === undefined ? undefined : await settleAccepted(run, client, url, before);
    out.ingest.set(mode, { ...r, accepted: after?.accepted, acceptedMs: after === undefined ? undefined : after.at - started });
    if (r.errorSample) notes.push(`ws ${mode}: server error frames, e.g. ${r.errorSample}`);
    if (r.closedEarly > 0) notes.push(`ws ${mode}: ${r.closedEarly}/${r.connections} sockets closed by the server during the phase`);
  }
  if (!out.ingest.size) notes.push('no WS ingest mode could run');

  const bounds = { maxCount: cfg.maxQueries, durationMs: cfg.durationS * 1000 };
  if (cfg.httpClient === 'wrk') {
    out.wrk = await runNearbyWrk(cfg, url, adminAuth, w);
    if (out.wrk.nearby.failed > 0) notes.push(`GET /v1/nearby under wrk: ${out.wrk.nearby.failed} answers were not 2xx (or socket errors)`);
  } else {
    log(`http nearby: ${cfg.httpConcurrency} in flight for ${cfg.durationS} s`);
    out.nearby = await runNearby(client, url, adminAuth, w.queries, cfg.k, cfg.radiusM, cfg.httpConcurrency, bounds);
    if (out.nearby.failed > 0) notes.push(`GET /v1/nearby failures: ${describeFailures(out.nearby)}`);
  }

  if (w.requests.length > 0 && cfg.requestRate > 0) {
    const total = Math.ceil(cfg.requestRate * cfg.durationS);
    const requesters = requestCredentials(run, target, admin, total);
    log(`http requests: ${cfg.requestRate}/s for ${cfg.durationS} s from ${requesters.length} principal${requesters.length > 1 ? 's' : ''}`);
    out.requests = await runRequests(client, url, requesters.map(authHeaders), cfg.runId, w.requests, cfg.requestRate, cfg.httpConcurrency, { maxCount: total, durationMs: cfg.durationS * 1000 });
    if (out.requests.failed > 0) notes.push(`POST /v1/requests failures: ${describeFailures(out.requests)}`);
  }
  return out;
}

/** Sends every courier's start position as its first ping (MessagePack `locs` frames) and counts what the server applied. */
async function runFirstPings(run: LoadRun, w: Workload, admin: Credential, target: ServerTarget, client: HttpClient, url: string): Promise<NonNullable<GeoDispatchResults['firstPings']>> {
  const { cfg, notes } = run;
  const n = w.ids.length;
  const at = Date.now() - 60_000;
  const stream = { index: Int32Array.from({ length: n }, (_, i) => i), lat: w.start.lat, lng: w.start.lng, ts: new Float64Array(n).fill(at) };
  const lanes = gatewayLanes(run, stream, w.ids, admin, target, 0);
  const before = await scrapeAccepted(notes, client, url);
  const started = performance.now();
  log(`ws first pings (msgpack): ${n} couriers' first ping over ${lanes.length} connections, as fast as the sockets drain`);
  const r = await runIngest({ url, mode: 'msgpack', lanes, batch: cfg.batch, rate: Infinity, durationMs: 120_000, maxPings: n });
  const after = before === undefined ? undefined : await settleAccepted(run, client, url, before);
  if (after !== undefined && after.accepted < n) notes.push(`first pings: the server applied ${after.accepted} of ${n}`);
  if (r.errorSample) notes.push(`ws first pings: server error frames, e.g. ${r.errorSample}`);
  return { ...r, accepted: after?.accepted, acceptedMs: after === undefined ? undefined : after.at - started };
}

/**
 * Nearest queries through wrk (the workload's points, cycled) against /health of the same server: the server's
 * ceiling. The phase starts after the ingest's position write-behind has flushed, and the two alternate (twice
 * each, half the phase each), so neither gets the quieter part of the run.
 */
async function runNearbyWrk(cfg: Config, url: string, auth: Record<string, string>, w: Workload): Promise<NonNullable<GeoDispatchResults['wrk']>> {
  const n = Math.min(w.queries.lat.length, 2000);
  const paths = Array.from({ length: n }, (_, i) => nearbyPath(w.queries.lat[i], w.queries.lng[i], cfg.k, cfg.radiusM));
  // wrk takes whole seconds
  const common = { url, connections: cfg.httpConcurrency, threads: 1, durationS: Math.max(1, Math.round(cfg.durationS / 2)) };
  log(`http nearby (wrk): ${cfg.httpConcurrency} connections, alternating with /health, ${cfg.durationS} s each`);
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const nearby: WrkResult[] = [];
  const health: WrkResult[] = [];
  for (let round = 0; round < 2; round++) {
    nearby.push(await runWrk({ ...common, paths, headers: auth }));
    health.push(await runWrk({ ...common, paths: ['/health'], headers: {} }));
  }
  return { nearby: pooledWrk(nearby), health: pooledWrk(health), connections: cfg.httpConcurrency };
}

/** Time given to the server after the ingest phases: twice the default POSITION_FLUSH_MS. */
const SETTLE_MS = 2000;

async function resolveServer({ cfg, cleanups }: LoadRun, client: HttpClient): Promise<ServerTarget> {
  const nodeArgs = cfg.profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${cfg.profileDir}`];
  const target = cfg.spawn ? await spawnServer((u) => healthy(client, u), log, nodeArgs) : await connectServer(cfg.url, client);
  cleanups.push(() => target.stop());
  return target;
}

function adminCredential(cfg: Config, target: ServerTarget): Credential {
  if (cfg.token) return { token: cfg.token };
  if (cfg.apiKey) return { apiKey: cfg.apiKey };
  const dev = target.devTokens.get('admin');
  if (dev) return { token: dev };
  const secret = cfg.jwtSecret ?? target.jwtSecret;
  if (secret) return { token: mintToken(secret, 'load-admin', 'admin') };
  throw new Error('no admin credentials: pass --token <admin JWT>, --api-key <key>, --jwt-secret <JWT_SECRET>, or --spawn');
}

// POST /v1/requests is for requesters and dispatchers; an admin token is the last resort
// POST /v1/requests is for requesters and dispatchers; an admin token is the last resort. With the JWT secret the
// requests come from enough requester principals that none reaches the server's bound on open requests per
// principal (1,000 by default; nothing here accepts the offers, so every request stays open)
function requestCredentials({ cfg, notes }: LoadRun, target: ServerTarget, admin: Credential, total: number): Credential[] {
  if (cfg.requestToken) return [{ token: cfg.requestToken }];
  const secret = cfg.jwtSecret ?? target.jwtSecret;
  if (secret) return Array.from({ length: Math.max(1, Math.ceil(total / OPEN_PER_PRINCIPAL)) }, (_, i) => ({ token: mintToken(secret, `load-requester-${i}`, 'requester') }));
  for (const role of ['dispatcher', 'requester'] as const) {
    const dev = target.devTokens.get(role);
    if (dev) return [{ token: dev }];
  }
  notes.push('POST /v1/requests sent with the admin credential (no --request-token, dev dispatcher token or JWT secret)');
  return [admin];
}

/** Requests sent per principal at most: well under the server's default bound of 1,000 open requests each (a request can hold legs too). */
const OPEN_PER_PRINCIPAL = 500;

/**
 * Gateway sockets for a ping stream: each owns its couriers (as real gateways own their drivers), so no courier's
 * pings race each other across sockets; with the secret each socket is also its own principal (own rate bucket).
 */
function gatewayLanes({ cfg }: LoadRun, stream: MoveStream, ids: readonly string[], admin: Credential, target: ServerTarget, tsShift: number): PingerLane[] {
  const secret = cfg.jwtSecret ?? target.jwtSecret;
  const own = secret !== undefined && cfg.token === undefined && cfg.apiKey === undefined;
  return splitByCourier(stream, cfg.connections).map((part, i) => ({ credential: own ? { token: mintToken(secret, `load-gateway-${i}`, 'admin') } : admin, cursor: new PingCursor(part, ids, tsShift, Date.now) }));
}

/** Lanes for one mode, or undefined (with a note) when the mode cannot run with the credentials at hand. */
function ingestLanes(run: LoadRun, mode: IngestMode, w: Workload, admin: Credential, target: ServerTarget, tsShift: number): PingerLane[] | undefined {
  const { cfg, notes } = run;
  const secret = cfg.jwtSecret ?? target.jwtSecret;
  if (mode !== 'json-single') return gatewayLanes(run, w.pings, w.ids, admin, target, tsShift);
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
    lanes.push({ credential: { token: mintToken(secret, w.ids[i], 'driver' satisfies Role) }, cursor: new PingCursor(track, [w.ids[i]], Date.now() - track.ts[0], Date.now) });
  }
  return lanes;
}

async function healthy(client: HttpClient, url: string): Promise<boolean> {
  const r = await client.request('GET', `${url}/health`).catch(() => undefined);
  return r !== undefined && r.status === 200;
}

async function scrapeAccepted(notes: string[], client: HttpClient, url: string): Promise<number | undefined> {
  const r = await client.request('GET', `${url}/metrics`).catch(() => undefined);
  const v = r && r.status === 200 ? readCounter(r.body, ACCEPTED_METRIC) : undefined;
  if (v === undefined && !notes.some((n) => n.includes(ACCEPTED_METRIC))) notes.push(`/metrics has no ${ACCEPTED_METRIC}: ingest figures are client send rates, not server-accepted rates`);
  return v;
}

/** Polls the accepted counter until it stops rising (server queue drained), at most 10 s; `at` = last rise. */
async function settleAccepted({ cfg, notes }: LoadRun, client: HttpClient, url: string, before: number): Promise<{ accepted: number; at: number } | undefined> {
  let last = before;
  let at = performance.now();
  const until = at + (cfg.quick ? 4_000 : 10_000);
  let quiet = 0;
  while (performance.now() < until && quiet < 3) {
    await new Promise((r) => setTimeout(r, 150));
    const v = await scrapeAccepted(notes, client, url);
    if (v === undefined) return undefined;
    if (v > last) {
      last = v;
      at = performance.now();
      quiet = 0;
    } else quiet++;
  }
  return { accepted: last - before, at };
}
