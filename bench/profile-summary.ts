/**
 * Summarises a V8 CPU profile (`node --cpu-prof`) as self time per function and per file, optionally
 * for one time window of the run, so a phase of a load run (ingest, then nearest queries) can be read
 * on its own.
 *
 *   node dist/bench/profile-summary.js FILE.cpuprofile [--top 25] [--from S] [--to S] [--json]
 *
 * --from / --to are seconds since the profile started; `--windows` prints busy time per second first,
 * which is how one finds the phases.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

/** Self time in microseconds per node id, over samples taken between fromUs and toUs (profile-relative). */
export function selfTimes(p: CpuProfile, fromUs = 0, toUs = Infinity): Map<number, number> {
  const out = new Map<number, number>();
  let t = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < fromUs || t >= toUs) continue;
    // a sample's weight is the time until the next one (V8's own convention in DevTools)
    const weight = p.timeDeltas[i + 1] ?? dt;
    out.set(p.samples[i], (out.get(p.samples[i]) ?? 0) + weight);
  }
  return out;
}

const IDLE = new Set(['(idle)', '(program)', '(garbage collector)']);

/** Busy (non-idle) milliseconds in each whole second of the profile. */
export function busyPerSecond(p: CpuProfile): number[] {
  const idle = new Set(p.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  const secs: number[] = [];
  let t = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (idle.has(p.samples[i])) continue;
    const s = Math.floor(t / 1e6);
    secs[s] = (secs[s] ?? 0) + (p.timeDeltas[i + 1] ?? 0) / 1000;
  }
  return Array.from(secs, (v) => Math.round(v ?? 0));
}

function shortUrl(url: string): string {
  const i = url.indexOf('/dist/');
  if (i >= 0) return url.slice(i + 6);
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 13);
  return url.replace(/^file:\/\//, '') || '(native)';
}

export interface Row { name: string; ms: number; share: number }

export function summarise(p: CpuProfile, fromUs: number, toUs: number): { total: number; fns: Row[]; files: Row[] } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = selfTimes(p, fromUs, toUs);
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') continue;
    total += us;
    const file = IDLE.has(cf.functionName) ? cf.functionName : shortUrl(cf.url);
    const fn = `${cf.functionName || '(anonymous)'} ${file}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    fns.set(fn, (fns.get(fn) ?? 0) + us);
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const rows = (m: Map<string, number>): Row[] =>
    [...m].map(([name, us]) => ({ name, ms: us / 1000, share: total > 0 ? us / total : 0 })).sort((a, b) => b.ms - a.ms);
  return { total: total / 1000, fns: rows(fns), files: rows(files) };
}

function main(argv: string[]): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err; // a reader such as head that stopped early
  });
  const file = argv.find((a) => !a.startsWith('--') && !/^\d/.test(a));
  if (!file) {
    process.stdout.write('usage: profile-summary FILE.cpuprofile [--top N] [--from S] [--to S] [--windows] [--json]\n');
    process.exit(2);
  }
  const num = (flag: string, d: number): number => {
    const i = argv.indexOf(flag);
    return i >= 0 ? Number(argv[i + 1]) : d;
  };
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const top = num('--top', 25);
  if (argv.includes('--windows')) process.stdout.write(`busy ms per second: ${busyPerSecond(p).join(' ')}\n`);
  const s = summarise(p, num('--from', 0) * 1e6, num('--to', Infinity) * 1e6);
  if (argv.includes('--json')) {
    process.stdout.write(JSON.stringify({ totalMs: s.total, fns: s.fns.slice(0, top), files: s.files.slice(0, top) }) + '\n');
    return;
  }
  const line = (r: Row): string => `${r.ms.toFixed(0).padStart(8)} ms ${(r.share * 100).toFixed(1).padStart(5)} %  ${r.name}\n`;
  process.stdout.write(`busy ${s.total.toFixed(0)} ms\n-- by file\n`);
  for (const r of s.files.slice(0, top)) process.stdout.write(line(r));
  process.stdout.write('-- by function (self)\n');
  for (const r of s.fns.slice(0, top)) process.stdout.write(line(r));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) main(process.argv.slice(2));
