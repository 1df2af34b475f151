/**
 * H3 cells as buckets of couriers.
 *
 * Each occupied cell is one CellBucket: its couriers' unit vectors, slots and packed attributes sit
 * contiguously so a nearest scan walks memory in order. The bucket's lng/lat box goes into the R-tree
 * once, when the cell is first occupied; couriers moving inside the cell never touch the tree.
 *
 * A bucket also knows its inscribed circle (as a chord² around the cell centre): a ping that lands inside
 * it is certainly in the same cell, so the ~1 µs latLngToCell call is skipped for most pings.
 */
import { cellToBoundary, cellToLatLng, cellToParent, getResolution, latLngToCell } from 'h3-js';
import { EARTH_RADIUS_M, boxContains, metersToChord2, writeUnitVector } from './geodesy.js';

/** One rbush entry of a bucket: a plain lng/lat box (two entries when the cell straddles ±180). */
export interface BucketEntry {
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
  bucket: CellBucket;
}

// Padding of cell boxes, in degrees (~1 m): H3 edges are great-circle arcs that bulge a hair past
// the straight line between vertices; 1e-5° covers that bulge at res ≥ 5 with room to spare.
const BOX_PAD_DEG = 1e-5;
// The inscribed-circle shortcut keeps 2 % clear of the true inradius, absorbing the planar
// approximation used to measure it (< 0.01 % at cell scale).
const INRADIUS_MARGIN = 0.98;
// Above this latitude the local plane is too distorted to trust; those cells always ask H3.
const POLAR_LAT = 88;

/** Couriers of one H3 cell, stored contiguously for scanning. */
export class CellBucket {
  readonly cell: string;
  /** Index in the owner's bucket table. */
  readonly no: number;
  /** Unit vector of the cell centre and the squared chord of its (shrunken) inscribed circle. */
  readonly cx: number;
  readonly cy: number;
  readonly cz: number;
  readonly inner2: number;
  entries: BucketEntry[];
  count = 0;
  slots: Int32Array;
  xyz: Float64Array;
  attrs: Uint32Array;
  /** H3 parent at the speed resolution, computed on first use. */
  speedCell: string | undefined;
  /** Fence numbers whose bbox touches this cell, valid for fenceVersion. */
  fenceCandidates: readonly number[] = [];
  fenceVersion = -1;
  /** Query number that last scanned this bucket: a cell split at ±180 has two tree entries but is scanned once. */
  stamp = 0;

  constructor(cell: string, no: number, initialCapacity = 4) {
    this.cell = cell;
    this.no = no;
    const [lat, lng] = cellToLatLng(cell);
    const v = new Float64Array(3);
    writeUnitVector(lat, lng, v, 0);
    this.cx = v[0];
    this.cy = v[1];
    this.cz = v[2];
    const boundary = cellToBoundary(cell);
    this.inner2 = Math.abs(lat) > POLAR_LAT ? -1 : metersToChord2(inradiusMeters(lat, lng, boundary) * INRADIUS_MARGIN);
    this.entries = cellEntries(cell, lat, boundary, this);
    this.slots = new Int32Array(initialCapacity);
    this.xyz = new Float64Array(initialCapacity * 3);
    this.attrs = new Uint32Array(initialCapacity);
  }

  /** Appends a courier and returns its position in the bucket. */
  add(slot: number, x: number, y: number, z: number, attr: number): number {
    if (this.count === this.slots.length) this.grow();
    const i = this.count++;
    this.slots[i] = slot;
    this.xyz[3 * i] = x;
    this.xyz[3 * i + 1] = y;
    this.xyz[3 * i + 2] = z;
    this.attrs[i] = attr;
    return i;
  }

  /** Removes position i by moving the last courier into it; returns the slot that moved (or -1). */
  removeAt(i: number): number {
    const last = --this.count;
    if (i === last) return -1;
    const moved = this.slots[last];
    this.slots[i] = moved;
    this.xyz[3 * i] = this.xyz[3 * last];
    this.xyz[3 * i + 1] = this.xyz[3 * last + 1];
    this.xyz[3 * i + 2] = this.xyz[3 * last + 2];
    this.attrs[i] = this.attrs[last];
    return moved;
  }

  /** True when (lat, lng) lies in one of the bucket's boxes. */
  boxesContain(lat: number, lng: number): boolean {
    for (const e of this.entries) {
      if (boxContains({ minLng: e.minX, minLat: e.minY, maxLng: e.maxX, maxLat: e.maxY }, lat, lng)) return true;
    }
    return false;
  }

  /** Bytes held by this bucket's arrays (for memory accounting). */
  byteSize(): number {
    return this.slots.byteLength + this.xyz.byteLength + this.attrs.byteLength;
  }

  /** Releases slack once a bucket has shrunk to a quarter of its capacity. */
  compact(): void {
    const cap = Math.max(4, this.count * 2);
    if (this.slots.length <= 16 || this.count * 4 > this.slots.length) return;
    this.slots = this.slots.slice(0, cap);
    this.xyz = this.xyz.slice(0, cap * 3);
    this.attrs = this.attrs.slice(0, cap);
  }

  speedCellAt(resolution: number): string {
    if (this.speedCell === undefined) this.speedCell = cellToParent(this.cell, resolution);
    return this.speedCell;
  }

  private grow(): void {
    // ×1.5 growth keeps average slack near 20 % (vs 33 % for doubling): memory per courier is a target
    const cap = Math.max(4, Math.ceil(this.slots.length * 1.5));
    const slots = new Int32Array(cap);
    slots.set(this.slots);
    const xyz = new Float64Array(cap * 3);
    xyz.set(this.xyz);
    const attrs = new Uint32Array(cap);
    attrs.set(this.attrs);
    this.slots = slots;
    this.xyz = xyz;
    this.attrs = attrs;
  }
}

/** The H3 cell of a point at a resolution (≈1 µs: callers avoid it when the inscribed circle answers). */
export function cellOf(lat: number, lng: number, resolution: number): string {
  return latLngToCell(lat, lng, resolution);
}

/** Widens the bucket's boxes to include a point H3 placed in the cell but its vertex box missed. */
export function widenedEntries(bucket: CellBucket, lat: number, lng: number): BucketEntry[] {
  let best = bucket.entries[0];
  let bestGrowth = Infinity;
  for (const e of bucket.entries) {
    const growth = Math.max(0, e.minX - lng, lng - e.maxX) + Math.max(0, e.minY - lat, lat - e.maxY);
    if (growth < bestGrowth) {
      bestGrowth = growth;
      best = e;
    }
  }
  return bucket.entries.map((e) =>
    e !== best
      ? e
      : {
          minX: Math.min(e.minX, lng - BOX_PAD_DEG),
          minY: Math.min(e.minY, lat - BOX_PAD_DEG),
          maxX: Math.max(e.maxX, lng + BOX_PAD_DEG),
          maxY: Math.max(e.maxY, lat + BOX_PAD_DEG),
          bucket,
        },
  ).map(clampEntry);
}

function clampEntry(e: BucketEntry): BucketEntry {
  return { minX: Math.max(-180, e.minX), minY: Math.max(-90, e.minY), maxX: Math.min(180, e.maxX), maxY: Math.min(90, e.maxY), bucket: e.bucket };
}

function cellEntries(cell: string, centreLat: number, boundary: number[][], bucket: CellBucket): BucketEntry[] {
  let minLat = Infinity;
  let maxLat = -Infinity;
  for (const [lat] of boundary) {
    if (lat < minLat) minLat = lat;
    if (lat > maxLat) maxLat = lat;
  }
  minLat -= BOX_PAD_DEG;
  maxLat += BOX_PAD_DEG;
  if (latLngToCell(centreLat > 0 ? 90 : -90, 0, getResolution(cell)) === cell) {
    // the cell holds a pole: it spans every longitude up to ±90
    return [clampEntry({ minX: -180, minY: centreLat > 0 ? minLat : -90, maxX: 180, maxY: centreLat > 0 ? 90 : maxLat, bucket })];
  }
  const lngs = boundary.map((p) => p[1]);
  const plainSpan = Math.max(...lngs) - Math.min(...lngs);
  if (plainSpan <= 180) {
    return [clampEntry({ minX: Math.min(...lngs) - BOX_PAD_DEG, minY: minLat, maxX: Math.max(...lngs) + BOX_PAD_DEG, maxY: maxLat, bucket })];
  }
  // straddles the antimeridian: east part [minPositive, 180] and west part [-180, maxNegative]
  const east = Math.min(...lngs.filter((l) => l >= 0)) - BOX_PAD_DEG;
  const west = Math.max(...lngs.filter((l) => l < 0)) + BOX_PAD_DEG;
  return [
    clampEntry({ minX: east, minY: minLat, maxX: 180, maxY: maxLat, bucket }),
    clampEntry({ minX: -180, minY: minLat, maxX: west, maxY: maxLat, bucket }),
  ];
}

/** Distance from the centre to the nearest cell edge, on the local tangent plane (metres). */
function inradiusMeters(lat: number, lng: number, boundary: number[][]): number {
  const k = (Math.PI / 180) * EARTH_RADIUS_M;
  const cosLat = Math.cos((lat * Math.PI) / 180);
  const pts = boundary.map(([la, ln]) => {
    let dl = ln - lng;
    if (dl > 180) dl -= 360;
    else if (dl < -180) dl += 360;
    return [dl * k * cosLat, (la - lat) * k];
  });
  let best = Infinity;
  for (let i = 0; i < pts.length; i++) {
    const [ax, ay] = pts[i];
    const [bx, by] = pts[(i + 1) % pts.length];
    best = Math.min(best, segmentDistanceToOrigin(ax, ay, bx, by));
  }
  return best;
}

function segmentDistanceToOrigin(ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, -(ax * dx + ay * dy) / len2));
  const px = ax + t * dx;
  const py = ay + t * dy;
  return Math.sqrt(px * px + py * py);
}
