/**
 * Latency samples with a fixed memory bound, and their percentiles (nearest rank, like bench-report's quantile).
 *
 * A long run can produce tens of millions of samples; past `capacity` the recorder keeps a uniform reservoir
 * (Algorithm R, seeded) so percentiles stay unbiased while memory stays flat.
 */

/** Percentiles of one operation's latencies, in milliseconds. */
export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Records latencies (ms) into a bounded sample; `max` and `mean` are exact over every recorded value. */
export class LatencyRecorder {
  private readonly samples: Float64Array;
  private kept = 0;
  private seen = 0;
  private sum = 0;
  private maxSeen = 0;
  private rng: number;

  // 200,000 samples = 1.6 MB and pins p99 to within ~0.05 percentile points of the full population
  constructor(readonly capacity = 200_000, seed = 1) {
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new Error(`capacity must be a positive integer, got ${capacity}`);
    this.samples = new Float64Array(capacity);
    this.rng = seed >>> 0 || 1;
  }

  /** Adds one latency in milliseconds. */
  record(ms: number): void {
    this.seen++;
    this.sum += ms;
    if (ms > this.maxSeen) this.maxSeen = ms;
    if (this.kept < this.capacity) {
      this.samples[this.kept++] = ms;
      return;
    }
    const j = Math.floor(this.nextUnit() * this.seen);
    if (j < this.capacity) this.samples[j] = ms;
  }

  /** How many latencies were recorded (not only kept). */
  get count(): number {
    return this.seen;
  }

  /** Percentiles over the kept sample; NaN everywhere when nothing was recorded. */
  summary(): LatencySummary {
    const sorted = this.samples.slice(0, this.kept).sort();
    return {
      count: this.seen,
      mean: this.seen === 0 ? NaN : this.sum / this.seen,
      p50: percentile(sorted, 0.5),
      p95: percentile(sorted, 0.95),
      p99: percentile(sorted, 0.99),
      max: this.seen === 0 ? NaN : this.maxSeen,
    };
  }

  // xorshift32: the reservoir only needs a cheap, seeded uniform draw
  private nextUnit(): number {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x >>> 0;
    return this.rng / 4294967296;
  }
}

/** The q-quantile (0..1) of an ascending-sorted sample by nearest rank; NaN for an empty sample. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (!(q >= 0 && q <= 1)) throw new Error(`q must be within [0, 1], got ${q}`);
  const n = sorted.length;
  if (n === 0) return NaN;
  return sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))];
}
