/**
 * HTTP phases through Debian's `wrk` (a C client) instead of the Node client, which tops out below what the
 * server answers: nearest queries cycling the workload's points (a Lua script), then `/health` of the same
 * server for the same time, so the nearest rate is quoted as a share of the server's own ceiling.
 *
 *   workload points ─► Lua table ─► wrk -t T -c C -d S --latency -s script URL ─► Requests/sec, latency %iles
 *
 * A response that is not 2xx counts as failed (wrk's "Non-2xx or 3xx responses"), never as a query answered.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What one wrk run measured. */
export interface WrkResult {
  /** Answered with 2xx. */
  ok: number;
  /** Non-2xx answers plus socket errors and timeouts. */
  failed: number;
  elapsedMs: number;
  /** Answered (2xx) per second. */
  perSecond: number;
  latencyMs: { p50: number; p75: number; p90: number; p99: number };
}

/**
 * Several runs of one kind as one: counts and time summed (so the rate is the pooled rate), each latency
 * percentile the worst of the runs' (percentiles do not pool exactly; the worst never flatters).
 */
export function pooledWrk(runs: readonly WrkResult[]): WrkResult {
  if (runs.length === 0) throw new Error('pooledWrk needs at least one run');
  const ok = runs.reduce((a, r) => a + r.ok, 0);
  const elapsedMs = runs.reduce((a, r) => a + r.elapsedMs, 0);
  const worst = (p: keyof WrkResult['latencyMs']): number => Math.max(...runs.map((r) => r.latencyMs[p]));
  return {
    ok,
    failed: runs.reduce((a, r) => a + r.failed, 0),
    elapsedMs,
    perSecond: elapsedMs > 0 ? (ok * 1000) / elapsedMs : 0,
    latencyMs: { p50: worst('p50'), p75: worst('p75'), p90: worst('p90'), p99: worst('p99') },
  };
}

/** Whether `wrk` is on PATH (apt-get install wrk). */
export function wrkAvailable(): boolean {
  const r = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  return r.error === undefined && /wrk/.test(`${r.stdout}${r.stderr}`);
}

/** The Lua script that cycles `paths` (each thread starts at its own offset). */
export function cyclingScript(paths: readonly string[]): string {
  if (paths.length === 0) throw new Error('cyclingScript needs at least one path');
  const list = paths.map((p) => `  ${luaString(p)},`).join('\n');
  return `local paths = {\n${list}\n}
local n = #paths
local i = 0
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
end
init = function(args)
  i = (offset or 0) % n
end
request = function()
  i = i % n + 1
  return wrk.format("GET", paths[i])
end
`;
}

/** Parses wrk's report (run with --latency). Throws when it has no request rate (wrk failed to run). */
export function parseWrk(out: string): WrkResult {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  if (!total) throw new Error(`wrk printed no request count:\n${out.slice(0, 800)}`);
  const requests = Number(total[1]);
  const elapsedMs = toMs(Number(total[2]), total[3]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = socketErrors ? Number(socketErrors[1]) + Number(socketErrors[2]) + Number(socketErrors[3]) + Number(socketErrors[4]) : 0;
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? toMs(Number(m[1]), m[2]) : NaN;
  };
  const ok = Math.max(0, requests - non2xx);
  return { ok, failed: non2xx + errors, elapsedMs, perSecond: elapsedMs > 0 ? (ok * 1000) / elapsedMs : 0, latencyMs: { p50: pct('50'), p75: pct('75'), p90: pct('90'), p99: pct('99') } };
}

/** Runs wrk against `url` (origin) with `paths` cycled; headers such as Authorization passed as given. */
export async function runWrk(o: { url: string; paths: readonly string[]; headers: Record<string, string>; connections: number; threads: number; durationS: number }): Promise<WrkResult> {
  const dir = mkdtempSync(join(tmpdir(), 'gd-wrk-'));
  try {
    const script = join(dir, 'paths.lua');
    writeFileSync(script, cyclingScript(o.paths));
    const args = ['-t', String(o.threads), '-c', String(Math.max(o.connections, o.threads)), '-d', `${o.durationS}s`, '--latency', '-s', script];
    for (const [k, v] of Object.entries(o.headers)) args.push('-H', `${k}: ${v}`);
    args.push(o.url);
    const out = await new Promise<string>((resolve, reject) =>
      execFile('wrk', args, { encoding: 'utf8', timeout: (o.durationS + 30) * 1000 }, (err, stdout, stderr) => (err ? reject(new Error(`wrk failed: ${err.message}\n${stderr}`)) : resolve(stdout))),
    );
    return parseWrk(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function toMs(v: number, unit: string): number {
  return unit === 'us' ? v / 1000 : unit === 'ms' ? v : unit === 's' ? v * 1000 : v * 60_000;
}

function luaString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
