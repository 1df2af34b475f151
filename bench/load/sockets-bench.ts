/**
 * Open WebSockets on one instance (PRODUCT.md §6: ≥ 100,000 open, ≤ 2 KiB each), measured on the server:
 * its resident memory before and after, its own gauge of open sockets, and that it still answers.
 *
 *   raise the open-files limit (prlimit on this process; the server and the holders inherit it); where it cannot
 *        rise, hold what one server process can (limit − headroom) and say so — or try all with --no-clamp
 *   spawn dist/api/main.js (server-target.ts; a fresh DATA_DIR in the temp dir, LOG_LEVEL=warn, --inspect-port on loopback)
 *   ─► settle ─► memory before (each reading: full GC through the inspector, then VmRSS and V8 heap used)
 *   fork holders (sockets-fleet.ts ─► sockets-holder.ts): P processes, driver sockets each its own principal,
 *        bound round-robin to 127.0.0.2, .3, … (sockets-plan.ts) so no source address runs out of ports
 *   open half ─► settle ─► memory at half ─► open the rest ─► hold H s ─► memory at full
 *   ─► sockets the holders still have · geodispatch_open_sockets on /metrics · GET /health · probe frames answered
 *   ─► one JSON line per figure (bench-report.ts): sockets.open, sockets.bytesPerSocket, sockets.connectRate
 *   ─► cleanup: holders, then the server (also on failure, SIGINT, SIGTERM and the watchdog)
 *
 *   npm run bench:sockets -- --quick          # 10,000 sockets, < 2 minutes
 *   npm run bench:sockets                     # 100,000 sockets
 *   node dist/bench/load/sockets-bench.js --sockets 150000 --processes 6 --hold 30
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, report } from '../bench-report.js';
import { ClientFleet } from './sockets-fleet.js';
import { FD_HEADROOM, fdsNeeded, fitToFileLimit, mergeReasons, planSockets, processesFor, type SocketPlan } from './sockets-plan.js';
import { clockTicks, cpuSeconds, parsePortRange, raiseOpenFiles, sampleRss, socketCost, type RssSamples } from './sockets-proc.js';
import { ServerInspector } from './sockets-inspector.js';
import { freePort, readCounter, ServerUnreachableError, spawnServer } from './server-target.js';

/** PRODUCT §6: open sockets one instance holds. */
const TARGET_SOCKETS = 100_000;
/** PRODUCT §6: server memory per open socket. */
const TARGET_BYTES_PER_SOCKET = 2048;

interface Options {
  sockets: number;
  processes: number;
  holdS: number;
  concurrency: number;
  timeoutMs: number;
  settleMs: number;
  probes: number;
  maxSeconds: number;
  quick: boolean;
  /** Try every requested socket even past the open-files limit (to see how the server fails). */
  noClamp: boolean;
  /** Force a full GC in the server (through its inspector) before each memory reading. */
  gc: boolean;
}

const USAGE = `node dist/bench/load/sockets-bench.js [--quick] [--sockets N] [--processes P] [--hold S] [--concurrency C]
  --sockets N      sockets to open (default 100000; --quick 10000)
  --processes P    client processes holding them (default 4; more when the open-files limit needs it)
  --hold S         seconds all sockets stay open and idle before the checks (default 10)
  --concurrency C  connects in flight per client process (default 64)
  --timeout-ms T   one socket's connect + upgrade deadline (default 10000)
  --settle-ms T    idle time before each memory reading (default 3000)
  --probes K       sockets per client process that must answer a probe frame (default 3)
  --no-gc          read memory without a full GC first (no inspector is opened in the server)
  --no-clamp       under an open-files limit that cannot be raised, still try all N (default: hold what fits)
  --max-seconds S  watchdog: clean up and exit 3 after this (default 110 with --quick, 900 otherwise)`;

// WS_MAX_SOCKETS default (api/config.ts): a run asking for more raises it, and says so
const SERVER_MAX_SOCKETS_DEFAULT = 200_000;
const OPEN_SOCKETS_METRIC = 'geodispatch_open_sockets';
const HEAP_USED_METRIC = 'geodispatch_nodejs_heap_size_used_bytes';
const PROBE_TIMEOUT_MS = 5_000;
// after a forced GC, freed pages go back to the kernel within a few hundred ms
const GC_SETTLE_MS = 500;
// a first start (initdb of a new store) takes 20–60 s on a busy 2-core machine; a full run may wait longer
const FULL_START_TIMEOUT_MS = 150_000;
// driver tokens outlive any run (the watchdog stops a full run at 15 minutes)
const TOKEN_TTL_SEC = 3600;

const opts = readOptions(process.argv.slice(2));
const cleanups: (() => Promise<void>)[] = [];

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    log(`\nsockets bench failed: ${e instanceof Error ? e.message : String(e)}`);
    await cleanUp();
    process.exit(e instanceof ServerUnreachableError ? 2 : 1);
  },
);

async function main(): Promise<number> {
  const watchdog = setTimeout(() => {
    log(`\nsockets bench: --max-seconds ${opts.maxSeconds} exceeded; cleaning up and exiting`);
    void cleanUp().finally(() => process.exit(3));
  }, opts.maxSeconds * 1000);
  watchdog.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanUp().finally(() => process.exit(130)));

  const t0 = performance.now();
  const files = raiseOpenFiles(fdsNeeded(opts.sockets));
  const fit = opts.noClamp ? { sockets: opts.sockets, clamped: false } : fitToFileLimit(opts.sockets, files.after);
  const limitNote = files.refused === undefined ? undefined : fileLimitNote(files.after, fit, files.refused);
  if (limitNote !== undefined) log(`note: ${limitNote}`);
  const sockets = fit.sockets;
  const plan = planSockets(sockets, processesFor(sockets, opts.processes, files.after), parsePortRange(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')));
  const lifted = serverLimits(sockets);
  log(
    `sockets: ${sockets.toLocaleString('en')} driver sockets from ${plan.blocks.length} processes over ${plan.addresses.length} source addresses ` +
      `(${plan.addresses[0]}…${plan.addresses.at(-1)}, ≤ ${plan.perAddress.toLocaleString('en')} each), hold ${opts.holdS} s; ` +
      `open files ${files.before} → ${files.after}${opts.quick ? ', quick' : ''}`,
  );

  // its own store, shaped as `npm start` runs (a memory:// store keeps initdb's WASM instance: ~200 MB more RSS)
  const dataDir = mkdtempSync(join(tmpdir(), 'gd-sockets-'));
  cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
  const spawnStarted = performance.now();
  // the inspector's port is chosen now but it only listens after SIGUSR1, once the server is ready: start-up stays a plain one
  const inspectPort = opts.gc ? await freePort() : undefined;
  const nodeArgs = inspectPort === undefined ? [] : [`--inspect-port=127.0.0.1:${inspectPort}`];
  const server = await spawnServer(healthy, log, nodeArgs, { env: { DATA_DIR: dataDir, LOG_LEVEL: 'warn', ...lifted }, startTimeoutMs: opts.quick ? undefined : FULL_START_TIMEOUT_MS });
  cleanups.push(() => server.stop());
  log(`server ready in ${((performance.now() - spawnStarted) / 1000).toFixed(1)} s`);
  if (server.pid === undefined || server.jwtSecret === undefined) throw new Error('spawnServer returned no pid or JWT secret: the sockets bench needs both');
  const pid = server.pid;
  const ticks = clockTicks();
  const inspector = inspectPort === undefined ? undefined : await ServerInspector.activate(pid, inspectPort);
  if (inspector !== undefined) cleanups.push(() => inspector.close());
  const read = (): Promise<MemoryReading> => readMemory(pid, server.url, inspector);

  await sleep(opts.settleMs);
  const before = await read();
  log(`server pid ${pid}: RSS ${mb(before.rss)} idle, before any socket${inspector === undefined ? '' : ' (after a full GC)'}`);

  const fleet = await ClientFleet.start(plan, {
    port: Number(new URL(server.url).port), secret: server.jwtSecret, role: 'driver', subPrefix: 'sock-',
    concurrency: opts.concurrency, timeoutMs: opts.timeoutMs, tokenTtlSec: TOKEN_TTL_SEC,
  });
  cleanups.push(() => fleet.stop());

  const first = await openPhase(fleet, pid, ticks, (k) => Math.ceil(plan.blocks[k].count / 2));
  await sleep(opts.settleMs);
  const atHalf = await read();
  log(`  RSS ${mb(atHalf.rss)} with ${first.open.toLocaleString('en')} open`);
  const second = await openPhase(fleet, pid, ticks, (k) => plan.blocks[k].count, first.opened);

  log(`holding ${second.open.toLocaleString('en')} sockets for ${opts.holdS} s`);
  const holdCpu0 = cpuSeconds(pid, ticks);
  await sleep(opts.holdS * 1000);
  const holdCpuShare = opts.holdS > 0 ? (cpuSeconds(pid, ticks) - holdCpu0) / opts.holdS : NaN;
  const atFull = await read();
  const counts = await fleet.count();
  // a server out of descriptors accepts no new connection: these two then fail, and that is a finding, not a crash
  const metrics = await getText(`${server.url}/metrics`);
  const health = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(5000) }).then((r) => r.status, (e: Error) => e.message);
  const probes = await fleet.probe(opts.probes, PROBE_TIMEOUT_MS);

  const held = counts.reduce((s, c) => s + c.open, 0);
  const results: Results = {
    plan, first, second, held, health, lifted, attempted: sockets, fileLimit: files.after, limitNote, holdCpuShare,
    closed: mergeReasons(counts.map((c) => c.closed)),
    gauge: metrics === undefined ? undefined : readCounter(metrics, OPEN_SOCKETS_METRIC),
    heapDelta: atFull.heapUsed - before.heapUsed,
    gcBeforeReadings: inspector !== undefined,
    rss: { before: before.rss, atHalf: atHalf.rss, atFull: atFull.rss, half: first.open, full: held },
    probes: { sent: sum(probes.map((p) => p.sent)), ok: sum(probes.map((p) => p.ok)), detail: probes.flatMap((p) => p.detail), maxMs: Math.max(0, ...probes.map((p) => p.maxMs)) },
  };
  reportAll(results);
  await cleanUp();
  log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return 0;
}

/** The server's memory at one moment. */
interface MemoryReading {
  rss: number;
  /** V8 heap used (NaN when neither the inspector nor /metrics answered). */
  heapUsed: number;
}

/** A full GC through the inspector when there is one, then RSS from /proc and heap used from the isolate (or /metrics). */
async function readMemory(pid: number, url: string, inspector: ServerInspector | undefined): Promise<MemoryReading> {
  if (inspector === undefined) {
    const rss = await sampleRss(pid);
    return { rss, heapUsed: readCounter((await getText(`${url}/metrics`)) ?? '', HEAP_USED_METRIC) ?? NaN };
  }
  await inspector.collectGarbage();
  await sleep(GC_SETTLE_MS);
  const rss = await sampleRss(pid);
  return { rss, heapUsed: (await inspector.memoryUsage()).heapUsed };
}

/** One connect phase across the fleet. */
interface Phase {
  /** Sockets open at the end of the phase (all holders). */
  open: number;
  /** Sockets upgraded during the phase. */
  opened: number;
  /** Failures so far, by reason (cumulative over phases). */
  failures: Record<string, number>;
  elapsedMs: number;
  /** Server CPU seconds spent during the phase. */
  serverCpuS: number;
  /** CPU seconds of all client processes during the phase. */
  clientCpuS: number;
}

interface Results {
  plan: SocketPlan;
  /** Sockets the run tried to open (the request, unless the open-files limit clamped it). */
  attempted: number;
  /** The open-files limit of the server and the holders. */
  fileLimit: number;
  /** Why fewer sockets were tried than requested, or what to expect past the limit. */
  limitNote: string | undefined;
  first: Phase;
  second: Phase;
  held: number;
  /** Server CPU (cores) while the sockets sat idle: timers and pings only, unless something spins. */
  holdCpuShare: number;
  closed: Record<string, number>;
  gauge: number | undefined;
  health: number | string;
  /** V8 heap used, full minus before. */
  heapDelta: number;
  /** Whether each reading followed a full GC (through the inspector). */
  gcBeforeReadings: boolean;
  rss: RssSamples;
  probes: { sent: number; ok: number; detail: string[]; maxMs: number };
  lifted: Record<string, string>;
}

/** Opens sockets until `upTo(k)` of block k were tried; `earlier` = sockets upgraded by the phases before. */
async function openPhase(fleet: ClientFleet, pid: number, ticks: number, upTo: (k: number) => number, earlier = 0): Promise<Phase> {
  const cpu0 = cpuSeconds(pid, ticks);
  const clientCpu0 = sum(fleet.pids.map((p) => cpuSeconds(p, ticks)));
  const started = performance.now();
  const answers = await fleet.open(upTo, opts.maxSeconds * 1000);
  const elapsedMs = performance.now() - started;
  const failures = mergeReasons(answers.map((a) => a.failures));
  const upgraded = sum(answers.map((a) => a.attempted)) - sum(Object.values(failures));
  const phase: Phase = {
    open: sum(answers.map((a) => a.open)), opened: upgraded - earlier, failures, elapsedMs,
    serverCpuS: cpuSeconds(pid, ticks) - cpu0, clientCpuS: sum(fleet.pids.map((p) => cpuSeconds(p, ticks))) - clientCpu0,
  };
  log(
    `  opened ${phase.opened.toLocaleString('en')} in ${(elapsedMs / 1000).toFixed(1)} s (${Math.round(perSecond(phase.opened, elapsedMs)).toLocaleString('en')}/s; ` +
      `CPU s: server ${phase.serverCpuS.toFixed(1)}, clients ${phase.clientCpuS.toFixed(1)}); ${phase.open.toLocaleString('en')} open${describeReasons(failures, '; failures: ')}`,
  );
  return phase;
}

function reportAll(r: Results): void {
  const cost = socketCost(r.rss);
  const connectMs = r.first.elapsedMs + r.second.elapsedMs;
  const opened = r.first.opened + r.second.opened;
  const failed = sum(Object.values(r.second.failures));
  report({
    bench: 'sockets.open', n: r.attempted, value: r.held, unit: 'sockets', target: TARGET_SOCKETS, requested: opts.sockets, attempted: r.attempted, fileLimit: r.fileLimit,
    serverGauge: r.gauge ?? null, holdS: opts.holdS, holdServerCpuShare: round(r.holdCpuShare), failed, failures: r.second.failures, closedDuringHold: r.closed,
    health: r.health, probesOk: r.probes.ok, probesSent: r.probes.sent, probeMaxMs: round(r.probes.maxMs), lifted: r.lifted,
  });
  report({
    bench: 'sockets.bytesPerSocket', n: r.held, value: cost.total, unit: 'bytes', target: TARGET_BYTES_PER_SOCKET,
    marginal: round(cost.marginal), heapPerSocket: round(r.heapDelta / r.held), gcBeforeReadings: r.gcBeforeReadings,
    rssBeforeMB: round(r.rss.before / 2 ** 20), rssAtHalfMB: round(r.rss.atHalf / 2 ** 20), rssAtFullMB: round(r.rss.atFull / 2 ** 20), half: r.rss.half,
  });
  report({
    bench: 'sockets.connectRate', n: opened, value: perSecond(opened, connectMs), unit: 'sockets/s',
    processes: r.plan.blocks.length, concurrency: opts.concurrency, sourceAddresses: r.plan.addresses.length,
    serverCpuShare: round((r.first.serverCpuS + r.second.serverCpuS) / (connectMs / 1000)),
    clientCpuShare: round((r.first.clientCpuS + r.second.clientCpuS) / (connectMs / 1000)),
    serverCpuUsPerSocket: round(((r.first.serverCpuS + r.second.serverCpuS) * 1e6) / opened),
  });
  summarize(r, cost, opened, connectMs);
}

function summarize(r: Results, cost: { total: number; marginal: number }, opened: number, connectMs: number): void {
  const n = (v: number): string => Math.round(v).toLocaleString('en');
  const gaugeOk = r.gauge === r.held;
  const share = (cpuS: number): string => (cpuS / (connectMs / 1000)).toFixed(2);
  const lines = [
    `open after a ${opts.holdS} s hold: ${n(r.held)} of ${n(r.attempted)} tried${r.attempted === opts.sockets ? '' : ` (${n(opts.sockets)} requested)`}; server gauge ${r.gauge === undefined ? 'unread' : n(r.gauge)}${gaugeOk ? '' : ' (≠ held!)'}; ` +
      `server CPU while idle ${(r.holdCpuShare * 100).toFixed(0)} % of a core; GET /health ${r.health}; probe frames answered ${r.probes.ok}/${r.probes.sent} (slowest ${r.probes.maxMs.toFixed(0)} ms)` +
      ` → ≥ ${n(TARGET_SOCKETS)}: ${r.held >= TARGET_SOCKETS ? 'met' : r.attempted < TARGET_SOCKETS ? `not shown (only ${n(r.attempted)} tried${r.limitNote === undefined ? '' : ': open-files limit'})` : 'not met'}`,
    `server RSS ${mb(r.rss.before)} → ${mb(r.rss.atFull)}: ${n(cost.total)} B per socket (marginal ${n(cost.marginal)} B from ${n(r.rss.half)} to ${n(r.rss.full)}; V8 heap ${n(r.heapDelta / r.held)} B of it${r.gcBeforeReadings ? ', readings after a full GC' : ', no GC before readings: garbage counts'})` +
      ` → ≤ ${n(TARGET_BYTES_PER_SOCKET)} B: ${cost.total <= TARGET_BYTES_PER_SOCKET ? 'met' : 'not met'}`,
    `connect: ${n(opened)} in ${(connectMs / 1000).toFixed(1)} s = ${n(perSecond(opened, connectMs))} sockets/s (CPU, in cores: server ${share(r.first.serverCpuS + r.second.serverCpuS)}, clients ${share(r.first.clientCpuS + r.second.clientCpuS)})` +
      `${describeReasons(r.second.failures, '; failures: ') || '; no failures'}${describeReasons(r.closed, '; closed during the hold: ')}`,
  ];
  if (r.limitNote !== undefined) lines.push(r.limitNote);
  if (r.probes.detail.length > 0) lines.push(`probe problems: ${r.probes.detail.slice(0, 5).join(' | ')}`);
  lines.push(Object.keys(r.lifted).length > 0 ? `server limits lifted: ${Object.entries(r.lifted).map(([k, v]) => `${k}=${v}`).join(', ')}` : 'server socket limits at their defaults (each socket is its own driver principal)');
  log(`\nsockets (PRODUCT §6: ≥ 100,000 open WebSockets on one instance, ≤ 2 KiB each):\n  ${lines.join('\n  ')}`);
  log('  RSS counts the server process only (V8 heap, uWS per-socket state, buffers); kernel socket memory is not in it');
}

function fileLimitNote(limit: number, fit: { sockets: number; clamped: boolean }, refused: string): string {
  const what = fit.clamped
    ? `so one server process holds at most ${fit.sockets.toLocaleString('en')} sockets and the run tries that many (--no-clamp tries all and counts the failures)`
    : `the run tries all ${fit.sockets.toLocaleString('en')} anyway (--no-clamp): expect failures past ~${(limit - FD_HEADROOM).toLocaleString('en')}`;
  return `the open-files limit is ${limit.toLocaleString('en')} per process and cannot be raised here (${refused}; needs root with CAP_SYS_RESOURCE, or a higher hard limit from whoever starts the shell); ${what}`;
}

/** Server env a run of `sockets` needs beyond the defaults. */
function serverLimits(sockets: number): Record<string, string> {
  // the global bound refuses upgrades with 503 E_TOO_MANY_SOCKETS past it; per-principal bounds never apply (one socket per driver)
  return sockets > SERVER_MAX_SOCKETS_DEFAULT ? { WS_MAX_SOCKETS: String(sockets) } : {};
}

function readOptions(argv: readonly string[]): Options {
  const a = parseArgs(argv);
  if (a.has('help')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const quick = a.has('quick');
  const int = (name: string, fallback: number, min: number): number => {
    const raw = a.get(name);
    const v = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(v) || v < min) {
      process.stderr.write(`--${name} must be an integer ≥ ${min}, got ${raw}\n${USAGE}\n`);
      process.exit(1);
    }
    return v;
  };
  return {
    quick,
    noClamp: a.has('no-clamp'),
    gc: !a.has('no-gc'),
    sockets: int('sockets', quick ? 10_000 : TARGET_SOCKETS, 2),
    processes: int('processes', 4, 1),
    holdS: int('hold', 10, 0),
    concurrency: int('concurrency', 64, 1),
    timeoutMs: int('timeout-ms', 10_000, 100),
    settleMs: int('settle-ms', 3_000, 0),
    probes: int('probes', 3, 1),
    maxSeconds: int('max-seconds', quick ? 110 : 900, 10),
  };
}

async function cleanUp(): Promise<void> {
  // last registered first: the holders before the server
  while (cleanups.length > 0) {
    const c = cleanups.pop()!;
    await c().catch((e: Error) => log(`cleanup: ${e.message}`));
  }
}

function healthy(url: string): Promise<boolean> {
  return fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status === 200, () => false);
}

/** The body of a GET, or undefined (logged) when the server does not answer it. */
async function getText(url: string): Promise<string | undefined> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    return await r.text();
  } catch (e) {
    log(`  GET ${new URL(url).pathname}: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

function describeReasons(counts: Record<string, number>, prefix: string): string {
  const entries = Object.entries(counts).sort((x, y) => y[1] - x[1]);
  return entries.length === 0 ? '' : prefix + entries.map(([k, v]) => `${v.toLocaleString('en')}× ${k}`).join(', ');
}

function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

function round(v: number): number {
  return Number.isFinite(v) ? Math.round(v * 100) / 100 : v;
}

function sum(values: readonly number[]): number {
  return values.reduce((s, v) => s + v, 0);
}

function perSecond(count: number, ms: number): number {
  return ms > 0 ? (count * 1000) / ms : 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
