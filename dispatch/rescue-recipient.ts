/**
 * Where rescued food goes when the request names no dropoff: the nearest open food bank or shelter with
 * room for the load that the food reaches before its perishability deadline (PRODUCT.md §1 `rescue`).
 *
 *   pickup, load ──► SiteIndex.nearby(food_bank | shelter, open, room ≥ load, k = 1)
 *                      │ none ──► 'no-open-recipient-with-room'
 *                      ▼
 *                    travel = driveSeconds(pickup → site) ──► now + travel > deadline ──► 'none-before-deadline'
 *                             (travel-time.ts: the configured policy, the learned speeds around the pickup)
 */
import type { CellSpeeds } from '../engine/cell-speeds.js';
import type { SiteIndex, SiteKind } from '../engine/site-index.js';
import { DEFAULT_POLICY, type DispatchPolicy, type LatLng } from './dispatch-request.js';
import { PLANNING_VEHICLE, driveSeconds } from './travel-time.js';

/** Kinds of site that take rescued food. */
export const RESCUE_RECIPIENT_KINDS: readonly SiteKind[] = Object.freeze(['food_bank', 'shelter'] as const);

/** How the recipient is chosen. */
export interface RescueRecipientOptions {
  now: number;
  /** Latest acceptable arrival at the recipient (ms): the food's perishability deadline. */
  deadline: number;
  /** The deployment's policy: its circuity and car speed time the leg (default DEFAULT_POLICY). */
  policy?: Readonly<DispatchPolicy>;
  /** Learned cell speeds for the leg (default: the policy's car speed everywhere). */
  speeds?: CellSpeeds;
}

/** Why no recipient was chosen. */
export type RescueRecipientFailure = 'no-open-recipient-with-room' | 'none-before-deadline';

/** The chosen recipient, or why there is none. */
export type RescueRecipient =
  | { ok: true; siteId: string; kind: SiteKind; lat: number; lng: number; distance: number; etaSeconds: number }
  | { ok: false; reason: RescueRecipientFailure };

/**
 * Nearest open food bank or shelter with room ≥ load, if the food gets there by the deadline. Travel time
 * grows with distance (the learned speed is the pickup's, the same for every site), so when the nearest such
 * site is too far every other one is too.
 */
export function chooseRescueRecipient(sites: SiteIndex, pickup: LatLng, load: number, options: RescueRecipientOptions): RescueRecipient {
  const policy = options.policy ?? DEFAULT_POLICY;
  checkInputs(load, options, policy.vehicleSpeed[PLANNING_VEHICLE], policy.circuity);
  const [hit] = sites.nearby(pickup.lat, pickup.lng, { kind: RESCUE_RECIPIENT_KINDS, open: true, room: load, k: 1 });
  if (hit === undefined) return { ok: false, reason: 'no-open-recipient-with-room' };
  const etaSeconds = driveSeconds(pickup, hit, { policy, vehicle: PLANNING_VEHICLE, speeds: options.speeds });
  if (options.now + etaSeconds * 1000 > options.deadline) return { ok: false, reason: 'none-before-deadline' };
  return { ok: true, siteId: hit.id, kind: hit.kind, lat: hit.lat, lng: hit.lng, distance: hit.distance, etaSeconds };
}

function checkInputs(load: number, options: RescueRecipientOptions, speed: number, circuity: number): void {
  if (typeof load !== 'number' || !(load >= 0) || load === Infinity) throw new Error(`load must be a finite number >= 0, got ${String(load)}`);
  if (!Number.isFinite(options.now)) throw new Error(`now must be ms since the epoch, got ${String(options.now)}`);
  if (typeof options.deadline !== 'number' || Number.isNaN(options.deadline)) throw new Error(`deadline must be ms since the epoch, got ${String(options.deadline)}`);
  if (!(speed > 0) || speed === Infinity) throw new Error(`policy.vehicleSpeed.${PLANNING_VEHICLE} must be m/s > 0, got ${String(speed)}`);
  if (!(circuity >= 1) || circuity === Infinity) throw new Error(`policy.circuity must be >= 1 (road ÷ great-circle), got ${String(circuity)}`);
}
