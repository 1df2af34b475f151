/**
 * Where rescued food goes when the request names no dropoff: the nearest open food bank or shelter with
 * room for the load that the food reaches before its perishability deadline (PRODUCT.md §1 `rescue`).
 *
 *   pickup, load ──► SiteIndex.nearby(food_bank | shelter, open, room ≥ load, k = 1)
 *                      │ none ──► 'no-open-recipient-with-room'
 *                      ▼
 *                    travel = distance × circuity ÷ speed ──► now + travel > deadline ──► 'none-before-deadline'
 */
import type { SiteIndex, SiteKind } from '../engine/site-index.js';
import { DEFAULT_POLICY, type LatLng } from './dispatch-request.js';

/** Kinds of site that take rescued food. */
export const RESCUE_RECIPIENT_KINDS: readonly SiteKind[] = Object.freeze(['food_bank', 'shelter'] as const);

/** How the recipient is chosen. */
export interface RescueRecipientOptions {
  now: number;
  /** Latest acceptable arrival at the recipient (ms): the food's perishability deadline. */
  deadline: number;
  /** m/s on the leg (default DEFAULT_POLICY.vehicleSpeed.car). */
  speed?: number;
  /** Road ÷ great-circle distance (default DEFAULT_POLICY.circuity). */
  circuity?: number;
}

/** Why no recipient was chosen. */
export type RescueRecipientFailure = 'no-open-recipient-with-room' | 'none-before-deadline';

/** The chosen recipient, or why there is none. */
export type RescueRecipient =
  | { ok: true; siteId: string; kind: SiteKind; lat: number; lng: number; distance: number; etaSeconds: number }
  | { ok: false; reason: RescueRecipientFailure };

/**
 * Nearest open food bank or shelter with room ≥ load, if the food gets there by the deadline. Travel time
 * grows with distance, so when the nearest such site is too far every other one is too.
 */
export function chooseRescueRecipient(sites: SiteIndex, pickup: LatLng, load: number, options: RescueRecipientOptions): RescueRecipient {
  const speed = options.speed ?? DEFAULT_POLICY.vehicleSpeed.car;
  const circuity = options.circuity ?? DEFAULT_POLICY.circuity;
  checkInputs(load, options, speed, circuity);
  const [hit] = sites.nearby(pickup.lat, pickup.lng, { kind: RESCUE_RECIPIENT_KINDS, open: true, room: load, k: 1 });
  if (hit === undefined) return { ok: false, reason: 'no-open-recipient-with-room' };
  const etaSeconds = (hit.distance * circuity) / speed;
  if (options.now + etaSeconds * 1000 > options.deadline) return { ok: false, reason: 'none-before-deadline' };
  return { ok: true, siteId: hit.id, kind: hit.kind, lat: hit.lat, lng: hit.lng, distance: hit.distance, etaSeconds };
}

function checkInputs(load: number, options: RescueRecipientOptions, speed: number, circuity: number): void {
  if (typeof load !== 'number' || !(load >= 0) || load === Infinity) throw new Error(`load must be a finite number >= 0, got ${String(load)}`);
  if (!Number.isFinite(options.now)) throw new Error(`now must be ms since the epoch, got ${String(options.now)}`);
  if (typeof options.deadline !== 'number' || Number.isNaN(options.deadline)) throw new Error(`deadline must be ms since the epoch, got ${String(options.deadline)}`);
  if (!(speed > 0) || speed === Infinity) throw new Error(`speed must be m/s > 0, got ${String(speed)}`);
  if (!(circuity >= 1) || circuity === Infinity) throw new Error(`circuity must be >= 1 (road ÷ great-circle), got ${String(circuity)}`);
}
