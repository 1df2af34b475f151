/**
 * The bounded, coalescing buffer of courier positions waiting to be written (the write-behind's first half).
 *
 *   record(key, id, …) ─► courier key (CourierKeys: a small integer) → slot over typed arrays, a doubly linked
 *        list in arrival order (head = oldest); one slot per courier: a newer ping overwrites in place and keeps
 *        its place in line;
 *        full of distinct couriers → the oldest-waiting courier's entry is shed (counted)
 *
 *   take(n) ─► the n oldest, detached from the list (in flight) ─► written  → release(): slots freed,
 *                                                                             re-recorded ones back in line
 *                                                                 ─► failed → putBack(): back to the head, in order
 */

/** One batch of positions as the store takes it; `status` only when some row has one. */
export type PositionBatch = { ids: string[]; lat: Float64Array; lng: Float64Array; ts: Float64Array; status?: string[] };

const NIL = -1;

/** Fixed-capacity map of courier key → latest position, in arrival order, with at most one batch in flight. */
export class PositionBuffer {
  /** Slot per courier key (NIL: none waiting); grown on demand. */
  #slotOf = new Int32Array(1024).fill(NIL);
  readonly #keyOf: Int32Array;
  readonly #ids: (string | undefined)[];
  readonly #status: (string | undefined)[];
  /** [lat, lng, ts] per slot, side by side: a ping touches one cache line of them, not three. */
  readonly #place: Float64Array;
  readonly #next: Int32Array;
  readonly #prev: Int32Array;
  readonly #dirty: Uint8Array; // in flight and re-recorded since the batch was copied
  readonly #free: Int32Array;
  #freeTop: number;
  #head = NIL;
  #tail = NIL;
  #listed = 0;
  #flight: Int32Array | null = null; // slots of the batch in flight, in order; detached from the list
  #coalesced = 0;
  #shed = 0;
  #staleDropped = 0;

  constructor(capacity: number) {
    this.#keyOf = new Int32Array(capacity);
    this.#ids = new Array(capacity);
    this.#status = new Array(capacity);
    this.#place = new Float64Array(3 * capacity);
    this.#next = new Int32Array(capacity);
    this.#prev = new Int32Array(capacity);
    this.#dirty = new Uint8Array(capacity);
    this.#free = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.#free[i] = capacity - 1 - i; // pop order 0, 1, 2, …
    this.#freeTop = capacity;
  }

  /** Couriers waiting in line (the batch in flight excluded). */
  get waiting(): number {
    return this.#listed;
  }

  /** Couriers in the batch in flight. */
  get inFlight(): number {
    return this.#flight?.length ?? 0;
  }

  /** Pings merged into an entry already waiting. */
  get coalesced(): number {
    return this.#coalesced;
  }

  /** Couriers dropped because the buffer was full of distinct couriers. */
  get shed(): number {
    return this.#shed;
  }

  /** Pings older than the one already waiting, dropped. */
  get staleDropped(): number {
    return this.#staleDropped;
  }

  /**
   * Keeps a courier's latest position; O(1). `key` is the courier's small integer (CourierKeys); a key now
   * held by another id (the courier was removed and its key reused) replaces the waiting entry outright.
   * `status` omitted keeps the one waiting.
   */
  record(key: number, id: string, lat: number, lng: number, ts: number, status?: string): void {
    if (key >= this.#slotOf.length) this.#growKeys(key);
    let s = this.#slotOf[key];
    // ids are the key holder's own strings (CourierKeys.idOf): the same courier compares by reference
    if (s !== NIL && this.#ids[s] === id) {
      if (ts < this.#place[3 * s + 2]) { this.#staleDropped++; return; }
      this.#coalesced++;
      if (this.#flight !== null && this.#isInFlight(s)) this.#dirty[s] = 1;
    } else if (s !== NIL) {
      this.#ids[s] = id;
      this.#status[s] = undefined;
      if (this.#flight !== null && this.#isInFlight(s)) this.#dirty[s] = 1;
    } else {
      if (this.#freeTop === 0 && !this.#shedOldest()) { this.#shed++; return; }
      s = this.#free[--this.#freeTop];
      this.#slotOf[key] = s;
      this.#keyOf[s] = key;
      this.#ids[s] = id;
      this.#status[s] = undefined;
      this.#append(s);
    }
    const place = this.#place;
    place[3 * s] = lat;
    place[3 * s + 1] = lng;
    place[3 * s + 2] = ts;
    if (status !== undefined) this.#status[s] = status;
  }

  /** Drops the entry waiting under `key` for `id` (not a batch already in flight, but no re-queue after it). */
  forget(key: number, id: string): void {
    const s = key < this.#slotOf.length ? this.#slotOf[key] : NIL;
    if (s === NIL || this.#ids[s] !== id) return;
    if (this.#flight !== null && this.#isInFlight(s)) {
      // release() frees it, since it is no longer dirty; the key no longer finds it meanwhile
      this.#dirty[s] = 0;
      this.#slotOf[key] = NIL;
      this.#keyOf[s] = NIL; // release() then clears nothing a later holder of the key owns
      return;
    }
    this.#unlink(s);
    this.#slotOf[key] = NIL;
    this.#ids[s] = undefined;
    this.#status[s] = undefined;
    this.#free[this.#freeTop++] = s;
  }

  /** Copies the `max` oldest entries out as the batch in flight; call release() or putBack() after. */
  take(max: number): PositionBatch {
    if (this.#flight !== null) throw new Error('PositionBuffer: a batch is already in flight; call release() or putBack() first');
    const n = Math.min(max, this.#listed);
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
      lat[i] = this.#place[3 * s]; lng[i] = this.#place[3 * s + 1]; ts[i] = this.#place[3 * s + 2];
      status[i] = this.#status[s];
      if (status[i] !== undefined) anyStatus = true;
    }
    this.#flight = slots;
    // A row without a status in a batch with statuses is written as null: the store keeps the stored status.
    return anyStatus ? { ids, lat, lng, ts, status: status as string[] } : { ids, lat, lng, ts };
  }

  /** The batch in flight was written: its slots are freed, except those re-recorded meanwhile (back in line). */
  release(): void {
    const slots = this.#flight;
    if (slots === null) return;
    this.#flight = null;
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i];
      if (this.#dirty[s] === 1) { this.#dirty[s] = 0; this.#append(s); continue; }
      this.#unkey(s);
      this.#ids[s] = undefined;
      this.#status[s] = undefined;
      this.#free[this.#freeTop++] = s;
    }
  }

  /** The batch in flight was not written: it goes back to the head of the line, in order. */
  putBack(): void {
    const slots = this.#flight;
    if (slots === null) return;
    for (let i = slots.length - 1; i >= 0; i--) { this.#dirty[slots[i]] = 0; this.#prepend(slots[i]); }
    this.#flight = null;
  }

  // The buffer is full of distinct couriers: drop the courier that has waited longest (head of the line).
  // Its database row keeps its previous position until its next ping. False when every slot is in flight.
  #shedOldest(): boolean {
    const s = this.#head;
    if (s === NIL) return false;
    this.#unlink(s);
    this.#unkey(s);
    this.#ids[s] = undefined;
    this.#status[s] = undefined;
    this.#free[this.#freeTop++] = s;
    this.#shed++;
    return true;
  }

  #unkey(s: number): void {
    const key = this.#keyOf[s];
    if (key !== NIL) this.#slotOf[key] = NIL;
  }

  #growKeys(key: number): void {
    const grown = new Int32Array(Math.max(2 * this.#slotOf.length, key + 1)).fill(NIL);
    grown.set(this.#slotOf);
    this.#slotOf = grown;
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
}
