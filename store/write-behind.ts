/**
 * Write-behind for courier positions: location pings never wait on the database.
 *
 *   record(id, lat, lng, ts, status?)          ── synchronous, O(1), no I/O
 *        │ CourierKeys: the id's small integer and canonical string (in the server: the engine's slot, found
 *        │ in the map the engine's move just probed, so no second map is hashed into per ping)
 *        ├─► PositionBuffer (position-buffer.ts): key → slot over typed arrays, a linked list in arrival
 *        │     order, one slot per courier (a newer ping overwrites in place and keeps its place in line);
 *        │     full of distinct couriers → the oldest-waiting courier's entry is shed (counted)
 *        │
 *        └─► HistoryRing (history-ring.ts): at most one sample per courier per `historyEveryMs`;
 *              full → the oldest sample is overwritten (counted)
 *
 *   tick(now) / start() timer ─► pump (one store call in flight at a time)
 *        unhealthy? ── ping() after an exponential, capped back-off (WriterHealth) ── true → resume
 *        loop: writePositions(≤ batchSize, oldest first) ; appendHistory(≤ batchSize)
 *        purgeHistory(now − retention) every `purgeEveryMs`; ping() when idle for `pingEveryMs`
 *        any throw / timeout / ping() false ─► healthy = false, batch returned to the head of the line
 *        a batch the store refuses as invalid ─► halved until the bad rows are found; they are dropped (counted
 *                                                as poisoned), the rest written: one bad row never stops the others
 */
import { HistoryRing } from './history-ring.js';
import { type PositionBatch, PositionBuffer } from './position-buffer.js';
import { storeFailureKind } from './store-errors.js';
import type { Store } from './store.js';
import { WriterHealth } from './writer-health.js';

/** The slice of the Store the write-behind calls. */
export type PositionStore = Pick<Store, 'writePositions' | 'appendHistory' | 'purgeHistory' | 'ping'>;

/**
 * Small dense integers for courier ids, stable while the courier exists (a key may be reused after it is
 * removed), and the holder's own id string per key.
 */
export interface CourierKeys {
  /** The key of a known courier, or -1. */
  keyOf(id: string): number;
  /** The id string held under a key. */
  idOf(key: number): string | undefined;
}

/** CourierKeys of its own: every id seen gets the next integer (for a write-behind with no engine beside it). */
export class IdKeys implements CourierKeys {
  readonly #keys = new Map<string, number>();
  readonly #ids: string[] = [];

  keyOf(id: string): number {
    let key = this.#keys.get(id);
    if (key === undefined) {
      key = this.#ids.length;
      this.#keys.set(id, key);
      this.#ids.push(id);
    }
    return key;
  }

  idOf(key: number): string | undefined {
    return this.#ids[key];
  }
}

/** Tuning for {@link PositionWriteBehind}; every field has a default. */
export interface WriteBehindOptions {
  /** Keys for courier ids (default: IdKeys, numbering ids itself); the server passes its courier index. */
  keys?: CourierKeys;
  /** Distinct couriers held at once, in-flight batch included (default 100,000). */
  maxBuffered?: number;
  /** Rows per writePositions / appendHistory statement (default 5,000). */
  batchSize?: number;
  /** Period of the internal timer started by start() (default 200 ms). */
  flushEveryMs?: number;
  /** One history sample per courier per this many ms of its own timestamps (default 30 s). */
  historyEveryMs?: number;
  /** Samples held for appendHistory before the oldest is overwritten (default 100,000). */
  maxHistoryBuffered?: number;
  /** History older than this is purged (default 7 days). */
  historyRetentionMs?: number;
  /** How often purgeHistory runs (default 1 h). */
  purgeEveryMs?: number;
  /** ping() when the database has not been heard from for this long (default 5 s). */
  pingEveryMs?: number;
  /** First back-off after a failure; doubles per consecutive failure (default 250 ms). */
  backoffMinMs?: number;
  /** Back-off cap (default 30 s). */
  backoffMaxMs?: number;
  /** A store call slower than this counts as a failure (default 10 s). */
  callTimeoutMs?: number;
  /** Called once per change of health (the API's /ready answers 503 while false). */
  onHealthChange?: (healthy: boolean, cause?: unknown) => void;
}

/** Counters for /metrics and the benchmark. */
export interface WriteBehindStats {
  buffered: number;
  inFlight: number;
  written: number;
  coalesced: number;
  shed: number;
  staleDropped: number;
  /** Pings for ids the keys did not know (no courier to write them to), dropped. */
  unknown: number;
  historyBuffered: number;
  historyWritten: number;
  historyShed: number;
  /** Rows the store refused as invalid (found by halving a refused batch) and dropped. */
  poisoned: number;
  purged: number;
  failures: number;
  consecutiveFailures: number;
  healthy: boolean;
  lastFlushMs: number;
  throughput: number;
  lastError: string | undefined;
}

/** Source of time; `Date` in production, a fake in tests. */
export interface Clock { now(): number }

// 100k couriers ≈ 100k × (~50 B of typed arrays + the id reference) ≈ 6 MB: a whole large-city fleet
// survives a long outage without shedding, while memory stays capped whatever the ping rate.
const DEFAULT_MAX_BUFFERED = 100_000;
// 5,000 rows × 5 columns is one unnest/COPY statement of ~200 KB: enough rows to amortise the round trip
// (≥ 100k rows/s), few enough that one statement holds row locks for milliseconds, stays far below the
// 65,535 bind-parameter cap should a store bind per row, and finishes well inside callTimeoutMs.
const DEFAULT_BATCH = 5_000;
// 200 ms bounds how stale the database is behind memory and lets a courier's pings coalesce in between.
const DEFAULT_FLUSH_EVERY = 200;
// 30 s gives a track good enough to replay a route (≈ 100–400 m between points in a city) at 1/6–1/30 of
// the raw rate of 1–5 s pings: 100k couriers × 2,880 samples/day ≈ 290M rows/day instead of billions.
const DEFAULT_HISTORY_EVERY = 30_000;
const DEFAULT_RETENTION = 7 * 24 * 3600_000; // a week: disputes and audits are raised within days
const DEFAULT_PURGE_EVERY = 3600_000; // hourly purge deletes ~1/168 of the table: short, cheap statements
const DEFAULT_PING_EVERY = 5_000; // /ready reflects a dead database within ~5 s even when nobody pings
const DEFAULT_BACKOFF_MIN = 250;
const DEFAULT_BACKOFF_MAX = 30_000; // a returning database is found within 30 s, and is not hammered meanwhile
const DEFAULT_CALL_TIMEOUT = 10_000; // a half-open TCP connection must not hold the single in-flight slot forever

/**
 * Bounded, coalescing write-behind of courier positions and sampled history into a Store.
 * The caller owns it: build it with the store and a clock, call record() from the ingest path,
 * and either start() its timer or drive it with tick(now).
 */
export class PositionWriteBehind {
  readonly #store: PositionStore;
  readonly #clock: Clock;
  readonly #o: Required<Omit<WriteBehindOptions, 'onHealthChange' | 'keys'>>;
  readonly #keys: CourierKeys;
  #unknown = 0;
  readonly #positions: PositionBuffer;
  readonly #history: HistoryRing;
  readonly #health: WriterHealth;
  #retryAt = 0;
  #lastContact = 0;
  #nextPurgeAt = 0;
  #pump: Promise<void> | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  #stats = { written: 0, historyWritten: 0, poisoned: 0, purged: 0, failures: 0, lastFlushMs: 0, throughput: 0, lastError: undefined as string | undefined };

  constructor(store: PositionStore, options: WriteBehindOptions = {}, clock: Clock = Date) {
    this.#store = store;
    this.#clock = clock;
    this.#keys = options.keys ?? new IdKeys();
    this.#o = {
      maxBuffered: options.maxBuffered ?? DEFAULT_MAX_BUFFERED,
      batchSize: options.batchSize ?? DEFAULT_BATCH,
      flushEveryMs: options.flushEveryMs ?? DEFAULT_FLUSH_EVERY,
      historyEveryMs: options.historyEveryMs ?? DEFAULT_HISTORY_EVERY,
      maxHistoryBuffered: options.maxHistoryBuffered ?? DEFAULT_MAX_BUFFERED,
      historyRetentionMs: options.historyRetentionMs ?? DEFAULT_RETENTION,
      purgeEveryMs: options.purgeEveryMs ?? DEFAULT_PURGE_EVERY,
      pingEveryMs: options.pingEveryMs ?? DEFAULT_PING_EVERY,
      backoffMinMs: options.backoffMinMs ?? DEFAULT_BACKOFF_MIN,
      backoffMaxMs: options.backoffMaxMs ?? DEFAULT_BACKOFF_MAX,
      callTimeoutMs: options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT,
    };
    const { maxBuffered: cap, batchSize, maxHistoryBuffered: hCap } = this.#o;
    if (!(cap >= 2 && batchSize >= 1 && batchSize <= cap / 2)) {
      throw new Error(`PositionWriteBehind: need maxBuffered ≥ 2 and 1 ≤ batchSize ≤ maxBuffered / 2 (got ${cap}, ${batchSize}); raise maxBuffered or lower batchSize`);
    }
    if (!(hCap >= 1)) throw new Error('PositionWriteBehind: maxHistoryBuffered must be ≥ 1');
    this.#positions = new PositionBuffer(cap);
    this.#history = new HistoryRing(hCap, this.#o.historyEveryMs);
    this.#health = new WriterHealth({ backoffMinMs: this.#o.backoffMinMs, backoffMaxMs: this.#o.backoffMaxMs, onHealthChange: options.onHealthChange });
  }

  /**
   * Buffers a courier's position; synchronous and O(1). A ping older (by `ts`) than the one already
   * buffered for that courier is dropped (counted as staleDropped). `status` omitted keeps the buffered one.
   */
  record(id: string, lat: number, lng: number, ts: number, status?: string): void {
    const key = this.#keys.keyOf(id);
    const own = key < 0 ? undefined : this.#keys.idOf(key);
    // a courier the keys do not know has no row to write to (the store skips such ids too)
    if (own === undefined) { this.#unknown++; return; }
    this.#history.sample(key, own, lat, lng, ts);
    this.#positions.record(key, own, lat, lng, ts, status);
  }

  /**
   * Drops a courier's waiting position and history samples (call before its key is freed: a deleted courier's
   * pings must not be written to a courier re-created under the same id). A batch already in flight is written.
   */
  forget(id: string): void {
    const key = this.#keys.keyOf(id);
    const own = key < 0 ? undefined : this.#keys.idOf(key);
    if (own === undefined) return;
    this.#positions.forget(key, own);
    this.#history.forget(own);
  }

  /** True while the store accepts writes; false from the first failure until a write or ping succeeds. */
  isHealthy(): boolean {
    return this.#health.isHealthy();
  }

  /** Counters: buffered (couriers waiting, in-flight included), written, shed, failures, throughput (rows/s). */
  stats(): WriteBehindStats {
    const p = this.#positions, s = this.#stats;
    return {
      written: s.written, coalesced: p.coalesced, shed: p.shed, staleDropped: p.staleDropped, unknown: this.#unknown,
      historyWritten: s.historyWritten, historyShed: this.#history.shed, poisoned: s.poisoned, purged: s.purged,
      failures: s.failures, lastFlushMs: s.lastFlushMs, throughput: s.throughput, lastError: s.lastError,
      buffered: p.waiting + p.inFlight,
      inFlight: p.inFlight,
      historyBuffered: this.#history.buffered,
      consecutiveFailures: this.#health.consecutiveFailures,
      healthy: this.#health.isHealthy(),
    };
  }

  /**
   * Runs due work (writes, history, purge, health ping) unless a pump is already running or the
   * back-off has not expired; resolves when that pump ends. Never rejects.
   */
  tick(now: number = this.#clock.now()): Promise<void> {
    if (this.#pump !== null) return this.#pump;
    if (now < this.#retryAt) return Promise.resolve();
    if (this.#health.isHealthy() && this.#positions.waiting === 0 && this.#history.buffered === 0 && now < this.#nextPurgeAt && now - this.#lastContact < this.#o.pingEveryMs) {
      return Promise.resolve();
    }
    this.#pump = this.#run().finally(() => { this.#pump = null; });
    return this.#pump;
  }

  /** Writes everything buffered now, ignoring the back-off once; resolves true when nothing is left. */
  async flush(): Promise<boolean> {
    if (this.#pump !== null) await this.#pump;
    this.#retryAt = 0;
    await this.tick(this.#clock.now());
    return this.#positions.waiting === 0 && this.#positions.inFlight === 0 && this.#history.buffered === 0;
  }

  /** Starts the internal timer (every flushEveryMs); the timer does not keep the process alive. */
  start(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => { void this.tick(); }, this.#o.flushEveryMs);
    this.#timer.unref();
  }

  /** Stops the timer and makes one last attempt to write what is buffered; the Store stays open. */
  async close(): Promise<boolean> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    return this.flush();
  }

  async #run(): Promise<void> {
    try {
      if (!this.#health.isHealthy() || this.#clock.now() - this.#lastContact >= this.#o.pingEveryMs) {
        const ok = await this.#call(this.#store.ping());
        if (!ok) throw new Error('store ping() answered false');
        this.#contact();
      }
      for (;;) {
        const pos = this.#positions.waiting > 0, hist = this.#history.buffered > 0;
        if (!pos && !hist) break;
        if (pos) await this.#writePositionBatch();
        if (hist) await this.#writeHistoryBatch();
      }
      const now = this.#clock.now();
      if (now >= this.#nextPurgeAt) {
        this.#stats.purged += await this.#call(this.#store.purgeHistory(now - this.#o.historyRetentionMs));
        this.#nextPurgeAt = now + this.#o.purgeEveryMs;
        this.#contact();
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  async #writePositionBatch(): Promise<void> {
    const batch = this.#positions.take(this.#o.batchSize);
    const n = batch.ids.length;
    const t0 = performance.now();
    try {
      await this.#isolating(batch, (b) => this.#store.writePositions(b));
    } catch (err) {
      this.#positions.putBack();
      throw err;
    }
    const ms = performance.now() - t0;
    this.#positions.release();
    this.#stats.written += n;
    this.#stats.lastFlushMs = ms;
    this.#stats.throughput = ms > 0 ? Math.round((n * 1000) / ms) : 0;
    this.#contact();
  }

  async #writeHistoryBatch(): Promise<void> {
    const { batch, upTo } = this.#history.peek(this.#o.batchSize);
    await this.#isolating(batch, (b) => this.#store.appendHistory(b));
    this.#history.consume(upTo);
    this.#stats.historyWritten += batch.ids.length;
    this.#contact();
  }

  #contact(): void {
    this.#lastContact = this.#clock.now();
    this.#retryAt = 0;
    this.#health.succeeded();
  }

  #fail(err: unknown): void {
    this.#stats.failures++;
    this.#stats.lastError = err instanceof Error ? err.message : String(err);
    const now = this.#clock.now();
    this.#retryAt = now + this.#health.failed(err);
  }

  /** Writes a batch; when the store refuses it as invalid, halves it until the refused rows are found and drops them. */
  async #isolating<B extends PositionBatch>(batch: B, write: (b: B) => Promise<void>): Promise<void> {
    try {
      await this.#call(write(batch));
    } catch (err) {
      if (storeFailureKind(err) !== 'invalid') throw err;
      const n = batch.ids.length;
      if (n === 1) {
        this.#stats.poisoned++;
        this.#stats.lastError = err instanceof Error ? err.message : String(err);
        return;
      }
      const half = n >> 1;
      await this.#isolating(slice(batch, 0, half), write);
      await this.#isolating(slice(batch, half, n), write);
    }
  }

  #call<T>(p: Promise<T>): Promise<T> {
    return withTimeout(p, this.#o.callTimeoutMs);
  }
}

function slice<B extends PositionBatch>(b: B, from: number, to: number): B {
  const out: PositionBatch = { ids: b.ids.slice(from, to), lat: b.lat.slice(from, to), lng: b.lng.slice(from, to), ts: b.ts.slice(from, to) };
  if (b.status !== undefined) out.status = b.status.slice(from, to);
  return out as B;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`store call timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  p.catch(() => {}); // a call abandoned by the timeout must not become an unhandled rejection
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
