/**
 * The GeoDispatch server a load run talks to: one given by --url, or one started here (--spawn) from
 * dist/api/main.js on a free port with GEODISPATCH_DEV=1 and a JWT_SECRET this run chose.
 *
 *   --spawn ─► free port ─► node dist/api/main.js ─► stdout "dev token <role>: <JWT>" lines ─► GET /health 200
 *   --url   ─► GET /health (fails with a clear message when nothing answers)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseDevTokenLine } from './dev-tokens.js';
import type { HttpClient } from './http-client.js';

/** A reachable server and what the run knows about its credentials. */
export interface ServerTarget {
  url: string;
  /** Tokens printed by a spawned dev server, by role. */
  devTokens: Map<string, string>;
  /** JWT_SECRET when this run set it (lets it mint driver tokens). */
  jwtSecret?: string;
  /** Process id of a spawned server (its /proc entry); undefined for --url. */
  pid?: number;
  /** Stops a spawned server; no-op for --url. */
  stop(): Promise<void>;
}

/** Raised when the server cannot be reached or started; the message says what to do. */
export class ServerUnreachableError extends Error {
  readonly code = 'E_SERVER_UNREACHABLE';
}

// A cold server builds its indexes and worker pool before /health answers (~10 s on a 2-core machine;
// several times that under --profile).
const START_TIMEOUT_MS = 60_000;

/**
 * Per-principal limits lifted for a spawned server: a load run measures the engine, not the token buckets
 * (defaults: 100 requests/s per principal, 50 pings/s per driver, 200,000 pings/s per gateway).
 */
export const UNLIMITED_ENV: Readonly<Record<string, string>> = Object.freeze({
  RATE_PER_SEC: '10000000',
  RATE_BURST: '10000000',
  INGEST_PER_SEC: '10000000',
  INGEST_BURST: '10000000',
  GATEWAY_INGEST_PER_SEC: '100000000',
  GATEWAY_INGEST_BURST: '100000000',
});

/**
 * Starts dist/api/main.js on a free port and waits until it is healthy and has printed its admin token;
 * `extra.env` is added over the inherited environment and UNLIMITED_ENV, `extra.startTimeoutMs` replaces the
 * 60 s start budget.
 */
export async function spawnServer(
  health: (url: string) => Promise<boolean>,
  log: (s: string) => void,
  nodeArgs: readonly string[] = [],
  extra: { env?: Readonly<Record<string, string>>; startTimeoutMs?: number } = {},
): Promise<ServerTarget> {
  const main = fileURLToPath(new URL('../../api/main.js', import.meta.url));
  if (!existsSync(main)) throw new ServerUnreachableError(`--spawn: ${main} does not exist; build the server first (npm run build) or pass --url of a running one`);
  const port = await freePort();
  const jwtSecret = randomBytes(24).toString('hex');
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [...nodeArgs, main], {
    env: { ...process.env, ...UNLIMITED_ENV, ...extra.env, PORT: String(port), GEODISPATCH_DEV: '1', JWT_SECRET: jwtSecret },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const devTokens = new Map<string, string>();
  let exited: string | undefined;
  let stderrTail = '';
  child.once('exit', (code, signal) => (exited = `exited with ${signal ?? code}`));
  watchLines(child, 'stdout', (line) => {
    const t = parseDevTokenLine(line);
    if (t) devTokens.set(t.role, t.token);
  });
  watchLines(child, 'stderr', (line) => (stderrTail = (stderrTail + line + '\n').slice(-2000)));
  const stop = (): Promise<void> => stopChild(child);
  log(`spawned ${main} (pid ${child.pid}) on ${url}`);

  const startTimeoutMs = extra.startTimeoutMs ?? START_TIMEOUT_MS;
  const deadline = Date.now() + startTimeoutMs;
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new ServerUnreachableError(`--spawn: the server ${exited} before it was ready:\n${stderrTail}`);
    if (devTokens.has('admin') && (await health(url))) return { url, devTokens, jwtSecret, pid: child.pid, stop };
    await sleep(100);
  }
  const why = devTokens.has('admin') ? 'GET /health never answered 200' : "it never printed 'dev token admin: <JWT>' on stdout";
  await stop();
  throw new ServerUnreachableError(`--spawn: server not ready after ${startTimeoutMs / 1000} s: ${why}\n${stderrTail}`);
}

/** Checks that a server given by --url answers /health. */
export async function connectServer(url: string, client: HttpClient): Promise<ServerTarget> {
  const res = await client.request('GET', `${url}/health`).catch((e: Error) => e);
  if (res instanceof Error || res.status >= 500) {
    const why = res instanceof Error ? res.message : `status ${res.status}`;
    throw new ServerUnreachableError(
      `cannot reach GeoDispatch at ${url} (GET /health: ${why}). Start the server (PORT=8080 node dist/api/main.js), ` +
        'pass --url of a running one, or use --spawn; --peers-only runs only the Redis/PostGIS baselines.',
    );
  }
  return { url, devTokens: new Map(), stop: async () => {} };
}

/** Reads a counter (summed over its label sets) from a Prometheus text exposition; undefined when absent. */
export function readCounter(metricsText: string, name: string): number | undefined {
  let total: number | undefined;
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue; // a longer metric name sharing the prefix
    const afterLabels = rest[0] === '{' ? rest.slice(rest.lastIndexOf('}') + 1) : rest;
    const value = Number(afterLabels.trim().split(/\s+/)[0]); // an optional timestamp may follow the value
    if (Number.isFinite(value)) total = (total ?? 0) + value;
  }
  return total;
}

/** A port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function watchLines(child: ChildProcess, stream: 'stdout' | 'stderr', onLine: (line: string) => void): void {
  let buf = '';
  child[stream]?.setEncoding('utf8');
  child[stream]?.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    if (buf.length > 65_536) buf = buf.slice(-65_536); // a server printing one endless line must not grow us
  });
}

// SIGTERM first so the server drains; SIGKILL if it is still there after 3 s
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(timer);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
