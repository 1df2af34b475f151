/**
 * What every benchmark prints: one JSON line per figure on stdout (machine-comparable across commits),
 * a readable line on stderr, and small statistics helpers (medians, percentiles) shared by all benches.
 */

/** One measured figure against its same-run baseline. */
export interface Figure {
  bench: string;
  n: number;
  value: number;
  unit: string;
  baseline?: string;
  baselineValue?: number;
  /** How many times better than the baseline (higher is better for rates, lower-is-better units are inverted). */
  ratio?: number;
  [extra: string]: unknown;
}

/** Prints a figure as a JSON line (stdout) and a human line (stderr). */
export function report(figure: Figure): void {
  const f = { ...figure, value: round(figure.value) };
  if (f.baselineValue !== undefined) f.baselineValue = round(f.baselineValue);
  if (f.ratio !== undefined) f.ratio = round(f.ratio);
  process.stdout.write(`${JSON.stringify(f)}\n`);
  const vs = f.baseline !== undefined ? `  vs ${f.baseline} ${fmt(f.baselineValue ?? NaN)} → ×${f.ratio}` : '';
  process.stderr.write(`  ${f.bench.padEnd(28)} n=${String(f.n).padEnd(8)} ${fmt(f.value)} ${f.unit}${vs}\n`);
}

/** Ratio for a rate (higher is better). */
export function rateRatio(value: number, baseline: number): number {
  return value / baseline;
}

/** Ratio for a cost such as latency or bytes (lower is better): how many times cheaper. */
export function costRatio(value: number, baseline: number): number {
  return baseline / value;
}

/** The q-quantile (0..1) of a sample, by nearest rank. */
export function quantile(values: ArrayLike<number>, q: number): number {
  const sorted = Float64Array.from(values).sort();
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Median of a sample. */
export function median(values: ArrayLike<number>): number {
  return quantile(values, 0.5);
}

/** Parses `--flag value` and `--flag` arguments. */
export function parseArgs(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('--')) {
      out.set(a.slice(2), next);
      i++;
    } else out.set(a.slice(2), 'true');
  }
  return out;
}

/** Forces a full GC when node runs with --expose-gc (benches do); returns whether it could. */
export function collectGarbage(): boolean {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g === undefined) return false;
  g();
  g();
  return true;
}

function round(v: number): number {
  if (!Number.isFinite(v)) return v;
  const mag = Math.abs(v);
  const digits = mag >= 100 ? 0 : mag >= 1 ? 2 : 4;
  return Number(v.toFixed(digits));
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : v >= 1e3 ? `${(v / 1e3).toFixed(1)}k` : v.toFixed(2);
}
