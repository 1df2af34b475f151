/**
 * Batch planning on worker threads, so the event loop keeps serving sockets while a batch solves.
 *
 *   plan(snapshot, requests, policy, now)
 *     │ requests.length ≤ inlineBelow ──► planBatch on this thread (a round trip would cost more than the solve)
 *     │ otherwise
 *     ▼
 *   packRequests ──► piscina.run(match-batch.js)   snapshot: SharedArrayBuffer, shared (never copied)
 *                       │                            requests: Float64Array moved + one string
 *                       ▼
 *                    worker: planBatch ──► packPlan ──moved──► unpackPlan ──► DispatchPlan
 *
 * Workers load the COMPILED task file dist/workers/match-batch.js, found from the repo root, so the pool
 * works the same whether this module runs from dist/ or from source under vitest.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import { planBatch } from '../dispatch/assign-batch.js';
import type { DispatchPlan, DispatchPolicy, DispatchRequest } from '../dispatch/dispatch-request.js';
import { CourierSnapshot } from '../engine/courier-snapshot.js';
import type { MatchBatchTask } from './match-batch.js';
import { type Packed, packRequests, unpackPlan } from './request-packing.js';

/** What the dispatch loop calls to plan one batch over one snapshot. */
export type Planner = (snapshot: SharedArrayBuffer, requests: DispatchRequest[], policy: DispatchPolicy, now: number) => Promise<DispatchPlan>;

/** Pool sizing and the inline threshold. */
export interface DispatchPoolOptions {
  /** Threads kept alive when idle (default 1: the first batch never waits for a thread to boot). */
  minThreads?: number;
  /** Upper bound on threads (default: cores − 1, at least 1, leaving a core for the event loop). */
  maxThreads?: number;
  /**
   * Batches of at most this many requests run inline (default 32). Measured on the fixture city (20,000
   * couriers): 32 requests plan in ~1.2 ms, while a worker round trip adds ~0.3 ms of packing and thread hops
   * to every batch; ~1 ms of event loop is well inside the 10 ms request → offer budget, and lone emergencies
   * skip the hop entirely.
   */
  inlineBelow?: number;
  /** The compiled task file; default dist/workers/match-batch.js under the repo root (see locateMatchBatchWorker). */
  workerFile?: URL;
}

/**
 * The workers' Node flags: the process's own, and require(esm) off where Node has it. Piscina loads the task file
 * with require() first and import() when that throws; on Node 20.19+ require() of an ES module is allowed and, now
 * and then, aborts the whole process in V8 (`Module::IsGraphAsync must be used on an instantiated module`, seen in
 * loadESMFromCJS under load). Refused, require() throws ERR_REQUIRE_ESM at once and piscina imports the file instead.
 */
function workerExecArgv(): string[] {
  const flag = '--no-experimental-require-module';
  return process.allowedNodeEnvironmentFlags.has(flag) ? [...process.execArgv.filter((a) => a !== '--experimental-require-module'), flag] : [...process.execArgv];
}

/** Counts of batches planned each way since the pool opened. */
export interface DispatchPoolStats {
  inline: number;
  worker: number;
}

/** A piscina pool planning batches with planBatch in worker threads; small batches run inline. */
export class DispatchPool {
  readonly inlineBelow: number;
  readonly stats: DispatchPoolStats = { inline: 0, worker: 0 };
  /** `plan` bound to this pool, to hand to the dispatch loop. */
  readonly planner: Planner = (snapshot, requests, policy, now) => this.plan(snapshot, requests, policy, now);
  private readonly pool: Piscina<MatchBatchTask, Packed>;
  private closed = false;

  constructor(options: DispatchPoolOptions = {}) {
    this.inlineBelow = options.inlineBelow ?? 32;
    const maxThreads = options.maxThreads ?? Math.max(1, availableParallelism() - 1);
    const minThreads = Math.min(options.minThreads ?? 1, maxThreads);
    const filename = (options.workerFile ?? locateMatchBatchWorker()).href;
    this.pool = new Piscina<MatchBatchTask, Packed>({ filename, minThreads, maxThreads, execArgv: workerExecArgv() });
  }

  /** Plans one batch (planBatch semantics); rejects after close(). */
  async plan(snapshot: SharedArrayBuffer, requests: DispatchRequest[], policy: DispatchPolicy, now: number): Promise<DispatchPlan> {
    if (this.closed) throw new Error('DispatchPool.plan: the pool is closed; create a new DispatchPool');
    if (!(snapshot instanceof SharedArrayBuffer)) {
      throw new Error('DispatchPool.plan: snapshot must be the SharedArrayBuffer from writeCourierSnapshot (an ArrayBuffer would be copied per batch)');
    }
    if (requests.length <= this.inlineBelow) {
      this.stats.inline++;
      return planBatch(CourierSnapshot.from(snapshot), requests, policy, now);
    }
    const packed = packRequests(requests);
    this.stats.worker++;
    // the snapshot is shared memory (never copied); the packed numbers move, leaving an empty view here
    const result = await this.pool.run({ snapshot, requests: packed, policy, now }, { transferList: [packed.numbers.buffer] });
    return unpackPlan(result);
  }

  /** Live worker threads (0 after close()). */
  get threads(): number {
    return this.pool.threads.length;
  }

  /** Waits for queued batches, then stops every worker thread. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }
}

/** Plans on the calling thread: the Planner for tests and single-threaded deployments. */
export const inlinePlanner: Planner = async (snapshot, requests, policy, now) => planBatch(CourierSnapshot.from(snapshot), requests, policy, now);

/**
 * URL of the compiled task file: `dist/workers/match-batch.js` under the first ancestor of `from` holding a
 * package.json (the repo root, whether `from` is in dist/workers/ or workers/). Throws when it is not built.
 */
export function locateMatchBatchWorker(from: string = import.meta.url): URL {
  let dir = dirname(fileURLToPath(from));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`DispatchPool: no package.json above ${fileURLToPath(from)}; pass options.workerFile`);
    dir = up;
  }
  const file = join(dir, 'dist', 'workers', 'match-batch.js');
  if (!existsSync(file)) throw new Error(`DispatchPool: worker file ${file} is missing; run npm run build (workers load the compiled JS)`);
  return pathToFileURL(file);
}
