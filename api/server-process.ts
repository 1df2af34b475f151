/**
 * The server as a user runs it — `node dist/api/main.js` in a child process, configured by its environment
 * only — for tests that must kill it (SIGKILL) and start it again on the same store.
 *
 *   start(env) ─► spawn ─► wait for "GeoDispatch on http://localhost:<port>" and the line after the tokens
 *   kill()     ─► SIGKILL, wait for exit            stop() ─► SIGTERM, wait for a clean exit
 */
import { type ChildProcess, spawn } from 'node:child_process';

/** A running server process. */
export interface ServerProcess {
  child: ChildProcess;
  base: string;
  ws: string;
  port: number;
  /** Everything it printed so far (stdout and stderr), for failure messages. */
  output(): string;
  /** SIGKILL: nothing is flushed. */
  kill(): Promise<void>;
  /** SIGTERM: drains and closes the store; rejects if it does not exit cleanly within `ms`. */
  stop(ms?: number): Promise<void>;
}

// this file runs from source (vitest) or from dist/: either way the server is the compiled dist/api/main.js
const HERE = new URL('..', import.meta.url).pathname;
const ROOT = HERE.endsWith('/dist/') ? HERE.slice(0, -'dist/'.length) : HERE;
const ENTRY = `${ROOT}dist/api/main.js`;

/** Starts `node dist/api/main.js` with `env` on top of a clean environment (no DATABASE_URL, REDIS_URL, NODE_ENV, JWT settings from the shell). */
export async function startServerProcess(env: Record<string, string>, timeoutMs = 60_000, started: (out: string) => number | undefined = apiStarted): Promise<ServerProcess> {
  const full: NodeJS.ProcessEnv = { ...process.env };
  for (const key of ['DATABASE_URL', 'DATABASE_SCHEMA', 'NODE_ENV', 'DATA_DIR', 'SEED_CITY', 'JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWT_ALGORITHM', 'API_KEYS', 'REDIS_URL', 'GEODISPATCH_DEV', 'PORT']) delete full[key];
  Object.assign(full, { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' }, env);
  const child = spawn(process.execPath, [ENTRY], { cwd: ROOT, env: full, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b) => (out += String(b)));
  child.stderr!.on('data', (b) => (out += String(b)));
  // a harness that exits (or is stopped with Ctrl-C: see store/crash-soak.ts) takes its server with it
  const orphanGuard = (): void => void child.kill('SIGKILL');
  process.once('exit', orphanGuard);
  const exited = new Promise<void>((r) => child.once('exit', () => {
    process.off('exit', orphanGuard);
    r();
  }));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${out}`));
    };
    child.once('exit', onExit);
    const check = (): void => {
      const found = started(out);
      if (found === undefined) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve(found);
    };
    child.stdout!.on('data', check);
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    child, port,
    base: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/v1/stream`,
    output: () => out,
    kill: async () => {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
    stop: async (ms = 30_000) => {
      if (!running()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), ms);
      await exited;
      clearTimeout(timer);
      if (child.exitCode !== 0) throw new Error(`server did not exit cleanly on SIGTERM (code ${child.exitCode}, signal ${child.signalCode}):\n${out}`);
    },
  };
}

/** The API's port once it printed where it listens and how to get a token. */
function apiStarted(out: string): number | undefined {
  const found = /GeoDispatch on http:\/\/localhost:(\d+)/.exec(out)?.[1];
  return found !== undefined && /\n(try|tokens):/.test(out) ? Number(found) : undefined;
}

/** A cluster core's port once it printed where it listens (GD_ROLE=core). */
export function coreStarted(out: string): number | undefined {
  const found = /GeoDispatch core \S+ on http:\/\/localhost:(\d+)/.exec(out)?.[1];
  return found === undefined ? undefined : Number(found);
}

/** A cluster edge's port once it printed where it listens (GD_ROLE=edge). */
export function edgeStarted(out: string): number | undefined {
  const found = /GeoDispatch edge \S+ on http:\/\/localhost:(\d+)/.exec(out)?.[1];
  return found === undefined ? undefined : Number(found);
}
