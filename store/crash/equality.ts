/**
 * Values as the server echoes them back: coordinates within float noise, geometries point by point, sets and
 * JSON regardless of order.
 */

/** Rounds to 6 decimals (~0.1 m), as the harness writes every coordinate. */
export function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

/** Coordinates written with 6 decimals come back through PostGIS within float noise. */
export function near(a: number, b: number): boolean {
  return Math.abs(a - b) < 1e-7;
}

/** Polygon rings equal point by point, within float noise. */
export function sameGeometry(a: number[][][], b: unknown): boolean {
  if (!Array.isArray(b) || b.length !== a.length) return false;
  return a.every((ring, i) => Array.isArray(b[i]) && b[i].length === ring.length && ring.every((p, j) => near(p[0], b[i][j][0]) && near(p[1], b[i][j][1])));
}

/** The same strings, in any order. */
export function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** The same JSON, whatever the order of object keys. */
export function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}
