/**
 * The couriers the page shows, in typed arrays so 10,000 of them interpolate and upload in well under a
 * millisecond per frame.
 *
 *   snapshot ─► reset(tuples)  (keeps the animation of couriers still in view, drops the rest)
 *   delta    ─► move(id, lat, lng, status) ─ from = where it is drawn now, to = the new fix,
 *                                            over the time since its previous fix (so motion is continuous)
 *   frame    ─► fill(buffer, origin, now)  ─► [x, y, status] per courier in Web Mercator units
 *
 * Positions are Web Mercator in [0, 1] (MapLibre's MercatorCoordinate), kept as float64 here; the GPU gets
 * them relative to an origin so float32 keeps centimetre precision at street zoom.
 */
import { type CourierStatus, COURIER_STATUSES, statusCode } from './palette.js';

/** The slowest animation between two fixes: a courier silent for longer jumps after 2 s instead of crawling. */
const MAX_GLIDE_MS = 2000;

/** Couriers in view with their animation state. */
export class CourierFleet {
  /** Courier ids by slot; slots [0, size) are live. */
  ids: string[] = [];
  size = 0;
  private readonly slot = new Map<string, number>();
  private fromX = new Float64Array(1024);
  private fromY = new Float64Array(1024);
  private toX = new Float64Array(1024);
  private toY = new Float64Array(1024);
  private t0 = new Float64Array(1024);
  private glide = new Float64Array(1024);
  private lastFix = new Float64Array(1024);
  /** Latest fix in degrees (details, density). */
  lat = new Float64Array(1024);
  lng = new Float64Array(1024);
  status = new Uint8Array(1024);
  /** The shortest glide: the watch interval (a courier fixing every delta moves without pauses). */
  minGlideMs = 250;

  /** Replaces the set with a snapshot; couriers already shown keep gliding from where they are drawn. */
  reset(tuples: readonly (readonly [string, number, number, string])[], now: number): void {
    const keep = new Set<string>();
    for (const t of tuples) keep.add(t[0]);
    for (let i = this.size - 1; i >= 0; i--) if (!keep.has(this.ids[i])) this.remove(this.ids[i]);
    for (const t of tuples) this.move(t[0], t[1], t[2], t[3], now);
  }

  /** A courier's new fix and status. */
  move(id: string, lat: number, lng: number, status: string, now: number): void {
    const x = mercatorX(lng);
    const y = mercatorY(lat);
    let i = this.slot.get(id);
    if (i === undefined) {
      i = this.add(id);
      this.fromX[i] = this.toX[i] = x;
      this.fromY[i] = this.toY[i] = y;
      this.t0[i] = now;
      this.glide[i] = 1;
    } else {
      const a = this.progress(i, now);
      this.fromX[i] += (this.toX[i] - this.fromX[i]) * a;
      this.fromY[i] += (this.toY[i] - this.fromY[i]) * a;
      this.toX[i] = x;
      this.toY[i] = y;
      this.t0[i] = now;
      this.glide[i] = Math.min(MAX_GLIDE_MS, Math.max(this.minGlideMs, now - this.lastFix[i]));
    }
    this.lastFix[i] = now;
    this.lat[i] = lat;
    this.lng[i] = lng;
    this.status[i] = statusCode(status);
  }

  /** A courier left the view. */
  remove(id: string): void {
    const i = this.slot.get(id);
    if (i === undefined) return;
    const last = --this.size;
    this.slot.delete(id);
    if (i !== last) {
      const moved = this.ids[last];
      this.ids[i] = moved;
      this.slot.set(moved, i);
      for (const a of [this.fromX, this.fromY, this.toX, this.toY, this.t0, this.glide, this.lastFix, this.lat, this.lng]) a[i] = a[last];
      this.status[i] = this.status[last];
    }
    this.ids.length = last;
  }

  has(id: string): boolean {
    return this.slot.has(id);
  }

  /** Slot of a courier, or -1. */
  indexOf(id: string): number {
    return this.slot.get(id) ?? -1;
  }

  /**
   * Writes `[x - originX, y - originY, statusCode]` per courier into `out` (grown when short) and returns it
   * with whether any courier is still gliding (the caller keeps repainting while true).
   */
  fill(out: Float32Array<ArrayBuffer>, originX: number, originY: number, now: number): { data: Float32Array<ArrayBuffer>; moving: boolean } {
    if (out.length < this.size * 3) out = new Float32Array(Math.max(this.size * 3, out.length * 2));
    let moving = false;
    // hot loop: runs every frame over every courier in view; no allocation, no calls
    for (let i = 0, o = 0; i < this.size; i++, o += 3) {
      let a = (now - this.t0[i]) / this.glide[i];
      if (a >= 1) a = 1;
      else if (a < 0) a = 0;
      else moving = true;
      out[o] = this.fromX[i] + (this.toX[i] - this.fromX[i]) * a - originX;
      out[o + 1] = this.fromY[i] + (this.toY[i] - this.fromY[i]) * a - originY;
      out[o + 2] = this.status[i];
    }
    return { data: out, moving };
  }

  /** Where a courier is drawn now, in Mercator units. */
  drawnAt(i: number, now: number): [number, number] {
    const a = this.progress(i, now);
    return [this.fromX[i] + (this.toX[i] - this.fromX[i]) * a, this.fromY[i] + (this.toY[i] - this.fromY[i]) * a];
  }

  /** The courier drawn nearest to (x, y) within `maxDist` Mercator units, or -1. */
  nearest(x: number, y: number, maxDist: number, now: number): number {
    let best = -1;
    let bestD = maxDist * maxDist;
    for (let i = 0; i < this.size; i++) {
      const [cx, cy] = this.drawnAt(i, now);
      const d = (cx - x) ** 2 + (cy - y) ** 2;
      if (d <= bestD) {
        bestD = d;
        best = i;
      }
    }
    return best;
  }

  /** Couriers per status. */
  counts(): Record<CourierStatus, number> {
    const n = [0, 0, 0, 0];
    for (let i = 0; i < this.size; i++) n[this.status[i]]++;
    return { available: n[0], offered: n[1], busy: n[2], offline: n[3] };
  }

  /** Status name of a slot. */
  statusOf(i: number): CourierStatus {
    return COURIER_STATUSES[this.status[i]];
  }

  private progress(i: number, now: number): number {
    const a = (now - this.t0[i]) / this.glide[i];
    return a >= 1 ? 1 : a <= 0 ? 0 : a;
  }

  private add(id: string): number {
    if (this.size === this.fromX.length) this.grow(this.size * 2);
    const i = this.size++;
    this.ids[i] = id;
    this.slot.set(id, i);
    return i;
  }

  private grow(n: number): void {
    const f64 = (a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    this.fromX = f64(this.fromX);
    this.fromY = f64(this.fromY);
    this.toX = f64(this.toX);
    this.toY = f64(this.toY);
    this.t0 = f64(this.t0);
    this.glide = f64(this.glide);
    this.lastFix = f64(this.lastFix);
    this.lat = f64(this.lat);
    this.lng = f64(this.lng);
    const s = new Uint8Array(n);
    s.set(this.status);
    this.status = s;
  }
}

/** Web Mercator x in [0, 1] of a longitude. */
export function mercatorX(lng: number): number {
  return (180 + lng) / 360;
}

/** Web Mercator y in [0, 1] of a latitude (0 at the north edge). */
export function mercatorY(lat: number): number {
  return (180 - (180 / Math.PI) * Math.log(Math.tan(Math.PI / 4 + (lat * Math.PI) / 360))) / 360;
}
