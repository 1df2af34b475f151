/**
 * H3 cells as buckets of couriers, under a tree made of their own H3 ancestors.
 *
 *   res 1 ─┬─ res 3 ─┬─ res 5 ─┬─ res 7 ─┬─ res 9 bucket: couriers (chunk of the BucketPool)
 *          │         │         │         └─ res 9 bucket
 *          ...       ...       ...
 *
 * Every node is a sphere cap: the unit vector of its cell centre and a chord radius that covers all it
 * holds. A parent's radius is grown from its children's (H3 children can poke out of the parent hexagon,
 * so geometry alone would not do), which makes the nearest-first lower bound |q − c| − r exact Euclidean
 * geometry in 3-D: no trigonometry per node, no seam at ±180°, no special case at the poles.
 *
 * Nodes live in typed-array tables indexed by node number; couriers moving inside a cell never touch them.
 * Each bucket also knows its inscribed circle (as a chord²) and its hexagon as edge planes through the
 * Earth's centre (H3 edges are great-circle arcs): a ping inside either is certainly in the same cell, and
 * a ping past one edge is tried against the neighbour last seen across that edge. Only pings within a few
 * metres of an edge, or into a cell never crossed into before, pay the ~1 µs latLngToCell call.
 */
import { cellToBoundary, cellToLatLng, cellToParent, latLngToCell } from 'h3-js';
import { BucketPool } from './bucket-pool.js';
import { inradiusMeters, vertexRadius, writeEdgeNormals } from './h3-cell-geometry.js';
import { countMatching } from './courier-filter.js';
import { NodeQueue } from './node-queue.js';
import { type BBox, angleToBox, capToBox, metersToChord2 } from './geodesy.js';

// The inscribed-circle shortcut keeps 2 % clear of the true inradius, absorbing the planar
// approximation used to measure it (< 0.01 % at cell scale).
const INRADIUS_MARGIN = 0.98;
// Cell radius slack: 1 % plus ~1.3 m, for great-circle edges bulging past their vertices.
const RADIUS_SLACK_REL = 1.01;
const RADIUS_SLACK_ABS = 2e-7;
// Edge-plane test slack in dot-product units (≈3 m on the ground): normals are stored as float32, whose
// rounding moves a dot product by ~1e-7; points this close to an edge ask H3 instead.
const EDGE_MARGIN = 5e-7;
/** locate(): the point is certainly inside the cell. */
export const INSIDE = -1;
/** locate(): too close to an edge, or no polygon on record: ask H3. */
export const UNSURE = -2;
// Above this latitude the local plane is too distorted to trust; those cells always ask H3.
const POLAR_LAT = 88;
const DEG = Math.PI / 180;
// Ancestors every second resolution: 49 children per node. Every resolution (7 children) measured the same
// query speed with twice the nodes; every third (343) was twice as slow.
const ANCESTOR_STEP = 2;
/** Numbers per child in an ancestor's kidRecords. */
const KID_FIELDS = 8;

/** Couriers bucketed by H3 cell, with their ancestor tree; owned by one CourierIndex. */
export class H3Buckets {
  readonly resolution: number;
  readonly pool: BucketPool;
  /**
   * Node tables, indexed by node number (buckets and ancestors share the numbering), interleaved so one
   * node's fields share a cache line: geo = [cx, cy, cz, radius] (unit vector, chord), info = [start of
   * the bucket's chunk in the pool, courier count, pool size class, parent node].
   */
  geo = new Float64Array(4 * 64);
  info = new Int32Array(4 * 64);
  inner2 = new Float64Array(64);
  fenceVersion = new Int32Array(64);
  /** Couriers in each node's subtree per status code (4 per node): gives nearest queries an early upper bound. */
  statusCounts = new Int32Array(4 * 64);
  /** Bucket hexagons: up to 6 inward edge-plane normals (float32 ×3 each), their count (0: none), and the
   *  bucket last entered across each edge (-1: none yet). */
  edgeNormals = new Float32Array(18 * 64);
  edgeCount = new Uint8Array(64);
  edgeNeighbour = new Int32Array(6 * 64);
  cells: (string | undefined)[] = [];
  children: (number[] | undefined)[] = [];
  /**
   * Per ancestor node, a copy of what the nearest walk reads of each child, in `children` order: KID_FIELDS
   * numbers a child, [cx, cy, cz, radius, count per status ×4]. Bounding a node's children then reads one run of
   * memory instead of two scattered table rows per child (a third less time on a server whose caches the
   * network stack keeps cold). Kept in step by syncKid wherever a child's radius or counts change.
   */
  kidRecords: (number[] | undefined)[] = [];
  /** Each node's position among its parent's children (and so in the parent's kidRecords). */
  kidSlot = new Int32Array(64);
  fenceCandidates: (readonly number[] | undefined)[] = [];
  speedCells: (string | undefined)[] = [];
  /** Coarsest ancestors (or buckets, at resolutions below 2). */
  roots: number[] = [];

  private nodeByCell = new Map<string, number>();
  private freeNodes: number[] = [];
  private nodeTop = 0;
  private liveBuckets = 0;
  private emptyBuckets = new Set<number>();
  /** Bucket numbers in H3 index order, kept until a node is made or dropped (occupiedInCellOrder). */
  private cellOrder: number[] | undefined;
  private queue = new NodeQueue();

  constructor(resolution: number, initialEntries = 1024) {
    this.resolution = resolution;
    this.pool = new BucketPool(initialEntries);
  }

  /** Occupied buckets. */
  get occupied(): number {
    return this.liveBuckets - this.emptyBuckets.size;
  }

  /** The H3 cell of a point at the bucket resolution (≈1 µs: callers try `inside` first). */
  cellOf(lat: number, lng: number): string {
    return latLngToCell(lat, lng, this.resolution);
  }

  /** Bucket node of a cell, created with its ancestors when new. */
  bucketFor(cell: string): number {
    const known = this.nodeByCell.get(cell);
    if (known !== undefined) {
      this.emptyBuckets.delete(known);
      return known;
    }
    const b = this.createNode(cell, true);
    this.liveBuckets++;
    let child = b;
    for (let res = this.resolution - ANCESTOR_STEP; res >= 0; res -= ANCESTOR_STEP) {
      const up = cellToParent(cell, res);
      let p = this.nodeByCell.get(up);
      const fresh = p === undefined;
      if (p === undefined) p = this.createNode(up, false);
      const siblings = this.children[p] as number[];
      this.kidSlot[child] = siblings.length;
      siblings.push(child);
      (this.kidRecords[p] as number[]).push(0, 0, 0, 0, 0, 0, 0, 0);
      this.info[4 * child + 3] = p;
      this.syncKid(child);
      if (!fresh) {
        for (let n = child, q = p; q >= 0 && this.growToCover(q, n); n = q, q = this.info[4 * q + 3]);
        return b;
      }
      this.growToCover(p, child);
      child = p;
    }
    this.roots.push(child);
    return b;
  }

  /** True when the chord² to the bucket centre is inside its inscribed circle. */
  inside(b: number, x: number, y: number, z: number): boolean {
    const dx = x - this.geo[4 * b];
    const dy = y - this.geo[4 * b + 1];
    const dz = z - this.geo[4 * b + 2];
    return dx * dx + dy * dy + dz * dz < this.inner2[b];
  }

  /**
   * Where a unit vector lies relative to bucket b's hexagon: INSIDE, UNSURE, or the index of the edge it
   * is farthest past (the neighbour across that edge is the likely new cell).
   */
  locate(b: number, x: number, y: number, z: number): number {
    const edges = this.edgeCount[b];
    if (edges === 0) return UNSURE;
    const nv = this.edgeNormals;
    let worst = EDGE_MARGIN;
    let edge = INSIDE;
    for (let e = 0, o = 18 * b; e < edges; e++, o += 3) {
      const d = nv[o] * x + nv[o + 1] * y + nv[o + 2] * z;
      if (d < worst) {
        worst = d;
        edge = e;
      }
    }
    if (edge === INSIDE) return INSIDE;
    return worst < -EDGE_MARGIN ? edge : UNSURE;
  }

  /** The live bucket last entered across edge e of bucket b, or -1. */
  neighbourAcross(b: number, e: number): number {
    const nb = this.edgeNeighbour[6 * b + e];
    return nb >= 0 && this.cells[nb] !== undefined && this.children[nb] === undefined ? nb : -1;
  }

  /** Records that a courier left bucket b across edge e into bucket to. */
  learnNeighbour(b: number, e: number, to: number): void {
    this.edgeNeighbour[6 * b + e] = to;
  }

  /** Marks a known bucket as occupied again (it may be waiting in the empty set). */
  revive(b: number): void {
    this.emptyBuckets.delete(b);
  }

  /** Grows a bucket's radius (and its ancestors') to cover a point H3 placed in it. */
  cover(b: number, x: number, y: number, z: number): void {
    const dx = x - this.geo[4 * b];
    const dy = y - this.geo[4 * b + 1];
    const dz = z - this.geo[4 * b + 2];
    const d = Math.sqrt(dx * dx + dy * dy + dz * dz);
    if (d <= this.geo[4 * b + 3]) return;
    this.geo[4 * b + 3] = d * (1 + 1e-9);
    this.syncKid(b);
    for (let n = b, p = this.info[4 * b + 3]; p >= 0; n = p, p = this.info[4 * p + 3]) if (!this.growToCover(p, n)) break;
  }

  /** Appends a courier to a bucket; returns its position in the bucket. */
  add(b: number, slot: number, x: number, y: number, z: number, attr: number): number {
    const n = this.info[4 * b + 1];
    if (n === 1 << this.info[4 * b + 2] || this.info[4 * b] < 0) this.regrow(b, n + 1);
    const at = this.info[4 * b] + n;
    const pool = this.pool;
    pool.slots[at] = slot;
    pool.xyz[3 * at] = x;
    pool.xyz[3 * at + 1] = y;
    pool.xyz[3 * at + 2] = z;
    pool.attrs[at] = attr;
    this.info[4 * b + 1] = n + 1;
    return n;
  }

  /** Adds delta to the per-status courier count of a bucket and all its ancestors. */
  countStatus(b: number, status: number, delta: number): void {
    for (let n = b; n >= 0; ) {
      this.statusCounts[4 * n + status] += delta;
      const p = this.info[4 * n + 3];
      if (p >= 0) (this.kidRecords[p] as number[])[KID_FIELDS * this.kidSlot[n] + 4 + status] += delta;
      n = p;
    }
  }

  /** Removes position i by moving the bucket's last courier into it; returns the slot moved (or -1). */
  removeAt(b: number, i: number): number {
    const last = --this.info[4 * b + 1];
    let moved = -1;
    if (i !== last) {
      const s = this.info[4 * b];
      this.pool.copy(s + last, s + i, 1);
      moved = this.pool.slots[s + i];
    }
    if (last === 0) this.retire(b);
    else if (last > 4 && last * 4 <= 1 << this.info[4 * b + 2]) this.regrow(b, last); // shrink after an exodus
    return moved;
  }

  /**
   * Best-first walk: visits occupied buckets whose lower-bound chord² is within limit(), nearest bound
   * first. Every bucket has one parent, so each is visited at most once.
   *
   * With k > 0 and a status mask (a query filtered by status alone), subtree status counts give an upper
   * bound too: a node holding ≥ k matching couriers puts the k-th nearest within |q − c| + r, which prunes
   * far siblings before a single courier has been scanned.
   */
  walk(qx: number, qy: number, qz: number, limit: () => number, visit: (b: number) => void, k = 0, statusMask = 0): void {
    const queue = this.queue;
    queue.clear();
    const geo = this.geo;
    const counts = this.statusCounts;
    const useCounts = k > 0 && statusMask !== 0;
    // the status mask as 0/1 weights, so a child's matching count is four multiply-adds without branches
    const w0 = statusMask & 1;
    const w1 = (statusMask >>> 1) & 1;
    const w2 = (statusMask >>> 2) & 1;
    const w3 = (statusMask >>> 3) & 1;
    let upper = Infinity;
    const roots = this.roots;
    for (let pass = 0; pass < 2; pass++) {
      // pass 0 only tightens `upper` from the roots; pass 1 queues them against it
      for (let i = 0; i < roots.length; i++) {
        const c = roots[i];
        const g = 4 * c;
        const dx = qx - geo[g];
        const dy = qy - geo[g + 1];
        const dz = qz - geo[g + 2];
        const d = Math.sqrt(dx * dx + dy * dy + dz * dz);
        if (pass === 0) {
          if (useCounts && countMatching(counts, g, statusMask) >= k) upper = Math.min(upper, widen2(d + geo[g + 3]));
          continue;
        }
        const lower = d - geo[g + 3];
        const key = lower > 0 ? lower * lower : 0;
        if (key <= upper) queue.push(c, key);
      }
    }
    while (queue.size > 0) {
      const lim0 = limit();
      const lim = lim0 < upper ? lim0 : upper;
      if (queue.peekKey() > lim) break;
      const node = queue.pop();
      const kids = this.children[node];
      if (kids === undefined) {
        if (this.info[4 * node + 1] > 0) visit(node);
        continue;
      }
      // hot: every child of every expanded node is bounded here, from the node's packed child records, so
      // the bound is computed inline and only children that can still matter reach the heap
      const rec = this.kidRecords[node] as number[];
      for (let i = 0, n = kids.length; i < n; i++) {
        const o = KID_FIELDS * i;
        let have = k;
        if (useCounts && (have = w0 * rec[o + 4] + w1 * rec[o + 5] + w2 * rec[o + 6] + w3 * rec[o + 7]) === 0) continue;
        const dx = qx - rec[o];
        const dy = qy - rec[o + 1];
        const dz = qz - rec[o + 2];
        const centre = Math.sqrt(dx * dx + dy * dy + dz * dz);
        if (useCounts && have >= k) {
          const u = widen2(centre + rec[o + 3]);
          if (u < upper) upper = u;
        }
        const d = centre - rec[o + 3];
        const key = d > 0 ? d * d : 0;
        if (key <= lim && key <= upper) queue.push(kids[i], key);
      }
    }
  }

  /** Calls visit for every occupied bucket whose cap may intersect the box (plain box, minLng <= maxLng). */
  forEachInBox(box: BBox, visit: (b: number) => void): void {
    const stack = [...this.roots];
    while (stack.length > 0) {
      const node = stack.pop() as number;
      const lat = Math.asin(Math.max(-1, Math.min(1, this.geo[4 * node + 2]))) / DEG;
      const lng = Math.atan2(this.geo[4 * node + 1], this.geo[4 * node]) / DEG;
      const reach = 2 * Math.asin(Math.min(1, this.geo[4 * node + 3] / 2));
      if (angleToBox(lat, lng, box.minLng, box.minLat, box.maxLng, box.maxLat) > reach) continue;
      const kids = this.children[node];
      if (kids === undefined) {
        if (this.info[4 * node + 1] > 0) visit(node);
      } else stack.push(...kids);
    }
  }

  /** A lng/lat box covering a bucket's cap (minLng > maxLng when it crosses ±180). */
  boxOf(b: number): BBox {
    return capToBox(this.geo[4 * b], this.geo[4 * b + 1], this.geo[4 * b + 2], this.geo[4 * b + 3]);
  }

  /** H3 parent of a bucket at a coarser resolution, cached (used for per-cell speeds). */
  speedCellOf(b: number, resolution: number): string {
    return (this.speedCells[b] ??= cellToParent(this.cells[b] as string, resolution));
  }

  /** Occupied bucket numbers, in H3 index order (spatially coherent: siblings sit together). */
  occupiedInCellOrder(): number[] {
    if (this.cellOrder === undefined) {
      const all: number[] = [];
      for (let b = 0; b < this.nodeTop; b++) if (this.children[b] === undefined && this.cells[b] !== undefined) all.push(b);
      this.cellOrder = all.sort((a, b) => ((this.cells[a] as string) < (this.cells[b] as string) ? -1 : 1));
    }
    const out: number[] = [];
    for (const b of this.cellOrder) if (this.info[4 * b + 1] > 0) out.push(b);
    return out;
  }

  /** Bytes of typed arrays held (node tables and the courier slab). */
  byteSize(): number {
    const tables = [this.geo, this.info, this.inner2, this.fenceVersion, this.statusCounts, this.kidSlot, this.edgeNormals, this.edgeCount, this.edgeNeighbour];
    return this.pool.byteSize() + tables.reduce((a, t) => a + t.byteLength, 0);
  }

  private createNode(cell: string, bucket: boolean): number {
    this.cellOrder = undefined;
    const n = this.freeNodes.pop() ?? this.nodeTop++;
    if (n >= this.inner2.length) this.growTables();
    const [lat, lng] = cellToLatLng(cell);
    const phi = lat * DEG;
    const c = Math.cos(phi);
    this.geo[4 * n] = c * Math.cos(lng * DEG);
    this.geo[4 * n + 1] = c * Math.sin(lng * DEG);
    this.geo[4 * n + 2] = Math.sin(phi);
    this.info[4 * n + 3] = -1;
    this.info[4 * n + 1] = 0;
    this.info[4 * n] = -1;
    this.info[4 * n + 2] = 0;
    this.fenceVersion[n] = -1;
    this.statusCounts.fill(0, 4 * n, 4 * n + 4);
    this.cells[n] = cell;
    this.nodeByCell.set(cell, n);
    this.fenceCandidates[n] = undefined;
    this.speedCells[n] = undefined;
    if (bucket) {
      const boundary = cellToBoundary(cell);
      this.children[n] = undefined;
      this.kidRecords[n] = undefined;
      this.geo[4 * n + 3] = vertexRadius(this.geo[4 * n], this.geo[4 * n + 1], this.geo[4 * n + 2], boundary) * RADIUS_SLACK_REL + RADIUS_SLACK_ABS;
      this.inner2[n] = Math.abs(lat) > POLAR_LAT ? -1 : metersToChord2(inradiusMeters(lat, lng, boundary) * INRADIUS_MARGIN);
      this.edgeCount[n] = writeEdgeNormals(boundary, this.geo, 4 * n, this.edgeNormals, 18 * n);
    } else {
      this.children[n] = [];
      this.kidRecords[n] = [];
      this.geo[4 * n + 3] = 0;
      this.inner2[n] = -1;
      this.edgeCount[n] = 0;
    }
    this.edgeNeighbour.fill(-1, 6 * n, 6 * n + 6);
    return n;
  }

  // parent radius ≥ |c_p − c_child| + r_child; returns whether it grew
  private growToCover(p: number, child: number): boolean {
    const need = Math.hypot(this.geo[4 * p] - this.geo[4 * child], this.geo[4 * p + 1] - this.geo[4 * child + 1], this.geo[4 * p + 2] - this.geo[4 * child + 2]) + this.geo[4 * child + 3];
    if (need <= this.geo[4 * p + 3]) return false;
    this.geo[4 * p + 3] = need * (1 + 1e-9);
    this.syncKid(p);
    return true;
  }

  // copies node n's centre, radius and counts into its parent's record of it
  private syncKid(n: number): void {
    const p = this.info[4 * n + 3];
    if (p < 0) return;
    const rec = this.kidRecords[p] as number[];
    const o = KID_FIELDS * this.kidSlot[n];
    for (let f = 0; f < 4; f++) {
      rec[o + f] = this.geo[4 * n + f];
      rec[o + 4 + f] = this.statusCounts[4 * n + f];
    }
  }

  private regrow(b: number, needed: number): void {
    const cls = BucketPool.classFor(needed);
    const at = this.pool.allocate(cls);
    if (this.info[4 * b] >= 0) {
      this.pool.copy(this.info[4 * b], at, this.info[4 * b + 1]);
      this.pool.release(this.info[4 * b], this.info[4 * b + 2]);
    }
    this.info[4 * b] = at;
    this.info[4 * b + 2] = cls;
  }

  // Empty buckets stay (a courier often returns to the cell it left); they are dropped in bulk once they
  // outnumber the occupied ones, so churn through a city never leaves the tree full of husks.
  private retire(b: number): void {
    this.pool.release(this.info[4 * b], this.info[4 * b + 2]);
    this.info[4 * b] = -1;
    this.emptyBuckets.add(b);
    if (this.emptyBuckets.size < 1024 || this.emptyBuckets.size * 2 < this.liveBuckets) return;
    for (const e of this.emptyBuckets) this.dropNode(e);
    this.liveBuckets -= this.emptyBuckets.size;
    this.emptyBuckets.clear();
  }

  private dropNode(n: number): void {
    this.cellOrder = undefined;
    const p = this.info[4 * n + 3];
    this.nodeByCell.delete(this.cells[n] as string);
    this.cells[n] = undefined;
    this.children[n] = undefined;
    this.kidRecords[n] = undefined;
    this.freeNodes.push(n);
    if (p < 0) {
      this.roots.splice(this.roots.indexOf(n), 1);
      return;
    }
    const siblings = this.children[p] as number[];
    const at = this.kidSlot[n];
    siblings.splice(at, 1);
    (this.kidRecords[p] as number[]).splice(KID_FIELDS * at, KID_FIELDS);
    for (let i = at; i < siblings.length; i++) this.kidSlot[siblings[i]] = i;
    if (siblings.length === 0) this.dropNode(p);
  }

  private growTables(): void {
    const cap = Math.ceil(this.inner2.length * 1.5);
    this.geo = grown(this.geo, new Float64Array(4 * cap));
    this.info = grown(this.info, new Int32Array(4 * cap));
    this.inner2 = grown(this.inner2, new Float64Array(cap));
    this.fenceVersion = grown(this.fenceVersion, new Int32Array(cap));
    this.statusCounts = grown(this.statusCounts, new Int32Array(4 * cap));
    this.kidSlot = grown(this.kidSlot, new Int32Array(cap));
    this.edgeNormals = grown(this.edgeNormals, new Float32Array(18 * cap));
    this.edgeCount = grown(this.edgeCount, new Uint8Array(cap));
    this.edgeNeighbour = grown(this.edgeNeighbour, new Int32Array(6 * cap));
  }
}

function grown<T extends Float64Array | Float32Array | Int32Array | Uint8Array>(old: T, next: T): T {
  next.set(old as never);
  return next;
}

// an upper bound from (|q − c| + r) as chord², nudged up so rounding never makes it undercut the truth
function widen2(reach: number): number {
  return reach * reach * (1 + 1e-9) + 1e-24;
}
