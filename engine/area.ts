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
  }
  return g;
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
