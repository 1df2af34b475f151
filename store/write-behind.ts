/**
 * Write-behind for courier positions: location pings never wait on the database.
 *
 *   record(id, lat, lng, ts, status?)          ── synchronous, O(1), no I/O
 *        │
 *        ├─► position buffer: Map id → slot over typed arrays, a linked list in arrival order,
 *        │     one slot per courier (a newer ping overwrites in place and keeps its place in line);
 *        │     full of distinct couriers → the oldest-waiting courier's entry is shed (counted)
 *        │
 *        └─► history ring: at most one sample per courier per `historyEveryMs`;
 *              full → the oldest sample is overwritten (counted)
 *
 *   tick(now) / start() timer ─► pump (one store call in flight at a time)
 *        unhealthy? ── ping() after an exponential, capped back-off ── true → resume
 *        loop: writePositions(≤ batchSize, oldest first) ; appendHistory(≤ batchSize)
 *        purgeHistory(now − retention) every `purgeEveryMs`; ping() when idle for `pingEveryMs`
 *        any throw / timeout / ping() false ─► healthy = false, batch returned to the head of the line
 *        a batch the store refuses as invalid ─► halved until the bad rows are found; they are dropped (counted
 *                                                as poisoned), the rest written: one bad row never stops the others
 */
import { storeFailureKind } from './store-errors.js';
import type { Store } from './store.js';

/** The slice of the Store the write-behind calls. */
export type PositionStore = Pick<Store, 'writePositions' | 'appendHistory' | 'purgeHistory' | 'ping'>;

/** Tuning for {@link PositionWriteBehind}; every field has a default. */
export interface WriteBehindOptions {
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

// 100k couriers ≈ 100k × (40 B of typed arrays + ~100 B of Map entry) ≈ 14 MB: a whole large-city fleet
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
const NIL = -1;

/**
 * Bounded, coalescing write-behind of courier positions and sampled history into a Store.
 * The caller owns it: build it with the store and a clock, call record() from the ingest path,
 * and either start() its timer or drive it with tick(now).
 */
export class PositionWriteBehind {
  readonly #store: PositionStore;
  readonly #clock: Clock;
  readonly #o: Required<Omit<WriteBehindOptions, 'onHealthChange'>>;
  readonly #onHealthChange: ((healthy: boolean, cause?: unknown) => void) | undefined;

  // Position slots: typed arrays indexed by slot, a doubly linked list in arrival order (head = oldest).
  readonly #slotOf = new Map<string, number>();
  readonly #ids: (string | undefined)[];
  readonly #status: (string | undefined)[];
  readonly #lat: Float64Array;
  readonly #lng: Float64Array;
  readonly #ts: Float64Array;
  readonly #next: Int32Array;
  readonly #prev: Int32Array;
  readonly #dirty: Uint8Array; // in flight and re-recorded since the batch was copied
  readonly #free: Int32Array;
  #freeTop: number;
  #head = NIL;
  #tail = NIL;
  #listed = 0;
  #flight: Int32Array | null = null; // slots of the batch in flight, in order; detached from the list

  // History ring addressed by absolute sequence numbers: slot = seq % capacity.
  readonly #hIds: (string | undefined)[];
  readonly #hLat: Float64Array;
  readonly #hLng: Float64Array;
  readonly #hTs: Float64Array;
  #hHead = 0;
  #hTail = 0;
  readonly #lastSampled = new Map<string, number>();

  #healthy = true;
  #consecutiveFailures = 0;
  #retryAt = 0;
  #lastContact = 0;
  #nextPurgeAt = 0;
  #pump: Promise<void> | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  #stats = { written: 0, coalesced: 0, shed: 0, staleDropped: 0, historyWritten: 0, historyShed: 0, poisoned: 0, purged: 0, failures: 0, lastFlushMs: 0, throughput: 0, lastError: undefined as string | undefined };

  constructor(store: PositionStore, options: WriteBehindOptions = {}, clock: Clock = Date) {
    this.#store = store;
    this.#clock = clock;
    this.#onHealthChange = options.onHealthChange;
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
    this.#ids = new Array(cap);
    this.#status = new Array(cap);
    this.#lat = new Float64Array(cap);
    this.#lng = new Float64Array(cap);
    this.#ts = new Float64Array(cap);
    this.#next = new Int32Array(cap);
    this.#prev = new Int32Array(cap);
    this.#dirty = new Uint8Array(cap);
    this.#free = new Int32Array(cap);
    for (let i = 0; i < cap; i++) this.#free[i] = cap - 1 - i; // pop order 0, 1, 2, …
    this.#freeTop = cap;
    this.#hIds = new Array(hCap);
    this.#hLat = new Float64Array(hCap);
    this.#hLng = new Float64Array(hCap);
    this.#hTs = new Float64Array(hCap);
  }

  /**
   * Buffers a courier's position; synchronous and O(1). A ping older (by `ts`) than the one already
   * buffered for that courier is dropped (counted as staleDropped). `status` omitted keeps the buffered one.
   */
  record(id: string, lat: number, lng: number, ts: number, status?: string): void {
    this.#sampleHistory(id, lat, lng, ts);
    let s = this.#slotOf.get(id);
    if (s !== undefined) {
      if (ts < this.#ts[s]) { this.#stats.staleDropped++; return; }
      this.#stats.coalesced++;
      if (this.#flight !== null && this.#isInFlight(s)) this.#dirty[s] = 1;
    } else {
      if (this.#freeTop === 0 && !this.#shedOldest()) { this.#stats.shed++; return; }
      s = this.#free[--this.#freeTop];
      this.#slotOf.set(id, s);
      this.#ids[s] = id;
      this.#status[s] = undefined;
      this.#append(s);
    }
    this.#lat[s] = lat;
    this.#lng[s] = lng;
    this.#ts[s] = ts;
    if (status !== undefined) this.#status[s] = status;
  }

  /** True while the store accepts writes; false from the first failure until a write or ping succeeds. */
  isHealthy(): boolean {
    return this.#healthy;
  }

  /** Counters: buffered (couriers waiting, in-flight included), written, shed, failures, throughput (rows/s). */
  stats(): WriteBehindStats {
    const inFlight = this.#flight?.length ?? 0;
    return {
      ...this.#stats,
      buffered: this.#listed + inFlight,
      inFlight,
      historyBuffered: this.#hTail - this.#hHead,
      consecutiveFailures: this.#consecutiveFailures,
      healthy: this.#healthy,
    };
  }

  /**
   * Runs due work (writes, history, purge, health ping) unless a pump is already running or the
   * back-off has not expired; resolves when that pump ends. Never rejects.
   */
  tick(now: number = this.#clock.now()): Promise<void> {
    if (this.#pump !== null) return this.#pump;
    if (now < this.#retryAt) return Promise.resolve();
    if (this.#healthy && this.#listed === 0 && this.#hTail === this.#hHead && now < this.#nextPurgeAt && now - this.#lastContact < this.#o.pingEveryMs) {
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
    return this.#listed === 0 && this.#flight === null && this.#hTail === this.#hHead;
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
      if (!this.#healthy || this.#clock.now() - this.#lastContact >= this.#o.pingEveryMs) {
        const ok = await this.#call(this.#store.ping());
        if (!ok) throw new Error('store ping() answered false');
        this.#contact();
      }
      for (;;) {
        const pos = this.#listed > 0, hist = this.#hTail > this.#hHead;
        if (!pos && !hist) break;
        if (pos) await this.#writePositionBatch();
        if (hist) await this.#writeHistoryBatch();
      }
      const now = this.#clock.now();
      if (now >= this.#nextPurgeAt) {
        this.#stats.purged += await this.#call(this.#store.purgeHistory(now - this.#o.historyRetentionMs));
        this.#nextPurgeAt = now + this.#o.purgeEveryMs;
        this.#contact();
        this.#pruneSampled(now);
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  async #writePositionBatch(): Promise<void> {
    const n = Math.min(this.#o.batchSize, this.#listed);
    const slots = new Int32Array(n);
    const ids: string[] = new Array(n);
    const lat = new Float64Array(n), lng = new Float64Array(n), ts = new Float64Array(n);
    const status: (string | undefined)[] = new Array(n);
    let anyStatus = false;
    for (let i = 0; i < n; i++) {
      const s = this.#head;
      this.#unlink(s);
      slots[i] = s;
      ids[i] = this.#ids[s]!;
      lat[i] = this.#lat[s]; lng[i] = this.#lng[s]; ts[i] = this.#ts[s];
      status[i] = this.#status[s];
      if (status[i] !== undefined) anyStatus = true;
    }
    this.#flight = slots;
    const t0 = performance.now();
    try {
      // A row without a status in a batch with statuses is written as null: the store keeps the stored status.
      const batch = anyStatus ? { ids, lat, lng, ts, status: status as string[] } : { ids, lat, lng, ts };
      await this.#isolating(batch, (b) => this.#store.writePositions(b));
    } catch (err) {
      for (let i = n - 1; i >= 0; i--) { this.#dirty[slots[i]] = 0; this.#prepend(slots[i]); } // back to the head, in order
      this.#flight = null;
      throw err;
    }
    const ms = performance.now() - t0;
    this.#flight = null;
    for (let i = 0; i < n; i++) {
      const s = slots[i];
      if (this.#dirty[s] === 1) { this.#dirty[s] = 0; this.#append(s); continue; } // re-recorded meanwhile: back in line
      this.#slotOf.delete(this.#ids[s]!);
      this.#ids[s] = undefined;
      this.#status[s] = undefined;
      this.#free[this.#freeTop++] = s;
    }
    this.#stats.written += n;
    this.#stats.lastFlushMs = ms;
    this.#stats.throughput = ms > 0 ? Math.round((n * 1000) / ms) : 0;
    this.#contact();
  }

  async #writeHistoryBatch(): Promise<void> {
    const cap = this.#o.maxHistoryBuffered;
    const from = this.#hHead;
    const n = Math.min(this.#o.batchSize, this.#hTail - from);
    const ids: string[] = new Array(n);
    const lat = new Float64Array(n), lng = new Float64Array(n), ts = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const k = (from + i) % cap;
      ids[i] = this.#hIds[k]!; lat[i] = this.#hLat[k]; lng[i] = this.#hLng[k]; ts[i] = this.#hTs[k];
    }
    await this.#isolating({ ids, lat, lng, ts }, (b) => this.#store.appendHistory(b));
    // Samples overwritten while in flight already moved #hHead past them; never move it back.
    this.#hHead = Math.max(this.#hHead, from + n);
    this.#stats.historyWritten += n;
    this.#contact();
  }

  #sampleHistory(id: string, lat: number, lng: number, ts: number): void {
    const last = this.#lastSampled.get(id);
    if (last !== undefined && ts - last < this.#o.historyEveryMs) return;
    this.#lastSampled.set(id, ts);
    const cap = this.#o.maxHistoryBuffered;
    if (this.#hTail - this.#hHead === cap) { this.#hHead++; this.#stats.historyShed++; }
    const k = this.#hTail % cap;
    this.#hIds[k] = id; this.#hLat[k] = lat; this.#hLng[k] = lng; this.#hTs[k] = ts;
    this.#hTail++;
  }

  // Couriers not sampled for a whole interval would be sampled at their next ping anyway: forget them,
  // so the map tracks the active fleet rather than every courier ever seen.
  #pruneSampled(now: number): void {
    const horizon = now - this.#o.historyEveryMs;
    for (const [id, t] of this.#lastSampled) if (t < horizon) this.#lastSampled.delete(id);
  }

  // The buffer is full of distinct couriers: drop the courier that has waited longest (head of the line).
  // Its database row keeps its previous position until its next ping. False when every slot is in flight.
  #shedOldest(): boolean {
    const s = this.#head;
    if (s === NIL) return false;
    this.#unlink(s);
    this.#slotOf.delete(this.#ids[s]!);
    this.#ids[s] = undefined;
    this.#status[s] = undefined;
    this.#free[this.#freeTop++] = s;
    this.#stats.shed++;
    return true;
  }

  #isInFlight(s: number): boolean {
    // In-flight slots are detached from the list: prev and next are NIL while not the sole listed element.
    return this.#prev[s] === NIL && this.#next[s] === NIL && this.#head !== s;
  }

  #append(s: number): void {
    this.#prev[s] = this.#tail;
    this.#next[s] = NIL;
    if (this.#tail === NIL) this.#head = s; else this.#next[this.#tail] = s;
    this.#tail = s;
    this.#listed++;
  }

  #prepend(s: number): void {
    this.#next[s] = this.#head;
    this.#prev[s] = NIL;
    if (this.#head === NIL) this.#tail = s; else this.#prev[this.#head] = s;
    this.#head = s;
    this.#listed++;
  }

  #unlink(s: number): void {
    const p = this.#prev[s], n = this.#next[s];
    if (p === NIL) this.#head = n; else this.#next[p] = n;
    if (n === NIL) this.#tail = p; else this.#prev[n] = p;
    this.#prev[s] = NIL;
    this.#next[s] = NIL;
    this.#listed--;
  }

  #contact(): void {
    this.#lastContact = this.#clock.now();
    this.#consecutiveFailures = 0;
    this.#retryAt = 0;
    this.#setHealthy(true);
  }

  #fail(err: unknown): void {
    this.#stats.failures++;
    this.#consecutiveFailures++;
    this.#stats.lastError = err instanceof Error ? err.message : String(err);
    const backoff = Math.min(this.#o.backoffMaxMs, this.#o.backoffMinMs * 2 ** Math.min(30, this.#consecutiveFailures - 1));
    this.#retryAt = this.#clock.now() + backoff;
    this.#setHealthy(false, err);
  }

  #setHealthy(healthy: boolean, cause?: unknown): void {
    if (this.#healthy === healthy) return;
    this.#healthy = healthy;
    this.#onHealthChange?.(healthy, cause);
  }

  /** Writes a batch; when the store refuses it as invalid, halves it until the refused rows are found and drops them. */
  async #isolating<B extends Batch>(batch: B, write: (b: B) => Promise<void>): Promise<void> {
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

type Batch = { ids: string[]; lat: Float64Array; lng: Float64Array; ts: Float64Array; status?: string[] };

function slice<B extends Batch>(b: B, from: number, to: number): B {
  const out: Batch = { ids: b.ids.slice(from, to), lat: b.lat.slice(from, to), lng: b.lng.slice(from, to), ts: b.ts.slice(from, to) };
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
