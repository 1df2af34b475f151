/**
 * Courier vocabulary and its compact encodings: statuses, vehicles and capabilities become small integers
 * and bitmasks so filters are one AND in the hot scan loop.
 */
import { EngineError } from './errors.js';

export const COURIER_STATUSES = ['offline', 'available', 'offered', 'busy'] as const;
export type CourierStatus = (typeof COURIER_STATUSES)[number];

export const VEHICLES = ['bike', 'car', 'van'] as const;
export type Vehicle = (typeof VEHICLES)[number];

export const CAPABILITIES = ['cold_chain', 'insulated', 'medical', 'bulky'] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** Everything dispatch needs to know about a courier apart from where it is. */
export interface CourierProfile {
  vehicle: Vehicle;
  capabilities: readonly Capability[];
  /** Parcels (or blood boxes) carried at once. */
  capacity: number;
  status?: CourierStatus;
}

/** Status code (index into COURIER_STATUSES), or throws E_BAD_PROFILE. */
export function statusCode(status: string): number {
  const i = (COURIER_STATUSES as readonly string[]).indexOf(status);
  if (i < 0) throw new EngineError('E_BAD_PROFILE', `unknown status '${status}' (one of ${COURIER_STATUSES.join(', ')})`);
  return i;
}

/** Vehicle code (index into VEHICLES), or throws E_BAD_PROFILE. */
export function vehicleCode(vehicle: string): number {
  const i = (VEHICLES as readonly string[]).indexOf(vehicle);
  if (i < 0) throw new EngineError('E_BAD_PROFILE', `unknown vehicle '${vehicle}' (one of ${VEHICLES.join(', ')})`);
  return i;
}

/** Bitmask of capabilities, or throws E_BAD_PROFILE on an unknown one. */
export function capabilityMask(capabilities: readonly string[]): number {
  let mask = 0;
  for (const c of capabilities) {
    const i = (CAPABILITIES as readonly string[]).indexOf(c);
    if (i < 0) throw new EngineError('E_BAD_PROFILE', `unknown capability '${c}' (one of ${CAPABILITIES.join(', ')})`);
    mask |= 1 << i;
  }
  return mask;
}

/** Capability names present in a mask, in declaration order. */
export function capabilitiesOf(mask: number): Capability[] {
  return CAPABILITIES.filter((_, i) => (mask & (1 << i)) !== 0);
}

/** Bitmask over status codes; undefined or empty means every status. */
export function statusMask(statuses: readonly CourierStatus[] | CourierStatus | undefined): number {
  if (statuses === undefined) return 0xff;
  const list = typeof statuses === 'string' ? [statuses] : statuses;
  if (list.length === 0) return 0xff;
  let mask = 0;
  for (const s of list) mask |= 1 << statusCode(s);
  return mask;
}

/** Bitmask over vehicle codes; undefined or empty means every vehicle. */
export function vehicleMask(vehicles: readonly Vehicle[] | Vehicle | undefined): number {
  if (vehicles === undefined) return 0xff;
  const list = typeof vehicles === 'string' ? [vehicles] : vehicles;
  if (list.length === 0) return 0xff;
  let mask = 0;
  for (const v of list) mask |= 1 << vehicleCode(v);
  return mask;
}
