/**
 * Per-courier state in slot-indexed typed arrays, owned by one CourierIndex.
 *
 *   upsert(id) ─► allocate: a freed slot, else the next one (arrays grow ×1.5) ─► slotOf[id] = slot
 *   move       ─► place[3·slot ..] = lat, lng, ts · where[2·slot ..] = bucket node, position in it
 *   remove     ─► release: slot back on the free list
 *
 * Arrays are interleaved per slot so a ping touches one cache line of each. The index reads and writes
 * them directly in its hot paths; this class owns their layout, allocation and growth.
 */
import { type Capability, type CourierStatus, type Vehicle, COURIER_STATUSES, VEHICLES, capabilitiesOf } from './courier-attributes.js';
import { STATUS_BITS } from './courier-filter.js';
import { EngineError } from './errors.js';

/** A courier's full state. */
export interface CourierView {
  id: string;
  lat: number;
  lng: number;
  /** Timestamp of the last accepted ping (NaN before the first). */
  ts: number;
  status: CourierStatus;
  vehicle: Vehicle;
  capabilities: Capability[];
  capacity: number;
  /** H3 cell of the current position at the index resolution (undefined before the first ping). */
  cell: string | undefined;
}

/** Slot-indexed courier arrays with an id → slot map; freed slots are reused. */
export class CourierSlots {
  readonly slotOf = new Map<string, number>();
  readonly ids: (string | undefined)[] = [];
  /** Slots handed out so far (live or free); slots at or above it were never used. */
  highWater = 0;
  /** [lat, lng, ts of last accepted ping] per slot (ts −∞ before the first). */
  place: Float64Array;
  /** Packed profile word per slot (courier-filter.ts: status, vehicle, capabilities, capacity). */
  attr: Uint32Array;
  /** [bucket node, position in the bucket] per slot (−1, −1 before the first ping). */
  where: Int32Array;
  private freeSlots: number[] = [];

  constructor(capacity: number) {
    this.place = new Float64Array(3 * capacity);
    this.attr = new Uint32Array(capacity);
    this.where = new Int32Array(2 * capacity);
  }

  /** The slot of a known courier. Throws E_UNKNOWN_COURIER. */
  slotFor(id: string): number {
    const slot = this.slotOf.get(id);
    if (slot === undefined) throw new EngineError('E_UNKNOWN_COURIER', `courier '${id}' is not registered`);
    return slot;
  }

  /** A slot for a new courier: unpositioned, no ping yet, attr left for the caller to set. */
  allocate(id: string): number {
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      slot = this.highWater++;
      if (slot === this.attr.length) this.grow();
    }
    this.slotOf.set(id, slot);
    this.ids[slot] = id;
    this.place[3 * slot + 2] = -Infinity;
    this.where[2 * slot] = -1;
    this.where[2 * slot + 1] = -1;
    return slot;
  }

  /** Frees a courier's slot for reuse (the caller has detached it from its bucket). */
  release(id: string, slot: number): void {
    this.slotOf.delete(id);
    this.ids[slot] = undefined;
    this.freeSlots.push(slot);
  }

  /** The full state of the courier in a slot; `cell` is its bucket's H3 cell, if positioned. */
  view(slot: number, cell: string | undefined): CourierView {
    const a = this.attr[slot];
    const positioned = this.where[2 * slot] >= 0;
    const ts = this.place[3 * slot + 2];
    return {
      id: this.ids[slot] as string,
      lat: positioned ? this.place[3 * slot] : NaN,
      lng: positioned ? this.place[3 * slot + 1] : NaN,
      ts: ts === -Infinity ? NaN : ts,
      status: COURIER_STATUSES[a & STATUS_BITS],
      vehicle: VEHICLES[(a >>> 4) & 0xf],
      capabilities: capabilitiesOf((a >>> 8) & 0xff),
      capacity: a >>> 16,
      cell: positioned ? cell : undefined,
    };
  }

  /** Calls fn for every positioned courier, in slot order. */
  forEachPositioned(fn: (id: string, lat: number, lng: number, status: CourierStatus, ts: number) => void): void {
    for (let s = 0; s < this.highWater; s++) {
      const id = this.ids[s];
      if (id !== undefined && this.where[2 * s] >= 0) fn(id, this.place[3 * s], this.place[3 * s + 1], COURIER_STATUSES[this.attr[s] & STATUS_BITS], this.place[3 * s + 2]);
    }
  }

  /** Bytes held in the slot arrays. */
  byteSize(): number {
    return this.place.byteLength + this.attr.byteLength + this.where.byteLength;
  }

  private grow(): void {
    const cap = Math.ceil(this.attr.length * 1.5);
    this.place = grown(this.place, new Float64Array(3 * cap));
    this.attr = grown(this.attr, new Uint32Array(cap));
    this.where = grown(this.where, new Int32Array(2 * cap));
  }
}

function grown<T extends Float64Array | Uint32Array | Int32Array>(old: T, next: T): T {
  next.set(old as never);
  return next;
}
