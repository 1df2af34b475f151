/**
 * The embedded store's database on its own thread: PGlite runs every statement synchronously inside its WASM
 * module, so on the server's thread a position flush of 100,000 couriers or a burst of dispatch commits stopped
 * sockets, HTTP and dispatch for as long (bench:load: PGlite 54 % of the main thread at 40,000 couriers;
 * bench:offers: ~60 %). Here it runs on a worker thread, the second core of a 2-core machine.
 *
 *   main thread: PGliteThread (SqlDriver) ──postMessage {id, op, text, params}──► worker: pglite-thread-main
 *                one caller at a time (a FIFO lock): a transaction           runs each message in turn on
 *                is BEGIN … COMMIT / ROLLBACK with nothing in between        PGlite, answers {id, rows} or
 *                from other callers                                          {id, error: fields of the error}
 *
 * Errors cross the thread as plain fields (message, SQLSTATE `code`, constraint …), so store-errors.ts classifies
 * them as before. A worker that dies fails every waiting call with StoreClosed and stops the process (a restart
 * recovers from DATA_DIR, as after a SIGKILL).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { SqlDriver, SqlSession } from './sql.js';
import { StoreClosed } from './store-errors.js';

type Op = 'query' | 'exec' | 'close';
/** A message to the store's thread. */
export interface Call {
  id: number;
  op: Op;
  text?: string;
  params?: unknown[];
}
type Answer = { id: number; rows?: unknown[]; error?: Record<string, unknown> } | { ready: true } | { failed: Record<string, unknown> };

/** A SqlDriver whose PGlite lives on a worker thread. */
export class PGliteThread implements SqlDriver {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (rows: unknown[]) => void; reject: (err: unknown) => void }>();
  private tail: Promise<unknown> = Promise.resolve();
  private dead: Error | undefined;
  private closing = false;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: Answer) => {
      if (!('id' in m)) return;
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error !== undefined) w?.reject(asError(m.error));
      else w?.resolve(m.rows ?? []);
    });
    const die = (why: Error): void => {
      this.dead ??= why;
      for (const w of this.waiting.values()) w.reject(Object.assign(new StoreClosed(), { cause: why }));
      this.waiting.clear();
    };
    worker.on('error', die);
    worker.on('exit', (code) => {
      if (this.closing) return;
      const why = new Error(`the embedded store's thread exited unexpectedly (code ${code}); restart the server: it recovers from DATA_DIR`);
      die(why);
      // as PGlite failing on the server's own thread would: the process stops, and a restart recovers from the
      // data directory (the crash suites' path), rather than serving on with a store that cannot answer
      setImmediate(() => {
        throw why;
      });
    });
  }

  /** Starts the thread and opens the database in dataDir (`memory://` for none) there. */
  static async start(dataDir: string, sharedBuffers: string | undefined): Promise<PGliteThread> {
    const worker = new Worker(compiledSelf(), { workerData: { dataDir, sharedBuffers } });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: Answer): void => {
        if ('ready' in m) resolve();
        else if ('failed' in m) reject(asError(m.failed));
        else return;
        worker.off('message', onMessage);
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the embedded store's thread exited while opening ${dataDir} (code ${code})`)));
    });
    worker.removeAllListeners('error');
    worker.removeAllListeners('exit');
    return new PGliteThread(worker);
  }

  query<R>(text: string, params?: unknown[]): Promise<R[]> {
    return this.alone(() => this.call('query', text, params) as Promise<R[]>);
  }

  exec(script: string): Promise<void> {
    return this.alone(async () => void (await this.call('exec', script)));
  }

  /** BEGIN, the caller's statements, COMMIT (ROLLBACK when it throws), with no other caller's statement between. */
  transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T> {
    return this.alone(async () => {
      const tx: SqlSession = {
        query: <R>(text: string, params?: unknown[]) => this.call('query', text, params) as Promise<R[]>,
        exec: async (script: string) => void (await this.call('exec', script)),
      };
      await this.call('exec', 'BEGIN');
      let result: T;
      try {
        result = await fn(tx);
      } catch (err) {
        await this.call('exec', 'ROLLBACK').catch(() => undefined);
        throw err;
      }
      await this.call('exec', 'COMMIT');
      return result;
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.dead === undefined) await this.alone(() => this.call('close')).catch(() => undefined);
    this.dead ??= new Error('the embedded store was closed');
    await this.worker.terminate();
  }

  // one caller at a time, in arrival order
  private alone<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private call(op: Op, text?: string, params?: unknown[]): Promise<unknown[]> {
    if (this.dead !== undefined) return Promise.reject(Object.assign(new StoreClosed(), { cause: this.dead }));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, text, params } satisfies Call);
    });
  }
}

// the compiled form of this file (workers run JS), found from the repo root whether this runs from dist or source
function compiledSelf(): URL {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`PGliteThread: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  const file = join(dir, 'dist', 'store', 'pglite-thread-main.js');
  if (!existsSync(file)) throw new Error(`PGliteThread: ${file} is missing; run npm run build (worker threads load the compiled JS)`);
  return pathToFileURL(file);
}

// an error's fields as plain data (a thread boundary drops an Error's own properties)
export function fieldsOf(err: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = { message: err instanceof Error ? err.message : String(err), name: err instanceof Error ? err.name : 'Error' };
  if (typeof err === 'object' && err !== null) {
    for (const [k, v] of Object.entries(err)) if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) out[k] = v;
  }
  return out;
}

function asError(fields: Record<string, unknown>): Error {
  return Object.assign(new Error(String(fields.message)), fields);
}
