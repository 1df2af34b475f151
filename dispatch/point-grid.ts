/**
 * Items by position on a grid of cells at least `cellMeters` wide: a lookup sees its own cell and the 8 around it,
 * a superset of the items within cellMeters. Stacking files stacks by their pickups; scarce pricing files where
 * scarce work starts.
 */
export class PointGrid {
  private readonly cells = new Map<string, Set<number>>();
  private readonly latStep: number;
  private readonly lngStep: number;

  /** `maxAbsLat`: the highest |latitude| of any point, so cells are at least `cellMeters` wide everywhere. */
  constructor(cellMeters: number, maxAbsLat: number) {
    this.latStep = Math.max(cellMeters, 50) / 111_320;
    this.lngStep = this.latStep / Math.max(0.05, Math.cos((Math.min(89, maxAbsLat) * Math.PI) / 180));
  }

  clear(): void {
    this.cells.clear();
  }

  add(lat: number, lng: number, item: number): void {
    const key = `${Math.floor(lat / this.latStep)}:${Math.floor(lng / this.lngStep)}`;
    let cell = this.cells.get(key);
    if (cell === undefined) this.cells.set(key, (cell = new Set()));
    cell.add(item);
  }

  /** Whether `test` holds for some item in the 3×3 cells around the point (stops at the first; allocates nothing). */
  some(lat: number, lng: number, test: (item: number) => boolean): boolean {
    const y = Math.floor(lat / this.latStep);
    const x = Math.floor(lng / this.lngStep);
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const cell = this.cells.get(`${y + dy}:${x + dx}`);
        if (cell !== undefined) for (const item of cell) if (test(item)) return true;
      }
    }
    return false;
  }

  /** Every item in the 3×3 cells around the point: a superset of those within cellMeters. */
  near(lat: number, lng: number): number[] {
    const y = Math.floor(lat / this.latStep);
    const x = Math.floor(lng / this.lngStep);
    const out = new Set<number>();
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) for (const item of this.cells.get(`${y + dy}:${x + dx}`) ?? []) out.add(item);
    }
    return [...out];
  }
}
