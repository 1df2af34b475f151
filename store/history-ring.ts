/**
 * Sampled position history waiting to be appended (the write-behind's second half).
 *
 *   sample(key, id, …) ─► at most one sample per courier per `everyMs` of its own timestamps (the last
 *        sample time is kept per courier key in a typed array: no map to hash the id into per ping)
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
  /** Timestamp of the last sample per courier key (-∞: none yet); grown on demand. */
  #lastSampled = new Float64Array(1024).fill(-Infinity);

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

  /**
   * Keeps this position unless the courier (by `key`, its small integer: CourierKeys) was sampled less than
   * `everyMs` (by `ts`) ago. A key handed to another courier after a removal inherits the last sample time,
   * which delays that courier's first sample by at most `everyMs`.
   */
  sample(key: number, id: string, lat: number, lng: number, ts: number): void {
    if (key >= this.#lastSampled.length) this.#growKeys(key);
    if (ts - this.#lastSampled[key] < this.#everyMs) return;
    this.#lastSampled[key] = ts;
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
    const ids: string[] = [];
    const lat = new Float64Array(n), lng = new Float64Array(n), ts = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const k = (from + i) % cap;
      const id = this.#ids[k];
      if (id === undefined) continue; // forgotten
      const j = ids.length;
      ids.push(id); lat[j] = this.#lat[k]; lng[j] = this.#lng[k]; ts[j] = this.#ts[k];
    }
    const m = ids.length;
    const batch = m === n ? { ids, lat, lng, ts } : { ids, lat: lat.subarray(0, m), lng: lng.subarray(0, m), ts: ts.subarray(0, m) };
    return { batch, upTo: from + n };
  }

  /** Drops the waiting samples of one courier (deleted); a scan of the ring, for a rare admin write. */
  forget(id: string): void {
    const cap = this.#capacity;
    for (let q = this.#head; q < this.#tail; q++) if (this.#ids[q % cap] === id) this.#ids[q % cap] = undefined;
  }

  /** The samples before `upTo` are stored: they leave the ring. */
  consume(upTo: number): void {
    // Samples overwritten while in flight already moved the head past them; never move it back.
    this.#head = Math.max(this.#head, upTo);
  }

  #growKeys(key: number): void {
    const grown = new Float64Array(Math.max(2 * this.#lastSampled.length, key + 1)).fill(-Infinity);
    grown.set(this.#lastSampled);
    this.#lastSampled = grown;
  }
}
