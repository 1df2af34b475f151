/**
 * Courier attributes packed into one 32-bit word, and query filters reduced to masks over it, so the
 * scan loops of the live index and of snapshots test a courier with a few integer operations.
 */
import {
  type Capability,
  type CourierProfile,
  type CourierStatus,
  type Vehicle,
  capabilityMask,
  statusCode,
  statusMask,
  vehicleCode,
  vehicleMask,
} from './courier-attributes.js';
import { EngineError } from './errors.js';
import type { TopK } from './top-k.js';

/** Filters for courier queries; every field narrows the result. */
export interface CourierFilter {
  status?: CourierStatus | readonly CourierStatus[];
  /** Every listed capability is required. */
  capability?: Capability | readonly Capability[];
  vehicle?: Vehicle | readonly Vehicle[];
  minCapacity?: number;
  /** Courier ids to leave out (a courier that declined this request, say). */
  exclude?: ReadonlySet<string>;
}

/** A filter reduced to masks for the scan loop. */
export interface CompiledFilter {
  statusMask: number;
  vehicleMask: number;
  capsRequired: number;
  minCapacity: number;
  excludeSlots: Set<number> | undefined;
}

/** Reduces a CourierFilter to masks (throws E_BAD_PROFILE on unknown names). */
export function compileFilter(filter: CourierFilter, slotOf?: ReadonlyMap<string, number>): CompiledFilter {
  const caps = filter.capability === undefined ? [] : typeof filter.capability === 'string' ? [filter.capability] : filter.capability;
  let excludeSlots: Set<number> | undefined;
  if (filter.exclude !== undefined && filter.exclude.size > 0 && slotOf !== undefined) {
    excludeSlots = new Set();
    for (const id of filter.exclude) {
      const s = slotOf.get(id);
      if (s !== undefined) excludeSlots.add(s);
    }
  }
  return {
    statusMask: statusMask(filter.status),
    vehicleMask: vehicleMask(filter.vehicle),
    capsRequired: capabilityMask(caps),
    minCapacity: filter.minCapacity ?? 0,
    excludeSlots,
  };
}

/** True when a packed attr word (and slot) passes the compiled filter. */
export function passes(a: number, slot: number, f: CompiledFilter): boolean {
  return (
    ((f.statusMask >>> (a & STATUS_BITS)) & 1) === 1 &&
    ((f.vehicleMask >>> ((a >>> 4) & 0xf)) & 1) === 1 &&
    (((a >>> 8) & f.capsRequired) === f.capsRequired) &&
    a >>> 16 >= f.minCapacity &&
    (f.excludeSlots === undefined || !f.excludeSlots.has(slot))
  );
}

/** Packs a profile into an attr word (throws E_BAD_PROFILE). */
export function encodeAttr(profile: CourierProfile, fallbackStatus: CourierStatus): number {
  if (profile === null || typeof profile !== 'object') throw new EngineError('E_BAD_PROFILE', 'courier profile must be an object');
  const capacity = profile.capacity;
  if (!Number.isInteger(capacity) || capacity < 0 || capacity > MAX_CAPACITY) {
    throw new EngineError('E_BAD_PROFILE', `capacity must be an integer 0..${MAX_CAPACITY}, got ${String(capacity)}`);
  }
  if (!Array.isArray(profile.capabilities)) throw new EngineError('E_BAD_PROFILE', 'capabilities must be an array');
  const status = statusCode(profile.status ?? fallbackStatus);
  return (status | (vehicleCode(profile.vehicle) << 4) | (capabilityMask(profile.capabilities) << 8) | (capacity << 16)) >>> 0;
}

// attr word: bits 0–3 status, 4–7 vehicle, 8–15 capabilities, 16–31 capacity (≤ 65535 parcels)
/** Mask of the status field in an attr word. */
export const STATUS_BITS = 0xf;
const MAX_CAPACITY = 0xffff;


/** Couriers counted at offset g of a per-status count table (4 statuses per node) whose status is in the mask. */
export function countMatching(counts: Int32Array | Uint32Array, g: number, mask: number): number {
  return ((mask & 1) !== 0 ? counts[g] : 0) + ((mask & 2) !== 0 ? counts[g + 1] : 0) + ((mask & 4) !== 0 ? counts[g + 2] : 0) + ((mask & 8) !== 0 ? counts[g + 3] : 0);
}

/**
 * The hot loop of every nearest query: couriers [start, end) of contiguous xyz/attr arrays, filtered by
 * attr word and scored by chord², hits offered to `top` under their slot (`values[i]`) or, without
 * `values`, their index. Distance is tested before the rarer filters so most couriers cost 3 multiplies.
 */
export function scanCouriers(
  xyz: Float64Array,
  attrs: Uint32Array,
  values: Int32Array | undefined,
  start: number,
  end: number,
  qx: number,
  qy: number,
  qz: number,
  f: CompiledFilter,
  radius2: number,
  top: TopK,
): void {
  const sm = f.statusMask;
  const vm = f.vehicleMask;
  const cr = f.capsRequired;
  const mc = f.minCapacity;
  const ex = f.excludeSlots;
  const tb = top.bound();
  let bound = tb < radius2 ? tb : radius2;
  for (let i = start; i < end; i++) {
    const a = attrs[i];
    if (((sm >>> (a & STATUS_BITS)) & 1) === 0) continue;
    const dx = xyz[3 * i] - qx;
    const dy = xyz[3 * i + 1] - qy;
    const dz = xyz[3 * i + 2] - qz;
    const d = dx * dx + dy * dy + dz * dz;
    if (d > bound) continue;
    if (((vm >>> ((a >>> 4) & 0xf)) & 1) === 0 || ((a >>> 8) & cr) !== cr || a >>> 16 < mc) continue;
    const v = values === undefined ? i : values[i];
    if (ex !== undefined && ex.has(v)) continue;
    top.push(d, v);
    const nb = top.bound();
    if (nb < bound) bound = nb;
  }
}
