/**
 * Regions: the unit a core owns in a cluster (PRODUCT §7). A region is an H3 cell at REGION_RES; a courier, a
 * request or a ping belongs to the region of its point, and a nearest query asks the owners of every region its
 * circle touches.
 *
 *   point ──regionOf──► "8428309ffffffff"          circle ──regionsTouched──► ["84283...", "84283..."] | 'all'
 */
import { cellToBoundary, cellToLatLng, gridRing, latLngToCell } from 'h3-js';
import { distanceMeters } from '../engine/geodesy.js';

/** res 4 ≈ 1,770 km² a cell (26 km edges): a large city spans a handful, so two cores can split one. */
export const REGION_RES = 4;

/**
 * Beyond this radius a query asks every owner instead of listing regions: 500 km already touches ~300 res-4
 * cells, and the owners, not the cells, are what the caller contacts.
 */
export const ALL_REGIONS_RADIUS_M = 500_000;

/** The region holding a point. */
export function regionOf(lat: number, lng: number): string {
  return latLngToCell(lat, lng, REGION_RES);
}

/**
 * Every region a circle may touch, sorted; 'all' when the radius is too large to list them. A superset: a region
 * is listed when its centre lies within radius + its circumradius of the circle's centre, so no region holding a
 * point of the circle is ever missed (the one guarantee a scatter-gather needs); a few at the rim may hold none.
 */
export function regionsTouched(lat: number, lng: number, radiusM: number): string[] | 'all' {
  if (!(radiusM >= 0)) throw new Error(`radius must be a non-negative number of metres, got ${radiusM}`);
  if (radiusM > ALL_REGIONS_RADIUS_M) return 'all';
  const centre = regionOf(lat, lng);
  const out = [centre];
  // rings grow outward; once a whole ring lies beyond reach, every later ring does too (each ring encloses
  // the previous one), so the walk stops there
  for (let k = 1; ; k++) {
    const ring = gridRing(centre, k);
    let anyNear = false;
    for (const cell of ring) {
      if (mayTouch(cell, lat, lng, radiusM, 2)) anyNear = true;
      if (mayTouch(cell, lat, lng, radiusM, 1)) out.push(cell);
    }
    if (!anyNear) break;
  }
  return out.sort();
}

/** True when the cell's centre lies within radius + slack × its circumradius of the point. */
function mayTouch(cell: string, lat: number, lng: number, radiusM: number, slack: number): boolean {
  const [clat, clng] = cellToLatLng(cell);
  return distanceMeters(lat, lng, clat, clng) <= radiusM + slack * circumradius(cell, clat, clng) + 1;
}

/** The farthest vertex of a cell from its centre, in metres (cells vary ~2× in size across the globe). */
function circumradius(cell: string, clat: number, clng: number): number {
  let max = 0;
  for (const [vlat, vlng] of cellToBoundary(cell)) max = Math.max(max, distanceMeters(clat, clng, vlat, vlng));
  return max;
}


/** `[minLng, minLat, maxLng, maxLat]`; minLng > maxLng crosses the antimeridian. */
export type LngLatBox = readonly [number, number, number, number];

/** A circle holding the box: its centre and the distance to its farthest corner (for regionsTouched). */
export function boxCircle(box: LngLatBox): { lat: number; lng: number; radius: number } {
  const [minLng, minLat, maxLng, maxLat] = box;
  const width = minLng <= maxLng ? maxLng - minLng : maxLng + 360 - minLng;
  let lng = minLng + width / 2;
  if (lng > 180) lng -= 360;
  const lat = (minLat + maxLat) / 2;
  let radius = 0;
  for (const [cLng, cLat] of [[minLng, minLat], [minLng, maxLat], [maxLng, minLat], [maxLng, maxLat], [lng, minLat], [lng, maxLat]]) {
    radius = Math.max(radius, distanceMeters(lat, lng, cLat, cLng));
  }
  return { lat, lng, radius: radius + 1 };
}
