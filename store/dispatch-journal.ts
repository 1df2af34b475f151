/**
 * Every acknowledged state change, committed to the store in order before anyone is told about it.
 *
 *   dispatch verb (memory changed, with its rollback) ─► record(events, rollback) ─┐
 *   admin write (memory not touched yet)              ─► write(run, apply) ───────┤
 *                                                                                 ▼
 *                                                queue ─► one store call at a time, oldest first; the
 *                                                         dispatch transitions waiting at its head go together
 *                                                         (up to MAX_GROUP, one database transaction, each
 *                                                         still its own seq): a busy minute pays one commit per
 *                                                         group, not one per request, offer or accept
 *      stored ───────────► `stored` resolves (frames go out); a write's apply() changes memory now
 *      refused (invalid) ─► that change is dropped: 409 to its caller; dispatch changes queued after it were
 *                           built on it, so they are rolled back too (503, retry); the queue goes on
 *      unreachable ───────► every queued dispatch change rolled back newest first, every caller 503,
 *                           unhealthy (/ready 503, new verbs refused) until a ping answers again
 *      outcome unknown ───► (the COMMIT's answer was lost, or the call timed out) callers hear 504 at once;
 *      (commit lost/timeout) memory is kept and the same transition is retried until the store has it
 *                           (a seq is applied at most once, so a retry of a committed one changes nothing)
 *
 * A refused commit therefore never leaves memory changed, and one bad change can never wedge the queue.
 */
import type { DispatchEvent, DispatchLoop } from '../dispatch/dispatch-loop.js';
import type { Rollback } from '../dispatch/undo-log.js';
import { storeFailureKind } from './store-errors.js';
import type { Store, Transition } from './store.js';
import type { RegionFence } from './region-fences.js';
import { type BuilderOptions, type JournalRequest, type RequestRegistry, TransitionBuilder } from './transition-builder.js';
import { WriterHealth } from './writer-health.js';

export type { JournalRequest } from './transition-builder.js';

/** Why a change was not (or not yet) stored. */
export type CommitFailureKind =
  /** The store refused this change itself (it would break a constraint): it is dropped. */
  | 'refused'
  /** The store could not be reached: nothing was stored and memory is as before. */
  | 'unavailable'
  /** Built on a change the store refused: dropped with it, memory as before; a retry may succeed. */
  | 'dropped'
  /** The store's answer was lost: the change is kept and will be stored when the store answers. */
  | 'uncertain';

/** A change the store did not take (yet); `kind` says what memory holds. */
export class CommitFailure extends Error {
  constructor(readonly kind: CommitFailureKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CommitFailure';
  }
}

/** One queued change's fate. */
export interface Commit {
  /** Resolves once stored; rejects with CommitFailure (for 'uncertain' as soon as the outcome is unknown). */
  readonly acknowledged: Promise<void>;
  /** Resolves once stored (also after an 'uncertain' answer); rejects when the change was dropped or rolled back. */
  readonly stored: Promise<void>;
}

/** Tuning; every field has a default. */
export interface JournalOptions {
  /** A store call slower than this has an unknown outcome (default 10 s). */
  callTimeoutMs?: number;
  /** First back-off after a failure; doubles per failure (default 100 ms). */
  backoffMinMs?: number;
  /** Back-off cap (default 5 s): a database back within seconds costs seconds. */
  backoffMaxMs?: number;
  /** Called once per change of health (the API's /ready answers 503 while false). */
  onHealthChange?: (healthy: boolean, cause?: unknown) => void;
  /** Called after each successful store call (new events may be in the outbox: the webhook deliverer looks). Must not throw. */
  onStored?: () => void;
  /** Event sources beyond the lifecycle (stock.low) for the transitions built here. */
  builder?: BuilderOptions;
  /**
   * A cluster core's region and epoch: every commit carries them and the store refuses it once another core
   * holds the region under a larger epoch (StaleEpoch: refused, taken back out of memory, never retried).
   */
  fences?: readonly RegionFence[];
}

/** The store calls the journal makes. */
export type JournalStore = Pick<Store, 'commitTransitions' | 'ping'>;

/** Transitions stored in one database transaction at most (a refused group is retried one by one). */
export const MAX_GROUP = 64;

/** Orders and commits the loop's transitions and the admin writes. */
export class DispatchJournal implements RequestRegistry {
  private readonly queue: Entry[] = [];
  /** Registrations by request id; which request a leg belongs to is the loop's answer (loop.parents). */
  private readonly requests = new Map<string, JournalRequest>();
  private readonly callTimeoutMs: number;
  private readonly health: WriterHealth;
  private readonly onStored: (() => void) | undefined;
  private readonly builder: BuilderOptions;
  private readonly fences: readonly RegionFence[] | undefined;
  private running = false;
  private committedCount = 0;
  /** After a refused group: entries still to be stored one by one, so the refused change is found alone. */
  private singly = 0;

  constructor(
    private readonly store: JournalStore,
    private readonly loop: DispatchLoop,
    private readonly seqBase: number,
    options: JournalOptions = {},
  ) {
    this.callTimeoutMs = options.callTimeoutMs ?? 10_000;
    this.onStored = options.onStored;
    this.builder = options.builder ?? {};
    this.fences = options.fences;
    // at most 2^10 × backoffMinMs between tries, even when backoffMaxMs is higher
    this.health = new WriterHealth({ backoffMinMs: options.backoffMinMs ?? 100, backoffMaxMs: options.backoffMaxMs ?? 5_000, maxDoublings: 10, onHealthChange: options.onHealthChange });
  }

  /** Registers a request's submission before its events are recorded (its row carries it for recovery). */
  describe(request: JournalRequest): void {
    this.requests.set(request.id, request);
  }

  /** The registration of the request a leg (or the request itself) belongs to. */
  parent(legId: string): JournalRequest | undefined {
    return this.requests.get(this.loop.parents.parentOf(legId) ?? legId);
  }

  /**
   * Queues the transition of events whose changes memory already holds; `rollback` takes them back out if
   * the store refuses. Nothing to store → resolved at once.
   */
  record(events: readonly DispatchEvent[], rollback: Rollback): Commit {
    const t = TransitionBuilder.build(this, this.loop, this.seqBase, events, this.builder);
    if (t === undefined) return DONE;
    return this.enqueue(new Entry({ transition: t, rollback }));
  }

  /** Commits a prepared transition (recovery's expiry) in line with the others; memory already holds it. */
  commit(t: Transition): Commit {
    return this.enqueue(new Entry({ transition: t, rollback: () => undefined }));
  }

  /** A store-first change: `run` writes it, then `apply` puts it in memory; acknowledged once both are done. */
  write(run: (store: Store) => Promise<void>, apply: () => void): Commit {
    return this.enqueue(new Entry({ run, apply }));
  }

  /** False after the store could not be reached, until it answers again. */
  isHealthy(): boolean {
    return this.health.isHealthy();
  }

  /** Changes waiting (the one being stored included). */
  get backlog(): number {
    return this.queue.length;
  }

  /** Changes stored since start. */
  get committed(): number {
    return this.committedCount;
  }

  /** Resolves once everything queued so far is stored or dropped. */
  async settled(): Promise<void> {
    const last = this.queue.at(-1);
    if (last !== undefined) await last.stored.promise.catch(() => undefined);
  }

  private enqueue(entry: Entry): Commit {
    if (!this.health.isHealthy()) {
      // the store is down (or an unknown outcome is being retried): this change cannot be stored now; it is
      // the newest one in memory, so taking it back alone is exact
      this.takeBack(entry);
      entry.fail(new CommitFailure('unavailable', 'the store is unavailable; nothing was stored'));
      return entry.commit;
    }
    this.queue.push(entry);
    void this.run();
    return entry.commit;
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const entry = this.queue[0];
        const group = this.headGroup();
        try {
          const call = entry.applied ? this.store.commitTransitions(group.map((e) => e.transition as Transition), this.fences) : entry.write(this.store);
          await withTimeout(call, this.callTimeoutMs);
        } catch (err) {
          const kind = err instanceof CallTimeout ? 'ambiguous' : storeFailureKind(err);
          // a refused group says not which change was refused: its members go one by one, and only that one is dropped
          if (kind === 'invalid' && group.length > 1) this.singly = group.length;
          else if (kind === 'invalid') this.dropRefused(err);
          // a change whose outcome is unknown is never taken back (it may be stored): it is tried until known
          else if (kind === 'ambiguous' || entry.isUncertain) await this.waitToRetry(err);
          else {
            this.dropAll(err);
            this.health.probe(() => this.store.ping());
          }
          continue;
        }
        this.queue.splice(0, group.length);
        if (this.singly > 0) this.singly--;
        this.committedCount += group.length;
        this.health.succeeded();
        for (const e of group) {
          e.succeed();
          this.forgetTerminal(e.transition);
        }
        this.onStored?.();
      }
    } finally {
      this.running = false;
    }
  }

  /** The head entry and the dispatch transitions right behind it, up to MAX_GROUP (the head alone otherwise). */
  private headGroup(): Entry[] {
    const head = this.queue[0];
    if (!head.applied || this.singly > 0) return [head];
    let n = 1;
    while (n < this.queue.length && n < MAX_GROUP && this.queue[n].applied) n++;
    return this.queue.slice(0, n);
  }

  /** The head was refused: it goes, and so do the dispatch changes queued after it (they were built on it). */
  private dropRefused(err: unknown): void {
    const head = this.queue[0];
    const doomed = head.applied ? this.queue.filter((e) => e.applied) : [head];
    for (let i = doomed.length - 1; i >= 0; i--) this.takeBack(doomed[i]);
    for (const e of doomed) {
      e.fail(e === head
        ? new CommitFailure('refused', 'the store refused this change; nothing was stored', { cause: err })
        : new CommitFailure('dropped', 'not stored: an earlier change was refused; nothing was stored, retry', { cause: err }));
    }
    const gone = new Set(doomed);
    this.queue.splice(0, this.queue.length, ...this.queue.filter((e) => !gone.has(e)));
  }

  /** The store is unreachable: every queued change is taken back and refused. */
  private dropAll(err: unknown): void {
    this.health.markUnhealthy(err);
    const all = this.queue.splice(0);
    for (let i = all.length - 1; i >= 0; i--) this.takeBack(all[i]);
    for (const e of all) e.fail(new CommitFailure('unavailable', 'the store is unavailable; nothing was stored', { cause: err }));
  }

  /** The head's outcome is unknown: callers are told so, and the same change is tried again after a back-off. */
  private async waitToRetry(err: unknown): Promise<void> {
    const wait = this.health.failed(err);
    for (const e of this.queue) e.uncertain(err);
    await sleep(wait);
  }

  /** Rolls an entry's change out of memory and forgets the requests it would have created. */
  private takeBack(entry: Entry): void {
    entry.rollback();
    for (const r of entry.transition?.requests ?? []) this.requests.delete(r.id);
  }

  /** Registrations of finished requests are dropped so memory follows the open requests only. */
  private forgetTerminal(t: Transition | undefined): void {
    for (const s of t?.requestStatus ?? []) {
      if (s.status === 'delivered' || s.status === 'cancelled' || s.status === 'failed') this.requests.delete(s.id);
    }
  }
}

/** One queued change: a transition memory already holds, or a store-first write. */
class Entry {
  readonly acknowledged = deferred();
  readonly stored = deferred();
  readonly commit: Commit = { acknowledged: this.acknowledged.promise, stored: this.stored.promise };
  readonly transition: Transition | undefined;
  private readonly undo: Rollback | undefined;
  private readonly run: ((store: Store) => Promise<void>) | undefined;
  private readonly apply: (() => void) | undefined;
  private told = false;
  private uncertainTold = false;

  constructor(spec: { transition: Transition; rollback: Rollback } | { run: (store: Store) => Promise<void>; apply: () => void }) {
    if ('transition' in spec) {
      this.transition = spec.transition;
      this.undo = spec.rollback;
    } else {
      this.run = spec.run;
      this.apply = spec.apply;
    }
  }

  /** True once its caller was told the outcome is unknown. */
  get isUncertain(): boolean {
    return this.told && this.uncertainTold;
  }

  /** True when memory already holds this change (a dispatch transition). */
  get applied(): boolean {
    return this.transition !== undefined;
  }

  /** Runs a store-first write (an entry without a transition). */
  write(store: JournalStore): Promise<void> {
    return this.run!(store as Store);
  }

  rollback(): void {
    this.undo?.();
  }

  succeed(): void {
    try {
      this.apply?.();
    } catch (err) {
      // stored, but memory could not take it (a dry run before the write should have caught this)
      this.acknowledged.reject(err);
      this.told = true;
    }
    this.acknowledged.resolve();
    this.stored.resolve();
  }

  fail(err: CommitFailure): void {
    if (!this.told) this.acknowledged.reject(err);
    this.told = true;
    this.stored.reject(err);
  }

  uncertain(cause: unknown): void {
    if (this.told) return;
    this.told = true;
    this.uncertainTold = true;
    this.acknowledged.reject(new CommitFailure('uncertain', 'the store did not confirm in time; the change is kept and will be stored when the store answers', { cause }));
  }
}

const DONE: Commit = { acknowledged: Promise.resolve(), stored: Promise.resolve() };

class CallTimeout extends Error {}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((_, reject) => {
    timer = setTimeout(() => reject(new CallTimeout(`store call took longer than ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // a failure nobody awaits is not an unhandled rejection
  return { promise, resolve, reject };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
