/**
 * What the kernel says about a process and the machine: resident memory and CPU time of the server under
 * test (/proc/<pid>/status, /proc/<pid>/stat), the open-files limit, the ephemeral port range; and what the
 * memory samples mean per socket. Parsers are pure; the readers around them only read files.
 *
 *   /proc/<pid>/status ─► parseVmRss ─► sampleRss (median of a few) ─► socketCost(before, half, full)
 *   /proc/<pid>/stat   ─► parseCpuTicks (utime + stime)
 *   /proc/self/limits  ─► parseOpenFilesLimit ─► raiseOpenFiles (prlimit on this process; children inherit)
 */
import { parseOpenFileLimits } from '../../api/file-limit.js';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Server RSS samples a run's bytes-per-socket figures come from. */
export interface RssSamples {
  /** Bytes before any socket. */
  before: number;
  /** After the first `half` sockets were open and idle. */
  atHalf: number;
  /** After all `full` sockets were open and held. */
  atFull: number;
  half: number;
  full: number;
}

/** Resident memory in bytes from the text of /proc/<pid>/status (`VmRSS:  123456 kB`). */
export function parseVmRss(statusText: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB\s*$/m.exec(statusText);
  if (m === null) throw new Error('parseVmRss: no "VmRSS: <n> kB" line (is the process gone, or a kernel thread?)');
  return Number(m[1]) * 1024;
}

/** User + system CPU time in clock ticks from the text of /proc/<pid>/stat (fields 14 and 15). */
export function parseCpuTicks(statText: string): number {
  // the command name (field 2) is in parentheses and may hold spaces: count fields after its closing one
  const fields = statText.slice(statText.lastIndexOf(')') + 2).trim().split(/\s+/);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('parseCpuTicks: not the text of /proc/<pid>/stat');
  return utime + stime;
}

/** `{ soft, hard }` of "Max open files" in the text of /proc/<pid>/limits (Infinity for unlimited). */
export function parseOpenFilesLimit(limitsText: string): { soft: number; hard: number } {
  const limits = parseOpenFileLimits(limitsText);
  if (limits === undefined) throw new Error('parseOpenFilesLimit: no "Max open files" line');
  return limits;
}

/** Reads `lo hi` from /proc/sys/net/ipv4/ip_local_port_range. */
export function parsePortRange(text: string): [number, number] {
  const [lo, hi] = text.trim().split(/\s+/).map(Number);
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi < lo) throw new Error(`parsePortRange: expected "lo hi", got ${JSON.stringify(text)}`);
  return [lo, hi];
}

/**
 * Bytes per socket: `total` = ΔRSS / sockets held (what the target is about); `marginal` = the slope between
 * half and full, which leaves out one-off growth the first sockets pay (heap pages committed, tables resized).
 */
export function socketCost(s: RssSamples): { total: number; marginal: number } {
  const total = s.full > 0 ? (s.atFull - s.before) / s.full : NaN;
  const marginal = s.full > s.half ? (s.atFull - s.atHalf) / (s.full - s.half) : NaN;
  return { total, marginal };
}

/** The median of `count` RSS readings of `pid`, `gapMs` apart (one reading jitters by a page cache flush or a GC). */
export async function sampleRss(pid: number, count = 3, gapMs = 300): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, gapMs));
    values.push(parseVmRss(readFileSync(`/proc/${pid}/status`, 'utf8')));
  }
  return values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
}

/** CPU seconds `pid` has used so far. */
export function cpuSeconds(pid: number, ticksPerSecond: number): number {
  return parseCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')) / ticksPerSecond;
}

/** Clock ticks per second of /proc CPU times (`getconf CLK_TCK`; 100 on Linux when getconf is missing). */
export function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/**
 * Raises this process's open-files limit to `need` with `prlimit` when it is lower (as root with
 * CAP_SYS_RESOURCE the hard limit can rise too); children started afterwards inherit it. Returns the limit now
 * in force, and why it could not be raised when it is still below `need`.
 */
export function raiseOpenFiles(need: number): { before: number; after: number; refused?: string } {
  const before = parseOpenFilesLimit(readFileSync('/proc/self/limits', 'utf8'));
  if (before.soft >= need) return { before: before.soft, after: before.soft };
  const value = Math.max(need, Number.isFinite(before.hard) ? before.hard : need);
  let refused: string | undefined;
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${value}:${value}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    refused = `prlimit --nofile=${value}: ${stderr || (e instanceof Error ? e.message.split('\n')[0] : String(e))}`;
  }
  const now = parseOpenFilesLimit(readFileSync('/proc/self/limits', 'utf8'));
  if (now.soft >= need) return { before: before.soft, after: now.soft };
  // the hard limit stays: at least use all of it
  if (now.soft < now.hard && Number.isFinite(now.hard)) {
    try {
      execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${now.hard}:${now.hard}`], { stdio: 'ignore' });
    } catch {
      // keep what there is
    }
  }
  const after = parseOpenFilesLimit(readFileSync('/proc/self/limits', 'utf8')).soft;
  return { before: before.soft, after, refused: refused ?? `prlimit left the limit at ${after}` };
}
