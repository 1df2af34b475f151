/**
 * Travel time: the one model behind every ETA in the product — route scoring, blood banks' transit, the
 * rescue recipient, the requester's track view and `/v1/nearby`.
 *
 *   from, to ─► great-circle metres (engine/geodesy)
 *   speed    ─► learned m/s of the cell the drive starts in (CellSpeeds, or the courier snapshot's
 *               localSpeed, which holds the same estimate) when plausible, else policy.vehicleSpeed[vehicle]
 *   seconds  = metres × policy.circuity ÷ speed
 *
 *   driveSeconds(from, to, { policy, vehicle, speeds?, fromCell? })   points in, seconds out (API, allocation, rescue)
 *   driveSpeed(learned, vehicleSpeed) ─► travelSeconds(m, circuity, speed)   plain numbers, for route scoring's hot loop
 *
 * A trip timed before any courier is chosen (a bank's transit, a rescue recipient) uses PLANNING_VEHICLE.
 */
import type { CellSpeeds } from '../engine/cell-speeds.js';
import type { Vehicle } from '../engine/courier-attributes.js';
import { distanceMeters } from '../engine/geodesy.js';
import type { DispatchPolicy, LatLng } from './dispatch-request.js';

/** The part of a deployment's policy that times a drive. */
export type TravelPolicy = Pick<DispatchPolicy, 'circuity' | 'vehicleSpeed'>;

/** How a drive is timed: the configured policy, the vehicle, and what was learned of the streets. */
export interface DriveOptions {
  policy: Readonly<TravelPolicy>;
  vehicle: Vehicle;
  /** Learned cell speeds; without them (or for a cell with no plausible estimate) the vehicle's speed is used. */
  speeds?: CellSpeeds;
  /** The H3 cell `from` lies in when known (a courier's bucket, CourierView.cell): the very cell its snapshot reads. */
  fromCell?: string;
}

/**
 * The vehicle a trip is timed with before a courier is chosen (bank → hospital, pickup → rescue recipient):
 * a car, as allocation and recipient choice have always assumed; the courier, chosen later, is scored with its own.
 */
export const PLANNING_VEHICLE: Vehicle = 'car';

/** Seconds to drive from `from` to `to`: great-circle metres × circuity ÷ (learned speed at `from`, else the vehicle's). */
export function driveSeconds(from: LatLng, to: LatLng, options: DriveOptions): number {
  const { policy, vehicle, speeds, fromCell } = options;
  const speed = driveSpeed(learnedSpeed(speeds, from, fromCell), policy.vehicleSpeed[vehicle]);
  return travelSeconds(distanceMeters(from.lat, from.lng, to.lat, to.lng), policy.circuity, speed);
}

/** Seconds to cover `meters` of great-circle distance at `metersPerSecond` on roads `circuity` times longer (no allocation). */
export function travelSeconds(meters: number, circuity: number, metersPerSecond: number): number {
  return (meters * circuity) / metersPerSecond;
}

/** The speed a drive is timed at: `learned` m/s when plausible (NaN: none), else `vehicleSpeed`. */
export function driveSpeed(learned: number, vehicleSpeed: number): number {
  return learned >= MIN_PLAUSIBLE_SPEED && learned <= MAX_PLAUSIBLE_SPEED ? learned : vehicleSpeed; // false for NaN
}

/**
 * Learned m/s of the speed cell holding `at` (or of `cell`, at the speeds' resolution or finer), NaN when
 * unknown. Rounded to float32 as the courier snapshot stores it, so the API and route scoring use the same number.
 */
export function learnedSpeed(speeds: CellSpeeds | undefined, at: LatLng, cell?: string): number {
  if (speeds === undefined) return NaN;
  const estimate = cell === undefined ? speeds.speedAt(at.lat, at.lng) : speeds.speedOf(cell);
  return estimate === undefined ? NaN : Math.fround(estimate.metersPerSecond);
}

// 1 m/s is walking pace: a slower learned speed is parked or queued couriers, not traffic;
// 40 m/s (144 km/h) is beyond any city street, so faster is GPS noise.
const MIN_PLAUSIBLE_SPEED = 1;
const MAX_PLAUSIBLE_SPEED = 40;
