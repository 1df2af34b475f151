/**
 * Slot bookkeeping and queries shared by the indexes of nearly static points (donors, sites).
 *
 *   upsert(id) ──► slot (freed slots reused) ──► unit vector + lat/lng in typed arrays
 *                                             └► one rbush point item, re-inserted only when the point moves
 *   nearest()  ──► RTreeNearest walk ──► exact chord² per item ──► TopK by (chord², slot)
 *                                                                └► ties re-ranked by id
 *   within()   ──► rbush search per area box ──► exact area.contains()
 *
 * The owning index keeps its own per-slot attributes in typed arrays it grows with `grow*()`.
 */
import RBush from 'rbush';
import { type AreaInput, toArea } from './area.js';
import { assertCoordinate } from './errors.js';
import { chord2, metersToChord2, writeUnitVector } from './geodesy.js';
import { RTreeNearest, widen } from './rtree-nearest.js';
import { TopK } from './top-k.js';

/** The rbush item of one point. */
export interface PointItem {
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
  slot: number;
}

/** Hits of a nearest query, best first: slots and their squared chords. */
export interface NearestHits {
  slots: number[];
  chord2s: number[];
}

/** Query bounds shared by every `nearby`. */
export interface NearestBounds {
  /** At most this many hits (default 10). */
  k?: number;
  /** Great-circle metres from the query point (default Infinity). */
  radius?: number;
}

/** Hits returned when k is 10 and nothing else is said. */
export const DEFAULT_K = 10;


/** Ids, positions and an rbush of point items, addressed by reusable integer slots. */
export class PointSlots {
  /** Slot of each live id. */
  readonly slotOf = new Map<string, number>();
  /** Id held in each slot ('' when free). */
  readonly ids: string[] = [];
  /** Unit vectors, three per slot. */
  xyz: Float64Array<ArrayBuffer>;
  lat: Float64Array<ArrayBuffer>;
  lng: Float64Array<ArrayBuffer>;
  readonly tree = new RBush<PointItem>();
  private items: (PointItem | undefined)[] = [];
  private free: number[] = [];
  private used = 0;
  private readonly walker = new RTreeNearest<PointItem>();
  private readonly top = new TopK();
  private readonly q = new Float64Array(3);
  private limitC2 = Infinity;
  private accept: ((slot: number) => boolean) | undefined;
  private candSlots: number[] = [];
  private candKeys: number[] = [];

  constructor(initialCapacity = 64) {
    this.xyz = new Float64Array(initialCapacity * 3);
    this.lat = new Float64Array(initialCapacity);
    this.lng = new Float64Array(initialCapacity);
  }

  /** Number of live points. */
  get size(): number {
    return this.slotOf.size;
  }

  /** Slots ever handed out (an upper bound on every live slot + 1); owners size their arrays to it. */
  get capacity(): number {
    return this.lat.length;
  }

  /** Slot for `id`, taking a free one (position unset) when the id is new. */
  acquire(id: string): number {
    const known = this.slotOf.get(id);
    if (known !== undefined) return known;
    const slot = this.free.length > 0 ? (this.free.pop() as number) : this.used++;
    if (slot >= this.lat.length) this.growTo(slot + 1);
    this.slotOf.set(id, slot);
    this.ids[slot] = id;
    return slot;
  }

  /** Sets a slot's position; the tree is touched only when the point actually moves. Validates first. */
  place(slot: number, lat: number, lng: number): void {
    assertCoordinate(lat, lng);
    const item = this.items[slot];
    if (item !== undefined) {
      if (this.lat[slot] === lat && this.lng[slot] === lng) return;
      this.tree.remove(item);
    }
    this.lat[slot] = lat;
    this.lng[slot] = lng;
    writeUnitVector(lat, lng, this.xyz, slot * 3);
    const next = item ?? { minX: lng, minY: lat, maxX: lng, maxY: lat, slot };
    next.minX = next.maxX = lng;
    next.minY = next.maxY = lat;
    this.items[slot] = next;
    this.tree.insert(next);
  }

  /** Frees the slot of `id`; returns it, or -1 when the id is unknown. */
  release(id: string): number {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return -1;
    const item = this.items[slot];
    if (item !== undefined) this.tree.remove(item);
    this.items[slot] = undefined;
    this.slotOf.delete(id);
    this.ids[slot] = '';
    this.free.push(slot);
    return slot;
  }

  /**
   * The k nearest accepted slots within radius, ordered by (distance, id). `accept` runs only on points
   * already inside the current bound, so a costly filter is called rarely.
   */
  nearest(lat: number, lng: number, bounds: NearestBounds, accept?: (slot: number) => boolean): NearestHits {
    assertCoordinate(lat, lng);
    const k = bounds.k ?? DEFAULT_K;
    const radius = bounds.radius ?? Infinity;
    if (!(Number.isInteger(k) && k >= 0)) throw new Error(`k must be a non-negative integer, got ${String(k)}`);
    if (typeof radius !== 'number' || !(radius >= 0)) throw new Error(`radius must be metres >= 0 (or Infinity), got ${String(radius)}`);
    const n = Math.min(k, this.size);
    if (n === 0) return { slots: [], chord2s: [] };
    writeUnitVector(lat, lng, this.q, 0);
    this.limitC2 = metersToChord2(radius);
    this.accept = accept;
    this.top.reset(n);
    this.candSlots.length = 0;
    this.candKeys.length = 0;
    try {
      this.walker.walk(this.tree, lat, lng, this.limit, this.visit);
    } finally {
      this.accept = undefined;
    }
    const slots: number[] = [];
    const keys: number[] = [];
    const m = this.top.drainSorted(slots, keys);
    return m === 0 ? { slots, chord2s: keys } : this.rankTies(slots, keys, m);
  }

  /** Slots of the live points inside `area` (order unspecified); throws E_BAD_GEOMETRY on a bad area. */
  within(input: AreaInput): number[] {
    const area = toArea(input);
    const out: number[] = [];
    const seen = area.boxes.length > 1 ? new Set<number>() : undefined;
    for (const b of area.boxes) {
      for (const item of this.tree.search({ minX: b.minLng, minY: b.minLat, maxX: b.maxLng, maxY: b.maxLat })) {
        const s = item.slot;
        if (seen !== undefined) {
          if (seen.has(s)) continue;
          seen.add(s);
        }
        if (area.contains(this.lat[s], this.lng[s])) out.push(s);
      }
    }
    return out;
  }

  private readonly limit = (): number => widen(Math.min(this.limitC2, this.top.bound()));

  private readonly visit = (item: PointItem): void => {
    const s = item.slot;
    const o = s * 3;
    const xyz = this.xyz;
    const q = this.q;
    const c = chord2(q[0], q[1], q[2], xyz[o], xyz[o + 1], xyz[o + 2]);
    if (c > this.limitC2 || c > this.top.bound()) return;
    if (this.accept !== undefined && !this.accept(s)) return;
    this.top.push(c, s);
    this.candSlots.push(s);
    this.candKeys.push(c);
  };

  // TopK breaks ties by slot; every point tying the worst kept key was recorded as a candidate (the bound
  // only shrinks towards that key), so swap the slot-chosen ties for the id-chosen ones and order by id.
  private rankTies(slots: number[], keys: number[], m: number): NearestHits {
    const worst = keys[m - 1];
    let tied = false;
    for (let i = 1; i < m && !tied; i++) tied = keys[i] === keys[i - 1];
    let boundaryTies = 0;
    for (let i = 0; i < this.candKeys.length; i++) if (this.candKeys[i] === worst) boundaryTies++;
    let keptAtWorst = 0;
    for (let i = m - 1; i >= 0 && keys[i] === worst; i--) keptAtWorst++;
    if (!tied && boundaryTies === keptAtWorst) return { slots, chord2s: keys };
    const order: number[] = [];
    for (let i = 0; i < m - keptAtWorst; i++) order.push(slots[i]);
    const key = new Map<number, number>();
    for (let i = 0; i < m - keptAtWorst; i++) key.set(slots[i], keys[i]);
    for (let i = 0; i < this.candKeys.length; i++) {
      if (this.candKeys[i] === worst) {
        order.push(this.candSlots[i]);
        key.set(this.candSlots[i], worst);
      }
    }
    const ids = this.ids;
    order.sort((a, b) => (key.get(a) as number) - (key.get(b) as number) || (ids[a] < ids[b] ? -1 : ids[a] > ids[b] ? 1 : 0));
    order.length = m;
    return { slots: order, chord2s: order.map((s) => key.get(s) as number) };
  }

  private growTo(min: number): void {
    const cap = Math.max(min, this.lat.length * 2);
    this.xyz = growFloat64(this.xyz, cap * 3);
    this.lat = growFloat64(this.lat, cap);
    this.lng = growFloat64(this.lng, cap);
  }
}

/** A copy of `a` at least `min` long (or `a` itself when long enough); new cells are `fill`. */
export function growFloat64(a: Float64Array<ArrayBuffer>, min: number, fill = 0): Float64Array<ArrayBuffer> {
  if (a.length >= min) return a;
  const out = new Float64Array(Math.max(min, a.length * 2));
  if (fill !== 0) out.fill(fill);
  out.set(a);
  return out;
}

/** A copy of `a` at least `min` long (or `a` itself when long enough). */
export function growUint8(a: Uint8Array<ArrayBuffer>, min: number): Uint8Array<ArrayBuffer> {
  if (a.length >= min) return a;
  const out = new Uint8Array(Math.max(min, a.length * 2));
  out.set(a);
  return out;
}
