/**
 * Sampled position history waiting to be appended (the write-behind's second half).
 *
 *   sample(id, …) ─► at most one sample per courier per `everyMs` of its own timestamps
 *        └─► ring addressed by absolute sequence numbers (slot = seq % capacity);
 *            full → the oldest sample is overwritten (counted as shed)
 *
 *   peek(n) ─► the n oldest, copied ─► appended ─► consume(upTo): they leave the ring
 */

/** Rows for appendHistory. */
export type HistoryBatch = { ids: string[]; lat: Float64Array; lng: Float64Array; ts: Float64Array };

/** Fixed-capacity ring of history samples, oldest overwritten when full. */
export class HistoryRing {
  readonly #everyMs: number;
  readonly #capacity: number;
  readonly #ids: (string | undefined)[];
  readonly #lat: Float64Array;
  readonly #lng: Float64Array;
  readonly #ts: Float64Array;
  #head = 0;
  #tail = 0;
  #shed = 0;
  readonly #lastSampled = new Map<string, number>();

  constructor(capacity: number, everyMs: number) {
    this.#capacity = capacity;
    this.#everyMs = everyMs;
    this.#ids = new Array(capacity);
    this.#lat = new Float64Array(capacity);
    this.#lng = new Float64Array(capacity);
    this.#ts = new Float64Array(capacity);
  }

  /** Samples waiting. */
  get buffered(): number {
    return this.#tail - this.#head;
  }

  /** Samples overwritten before they were appended. */
  get shed(): number {
    return this.#shed;
  }

  /** Keeps this position unless the courier was sampled less than `everyMs` (by `ts`) ago. */
  sample(id: string, lat: number, lng: number, ts: number): void {
    const last = this.#lastSampled.get(id);
    if (last !== undefined && ts - last < this.#everyMs) return;
    this.#lastSampled.set(id, ts);
    const cap = this.#capacity;
    if (this.#tail - this.#head === cap) { this.#head++; this.#shed++; }
    const k = this.#tail % cap;
    this.#ids[k] = id; this.#lat[k] = lat; this.#lng[k] = lng; this.#ts[k] = ts;
    this.#tail++;
  }

  /** Copies the `max` oldest samples; pass `upTo` to consume() once they are stored. */
  peek(max: number): { batch: HistoryBatch; upTo: number } {
    const cap = this.#capacity;
    const from = this.#head;
    const n = Math.min(max, this.#tail - from);
    const ids: string[] = new Array(n);
    const lat = new Float64Array(n), lng = new Float64Array(n), ts = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const k = (from + i) % cap;
      ids[i] = this.#ids[k]!; lat[i] = this.#lat[k]; lng[i] = this.#lng[k]; ts[i] = this.#ts[k];
    }
    return { batch: { ids, lat, lng, ts }, upTo: from + n };
  }

  /** The samples before `upTo` are stored: they leave the ring. */
  consume(upTo: number): void {
    // Samples overwritten while in flight already moved the head past them; never move it back.
    this.#head = Math.max(this.#head, upTo);
  }

  // Couriers not sampled for a whole interval would be sampled at their next ping anyway: forget them,
  // so the map tracks the active fleet rather than every courier ever seen.
  /** Forgets couriers last sampled more than `everyMs` before `now`. */
  prune(now: number): void {
    const horizon = now - this.#everyMs;
    for (const [id, t] of this.#lastSampled) if (t < horizon) this.#lastSampled.delete(id);
  }
}
