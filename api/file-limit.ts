/**
 * Open WebSockets are bounded by the process's open-files limit as well as by WS_MAX_SOCKETS: past the limit
 * the kernel refuses accept() and the event loop spins on the pending connection, so /health stops answering
 * (measured by bench:sockets at a 20,000-file limit). The instance therefore lowers its socket cap to the limit
 * minus a reserve at start, and says so, so the socket past it gets a 503 E_TOO_MANY_SOCKETS instead.
 */
import { readFileSync } from 'node:fs';

/** Files kept for everything that is not a WebSocket: the store, worker threads, HTTP clients, logs. */
export const FILE_RESERVE = 1024;

/** Soft and hard "Max open files" of /proc/<pid>/limits text (Infinity for unlimited), or undefined without that line. */
export function parseOpenFileLimits(limits: string): { soft: number; hard: number } | undefined {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  if (m === null) return undefined;
  const num = (v: string): number => (v === 'unlimited' ? Infinity : Number(v));
  return { soft: num(m[1]), hard: num(m[2]) };
}

/** The soft "Max open files" of /proc/<pid>/limits text, or undefined when unlimited or absent. */
export function parseOpenFileLimit(limits: string): number | undefined {
  const soft = parseOpenFileLimits(limits)?.soft;
  return soft !== undefined && Number.isInteger(soft) && soft > 0 ? soft : undefined;
}

/** This process's soft open-files limit (Linux), or undefined elsewhere. */
export function openFileLimit(): number | undefined {
  try {
    return parseOpenFileLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined;
  }
}

/** The socket cap that fits: WS_MAX_SOCKETS, or the file limit minus the reserve (at least 1) when lower. */
export function socketsThatFit(maxSockets: number, fileLimit: number | undefined): number {
  if (fileLimit === undefined) return maxSockets;
  return Math.min(maxSockets, Math.max(1, fileLimit - FILE_RESERVE));
}
