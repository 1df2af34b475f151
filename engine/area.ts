/**
 * The regions `within` queries accept — a bbox or a GeoJSON Polygon / MultiPolygon — normalised once into
 * the plain rectangles to search (split at the antimeridian) and an exact containment test.
 */
import { booleanPointInPolygon, bbox as turfBBox } from '@turf/turf';
import type { Feature, MultiPolygon, Polygon } from 'geojson';
import { EngineError } from './errors.js';
import { type BBox, boxContains, splitAntimeridian } from './geodesy.js';

/** `[minLng, minLat, maxLng, maxLat]` (minLng > maxLng crosses the antimeridian), a BBox, or a polygon. */
export type AreaInput = readonly [number, number, number, number] | BBox | Polygon | MultiPolygon | Feature<Polygon | MultiPolygon>;

/** A validated query region. */
export interface Area {
  /** Plain rectangles (minLng <= maxLng) that together cover the region. */
  readonly boxes: readonly BBox[];
  /** Exact membership of a point. */
  contains(lat: number, lng: number): boolean;
}

/** Validates and normalises a query region, or throws E_BAD_GEOMETRY. */
export function toArea(input: AreaInput): Area {
  if (Array.isArray(input)) return boxArea(checkBox({ minLng: input[0], minLat: input[1], maxLng: input[2], maxLat: input[3] }));
  const obj = input as Partial<BBox> & { type?: unknown };
  if (typeof obj.minLng === 'number') return boxArea(checkBox(obj as BBox));
  return polygonArea(input as Polygon | MultiPolygon | Feature<Polygon | MultiPolygon>);
}

/** Validates a GeoJSON Polygon / MultiPolygon (or a Feature of one), or throws E_BAD_GEOMETRY. */
export function checkPolygon(input: unknown): Polygon | MultiPolygon {
  const geom = (input as Feature)?.type === 'Feature' ? (input as Feature).geometry : input;
  const g = geom as Polygon | MultiPolygon | undefined;
  if (!g || (g.type !== 'Polygon' && g.type !== 'MultiPolygon')) {
    throw new EngineError('E_BAD_GEOMETRY', 'geometry must be a GeoJSON Polygon or MultiPolygon');
  }
  const polys = g.type === 'Polygon' ? [g.coordinates] : g.coordinates;
  if (!Array.isArray(polys) || polys.length === 0) throw new EngineError('E_BAD_GEOMETRY', `${g.type} has no coordinates`);
  for (const rings of polys) {
    if (!Array.isArray(rings) || rings.length === 0) throw new EngineError('E_BAD_GEOMETRY', 'a polygon needs at least one ring');
    for (const ring of rings) checkRing(ring);
    checkHoles(rings as number[][][]);
  }
  return g;
}

// A polygon's holes lie inside its shell and no two of its rings cross or touch (RFC 7946 §3.1.6).
function checkHoles(rings: readonly (readonly (readonly number[])[])[]): void {
  if (rings.length < 2) return;
  const crossing = ringsCrossing(rings);
  if (crossing !== undefined) throw new EngineError('E_BAD_GEOMETRY', `the rings of a polygon must not cross or touch (rings ${crossing[0]} and ${crossing[1]} meet)`);
  const shell = { type: 'Polygon' as const, coordinates: [rings[0] as number[][]] };
  for (let h = 1; h < rings.length; h++) {
    if (!booleanPointInPolygon(rings[h][0] as number[], shell)) throw new EngineError('E_BAD_GEOMETRY', `hole ${h} of a polygon lies outside its outer ring`);
  }
}

function checkRing(ring: unknown): void {
  if (!Array.isArray(ring) || ring.length < 4) throw new EngineError('E_BAD_GEOMETRY', 'a linear ring needs at least 4 positions');
  for (const p of ring) {
    if (!Array.isArray(p) || p.length < 2 || !inRange(p[1], 90) || !inRange(p[0], 180)) {
      throw new EngineError('E_BAD_GEOMETRY', 'ring positions must be [lng, lat] within [-180, 180] × [-90, 90]');
    }
  }
  const a = ring[0] as number[];
  const b = ring[ring.length - 1] as number[];
  if (a[0] !== b[0] || a[1] !== b[1]) throw new EngineError('E_BAD_GEOMETRY', 'a linear ring must end where it starts');
  const crossing = selfCrossing(ring as number[][]);
  if (crossing !== undefined) throw new EngineError('E_BAD_GEOMETRY', `a linear ring must not cross itself (edges ${crossing[0]} and ${crossing[1]} meet)`);
}

/**
 * Two non-adjacent edges of a ring that touch or cross, or undefined when the ring is simple (a "bowtie" is not a
 * fence: inside and outside are not defined).
 */
export function selfCrossing(positions: readonly (readonly number[])[]): [number, number] | undefined {
  const met = meetingEdges([positions]);
  return met === undefined ? undefined : [met[0][1], met[1][1]];
}

/** Two rings (indices) with edges that touch or cross, or undefined; each ring is taken as simple here. */
export function ringsCrossing(rings: readonly (readonly (readonly number[])[])[]): [number, number] | undefined {
  const met = meetingEdges(rings, true);
  return met === undefined ? undefined : [met[0][0], met[1][0]];
}

/**
 * Two edges that meet, as [ring, edge] pairs: within one ring non-adjacent ones (unless `acrossOnly`), and any two
 * of different rings. Edges are bucketed on a grid of about one cell per edge over the rings' box, and only
 * edges sharing a cell are compared: near-linear for the rings maps draw.
 */
function meetingEdges(rings: readonly (readonly (readonly number[])[])[], acrossOnly = false): [[number, number], [number, number]] | undefined {
  // a position repeated at once is allowed (RFC 7946) and is no edge: collapsed first
  const clean = rings.map((r) => r.filter((p, i) => i === 0 || p[0] !== r[i - 1][0] || p[1] !== r[i - 1][1]));
  const edges: [number, number][] = []; // [ring, index of the edge's first position]
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  clean.forEach((ring, k) => {
    for (let i = 0; i < ring.length; i++) {
      const [x, y] = ring[i];
      minX = Math.min(minX, x);
      maxX = Math.max(maxX, x);
      minY = Math.min(minY, y);
      maxY = Math.max(maxY, y);
      if (i < ring.length - 1) edges.push([k, i]);
    }
  });
  const side = Math.max(1, Math.ceil(Math.sqrt(edges.length)));
  const cw = (maxX - minX) / side || 1;
  const ch = (maxY - minY) / side || 1;
  const cellOf = (v: number, min: number, size: number): number => Math.min(side - 1, Math.floor((v - min) / size));
  const cells = new Map<number, number[]>();
  edges.forEach(([k, i], e) => {
    const [x1, y1] = clean[k][i];
    const [x2, y2] = clean[k][i + 1];
    for (let cx = cellOf(Math.min(x1, x2), minX, cw); cx <= cellOf(Math.max(x1, x2), minX, cw); cx++) {
      for (let cy = cellOf(Math.min(y1, y2), minY, ch); cy <= cellOf(Math.max(y1, y2), minY, ch); cy++) {
        const key = cx * side + cy;
        const list = cells.get(key);
        if (list === undefined) cells.set(key, [e]);
        else list.push(e);
      }
    }
  });
  for (const list of cells.values()) {
    for (let p = 0; p < list.length; p++) {
      for (let q = p + 1; q < list.length; q++) {
        const [a, b] = list[p] < list[q] ? [edges[list[p]], edges[list[q]]] : [edges[list[q]], edges[list[p]]];
        if (a[0] === b[0]) {
          const n = clean[a[0]].length - 1;
          if (acrossOnly || b[1] === a[1] + 1 || (a[1] === 0 && b[1] === n - 1)) continue; // neighbours share a corner
        }
        const r = clean[a[0]];
        const t = clean[b[0]];
        if (edgesMeet(r[a[1]], r[a[1] + 1], t[b[1]], t[b[1] + 1])) return [a, b];
      }
    }
  }
  return undefined;
}

function edgesMeet(a: readonly number[], b: readonly number[], c: readonly number[], d: readonly number[]): boolean {
  const o1 = turn(a, b, c);
  const o2 = turn(a, b, d);
  const o3 = turn(c, d, a);
  const o4 = turn(c, d, b);
  if (o1 !== o2 && o3 !== o4) return true;
  return (o1 === 0 && within(a, c, b)) || (o2 === 0 && within(a, d, b)) || (o3 === 0 && within(c, a, d)) || (o4 === 0 && within(c, b, d));
}

function turn(a: readonly number[], b: readonly number[], c: readonly number[]): number {
  return Math.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]));
}

// q on the segment p–r, given the three are collinear
function within(p: readonly number[], q: readonly number[], r: readonly number[]): boolean {
  return q[0] <= Math.max(p[0], r[0]) && q[0] >= Math.min(p[0], r[0]) && q[1] <= Math.max(p[1], r[1]) && q[1] >= Math.min(p[1], r[1]);
}

function inRange(v: unknown, limit: number): boolean {
  return typeof v === 'number' && v >= -limit && v <= limit;
}

function checkBox(b: BBox): BBox {
  const ok =
    inRange(b.minLng, 180) && inRange(b.maxLng, 180) && inRange(b.minLat, 90) && inRange(b.maxLat, 90) && b.minLat <= b.maxLat;
  if (!ok) throw new EngineError('E_BAD_GEOMETRY', 'bbox must be [minLng, minLat, maxLng, maxLat] within range, with minLat <= maxLat');
  return { minLng: b.minLng, minLat: b.minLat, maxLng: b.maxLng, maxLat: b.maxLat };
}

function boxArea(box: BBox): Area {
  return { boxes: splitAntimeridian(box), contains: (lat, lng) => boxContains(box, lat, lng) };
}

function polygonArea(input: Polygon | MultiPolygon | Feature<Polygon | MultiPolygon>): Area {
  const geometry = checkPolygon(input);
  const [minLng, minLat, maxLng, maxLat] = turfBBox(geometry);
  const point = [0, 0];
  return {
    boxes: [{ minLng, minLat, maxLng, maxLat }],
    contains(lat, lng) {
      point[0] = lng;
      point[1] = lat;
      return booleanPointInPolygon(point, geometry);
    },
  };
}
