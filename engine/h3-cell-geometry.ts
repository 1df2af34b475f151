/**
 * Geometry of one H3 cell from its boundary vertices, measured once when a bucket is created: the
 * radius that covers it, the circle inside it, and its edges as planes through the Earth's centre.
 */
import { EARTH_RADIUS_M } from './geodesy.js';

const DEG = Math.PI / 180;

/**
 * Inward normals of the planes through the Earth's centre that hold each hexagon (or pentagon) edge;
 * returns the edge count, or 0 for cells H3 draws with extra distortion vertices (those ask H3).
 */
export function writeEdgeNormals(boundary: number[][], geo: Float64Array, g: number, out: Float32Array, o: number): number {
  const m = boundary.length;
  if (m < 5 || m > 6) return 0;
  const v = boundary.map(([lat, lng]) => {
    const c = Math.cos(lat * DEG);
    return [c * Math.cos(lng * DEG), c * Math.sin(lng * DEG), Math.sin(lat * DEG)];
  });
  for (let e = 0; e < m; e++) {
    const [ax, ay, az] = v[e];
    const [bx, by, bz] = v[(e + 1) % m];
    let nx = ay * bz - az * by;
    let ny = az * bx - ax * bz;
    let nz = ax * by - ay * bx;
    const len = Math.sqrt(nx * nx + ny * ny + nz * nz);
    if (!(len > 0)) return 0;
    const sign = nx * geo[g] + ny * geo[g + 1] + nz * geo[g + 2] >= 0 ? 1 / len : -1 / len;
    nx *= sign;
    ny *= sign;
    nz *= sign;
    out[o + 3 * e] = nx;
    out[o + 3 * e + 1] = ny;
    out[o + 3 * e + 2] = nz;
  }
  return m;
}

/** Largest chord from a cell centre (unit vector) to its boundary vertices. */
export function vertexRadius(cx: number, cy: number, cz: number, boundary: number[][]): number {
  let best = 0;
  for (const [lat, lng] of boundary) {
    const c = Math.cos(lat * DEG);
    best = Math.max(best, Math.hypot(c * Math.cos(lng * DEG) - cx, c * Math.sin(lng * DEG) - cy, Math.sin(lat * DEG) - cz));
  }
  return best;
}

/** Distance from the centre to the nearest cell edge, on the local tangent plane (metres). */
export function inradiusMeters(lat: number, lng: number, boundary: number[][]): number {
  const k = DEG * EARTH_RADIUS_M;
  const cosLat = Math.cos(lat * DEG);
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
  return Math.hypot(ax + t * dx, ay + t * dy);
}
