/**
 * Per-H3-cell travel speeds learned from consecutive courier pings, for route scoring.
 *
 *   courier index: accepted ping ─► (res-7 cell, metres since last ping, ms since last ping)
 *     ─► observe(): reject parked / noisy / too-short / too-long samples
 *     ─► EWMA of m/s in the cell's slot (typed arrays; no allocation once the cell exists)
 *   dispatch: speedOf(cell) / speedAt(lat, lng) ─► { metersPerSecond, samples }
 *
 * Estimates are per sample, not per unit time: a cell nobody drove through lately keeps its last estimate.
 */
import { cellToParent, getResolution, isValidCell, latLngToCell } from 'h3-js';
import { EngineError, assertCoordinate } from './errors.js';

/** Tuning of the estimator; every field has a default. */
export interface CellSpeedsOptions {
  /** H3 resolution of the cells; default 7 (≈ 5 km², a neighbourhood: enough pings per cell to learn from). */
  resolution?: number;
  /** EWMA weight of a new sample, in (0, 1]; default 0.1. */
  alpha?: number;
  /** m/s; slower samples are a parked or waiting courier, not traffic. Default 0.5. */
  minSpeed?: number;
  /** m/s; faster samples are GPS noise (50 m/s = 180 km/h). Default 50. */
  maxSpeed?: number;
  /** Shorter gaps amplify GPS jitter (5 m of error over 1 s is 5 m/s). Default 1000. */
  minIntervalMs?: number;
  /** Longer gaps hide detours and stops, so the straight-line speed understates. Default 120000. */
  maxIntervalMs?: number;
}

/** A cell's learned speed. */
export interface CellSpeed {
  metersPerSecond: number;
  samples: number;
}

/** The persisted form: options plus `[cell, metersPerSecond, samples]` per cell. */
export interface CellSpeedsJSON {
  v: 1;
  options: Required<CellSpeedsOptions>;
  cells: [string, number, number][];
}

const DEFAULTS: Readonly<Required<CellSpeedsOptions>> = Object.freeze({
  resolution: 7,
  // ≈ 1/α = 10 samples of memory (half-life ≈ 6.6): one courier idling at a light barely moves the
  // estimate, yet a busy cell follows rush hour within minutes
  alpha: 0.1,
  minSpeed: 0.5,
  maxSpeed: 50,
  minIntervalMs: 1000,
  maxIntervalMs: 120_000,
});

/** EWMA speed estimates per H3 cell, in parallel typed arrays keyed by a cell → slot map. */
export class CellSpeeds {
  /** The effective options (defaults filled in). */
  readonly options: Readonly<Required<CellSpeedsOptions>>;
  private readonly slots = new Map<string, number>();
  private speeds = new Float64Array(64);
  private counts = new Float64Array(64);

  constructor(options: CellSpeedsOptions = {}) {
    this.options = checkOptions({ ...DEFAULTS, ...stripUndefined(options) });
  }

  /** H3 resolution of the stored cells. */
  get resolution(): number {
    return this.options.resolution;
  }

  /** Number of cells with an estimate. */
  get size(): number {
    return this.slots.size;
  }

  /**
   * Folds one sample (metres travelled over intervalMs) into `cell`'s estimate; returns whether it was used.
   * `cell` is an H3 index at `resolution` (fast path: one Map lookup, no allocation once the cell is known)
   * or a finer one, which costs an h3-js cellToParent call and a new string on every observe — pass cached
   * cells at `resolution` on hot paths. Samples are checked first; a usable sample for a string that is not an H3
   * cell at `resolution` or finer throws Error (a programmer mistake).
   */
  observe(cell: string, meters: number, intervalMs: number): boolean {
    const o = this.options;
    // `!(a >= b)` style rejects NaN too
    if (!(intervalMs >= o.minIntervalMs && intervalMs <= o.maxIntervalMs) || !(meters >= 0)) return false;
    const speed = (meters * 1000) / intervalMs;
    if (!(speed >= o.minSpeed && speed <= o.maxSpeed)) return false;
    let slot = this.slots.get(cell);
    if (slot === undefined) {
      const key = this.toCell(cell);
      slot = this.slots.get(key);
      if (slot === undefined) {
        slot = this.slots.size;
        if (slot === this.speeds.length) this.grow();
        this.slots.set(key, slot);
        this.speeds[slot] = speed; // first sample seeds the average instead of pulling it from 0
        this.counts[slot] = 1;
        return true;
      }
    }
    this.speeds[slot] += o.alpha * (speed - this.speeds[slot]);
    this.counts[slot]++;
    return true;
  }

  /**
   * m/s of a cell already at `resolution` — one Map lookup, no H3 call, no allocation — NaN when it has no
   * estimate: for per-query paths (most cells have none, and speedOf would then validate and fold the id).
   */
  metersPerSecondOf(cell: string): number {
    const slot = this.slots.get(cell);
    return slot === undefined ? NaN : this.speeds[slot];
  }

  /** The estimate for `cell` (at `resolution`, or finer: folded to its parent), or undefined. */
  speedOf(cell: string): CellSpeed | undefined {
    let slot = this.slots.get(cell);
    if (slot === undefined) {
      // a cell at the speeds' own resolution that missed has no estimate: only finer cells are folded
      if (typeof cell !== 'string' || !isValidCell(cell) || getResolution(cell) <= this.options.resolution) return undefined;
      slot = this.slots.get(this.toCell(cell));
      if (slot === undefined) return undefined;
    }
    return { metersPerSecond: this.speeds[slot], samples: this.counts[slot] };
  }

  /** The estimate for the cell holding (lat, lng); throws E_BAD_COORDINATE for an invalid point. */
  speedAt(lat: number, lng: number): CellSpeed | undefined {
    assertCoordinate(lat, lng);
    return this.speedOf(latLngToCell(lat, lng, this.options.resolution));
  }

  /** `[cell, estimate]` pairs in the order cells were first seen. */
  *entries(): IterableIterator<[string, CellSpeed]> {
    for (const [cell, slot] of this.slots) yield [cell, { metersPerSecond: this.speeds[slot], samples: this.counts[slot] }];
  }

  /** A plain, JSON-safe copy of the options and every estimate. */
  toJSON(): CellSpeedsJSON {
    const cells: [string, number, number][] = [];
    for (const [cell, slot] of this.slots) cells.push([cell, this.speeds[slot], this.counts[slot]]);
    return { v: 1, options: { ...this.options }, cells };
  }

  /**
   * Rebuilds from toJSON() output; `options` override the stored ones except `resolution`, which must match
   * the stored cells. Throws E_BAD_SNAPSHOT for malformed data.
   */
  static fromJSON(json: CellSpeedsJSON, options: CellSpeedsOptions = {}): CellSpeeds {
    if (json?.v !== 1 || typeof json.options !== 'object' || json.options === null || !Array.isArray(json.cells)) {
      throw new EngineError('E_BAD_SNAPSHOT', 'cell speeds snapshot must be { v: 1, options, cells: [...] } from toJSON()');
    }
    const merged = { ...json.options, ...stripUndefined(options) };
    if (merged.resolution !== json.options.resolution) {
      throw new EngineError('E_BAD_SNAPSHOT', `snapshot cells are at resolution ${json.options.resolution}, not ${merged.resolution}`);
    }
    let out: CellSpeeds;
    try {
      out = new CellSpeeds(merged);
    } catch (cause) {
      throw new EngineError('E_BAD_SNAPSHOT', `cell speeds snapshot has bad options: ${(cause as Error).message}`, { cause });
    }
    for (const entry of json.cells) out.restore(entry);
    return out;
  }

  private restore(entry: unknown): void {
    const [cell, mps, samples] = Array.isArray(entry) ? entry : [];
    const ok =
      typeof cell === 'string' &&
      isValidCell(cell) &&
      getResolution(cell) === this.options.resolution &&
      typeof mps === 'number' &&
      Number.isFinite(mps) &&
      mps >= 0 &&
      Number.isInteger(samples) &&
      samples > 0 &&
      !this.slots.has(cell);
    if (!ok) throw new EngineError('E_BAD_SNAPSHOT', `bad cell speed entry ${JSON.stringify(entry)}: need [unique cell at res ${this.options.resolution}, m/s >= 0, samples >= 1]`);
    const slot = this.slots.size;
    if (slot === this.speeds.length) this.grow();
    this.slots.set(cell, slot);
    this.speeds[slot] = mps;
    this.counts[slot] = samples;
  }

  /** The stored key for `cell`: itself at `resolution`, its parent when finer. */
  private toCell(cell: string): string {
    const res = typeof cell === 'string' && isValidCell(cell) ? getResolution(cell) : -1;
    if (res < this.options.resolution) {
      throw new Error(
        `CellSpeeds: ${String(cell)} is not an H3 cell at resolution ${this.options.resolution} or finer; pass latLngToCell(lat, lng, ${this.options.resolution})`,
      );
    }
    return cellToParent(cell, this.options.resolution);
  }

  private grow(): void {
    const speeds = new Float64Array(this.speeds.length * 2);
    const counts = new Float64Array(this.counts.length * 2);
    speeds.set(this.speeds);
    counts.set(this.counts);
    this.speeds = speeds;
    this.counts = counts;
  }
}

function checkOptions(o: Required<CellSpeedsOptions>): Readonly<Required<CellSpeedsOptions>> {
  const problems: string[] = [];
  if (!Number.isInteger(o.resolution) || o.resolution < 0 || o.resolution > 15) problems.push('resolution must be an integer 0..15');
  if (!(o.alpha > 0 && o.alpha <= 1)) problems.push('alpha must be in (0, 1]');
  if (!(o.minSpeed >= 0 && o.maxSpeed > o.minSpeed && Number.isFinite(o.maxSpeed))) problems.push('need 0 <= minSpeed < maxSpeed, finite');
  if (!(o.minIntervalMs > 0 && o.maxIntervalMs >= o.minIntervalMs && Number.isFinite(o.maxIntervalMs))) {
    problems.push('need 0 < minIntervalMs <= maxIntervalMs, finite');
  }
  if (problems.length > 0) throw new Error(`CellSpeeds options: ${problems.join('; ')}`);
  return Object.freeze({
    resolution: o.resolution,
    alpha: o.alpha,
    minSpeed: o.minSpeed,
    maxSpeed: o.maxSpeed,
    minIntervalMs: o.minIntervalMs,
    maxIntervalMs: o.maxIntervalMs,
  });
}

function stripUndefined(o: CellSpeedsOptions): CellSpeedsOptions {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as CellSpeedsOptions;
}
