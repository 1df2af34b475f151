/**
 * The live index of moving couriers.
 *
 *   move(id, lat, lng, ts)
 *     │ validate (E_BAD_COORDINATE / E_BAD_TIMESTAMP) ─ stale ts? count it, change nothing
 *     │ unit vector of the new point
 *     ├─ inside the bucket's inscribed circle ─────────────► overwrite xyz in place (no H3, no tree)
 *     └─ else latLngToCell ─ same cell ───────────────────► overwrite xyz in place
 *                          └ other cell ─► swap-remove from old bucket, append to new (ancestors only if the cell is new)
 *     ├─ speed sample → CellSpeeds (res-7 parent cached on the bucket)
 *     └─ fences whose bbox touches the cell (cached per bucket) → enter / exit callbacks
 *
 * Per-courier state lives in slot-indexed typed arrays (courier-slots.ts); positions are duplicated into
 * the courier's bucket so nearest scans read contiguous memory. Fence membership: courier-fences.ts.
 */
import type { Area, AreaInput } from './area.js';
import { toArea } from './area.js';
import type { CellSpeeds } from './cell-speeds.js';
import { type CourierProfile, type CourierStatus, type Vehicle, COURIER_STATUSES, VEHICLES, statusCode } from './courier-attributes.js';
import { type FenceEvent, CourierFences } from './courier-fences.js';
import { type CourierFilter, STATUS_BITS, compileFilter, encodeAttr, passes, scanCouriers } from './courier-filter.js';
import { type CourierView, CourierSlots } from './courier-slots.js';
import { EngineError, assertCoordinate } from './errors.js';
import { chord2ToMeters, metersToChord2, writeUnitVector } from './geodesy.js';
import type { GeofenceIndex } from './geofence-index.js';
import { H3Buckets, INSIDE } from './h3-buckets.js';
import { widen } from './rtree-nearest.js';
import { TopK } from './top-k.js';

export type { FenceEvent } from './courier-fences.js';
export type { CourierFilter } from './courier-filter.js';
export type { CourierView } from './courier-slots.js';

/** Options of a nearest query. */
export interface NearbyOptions extends CourierFilter {
  /** How many results at most (default 10). */
  k?: number;
  /** Great-circle radius in metres (default unbounded). */
  radius?: number;
  /** Learned cell speeds: each hit then carries `speed`, read from its bucket's cached speed cell. */
  speeds?: CellSpeeds;
}

/** One courier in a query result. */
export interface CourierHit {
  id: string;
  lat: number;
  lng: number;
  /** Great-circle metres from the query point. */
  distance: number;
  status: CourierStatus;
  vehicle: Vehicle;
  /** Learned m/s of the courier's speed cell (NaN: no estimate); only when the query passed `speeds`. */
  speed?: number;
}

/** What a move did. */
export type MoveOutcome = 'moved' | 'moved-cell' | 'stale';

/** Construction options; collaborators are optional and owned by the caller. */
export interface CourierIndexOptions {
  /** H3 resolution of the buckets: res 9 ≈ 0.1 km² cells (a city block), a few dozen couriers each downtown. */
  resolution?: number;
  fences?: GeofenceIndex;
  speeds?: CellSpeeds;
  onFenceEvent?: (event: FenceEvent) => void;
  /** Initial slot capacity; arrays grow ×1.5 beyond it. */
  initialCapacity?: number;
}

/** Counters for monitoring and benchmarks. */
export interface CourierIndexStats {
  couriers: number;
  positioned: number;
  cells: number;
  moves: number;
  cellChanges: number;
  staleIgnored: number;
}

/** Moving couriers bucketed by H3 cell, with nearest and area queries. */
export class CourierIndex {
  readonly resolution: number;
  private readonly fences: CourierFences | undefined;
  private readonly speeds: CellSpeeds | undefined;
  private readonly speedResolution: number;
  private readonly slots: CourierSlots;
  private readonly cells: H3Buckets;
  private top = new TopK();
  // where a query's hits are drained, best first: reused, so a query allocates only its result objects
  private hitSlots = new Int32Array(64);
  private hitKeys = new Float64Array(64);
  /** Scratch for the unit vector of a ping or query point (no allocation per call). */
  private readonly unit = new Float64Array(3);
  private counters = { moves: 0, cellChanges: 0, staleIgnored: 0, positioned: 0 };
  /** Bumped on every mutation; snapshots carry it so readers can tell how fresh they are. */
  version = 0;

  constructor(options: CourierIndexOptions = {}) {
    this.resolution = options.resolution ?? 9;
    if (!Number.isInteger(this.resolution) || this.resolution < 0 || this.resolution > 15) {
      throw new Error(`resolution must be an integer 0..15, got ${String(options.resolution)}`);
    }
    this.speeds = options.speeds;
    this.speedResolution = options.speeds?.resolution ?? 7;
    if (this.speeds !== undefined && this.speedResolution > this.resolution) {
      throw new Error(`courier resolution ${this.resolution} is coarser than the speed cells (res ${this.speedResolution}): raise resolution or lower the CellSpeeds resolution`);
    }
    const cap = Math.max(16, options.initialCapacity ?? 1024);
    this.cells = new H3Buckets(this.resolution, cap);
    this.slots = new CourierSlots(cap);
    this.fences = options.fences === undefined ? undefined : new CourierFences(options.fences, this.cells, options.onFenceEvent);
  }

  /** Number of couriers known (with or without a position). */
  get size(): number {
    return this.slots.slotOf.size;
  }

  /** True when the courier is known. */
  has(id: string): boolean {
    return this.slots.slotOf.has(id);
  }

  /**
   * A known courier's slot (a small integer, reused after the courier is removed), or -1: lets a per-ping
   * consumer index arrays instead of hashing the id into a map of its own (store/write-behind.ts).
   */
  keyOf(id: string): number {
    return this.slots.slotOf.get(id) ?? -1;
  }

  /** The id held in a slot: the index's own string, so holders of it compare ids by reference. */
  idOf(key: number): string | undefined {
    return this.slots.ids[key];
  }

  /** Creates or updates a courier's profile; position and last ping are kept. Throws E_BAD_PROFILE. */
  upsert(id: string, profile: CourierProfile): void {
    if (typeof id !== 'string' || id.length === 0) throw new EngineError('E_BAD_PROFILE', 'courier id must be a non-empty string');
    const existing = this.slots.slotOf.get(id);
    const fallbackStatus = existing === undefined ? 'offline' : COURIER_STATUSES[this.slots.attr[existing] & STATUS_BITS];
    const attr = encodeAttr(profile, fallbackStatus);
    const slot = existing ?? this.slots.allocate(id);
    this.setAttr(slot, attr);
  }

  /** Sets a courier's status. Throws E_UNKNOWN_COURIER / E_BAD_PROFILE. */
  setStatus(id: string, status: CourierStatus): void {
    const slot = this.slots.slotFor(id);
    const code = statusCode(status);
    this.setAttr(slot, (this.slots.attr[slot] & ~STATUS_BITS) | code);
  }

  /**
   * Applies a ping. A ping older than the last accepted one is ignored and counted ('stale').
   * Throws E_BAD_COORDINATE / E_BAD_TIMESTAMP / E_UNKNOWN_COURIER, leaving the courier untouched.
   */
  move(id: string, lat: number, lng: number, ts: number): MoveOutcome {
    const slots = this.slots;
    const slot = slots.slotOf.get(id);
    if (slot === undefined) throw new EngineError('E_UNKNOWN_COURIER', `courier '${id}' is not registered: upsert its profile first`);
    assertCoordinate(lat, lng);
    if (typeof ts !== 'number' || !Number.isFinite(ts)) throw new EngineError('E_BAD_TIMESTAMP', `ping timestamp must be a finite number of ms, got ${String(ts)}`);
    // only upsert regrows these arrays, and fence callbacks run after the last write: safe to hold
    const place = slots.place;
    const where = slots.where;
    const prevTs = place[3 * slot + 2];
    if (ts < prevTs) {
      this.counters.staleIgnored++;
      return 'stale';
    }
    const v = this.unit;
    writeUnitVector(lat, lng, v, 0);
    const x = v[0];
    const y = v[1];
    const z = v[2];
    this.counters.moves++;
    this.version++;
    const cells = this.cells;
    let bno = where[2 * slot];
    let outcome: MoveOutcome = 'moved';
    if (bno >= 0) {
      const at = cells.info[4 * bno] + where[2 * slot + 1];
      const xyz = cells.pool.xyz;
      if (this.speeds !== undefined) {
        const ox = xyz[3 * at] - x;
        const oy = xyz[3 * at + 1] - y;
        const oz = xyz[3 * at + 2] - z;
        this.speeds.observe(cells.speedCellOf(bno, this.speedResolution), chord2ToMeters(ox * ox + oy * oy + oz * oz), ts - prevTs);
      }
      // cheapest test first: inscribed circle, then the hexagon's edge planes, then the neighbour
      // across the crossed edge; H3 only when those cannot tell
      const edge = cells.inside(bno, x, y, z) ? INSIDE : cells.locate(bno, x, y, z);
      let target = edge === INSIDE ? bno : -1;
      let cell: string | undefined;
      if (edge >= 0) {
        const nb = cells.neighbourAcross(bno, edge);
        if (nb >= 0 && cells.locate(nb, x, y, z) === INSIDE) target = nb;
      }
      if (target < 0) {
        cell = cells.cellOf(lat, lng);
        if (cell === cells.cells[bno]) {
          target = bno;
          cells.cover(bno, x, y, z);
        }
      }
      if (target === bno) {
        xyz[3 * at] = x;
        xyz[3 * at + 1] = y;
        xyz[3 * at + 2] = z;
      } else {
        const from = bno;
        this.detach(slot);
        bno = target >= 0 ? this.attachTo(slot, target, x, y, z) : this.attach(slot, cell as string, x, y, z);
        if (edge >= 0 && target < 0) cells.learnNeighbour(from, edge, bno);
        outcome = 'moved-cell';
        this.counters.cellChanges++;
      }
    } else {
      bno = this.attach(slot, cells.cellOf(lat, lng), x, y, z);
      this.counters.positioned++;
      outcome = 'moved-cell';
    }
    place[3 * slot] = lat;
    place[3 * slot + 1] = lng;
    place[3 * slot + 2] = ts;
    if (this.fences !== undefined) this.fences.update(slot, id, bno, lat, lng, ts);
    return outcome;
  }

  /** Removes a courier; returns false when it was unknown. Emits exit events for fences it was inside. */
  remove(id: string): boolean {
    const slot = this.slots.slotOf.get(id);
    if (slot === undefined) return false;
    if (this.slots.where[2 * slot] >= 0) {
      this.detach(slot);
      this.counters.positioned--;
    }
    this.fences?.leave(slot, id, this.slots.place[3 * slot + 2]);
    this.slots.release(id, slot);
    this.version++;
    return true;
  }

  /** A courier's full state, or undefined. */
  get(id: string): CourierView | undefined {
    const slot = this.slots.slotOf.get(id);
    if (slot === undefined) return undefined;
    const bno = this.slots.where[2 * slot];
    return this.slots.view(slot, bno >= 0 ? this.cells.cells[bno] : undefined);
  }

  /**
   * Position and status of a courier written into `out` (no allocation: for per-ping paths such as map
   * fan-out); false when the courier is unknown or has no position yet.
   */
  peek(id: string, out: { lat: number; lng: number; status: CourierStatus }): boolean {
    const slots = this.slots;
    const slot = slots.slotOf.get(id);
    if (slot === undefined || slots.where[2 * slot] < 0) return false;
    out.lat = slots.place[3 * slot];
    out.lng = slots.place[3 * slot + 1];
    out.status = COURIER_STATUSES[slots.attr[slot] & STATUS_BITS];
    return true;
  }

  /** Ids of the fences a courier is inside, sorted. */
  fencesOf(id: string): readonly string[] {
    const slot = this.slots.slotOf.get(id);
    return slot === undefined || this.fences === undefined ? [] : this.fences.of(slot);
  }

  /**
   * The k nearest positioned couriers matching the filter, nearest first, with exact great-circle metres.
   * Ties in distance are broken by internal slot, so equal points come back in a stable order.
   */
  nearby(lat: number, lng: number, options: NearbyOptions = {}): CourierHit[] {
    assertCoordinate(lat, lng);
    const k = options.k ?? 10;
    const radius = options.radius ?? Infinity;
    if (!Number.isInteger(k) || k < 0) throw new EngineError('E_BAD_QUERY', `k must be a non-negative integer, got ${String(k)}`);
    if (typeof radius !== 'number' || !(radius >= 0)) throw new EngineError('E_BAD_QUERY', `radius must be >= 0 metres, got ${String(radius)}`);
    if (k === 0 || this.counters.positioned === 0) return [];
    const filter = compileFilter(options, this.slots.slotOf);
    const v = this.unit;
    writeUnitVector(lat, lng, v, 0);
    const qx = v[0];
    const qy = v[1];
    const qz = v[2];
    const radius2 = metersToChord2(radius);
    const top = this.top;
    top.reset(Math.min(k, this.counters.positioned));
    const limit = (): number => {
      const b = top.bound();
      return widen(b < radius2 ? b : radius2);
    };
    const cells = this.cells;
    // subtree status counts bound the k-th distance early, but only when status is the whole filter
    const statusOnly = filter.capsRequired === 0 && filter.vehicleMask === 0xff && filter.minCapacity === 0 && filter.excludeSlots === undefined;
    cells.walk(qx, qy, qz, limit, (b) => scanCouriers(cells.pool.xyz, cells.pool.attrs, cells.pool.slots, cells.info[4 * b], cells.info[4 * b] + cells.info[4 * b + 1], qx, qy, qz, filter, radius2, top), statusOnly ? k : 0, filter.statusMask & 0xf);
    const n = top.size;
    if (n > this.hitSlots.length) {
      this.hitSlots = new Int32Array(n);
      this.hitKeys = new Float64Array(n);
    }
    const slots = this.hitSlots;
    const keys = this.hitKeys;
    top.drainSorted(slots, keys);
    const { ids, place, attr, where } = this.slots;
    // per hit, not per id: the bucket is at hand, so no id → slot lookup (a cache miss each under load)
    const speeds = options.speeds;
    const out: CourierHit[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const s = slots[i];
      const a = attr[s];
      const id = ids[s] as string;
      const lat = place[3 * s];
      const lng = place[3 * s + 1];
      const distance = chord2ToMeters(keys[i]);
      const status = COURIER_STATUSES[a & STATUS_BITS];
      const vehicle = VEHICLES[(a >>> 4) & 0xf];
      // one object literal per shape: a speed added afterwards would move every hit through a map transition
      out[i] =
        speeds === undefined
          ? { id, lat, lng, distance, status, vehicle }
          : { id, lat, lng, distance, status, vehicle, speed: Math.fround(speeds.metersPerSecondOf(cells.speedCellOf(where[2 * s], speeds.resolution))) };
    }
    return out;
  }

  /** Ids of positioned couriers inside a bbox or polygon that match the filter (unordered). */
  within(area: AreaInput | Area, filter: CourierFilter = {}): string[] {
    const region = 'contains' in area && 'boxes' in area ? (area as Area) : toArea(area as AreaInput);
    const f = compileFilter(filter, this.slots.slotOf);
    const cells = this.cells;
    const pool = cells.pool;
    const { ids, place } = this.slots;
    const seen = new Set<number>();
    const out: string[] = [];
    for (const box of region.boxes) {
      cells.forEachInBox(box, (b) => {
        if (seen.has(b)) return;
        seen.add(b);
        for (let i = cells.info[4 * b], end = i + cells.info[4 * b + 1]; i < end; i++) {
          const s = pool.slots[i];
          if (passes(pool.attrs[i], s, f) && region.contains(place[3 * s], place[3 * s + 1])) out.push(ids[s] as string);
        }
      });
    }
    return out;
  }

  /** Ids of every courier, positioned or not, that matches the filter (slot order): for lists over the whole fleet. */
  matching(filter: CourierFilter = {}): string[] {
    const f = compileFilter(filter, this.slots.slotOf);
    const { ids, attr, highWater } = this.slots;
    const out: string[] = [];
    for (let s = 0; s < highWater; s++) {
      const id = ids[s];
      if (id !== undefined && passes(attr[s], s, f)) out.push(id);
    }
    return out;
  }

  /** Calls fn for every positioned courier (slot order), with its packed state; for snapshots and persistence. */
  forEachPositioned(fn: (id: string, lat: number, lng: number, status: CourierStatus, ts: number) => void): void {
    this.slots.forEachPositioned(fn);
  }

  /** Counters for monitoring. */
  stats(): CourierIndexStats {
    return { couriers: this.slots.slotOf.size, positioned: this.counters.positioned, cells: this.cells.occupied, moves: this.counters.moves, cellChanges: this.counters.cellChanges, staleIgnored: this.counters.staleIgnored };
  }

  /** Bytes held in typed arrays (slot arrays plus buckets); JS-heap costs of ids come on top. */
  typedBytes(): number {
    return this.slots.byteSize() + this.cells.byteSize();
  }

  /** Read-only view of the arrays, for the snapshot writer in this package. */
  get internals(): CourierInternals {
    const { ids, place, attr } = this.slots;
    return { ids, place, attr, cells: this.cells, version: this.version, resolution: this.resolution };
  }

  private setAttr(slot: number, attr: number): void {
    const slots = this.slots;
    const before = slots.attr[slot];
    slots.attr[slot] = attr;
    const bno = slots.where[2 * slot];
    if (bno >= 0) {
      this.cells.pool.attrs[this.cells.info[4 * bno] + slots.where[2 * slot + 1]] = attr;
      if ((before & STATUS_BITS) !== (attr & STATUS_BITS)) {
        this.cells.countStatus(bno, before & STATUS_BITS, -1);
        this.cells.countStatus(bno, attr & STATUS_BITS, 1);
      }
    }
    this.version++;
  }

  private attach(slot: number, cell: string, x: number, y: number, z: number): number {
    return this.attachTo(slot, this.cells.bucketFor(cell), x, y, z);
  }

  private attachTo(slot: number, b: number, x: number, y: number, z: number): number {
    const cells = this.cells;
    const where = this.slots.where;
    const a = this.slots.attr[slot];
    cells.revive(b);
    cells.cover(b, x, y, z);
    where[2 * slot] = b;
    where[2 * slot + 1] = cells.add(b, slot, x, y, z, a);
    cells.countStatus(b, a & STATUS_BITS, 1);
    return b;
  }

  private detach(slot: number): void {
    const where = this.slots.where;
    const pos = where[2 * slot + 1];
    const b = where[2 * slot];
    this.cells.countStatus(b, this.slots.attr[slot] & STATUS_BITS, -1); // before removeAt, which may prune the bucket
    const moved = this.cells.removeAt(b, pos);
    if (moved >= 0) where[2 * moved + 1] = pos;
    where[2 * slot] = -1;
    where[2 * slot + 1] = -1;
  }
}

/** Read-only view of the index arrays for the snapshot writer. */
export interface CourierInternals {
  ids: readonly (string | undefined)[];
  /** [lat, lng, ts] per slot. */
  place: Float64Array;
  attr: Uint32Array;
  cells: H3Buckets;
  version: number;
  resolution: number;
}
