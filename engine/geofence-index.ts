/**
 * Geofences — GeoJSON Polygon / MultiPolygon areas with a `kind` — indexed by bounding box, so a courier
 * index can check enter/exit on every move without testing every fence.
 *
 *   put(id, fence) ─► checkPolygon + span check ─► private copy, one Polygon per part
 *                  ─► one rbush box per part, tagged with the fence number; version++
 *
 *   per move (courier index):
 *     H3 cell bbox ─► candidates(box)  (the caller caches this per cell until `version` changes)
 *                 ─► contains(fenceNo, lat, lng) for those few fences only (box pre-check, then turf)
 *
 * Antimeridian: every part is stored as a plain box (minLng <= maxLng). A fence that crosses ±180 must be
 * split by the client into a MultiPolygon with one part on each side, as RFC 7946 §3.1.9 asks; each part
 * then gets its own box and is found from either side. A polygon spanning more than 180° of longitude is
 * rejected with E_BAD_GEOMETRY, since it is almost always an unsplit crossing drawn the long way round.
 */
import { booleanPointInPolygon } from '@turf/turf';
import type { Feature, MultiPolygon, Polygon, Position } from 'geojson';
import RBush from 'rbush';
import { checkPolygon } from './area.js';
import { EngineError, assertCoordinate } from './errors.js';
import { type BBox, splitAntimeridian } from './geodesy.js';

/** A fence's geometry as clients send it. */
export type FenceGeometry = Polygon | MultiPolygon | Feature<Polygon | MultiPolygon>;

/** What `put` accepts. */
export interface FenceInput {
  kind: string;
  geometry: FenceGeometry;
}

/** A stored fence; the geometry is the index's own frozen copy (Feature unwrapped). */
export interface Fence {
  readonly id: string;
  readonly kind: string;
  readonly geometry: Polygon | MultiPolygon;
}

const NO_FENCES: readonly number[] = Object.freeze([]);

/** Geofences by bbox (rbush), with exact point-in-polygon tests by small integer fence number. */
export class GeofenceIndex {
  private readonly tree = new RBush<PartBox>();
  private readonly byId = new Map<string, number>();
  /** Slot per fence number; undefined when free. */
  private readonly records: (FenceRecord | undefined)[] = [];
  private readonly free: number[] = [];
  /** Per fence number, the query that last reported it: dedups multi-part fences without a Set. */
  private stamps = new Uint32Array(16);
  private stamp = 0;
  private readonly stack: RNode[] = [];
  private readonly point: number[] = [0, 0];
  private changes = 0;

  /** Bumped on every successful put and every remove that removed something; cached candidates are stale once it moves. */
  get version(): number {
    return this.changes;
  }

  /** Number of fences. */
  get size(): number {
    return this.byId.size;
  }

  /** Adds or replaces fence `id`; throws E_BAD_GEOMETRY and leaves any previous fence untouched on bad input. */
  put(id: string, fence: FenceInput): void {
    if (typeof id !== 'string' || id.length === 0) throw new Error('GeofenceIndex.put: id must be a non-empty string');
    const kind = fence?.kind;
    if (typeof kind !== 'string' || kind.length === 0) throw new EngineError('E_BAD_GEOMETRY', 'fence kind must be a non-empty string');
    const geometry = copyGeometry(checkPolygon(fence.geometry));
    const parts = geometry.type === 'Polygon' ? [geometry] : geometry.coordinates.map(toPolygon);
    const boxes = parts.map((p) => partBox(p.coordinates));
    // everything validated: only now touch the index
    let no = this.byId.get(id);
    if (no === undefined) {
      no = this.free.pop() ?? this.records.length;
      this.byId.set(id, no);
      if (no >= this.stamps.length) this.growStamps(no + 1);
    } else {
      for (const b of this.records[no]!.boxes) this.tree.remove(b);
    }
    for (const b of boxes) {
      b.no = no;
      this.tree.insert(b);
    }
    this.records[no] = { id, kind, geometry, parts, boxes };
    this.changes++;
  }

  /** Removes fence `id`; false when there was none. */
  remove(id: string): boolean {
    const no = this.byId.get(id);
    if (no === undefined) return false;
    for (const b of this.records[no]!.boxes) this.tree.remove(b);
    this.records[no] = undefined;
    this.byId.delete(id);
    this.free.push(no);
    this.changes++;
    return true;
  }

  /** The stored fence, or undefined. */
  get(id: string): Fence | undefined {
    const no = this.byId.get(id);
    if (no === undefined) return undefined;
    const r = this.records[no]!;
    return { id: r.id, kind: r.kind, geometry: r.geometry };
  }

  /** All fence ids, sorted. */
  ids(): string[] {
    return [...this.byId.keys()].sort(compareStrings);
  }

  /**
   * Fence numbers (ascending) with a part box intersecting `box` (minLng > maxLng crosses the antimeridian).
   * Returns one shared frozen empty array when there are none. Numbers are valid until `version` changes.
   */
  candidates(box: BBox): readonly number[] {
    const stamp = this.nextStamp();
    let out: number[] | undefined;
    if (box.minLng <= box.maxLng) {
      out = this.collect(box.minLng, box.minLat, box.maxLng, box.maxLat, stamp, out);
    } else {
      for (const b of splitAntimeridian(box)) out = this.collect(b.minLng, b.minLat, b.maxLng, b.maxLat, stamp, out);
    }
    if (out === undefined) return NO_FENCES;
    if (out.length > 1) out.sort(compareNumbers);
    return out;
  }

  /** Exact point-in-polygon for fence `fenceNo`; a point on an edge (outer or hole) counts as inside. */
  contains(fenceNo: number, lat: number, lng: number): boolean {
    const r = this.records[fenceNo];
    if (r === undefined) throw new Error(`GeofenceIndex.contains: no fence number ${fenceNo}; refresh candidates when version changes`);
    const point = this.point;
    point[0] = lng;
    point[1] = lat;
    const boxes = r.boxes;
    for (let i = 0; i < boxes.length; i++) {
      const b = boxes[i];
      if (lng < b.minX || lng > b.maxX || lat < b.minY || lat > b.maxY) continue;
      if (booleanPointInPolygon(point, r.parts[i])) return true;
    }
    return false;
  }

  /** The id of fence number `fenceNo`. */
  idOf(fenceNo: number): string {
    return this.record(fenceNo, 'idOf').id;
  }

  /** The kind of fence number `fenceNo`. */
  kindOf(fenceNo: number): string {
    return this.record(fenceNo, 'kindOf').kind;
  }

  /** Ids of the fences containing (lat, lng), sorted; throws E_BAD_COORDINATE for an invalid point. */
  containing(lat: number, lng: number): string[] {
    assertCoordinate(lat, lng);
    const found: string[] = [];
    const hits = this.collect(lng, lat, lng, lat, this.nextStamp(), undefined);
    if (hits === undefined) return found;
    for (const no of hits) if (this.contains(no, lat, lng)) found.push(this.records[no]!.id);
    return found.sort(compareStrings);
  }

  private record(fenceNo: number, verb: string): FenceRecord {
    const r = this.records[fenceNo];
    if (r === undefined) throw new Error(`GeofenceIndex.${verb}: no fence number ${fenceNo}; refresh candidates when version changes`);
    return r;
  }

  /**
   * Appends to `out` (allocated on the first hit) each fence number with a part box intersecting the query,
   * once per stamp. Walks rbush's nodes directly with a reused stack: no allocation when nothing matches.
   */
  private collect(minX: number, minY: number, maxX: number, maxY: number, stamp: number, out: number[] | undefined): number[] | undefined {
    const stack = this.stack;
    const stamps = this.stamps;
    let node: RNode | undefined = (this.tree as unknown as { data: RNode }).data;
    if (!intersects(node, minX, minY, maxX, maxY)) return out;
    stack.length = 0;
    while (node !== undefined) {
      const children = node.children;
      for (let i = 0; i < children.length; i++) {
        const child = children[i];
        if (!intersects(child, minX, minY, maxX, maxY)) continue;
        if (!node.leaf) {
          stack.push(child as RNode);
          continue;
        }
        const no = (child as PartBox).no;
        if (stamps[no] === stamp) continue;
        stamps[no] = stamp;
        (out ??= []).push(no);
      }
      node = stack.pop();
    }
    return out;
  }

  private nextStamp(): number {
    if (this.stamp === 0xffffffff) {
      this.stamps.fill(0);
      this.stamp = 0;
    }
    return ++this.stamp;
  }

  private growStamps(min: number): void {
    const next = new Uint32Array(Math.max(min, this.stamps.length * 2));
    next.set(this.stamps);
    this.stamps = next;
  }
}

interface PartBox {
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
  no: number;
}

interface RNode {
  children: (RNode | PartBox)[];
  leaf: boolean;
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
}

interface FenceRecord {
  id: string;
  kind: string;
  geometry: Polygon | MultiPolygon;
  /** One Polygon per part (the geometry itself for a Polygon), parallel to boxes. */
  parts: Polygon[];
  boxes: PartBox[];
}

function intersects(b: { minX: number; minY: number; maxX: number; maxY: number }, minX: number, minY: number, maxX: number, maxY: number): boolean {
  return b.minX <= maxX && b.minY <= maxY && b.maxX >= minX && b.maxY >= minY;
}

/** Box of one polygon's rings; throws E_BAD_GEOMETRY when it spans more than half the globe's longitudes. */
function partBox(rings: Position[][]): PartBox {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const ring of rings) {
    for (const p of ring) {
      if (p[0] < minX) minX = p[0];
      if (p[0] > maxX) maxX = p[0];
      if (p[1] < minY) minY = p[1];
      if (p[1] > maxY) maxY = p[1];
    }
  }
  if (maxX - minX > 180) {
    throw new EngineError(
      'E_BAD_GEOMETRY',
      `polygon spans ${maxX - minX}° of longitude; a fence crossing the antimeridian must be split at ±180 into a MultiPolygon (RFC 7946 §3.1.9)`,
    );
  }
  return { minX, minY, maxX, maxY, no: -1 };
}

/**
 * A frozen copy holding only [lng, lat] numbers: later edits to the client's object cannot reach the index,
 * and a stray `bbox` member on the input cannot mislead turf.
 */
function copyGeometry(g: Polygon | MultiPolygon): Polygon | MultiPolygon {
  if (g.type === 'Polygon') return Object.freeze({ type: 'Polygon', coordinates: copyRings(g.coordinates) });
  return Object.freeze({ type: 'MultiPolygon', coordinates: Object.freeze(g.coordinates.map(copyRings)) as Position[][][] });
}

function copyRings(rings: Position[][]): Position[][] {
  return Object.freeze(rings.map((ring) => Object.freeze(ring.map((p) => Object.freeze([p[0], p[1]]))))) as Position[][];
}

function toPolygon(coordinates: Position[][]): Polygon {
  return { type: 'Polygon', coordinates };
}

function compareNumbers(a: number, b: number): number {
  return a - b;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
