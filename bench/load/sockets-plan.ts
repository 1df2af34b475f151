/**
 * How a sockets run is laid out, as pure functions: which client process holds which sockets, which loopback
 * source address each socket binds (so no address runs out of ephemeral ports), the file-descriptor budget,
 * and failure tallies by reason.
 *
 *   N sockets ─► splitBlocks(N, processes) ─► process p holds sockets [first, first + count)
 *             ─► sourceAddresses(N, ports) ─► socket i binds sourceAddressOf(i, addresses) (127.0.0.2, .3, …)
 */
import { FILE_RESERVE } from '../../api/file-limit.js';

/** A contiguous block of socket indexes one client process opens. */
export interface SocketBlock {
  first: number;
  count: number;
}

/** The whole layout of a run. */
export interface SocketPlan {
  /** Loopback source addresses, socket i binds addresses[i % length]. */
  addresses: string[];
  /** One block per client process. */
  blocks: SocketBlock[];
  /** Most sockets bound to one source address. */
  perAddress: number;
}

// Half the ephemeral range per source address: Linux hands bind(port 0) one parity of the range first
// (even ports) and scans for a free one, so staying within half keeps every bind quick and leaves room for
// anything else on the address.
const PORT_SHARE = 0.5;
// 127.0.0.1 is left to everything else on the machine; the run uses 127.0.0.2 … 127.0.0.254.
const FIRST_HOST = 2;
const LAST_HOST = 254;

/**
 * Lays out `sockets` over `processes` client processes, and over enough source addresses for the ephemeral
 * range — at least one per process, so a quick run binds several addresses as a full one does.
 */
export function planSockets(sockets: number, processes: number, portRange: readonly [number, number]): SocketPlan {
  if (!Number.isInteger(sockets) || sockets < 1) throw new Error(`planSockets: sockets must be a positive integer, got ${sockets}`);
  if (!Number.isInteger(processes) || processes < 1) throw new Error(`planSockets: processes must be a positive integer, got ${processes}`);
  const portsPerAddress = Math.floor((portRange[1] - portRange[0] + 1) * PORT_SHARE);
  const addresses = sourceAddresses(sockets, portsPerAddress, Math.min(processes, sockets));
  return { addresses, blocks: splitBlocks(sockets, Math.min(processes, sockets)), perAddress: Math.ceil(sockets / addresses.length) };
}

/** Splits `total` items into `parts` contiguous blocks whose sizes differ by at most one. */
export function splitBlocks(total: number, parts: number): SocketBlock[] {
  if (!Number.isInteger(parts) || parts < 1) throw new Error(`splitBlocks: parts must be a positive integer, got ${parts}`);
  const blocks: SocketBlock[] = [];
  const base = Math.floor(total / parts);
  let first = 0;
  for (let p = 0; p < parts; p++) {
    const count = base + (p < total % parts ? 1 : 0);
    blocks.push({ first, count });
    first += count;
  }
  return blocks;
}

/** Enough loopback source addresses (at least `minimum`) that none holds more than `portsPerAddress` sockets. */
export function sourceAddresses(sockets: number, portsPerAddress: number, minimum = 1): string[] {
  if (!(portsPerAddress >= 1)) throw new Error(`sourceAddresses: portsPerAddress must be ≥ 1, got ${portsPerAddress} (is the ephemeral port range empty?)`);
  const n = Math.max(minimum, Math.ceil(sockets / Math.floor(portsPerAddress)));
  if (n > LAST_HOST - FIRST_HOST + 1) {
    throw new Error(`sourceAddresses: ${sockets} sockets need ${n} source addresses at ${portsPerAddress} ports each; widen net.ipv4.ip_local_port_range or open fewer sockets`);
  }
  return Array.from({ length: n }, (_, k) => `127.0.0.${FIRST_HOST + k}`);
}

/** The source address socket `index` binds. */
export function sourceAddressOf(index: number, addresses: readonly string[]): string {
  return addresses[index % addresses.length];
}

/**
 * Descriptors a process needs beyond its sockets: the server's own reserve (api/file-limit.ts), below which it
 * caps its sockets at start, so a clamped run opens exactly what the server will hold.
 */
export const FD_HEADROOM = FILE_RESERVE;

/** Open files a process holding `sockets` sockets needs. */
export function fdsNeeded(sockets: number): number {
  return sockets + FD_HEADROOM;
}

/**
 * The sockets one server process can hold under an open-files limit it cannot raise: all requested when they
 * fit, else the limit less the headroom (`clamped` says so).
 */
export function fitToFileLimit(requested: number, fileLimit: number): { sockets: number; clamped: boolean } {
  if (fdsNeeded(requested) <= fileLimit) return { sockets: requested, clamped: false };
  const sockets = Math.max(0, Math.floor(fileLimit) - FD_HEADROOM);
  if (sockets < 2) throw new Error(`fitToFileLimit: an open-files limit of ${fileLimit} leaves no room for sockets; raise it (ulimit -n)`);
  return { sockets, clamped: true };
}

/** Client processes to use: at least `wanted`, and enough that none holds more sockets than its file limit allows. */
export function processesFor(sockets: number, wanted: number, fileLimit: number): number {
  const perProcess = Math.floor(fileLimit) - FD_HEADROOM;
  if (perProcess < 1) throw new Error(`processesFor: an open-files limit of ${fileLimit} leaves no room for sockets; raise it (ulimit -n)`);
  return Math.max(wanted, Math.ceil(sockets / perProcess));
}

/** Adds `n` to `reason`'s count. */
export function countReason(counts: Record<string, number>, reason: string, n = 1): void {
  counts[reason] = (counts[reason] ?? 0) + n;
}

/** Merges several reason → count tables into one. */
export function mergeReasons(tables: readonly Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of tables) for (const [k, v] of Object.entries(t)) countReason(out, k, v);
  return out;
}

