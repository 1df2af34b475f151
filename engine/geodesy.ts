/**
 * Great-circle geometry on a spherical Earth, shared by every index and oracle.
 *
 * Points are ranked by chord length between unit vectors: chord is a strictly increasing function of the
 * great-circle angle, costs three multiplications, and has no seam at the antimeridian or the poles.
 * Distances in metres come from the chord once, at the end of a query.
 */

/** Mean Earth radius in metres (IUGG), the same radius turf uses. */
export const EARTH_RADIUS_M = 6_371_008.8;

const DEG = Math.PI / 180;

/** Writes the unit vector of (lat, lng) into out[offset..offset+2]. */
export function writeUnitVector(lat: number, lng: number, out: Float64Array, offset: number): void {
  const phi = lat * DEG;
  const lam = lng * DEG;
  const c = Math.cos(phi);
  out[offset] = c * Math.cos(lam);
  out[offset + 1] = c * Math.sin(lam);
  out[offset + 2] = Math.sin(phi);
}

/** Squared chord between two unit vectors. */
export function chord2(ax: number, ay: number, az: number, bx: number, by: number, bz: number): number {
  const dx = ax - bx;
  const dy = ay - by;
  const dz = az - bz;
  return dx * dx + dy * dy + dz * dz;
}

/** Great-circle metres for a squared chord between unit vectors. */
export function chord2ToMeters(c2: number): number {
  const half = Math.sqrt(c2) / 2;
  return 2 * EARTH_RADIUS_M * Math.asin(half >= 1 ? 1 : half);
}

/** Squared chord for a great-circle distance in metres (Infinity stays Infinity). */
export function metersToChord2(meters: number): number {
  if (!(meters < Math.PI * EARTH_RADIUS_M)) return meters === Infinity ? Infinity : 4;
  const s = 2 * Math.sin(meters / EARTH_RADIUS_M / 2);
  return s * s;
}

/** Squared chord for a great-circle central angle in radians. */
export function angleToChord2(angle: number): number {
  const s = 2 * Math.sin(Math.min(angle, Math.PI) / 2);
  return s * s;
}

/** Exact great-circle distance in metres, computed the way the indexes compute it. */
export function distanceMeters(lat1: number, lng1: number, lat2: number, lng2: number): number {
  const p1 = lat1 * DEG;
  const p2 = lat2 * DEG;
  const l1 = lng1 * DEG;
  const l2 = lng2 * DEG;
  const c1 = Math.cos(p1);
  const c2 = Math.cos(p2);
  return chord2ToMeters(
    chord2(c1 * Math.cos(l1), c1 * Math.sin(l1), Math.sin(p1), c2 * Math.cos(l2), c2 * Math.sin(l2), Math.sin(p2)),
  );
}

/**
 * Smallest great-circle angle (radians) from a point to a lng/lat rectangle. Exact on the sphere:
 * inside the rectangle's longitudes the nearest point is straight north or south; outside, it lies on the
 * nearer bounding meridian, where cos(distance) = A·sinφ' + B·cosφ' peaks at φ' = atan2(A, B), clamped to
 * the edge. Longitudes wrap, so a box that touches ±180 is measured across the antimeridian correctly.
 */
export function angleToBox(lat: number, lng: number, minLng: number, minLat: number, maxLng: number, maxLat: number): number {
  const dLng = lngGapToRange(lng, minLng, maxLng);
  if (dLng === 0) {
    if (lat < minLat) return (minLat - lat) * DEG;
    if (lat > maxLat) return (lat - maxLat) * DEG;
    return 0;
  }
  const phi = lat * DEG;
  const dl = dLng * DEG;
  const sinPhi = Math.sin(phi);
  const cosPhi = Math.cos(phi);
  const lo = minLat * DEG;
  const hi = maxLat * DEG;
  const sDl = Math.sin(dl / 2);
  const cosDl = Math.cos(dl);
  if (cosDl < 0) {
    // the peak lies beyond a pole, so the nearest point is one of the edge's two ends
    return Math.min(haversineAngle(phi, cosPhi, lo, sDl), haversineAngle(phi, cosPhi, hi, sDl));
  }
  let best = Math.atan2(sinPhi, cosPhi * cosDl);
  if (best < lo) best = lo;
  else if (best > hi) best = hi;
  return haversineAngle(phi, cosPhi, best, sDl);
}

// haversine form keeps precision for small angles
function haversineAngle(phi: number, cosPhi: number, phi2: number, sinHalfDl: number): number {
  const sDp = Math.sin((phi2 - phi) / 2);
  const h = sDp * sDp + cosPhi * Math.cos(phi2) * sinHalfDl * sinHalfDl;
  return 2 * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Degrees of longitude between lng and the range [minLng, maxLng] (0 when inside), going the short way round. */
export function lngGapToRange(lng: number, minLng: number, maxLng: number): number {
  if (lng >= minLng && lng <= maxLng) return 0;
  const toMin = wrap360(minLng - lng);
  const toMax = wrap360(lng - maxLng);
  return Math.min(toMin, toMax, 180);
}

function wrap360(d: number): number {
  const r = d % 360;
  return r < 0 ? r + 360 : r;
}

/** A lng/lat rectangle; minLng > maxLng means it crosses the antimeridian. */
export interface BBox {
  minLng: number;
  minLat: number;
  maxLng: number;
  maxLat: number;
}

/**
 * A lng/lat box covering the sphere cap around unit vector (x, y, z) with chord radius `chord`
 * (minLng > maxLng when it crosses ±180; full longitude range when it reaches a pole).
 */
export function capToBox(x: number, y: number, z: number, chord: number): BBox {
  const lat = Math.asin(Math.max(-1, Math.min(1, z))) / DEG;
  const lng = Math.atan2(y, x) / DEG;
  const r = 2 * Math.asin(Math.min(1, chord / 2));
  const rDeg = r / DEG;
  if (lat + rDeg >= 90 || lat - rDeg <= -90) return { minLng: -180, minLat: Math.max(-90, lat - rDeg), maxLng: 180, maxLat: Math.min(90, lat + rDeg) };
  const dLng = Math.asin(Math.min(1, Math.sin(r) / Math.cos(lat * DEG))) / DEG;
  if (dLng >= 180) return { minLng: -180, minLat: lat - rDeg, maxLng: 180, maxLat: lat + rDeg };
  let minLng = lng - dLng;
  let maxLng = lng + dLng;
  if (minLng < -180) minLng += 360;
  if (maxLng > 180) maxLng -= 360;
  return { minLng, minLat: lat - rDeg, maxLng, maxLat: lat + rDeg };
}

/** Splits a rectangle that crosses the antimeridian into the one or two plain rectangles it covers. */
export function splitAntimeridian(box: BBox): BBox[] {
  if (box.minLng <= box.maxLng) return [box];
  return [
    { minLng: box.minLng, minLat: box.minLat, maxLng: 180, maxLat: box.maxLat },
    { minLng: -180, minLat: box.minLat, maxLng: box.maxLng, maxLat: box.maxLat },
  ];
}

/** True when (lat, lng) lies in the rectangle, honouring antimeridian-crossing boxes. */
export function boxContains(box: BBox, lat: number, lng: number): boolean {
  if (lat < box.minLat || lat > box.maxLat) return false;
  return box.minLng <= box.maxLng ? lng >= box.minLng && lng <= box.maxLng : lng >= box.minLng || lng <= box.maxLng;
}
