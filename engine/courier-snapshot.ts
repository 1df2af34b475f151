/**
 * A frozen copy of courier positions and statuses in one SharedArrayBuffer, for worker threads.
 *
 *   main thread: writeCourierSnapshot(index, filter?) ──► SharedArrayBuffer ──postMessage──► worker
 *   worker:      CourierSnapshot.from(buffer) — typed-array views over the same memory, nothing copied
 *
 * Layout (little-endian, every section 8-byte aligned):
 *
 *   header  Int32[8]   magic 'GDS1' · format · n couriers · b buckets · tree nodes · levels · resolution · 0
 *           Float64[2] index version · createdAt
 *   xyz f64[3n] · lat f64[n] · lng f64[n] · ts f64[n] · attr u32[n]          couriers in bucket order
 *   localSpeed f32[n]                                                          learned m/s of the courier's res-7 cell (NaN: unknown)
 *   bucketStart u32[b+1] · levelStart u32[levels+1] · nodeCap f64[4·nodes]    packed tree of sphere caps
 *   nodeCount u32[4·nodes]                                                     couriers per status under each node
 *   idTable i32[2^⌈log2 2n⌉] · idStart u32[n+1] · idBytes u8[…]                 UTF-8 ids, open-addressed by FNV-1a
 *
 * The tree is packed bottom-up, 16 per node: level 0 is one cap (centre unit vector, chord radius) per H3
 * bucket in H3 index order, which keeps siblings together; each upper cap covers its children. A query
 * walks a few dozen caps with the same |q − c| − r bound as the live index, then scans contiguous couriers.
 */
import { COURIER_STATUSES, VEHICLES, type CourierStatus, type Vehicle, capabilitiesOf, type Capability } from './courier-attributes.js';
import { type CompiledFilter, type CourierFilter, STATUS_BITS, compileFilter, countMatching, passes, scanCouriers } from './courier-filter.js';
import type { CourierIndex } from './courier-index.js';
import type { CellSpeeds } from './cell-speeds.js';
import { EngineError, assertCoordinate } from './errors.js';
import { chord2ToMeters, metersToChord2, writeUnitVector } from './geodesy.js';
import { widen } from './rtree-nearest.js';
import { NodeQueue } from './node-queue.js';
import { TopK } from './top-k.js';

const MAGIC = 0x31534447; // 'GDS1'
/** Layout version; bump on any change so an old worker refuses a new buffer instead of misreading it. */
export const SNAPSHOT_FORMAT = 4;
const HEADER_BYTES = 8 * 4 + 2 * 8;
// 16 children per node: a node's boxes fit in two cache lines' worth of f64 reads per axis
const NODE_SIZE = 16;

/** One hit of a snapshot query: the courier's index in the snapshot and its distance. */
export interface SnapshotHit {
  index: number;
  distance: number;
}

/** Points and a radius in metres: a snapshot `near` them holds only couriers that may lie within it of one. */
export interface SnapshotRegion {
  points: readonly { lat: number; lng: number }[];
  radius: number;
}

/**
 * Builds a snapshot of the positioned couriers that pass `filter` (all by default). With `near`, buckets whose
 * cap lies wholly beyond `near.radius` of every point are left out: queries from those points within that radius
 * answer exactly as on the whole fleet, and a dispatch batch copies its own city, not every city's couriers.
 */
export function writeCourierSnapshot(index: CourierIndex, options: { filter?: CourierFilter; createdAt?: number; speeds?: CellSpeeds; near?: SnapshotRegion } = {}): SharedArrayBuffer {
  const src = index.internals;
  const cells = src.cells;
  const pool = cells.pool;
  const f = compileFilter(options.filter ?? {});
  const reaches = regionTest(options.near, cells.geo);
  // pick buckets (in H3 order) and the positions of passing couriers in each
  const chosen: { bucket: number; positions: number[] }[] = [];
  let n = 0;
  for (const bucket of cells.occupiedInCellOrder()) {
    if (!reaches(bucket) || !holdsStatus(cells.statusCounts, bucket, f.statusMask)) continue;
    const positions: number[] = [];
    for (let i = cells.info[4 * bucket], end = i + cells.info[4 * bucket + 1]; i < end; i++) if (passes(pool.attrs[i], pool.slots[i], f)) positions.push(i);
    if (positions.length > 0) {
      chosen.push({ bucket, positions });
      n += positions.length;
    }
  }
  const b = chosen.length;
  const levels = levelSizes(b);
  const nodes = levels.reduce((a, c) => a + c, 0);
  const known = encodedIds(src.ids);
  const idBytes: Uint8Array[] = [];
  const idHash: number[] = [];
  let idTotal = 0;

  const layout = new Layout(HEADER_BYTES);
  const oXyz = layout.take(24 * n);
  const oLat = layout.take(8 * n);
  const oLng = layout.take(8 * n);
  const oTs = layout.take(8 * n);
  const oAttr = layout.take(4 * n);
  const oSpeed = layout.take(4 * n);
  const oBucketStart = layout.take(4 * (b + 1));
  const oLevelStart = layout.take(4 * (levels.length + 1));
  const oNodeCap = layout.take(32 * nodes);
  const oNodeCount = layout.take(16 * nodes);
  const tableSize = idTableSize(n);
  const oIdTable = layout.take(4 * tableSize);
  const oIdStart = layout.take(4 * (n + 1));
  for (const { positions } of chosen) {
    for (const at of positions) {
      const slot = pool.slots[at];
      const bytes = known.bytesOf(slot, src.ids[slot] as string);
      idBytes.push(bytes);
      idHash.push(known.hash[slot]);
      idTotal += bytes.length;
    }
  }
  const oIdBytes = layout.take(idTotal);
  const buffer = new SharedArrayBuffer(layout.end);

  const head = new Int32Array(buffer, 0, 8);
  head.set([MAGIC, SNAPSHOT_FORMAT, n, b, nodes, levels.length, src.resolution, 0]);
  new Float64Array(buffer, 32, 2).set([src.version, options.createdAt ?? 0]);
  const xyz = new Float64Array(buffer, oXyz, 3 * n);
  const lat = new Float64Array(buffer, oLat, n);
  const lng = new Float64Array(buffer, oLng, n);
  const ts = new Float64Array(buffer, oTs, n);
  const attr = new Uint32Array(buffer, oAttr, n);
  const speed = new Float32Array(buffer, oSpeed, n);
  const bucketStart = new Uint32Array(buffer, oBucketStart, b + 1);
  const levelStart = new Uint32Array(buffer, oLevelStart, levels.length + 1);
  const nodeCap = new Float64Array(buffer, oNodeCap, 4 * nodes);
  const nodeCount = new Uint32Array(buffer, oNodeCount, 4 * nodes);
  const idStart = new Uint32Array(buffer, oIdStart, n + 1);
  const ids = new Uint8Array(buffer, oIdBytes, idTotal);
  const idTable = new Int32Array(buffer, oIdTable, tableSize);

  let w = 0;
  let idPos = 0;
  let idNo = 0;
  for (let j = 0; j < b; j++) {
    const { bucket, positions } = chosen[j];
    bucketStart[j] = w;
    nodeCap.set(cells.geo.subarray(4 * bucket, 4 * bucket + 4), 4 * j);
    // the bucket's speed cell is at the speeds' resolution: one Map lookup, NaN when nothing was learned there
    const local = options.speeds === undefined ? NaN : options.speeds.metersPerSecondOf(cells.speedCellOf(bucket, options.speeds.resolution));
    for (const at of positions) {
      const s = pool.slots[at];
      xyz[3 * w] = pool.xyz[3 * at];
      xyz[3 * w + 1] = pool.xyz[3 * at + 1];
      xyz[3 * w + 2] = pool.xyz[3 * at + 2];
      lat[w] = src.place[3 * s];
      lng[w] = src.place[3 * s + 1];
      ts[w] = src.place[3 * s + 2];
      attr[w] = src.attr[s];
      nodeCount[4 * j + (src.attr[s] & STATUS_BITS)]++;
      speed[w] = local;
      const bytes = idBytes[idNo];
      idStart[w] = idPos;
      ids.set(bytes, idPos);
      insertId(idTable, idHash[idNo++], w);
      idPos += bytes.length;
      w++;
    }
  }
  bucketStart[b] = w;
  idStart[n] = idPos;
  packUpperLevels(nodeCap, nodeCount, levels, levelStart);
  return buffer;
}

/** Zero-copy reader of a courier snapshot; safe to use from any thread. */
export class CourierSnapshot {
  readonly count: number;
  readonly indexVersion: number;
  readonly createdAt: number;
  readonly resolution: number;
  private readonly xyz: Float64Array;
  private readonly latArr: Float64Array;
  private readonly lngArr: Float64Array;
  private readonly tsArr: Float64Array;
  private readonly attr: Uint32Array;
  private readonly speedArr: Float32Array;
  private readonly bucketStart: Uint32Array;
  private readonly levelStart: Uint32Array;
  private readonly nodeCap: Float64Array;
  private readonly nodeCount: Uint32Array;
  private readonly queue = new NodeQueue();
  private readonly unit = new Float64Array(3);
  private readonly idStart: Uint32Array;
  private readonly idBytes: Uint8Array;
  private readonly top = new TopK();
  private readonly idTable: Int32Array;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();

  /** Opens a buffer written by writeCourierSnapshot; throws E_BAD_SNAPSHOT on a foreign or newer layout. */
  static from(buffer: SharedArrayBuffer | ArrayBuffer): CourierSnapshot {
    return new CourierSnapshot(buffer);
  }

  private constructor(buffer: SharedArrayBuffer | ArrayBuffer) {
    if (buffer.byteLength < HEADER_BYTES) throw new EngineError('E_BAD_SNAPSHOT', 'buffer too small to be a courier snapshot');
    const head = new Int32Array(buffer, 0, 8);
    if (head[0] !== MAGIC) throw new EngineError('E_BAD_SNAPSHOT', 'not a courier snapshot (bad magic)');
    if (head[1] !== SNAPSHOT_FORMAT) throw new EngineError('E_BAD_SNAPSHOT', `snapshot format ${head[1]} is not ${SNAPSHOT_FORMAT}: rebuild the writer and reader together`);
    const [n, b, nodes, levels] = [head[2], head[3], head[4], head[5]];
    this.count = n;
    this.resolution = head[6];
    const meta = new Float64Array(buffer, 32, 2);
    this.indexVersion = meta[0];
    this.createdAt = meta[1];
    const layout = new Layout(HEADER_BYTES);
    this.xyz = new Float64Array(buffer, layout.take(24 * n), 3 * n);
    this.latArr = new Float64Array(buffer, layout.take(8 * n), n);
    this.lngArr = new Float64Array(buffer, layout.take(8 * n), n);
    this.tsArr = new Float64Array(buffer, layout.take(8 * n), n);
    this.attr = new Uint32Array(buffer, layout.take(4 * n), n);
    this.speedArr = new Float32Array(buffer, layout.take(4 * n), n);
    this.bucketStart = new Uint32Array(buffer, layout.take(4 * (b + 1)), b + 1);
    this.levelStart = new Uint32Array(buffer, layout.take(4 * (levels + 1)), levels + 1);
    this.nodeCap = new Float64Array(buffer, layout.take(32 * nodes), 4 * nodes);
    this.nodeCount = new Uint32Array(buffer, layout.take(16 * nodes), 4 * nodes);
    const tableSize = idTableSize(n);
    this.idTable = new Int32Array(buffer, layout.take(4 * tableSize), tableSize);
    this.idStart = new Uint32Array(buffer, layout.take(4 * (n + 1)), n + 1);
    const idTotal = this.idStart[n];
    this.idBytes = new Uint8Array(buffer, layout.take(idTotal), idTotal);
  }

  /** Courier id at snapshot index i. */
  id(i: number): string {
    // TextDecoder refuses views of shared memory, so copy the few bytes of one id
    return this.decoder.decode(this.idBytes.slice(this.idStart[i], this.idStart[i + 1]));
  }

  /** Snapshot index of a courier id, or -1. */
  indexOf(id: string): number {
    // the table was written with the snapshot, so a fresh reader in a worker pays nothing to look ids up
    const key = this.encoder.encode(id);
    const table = this.idTable;
    const mask = table.length - 1;
    for (let h = fnv1a(key) & mask; ; h = (h + 1) & mask) {
      const entry = table[h];
      if (entry === 0) return -1;
      if (this.idEquals(entry - 1, key)) return entry - 1;
    }
  }

  private idEquals(i: number, key: Uint8Array): boolean {
    const start = this.idStart[i];
    if (this.idStart[i + 1] - start !== key.length) return false;
    for (let j = 0; j < key.length; j++) if (this.idBytes[start + j] !== key[j]) return false;
    return true;
  }


  lat(i: number): number {
    return this.latArr[i];
  }
  lng(i: number): number {
    return this.lngArr[i];
  }
  ts(i: number): number {
    return this.tsArr[i];
  }
  status(i: number): CourierStatus {
    return COURIER_STATUSES[this.attr[i] & 0xf];
  }
  vehicle(i: number): Vehicle {
    return VEHICLES[(this.attr[i] >>> 4) & 0xf];
  }
  capabilities(i: number): Capability[] {
    return capabilitiesOf((this.attr[i] >>> 8) & 0xff);
  }
  /** Learned speed (m/s) of the courier's neighbourhood when the snapshot was taken, or NaN. */
  localSpeed(i: number): number {
    return this.speedArr[i];
  }
  capacity(i: number): number {
    return this.attr[i] >>> 16;
  }
  /** Packed attribute word (status, vehicle, capabilities, capacity) for filters in hot loops. */
  attrWord(i: number): number {
    return this.attr[i];
  }

  /** The k nearest couriers in the snapshot matching the filter, nearest first (exact metres). */
  nearby(lat: number, lng: number, options: CourierFilter & { k?: number; radius?: number } = {}): SnapshotHit[] {
    assertCoordinate(lat, lng);
    const k = Math.min(options.k ?? 10, this.count);
    if (!(k > 0) || this.bucketStart.length < 2) return [];
    const f: CompiledFilter = compileFilter(options, undefined);
    f.excludeSlots = this.excludedIndices(options.exclude);
    const radius2 = metersToChord2(options.radius ?? Infinity);
    // writeUnitVector, as the live index uses, so distances agree to the last bit
    const v = this.unit;
    writeUnitVector(lat, lng, v, 0);
    const qx = v[0];
    const qy = v[1];
    const qz = v[2];
    const top = this.top;
    top.reset(k);
    // status counts bound the k-th distance early when status is the whole filter (as for live queries)
    const statusOnly = f.capsRequired === 0 && f.vehicleMask === 0xff && f.minCapacity === 0 && f.excludeSlots === undefined;
    const mask = statusOnly ? f.statusMask & 0xf : 0;
    let upper = Infinity;
    const levelStart = this.levelStart;
    const cap = this.nodeCap;
    const counts = this.nodeCount;
    const queue = this.queue;
    queue.clear();
    const rootLevel = levelStart.length - 2;
    for (let i = levelStart[rootLevel]; i < levelStart[rootLevel + 1]; i++) queue.push(i, this.bound(qx, qy, qz, i));
    while (queue.size > 0) {
      const t = top.bound();
      const limit = widen(Math.min(t, radius2, upper));
      if (queue.peekKey() > limit) break;
      const node = queue.pop();
      if (node < levelStart[1]) {
        scanCouriers(this.xyz, this.attr, undefined, this.bucketStart[node], this.bucketStart[node + 1], qx, qy, qz, f, radius2, top);
        continue;
      }
      let level = 1;
      while (node >= levelStart[level + 1]) level++;
      const first = levelStart[level - 1] + (node - levelStart[level]) * NODE_SIZE;
      const last = Math.min(first + NODE_SIZE, levelStart[level]);
      for (let ch = first; ch < last; ch++) {
        const g = 4 * ch;
        const have = mask === 0 ? 1 : countMatching(counts, g, mask);
        if (have === 0) continue;
        const dx = qx - cap[g];
        const dy = qy - cap[g + 1];
        const dz = qz - cap[g + 2];
        const centre = Math.sqrt(dx * dx + dy * dy + dz * dz);
        if (mask !== 0 && have >= k) {
          const reach = centre + cap[g + 3];
          const u = reach * reach * (1 + 1e-9) + 1e-24;
          if (u < upper) upper = u;
        }
        const d = centre - cap[g + 3];
        const key = d > 0 ? d * d : 0;
        if (key <= limit) queue.push(ch, key);
      }
    }
    const n = top.size;
    const idx = new Int32Array(n);
    const keys = new Float64Array(n);
    top.drainSorted(idx, keys);
    const out: SnapshotHit[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = { index: idx[i], distance: chord2ToMeters(keys[i]) };
    return out;
  }

  private excludedIndices(exclude: ReadonlySet<string> | undefined): Set<number> | undefined {
    if (exclude === undefined || exclude.size === 0) return undefined;
    const out = new Set<number>();
    for (const id of exclude) {
      const i = this.indexOf(id);
      if (i >= 0) out.add(i);
    }
    return out.size === 0 ? undefined : out;
  }

  // chord² lower bound from the query to anything inside a cap: (|q − c| − r)², 0 inside
  private bound(qx: number, qy: number, qz: number, node: number): number {
    const cap = this.nodeCap;
    const dx = qx - cap[4 * node];
    const dy = qy - cap[4 * node + 1];
    const dz = qz - cap[4 * node + 2];
    const d = Math.sqrt(dx * dx + dy * dy + dz * dz) - cap[4 * node + 3];
    return d > 0 ? d * d : 0;
  }
}

class Layout {
  end: number;
  constructor(start: number) {
    this.end = start;
  }
  take(bytes: number): number {
    const at = this.end;
    this.end = at + Math.ceil(bytes / 8) * 8;
    return at;
  }
}


// open addressing at load ≤ 1/2: a lookup probes ~1.5 slots on average
function idTableSize(n: number): number {
  let size = 2;
  while (size < 2 * n) size *= 2;
  return size;
}

/** Whether a bucket holds a courier of a status in `mask` (its per-status counts; a dispatch snapshot wants only the available). */
function holdsStatus(counts: Int32Array, bucket: number, mask: number): boolean {
  for (let s = 0; s < 4; s++) if (((mask >>> s) & 1) === 1 && counts[4 * bucket + s] > 0) return true;
  return false;
}

/**
 * Whether a bucket's cap (centre unit vector c, chord radius r in geo) may hold a point within `near.radius` of
 * one of `near.points`: by the triangle inequality no point of the cap is nearer to q than |q − c| − r.
 */
function regionTest(near: SnapshotRegion | undefined, geo: Float64Array): (bucket: number) => boolean {
  if (near === undefined || !(near.radius < Infinity)) return () => true;
  const q = new Float64Array(3 * near.points.length);
  near.points.forEach((p, i) => writeUnitVector(p.lat, p.lng, q, 3 * i));
  // a hair wider than the query's own radius test, so float rounding never drops a courier it would keep
  const reach = Math.sqrt(metersToChord2(near.radius)) * (1 + 1e-9) + 1e-12;
  return (b) => {
    const cx = geo[4 * b];
    const cy = geo[4 * b + 1];
    const cz = geo[4 * b + 2];
    const limit = reach + geo[4 * b + 3];
    const limit2 = limit * limit;
    for (let i = 0; i < q.length; i += 3) {
      const dx = q[i] - cx;
      const dy = q[i + 1] - cy;
      const dz = q[i + 2] - cz;
      if (dx * dx + dy * dy + dz * dz <= limit2) return true;
    }
    return false;
  };
}

/**
 * Courier ids as UTF-8 bytes and their FNV-1a hashes, per slot of one index, kept between snapshots: a snapshot
 * is taken per dispatch batch, and encoding every available courier's id each time was a fifth of the server's
 * thread under request load. A slot whose id changed (reused by another courier) is encoded again.
 */
class EncodedIds {
  private readonly names: (string | undefined)[] = [];
  private readonly bytes: Uint8Array[] = [];
  hash = new Uint32Array(0);
  private readonly encoder = new TextEncoder();

  bytesOf(slot: number, id: string): Uint8Array {
    if (this.names[slot] === id) return this.bytes[slot];
    if (slot >= this.hash.length) {
      const grown = new Uint32Array(Math.max(2 * this.hash.length, slot + 1, 1024));
      grown.set(this.hash);
      this.hash = grown;
    }
    const bytes = this.encoder.encode(id);
    this.names[slot] = id;
    this.bytes[slot] = bytes;
    this.hash[slot] = fnv1a(bytes);
    return bytes;
  }
}

// keyed by the index's id array: one cache per index, dropped with it
const encodedIdCaches = new WeakMap<readonly (string | undefined)[], EncodedIds>();

function encodedIds(ids: readonly (string | undefined)[]): EncodedIds {
  let cache = encodedIdCaches.get(ids);
  if (cache === undefined) encodedIdCaches.set(ids, (cache = new EncodedIds()));
  return cache;
}

function insertId(table: Int32Array, hash: number, index: number): void {
  const mask = table.length - 1;
  let h = hash & mask;
  while (table[h] !== 0) h = (h + 1) & mask;
  table[h] = index + 1;
}

// FNV-1a over UTF-8 bytes: cheap, and good enough for ids like 'c123456'
function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

function levelSizes(b: number): number[] {
  if (b === 0) return [];
  const sizes = [b];
  while (sizes[sizes.length - 1] > 1) sizes.push(Math.ceil(sizes[sizes.length - 1] / NODE_SIZE));
  return sizes;
}

function packUpperLevels(nodeCap: Float64Array, nodeCount: Uint32Array, levels: number[], levelStart: Uint32Array): void {
  let start = 0;
  for (let l = 0; l < levels.length; l++) {
    levelStart[l] = start;
    start += levels[l];
  }
  levelStart[levels.length] = start;
  for (let l = 1; l < levels.length; l++) {
    for (let j = 0; j < levels[l]; j++) {
      const first = levelStart[l - 1] + j * NODE_SIZE;
      const last = Math.min(first + NODE_SIZE, levelStart[l]);
      // centre: normalised mean of the children's centres; radius: farthest child reach from it
      let [x, y, z] = [0, 0, 0];
      for (let c = first; c < last; c++) {
        x += nodeCap[4 * c];
        y += nodeCap[4 * c + 1];
        z += nodeCap[4 * c + 2];
      }
      const len = Math.sqrt(x * x + y * y + z * z) || 1;
      [x, y, z] = [x / len, y / len, z / len];
      let r = 0;
      for (let c = first; c < last; c++) {
        const d = Math.hypot(nodeCap[4 * c] - x, nodeCap[4 * c + 1] - y, nodeCap[4 * c + 2] - z) + nodeCap[4 * c + 3];
        if (d > r) r = d;
      }
      nodeCap.set([x, y, z, r * (1 + 1e-9)], 4 * (levelStart[l] + j));
      for (let c = first; c < last; c++) for (let t = 0; t < 4; t++) nodeCount[4 * (levelStart[l] + j) + t] += nodeCount[4 * c + t];
    }
  }
}
