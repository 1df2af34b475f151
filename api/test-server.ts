/**
 * End-to-end test harness: the instance exactly as `npm start` builds it (api/main.ts startInstance: store,
 * journal, write-behind, worker pool) on a free port and a throwaway store — embedded PGlite in memory, or
 * PostgreSQL in a schema of its own — and real clients: fetch for HTTP, `ws` for the stream, with bounded
 * waits that fail with a clear message. Only configuration differs from production (test-sized limits).
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack, unpack } from 'msgpackr';
import { dropTestSchema, testSchemaName } from '../store/test-database.js';
import WebSocket from 'ws';
import { Authenticator, type Role } from './auth.js';
import { type ApiConfig, loadConfig } from './config.js';
import type { EngineIndexes } from '../engine/engine-indexes.js';
import { type Instance, startInstance } from './main.js';
import type { Server } from './server.js';

/** The HS256 secret of every test server (tests sign their own tokens, expired and forged ones included). */
export const TEST_SECRET = 'test-secret-that-is-at-least-32-characters-long';

/** Which store a test server runs on. */
export type TestStore = 'pglite' | 'pg';

/** The stores end-to-end suites run on: the embedded one always, PostgreSQL when TEST_DATABASE_URL is set. */
export const TEST_STORES: readonly TestStore[] = process.env.TEST_DATABASE_URL ? ['pglite', 'pg'] : ['pglite'];

/** A running test server. */
export interface TestServer {
  base: string;
  ws: string;
  port: number;
  config: Readonly<ApiConfig>;
  engine: EngineIndexes;
  server: Server;
  instance: Instance;
  token(role: Role, sub: string, ttlSeconds?: number, now?: number): string;
  close(): Promise<void>;
}

/** Starts an instance with test-sized limits on a throwaway store; `env` overrides configuration. */
export async function startTestServer(env: Record<string, string> = {}, store: TestStore = 'pglite'): Promise<TestServer> {
  const schema = store === 'pg' ? testSchemaName('gd_e2e') : undefined;
  const databaseUrl = process.env.TEST_DATABASE_URL;
  if (store === 'pg' && !databaseUrl) throw new Error('a pg test server needs TEST_DATABASE_URL (postgres://…)');
  const dataDir = store === 'pglite' ? freshDataDir() : undefined;
  const config = loadConfig({
    HOST: '127.0.0.1', PORT: '0', JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', DISPATCH_MODE: 'greedy', BODY_LIMIT_BYTES: '8192',
    WS_WATCH_HZ_DEFAULT: '10', WS_WATCH_HZ_MAX: '20', SEED_CITY: 'none', DATA_DIR: dataDir ?? 'memory://', DRAIN_GRACE_MS: '0', DISPATCH_TICK_MS: '20',
    ...(store === 'pg' ? { DATABASE_URL: databaseUrl!, DATABASE_SCHEMA: schema! } : {}),
    ...env,
  });
  const instance = await startInstance(config);
  const auth = new Authenticator(config.jwt, config.apiKeys);
  let closed: Promise<void> | undefined;
  return {
    base: `http://127.0.0.1:${instance.port}`,
    ws: `ws://127.0.0.1:${instance.port}/v1/stream`,
    port: instance.port, config, engine: instance.engine, server: instance.server, instance,
    token: (role, sub, ttl = 3600, now = Date.now()) => auth.signToken({ sub, role }, ttl, now),
    close: () => (closed ??= (async () => {
      await instance.stop();
      if (schema !== undefined) await dropTestSchema(databaseUrl!, schema);
      if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
    })()),
  };
}

/** A temp DATA_DIR holding a copy of the run's empty store (vitest.global-setup.ts), or an empty one. */
function freshDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'geodispatch-e2e-'));
  const template = process.env.TEST_PGLITE_TEMPLATE;
  if (template !== undefined) cpSync(template, dir, { recursive: true });
  return dir;
}

/** A decoded HTTP reply. */
export interface HttpReply {
  status: number;
  headers: Headers;
  body: any;
}

/** One HTTP call: JSON by default, MessagePack both ways with `msgpack: true`, or a raw body. */
export async function call(
  base: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; raw?: string | Uint8Array; headers?: Record<string, string>; msgpack?: boolean } = {},
): Promise<HttpReply> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | Uint8Array | undefined = options.raw;
  if (options.body !== undefined) {
    body = options.msgpack ? pack(options.body) : JSON.stringify(options.body);
    headers['content-type'] ??= options.msgpack ? 'application/msgpack' : 'application/json';
  }
  if (options.msgpack) headers.accept = 'application/msgpack';
  const res = await fetch(base + path, { method, headers, body, signal: AbortSignal.timeout(5000) });
  const buf = Buffer.from(await res.arrayBuffer());
  const type = res.headers.get('content-type') ?? '';
  let parsed: unknown = undefined;
  if (buf.length > 0) parsed = type.includes('msgpack') ? unpack(buf) : type.includes('json') ? JSON.parse(buf.toString('utf8')) : buf.toString('utf8');
  return { status: res.status, headers: res.headers, body: parsed };
}

/** A stream client that queues every frame and waits for the next one matching a predicate. */
export class StreamClient {
  readonly frames: any[] = [];
  closed: { code: number; reason: string } | undefined;
  /** Whether the last frame received was binary (MessagePack). */
  lastBinary = false;
  private readonly socket: WebSocket;
  private waiters: (() => void)[] = [];

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data, isBinary) => {
      const buf = data as Buffer;
      this.lastBinary = isBinary;
      this.frames.push(isBinary ? unpack(buf) : JSON.parse(buf.toString('utf8')));
      this.wake();
    });
    socket.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
  }

  /** Opens a socket; rejects with the HTTP status when the upgrade is refused. */
  static connect(url: string, options: { token?: string; header?: boolean } = {}): Promise<StreamClient> {
    const target = options.token && !options.header ? `${url}?access_token=${options.token}` : url;
    const headers = options.token && options.header ? { authorization: `Bearer ${options.token}` } : undefined;
    const socket = new WebSocket(target, { headers });
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new StreamClient(socket)));
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      socket.once('error', reject);
    });
  }

  /** Sends a frame as JSON text, or MessagePack binary. */
  send(frame: unknown, binary = false): void {
    this.socket.send(binary ? pack(frame) : JSON.stringify(frame), { binary });
  }

  /** Sends raw text (for malformed frames). */
  sendRaw(text: string): void {
    this.socket.send(text);
  }

  /** The first queued frame matching `match` (removed from the queue), waiting up to `ms`. */
  async next(match: (f: any) => boolean, what: string, ms = 3000): Promise<any> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.frames.findIndex(match);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.closed) throw new Error(`waiting for ${what}: socket closed (${this.closed.code} ${this.closed.reason}); frames: ${JSON.stringify(this.frames).slice(0, 500)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`waiting for ${what}: nothing after ${ms} ms; frames: ${JSON.stringify(this.frames).slice(0, 500)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits until the server closes the socket. */
  async waitClosed(ms = 3000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`socket still open after ${ms} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.closed;
  }

  /** Stops reading from the TCP socket (a slow client): the server's send buffer fills up. */
  pause(): void {
    (this.socket as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  /** Closes from the client side. */
  close(): void {
    this.socket.close();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** Polls `check` until it returns a value (not undefined), failing after `ms` with `what`. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, what: string, ms = 3000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
