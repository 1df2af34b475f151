/**
 * The server's own view of a phase, from two scrapes of GET /metrics: a Prometheus histogram's buckets before
 * and after, their difference, and quantiles estimated from it the way PromQL's histogram_quantile does
 * (linear within the bucket that holds the rank), so the client's measurement can be printed beside it.
 *
 *   /metrics text ─► readHistogram(name, labels) ─► after − before ─► histogramQuantile(q), shareAtMost(bound)
 */

/** One histogram: cumulative counts per upper bound (ascending, +Inf last), total count and sum. */
export interface Histogram {
  le: number[];
  cumulative: number[];
  count: number;
  sum: number;
}

/**
 * Reads `name`'s `_bucket`, `_sum` and `_count` lines whose labels include `labels` (the `le` label aside);
 * undefined when the exposition has no such histogram. Series matching the labels are summed.
 */
export function readHistogram(text: string, name: string, labels: Readonly<Record<string, string>> = {}): Histogram | undefined {
  const buckets = new Map<number, number>();
  let count: number | undefined;
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = SAMPLE.exec(line.slice(name.length));
    if (m === null) continue;
    const [, suffix, rawLabels = '', rawValue] = m;
    const lbl = parseLabels(rawLabels);
    if (!Object.entries(labels).every(([k, v]) => lbl.get(k) === v)) continue;
    const value = Number(rawValue);
    if (!Number.isFinite(value)) continue;
    if (suffix === '_bucket') {
      const le = lbl.get('le');
      if (le === undefined) continue;
      const bound = le === '+Inf' ? Infinity : Number(le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + value);
    } else if (suffix === '_count') count = (count ?? 0) + value;
    else sum = (sum ?? 0) + value;
  }
  if (buckets.size === 0 || count === undefined) return undefined;
  const le = [...buckets.keys()].sort((a, b) => a - b);
  return { le, cumulative: le.map((b) => buckets.get(b)!), count, sum: sum ?? 0 };
}

/** `after − before` bucket by bucket (the observations of the window between two scrapes). */
export function histogramDelta(after: Histogram, before: Histogram | undefined): Histogram {
  if (before === undefined) return after;
  if (before.le.length !== after.le.length || before.le.some((b, i) => b !== after.le[i])) {
    throw new Error('histogramDelta: the two scrapes have different bucket bounds (a server restarted between them?)');
  }
  return { le: after.le, cumulative: after.cumulative.map((c, i) => c - before.cumulative[i]), count: after.count - before.count, sum: after.sum - before.sum };
}

/**
 * The q-quantile (0..1) estimated as histogram_quantile does: linear interpolation inside the bucket holding
 * rank q × count (from 0 for the first bucket); a rank in the +Inf bucket answers the highest finite bound.
 * NaN for an empty histogram.
 */
export function histogramQuantile(h: Histogram, q: number): number {
  if (!(q >= 0 && q <= 1)) throw new Error(`q must be within [0, 1], got ${q}`);
  const total = h.cumulative[h.cumulative.length - 1] ?? 0;
  if (!(total > 0)) return NaN;
  const rank = q * total;
  for (let i = 0; i < h.le.length; i++) {
    if (h.cumulative[i] < rank) continue;
    if (h.le[i] === Infinity) return h.le[i - 1] ?? NaN;
    const lower = i === 0 ? 0 : h.le[i - 1];
    const below = i === 0 ? 0 : h.cumulative[i - 1];
    const inBucket = h.cumulative[i] - below;
    return inBucket === 0 ? h.le[i] : lower + ((h.le[i] - lower) * (rank - below)) / inBucket;
  }
  return h.le[h.le.length - 1];
}

/** Share (0..1) of observations ≤ `bound`; exact when `bound` is a bucket bound, else undefined. NaN when empty. */
export function shareAtMost(h: Histogram, bound: number): number | undefined {
  const i = h.le.indexOf(bound);
  if (i < 0) return undefined;
  const total = h.cumulative[h.cumulative.length - 1] ?? 0;
  return total > 0 ? h.cumulative[i] / total : NaN;
}

/** Reads a gauge or counter sample (summed over series matching `labels`); undefined when absent. */
export function readSample(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = PLAIN.exec(line.slice(name.length));
    if (m === null) continue;
    const lbl = parseLabels(m[1] ?? '');
    if (!Object.entries(labels).every(([k, v]) => lbl.get(k) === v)) continue;
    const value = Number(m[2]);
    if (Number.isFinite(value)) total = (total ?? 0) + value;
  }
  return total;
}

// `<name>_bucket{a="b",le="0.01"} 12` (an optional timestamp may follow the value)
const SAMPLE = /^(_bucket|_sum|_count)(?:\{(.*)\})?\s+(\S+)/;
// `<name>{a="b"} 1.5` or `<name> 1.5`: nothing may follow the name but labels or space (no longer metric name)
const PLAIN = /^(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function parseLabels(raw: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of raw.matchAll(LABEL)) out.set(m[1], m[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)));
  return out;
}
