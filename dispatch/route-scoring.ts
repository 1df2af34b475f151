/**
 * Route scoring: how long one courier would take to serve one request, whether it can keep the request's
 * time limits, and what that is worth to the matcher.
 *
 *   courier (snapshot i) ──drive──► pickup ──wait for readyAt──► leave ──drive──► dropoff
 *                        travel s            pickupEta s (from now)          dropoffEta s (from now)
 *
 *   drive seconds = great-circle metres × policy.circuity ÷ speed   (dispatch/travel-time.ts, as every ETA)
 *     to the pickup:   the courier's learned neighbourhood speed when plausible, else its vehicle's speed
 *     pickup→dropoff:  request.legSpeed when plausible, else the vehicle's speed
 *
 * Time limits (domain times in epoch ms, ETAs and lateness in seconds):
 *   arrival at pickup  = max(now + travel, readyAt)   ≤ pickupBy   (when set)
 *   arrival at dropoff = now + dropoffEta             ≤ deadline   (when set)
 *   lateness = the larger of the two misses, 0 when on time.
 *
 * Hard or soft: a request's limits are HARD for blood (patient need), rescue (FDA Food Code: 4 h out of
 * temperature control; the donor's pickup window) and anything marked emergency — a late route is infeasible
 * and never assigned. For routine and urgent deliveries they are SOFT: a late courier is still better than no
 * courier, so the route stays feasible and `lateness` is priced into the cost (weights.lateness per second).
 */
import type { CourierSnapshot } from '../engine/courier-snapshot.js';
import { capabilityMask } from '../engine/courier-attributes.js';
import { distanceMeters } from '../engine/geodesy.js';
import { DEFAULT_SCARCE_CAPABILITIES, type DispatchPolicy, type DispatchRequest, type Urgency } from './dispatch-request.js';
import { driveSpeed, travelSeconds } from './travel-time.js';

/** Why one courier cannot serve one request. */
export type RouteInfeasibility = 'missing-capability' | 'over-capacity' | 'pickup-window-missed' | 'deadline-missed';

/** One courier's route for one request. */
export interface RouteScore {
  /** Seconds from now until the courier leaves the pickup (driving, then any wait for readyAt). */
  pickupEta: number;
  /** Seconds from now until the load reaches the dropoff. */
  dropoffEta: number;
  /** Seconds the later of the pickup window and the dropoff deadline is missed by (0 when on time). */
  lateness: number;
  /** Seconds of driving to the pickup (pickupEta without the wait). */
  travel: number;
  /** False when the courier may not be assigned: see `reason`. */
  feasible: boolean;
  reason?: RouteInfeasibility;
}

/**
 * Cost multiplier per urgency. Urgent counts 4× routine, the same ratio the default policy already puts on
 * leaving them unmatched (14,400 vs 3,600 s). Emergency counts 100×: in a contest for one courier an emergency
 * yields at most 1 s of its own ETA to save a routine request 100 s, so it takes the nearest courier unless
 * that costs other work minutes per second gained. (Emergencies are normally dispatched at once anyway.)
 */
export const URGENCY_WEIGHT: Readonly<Record<Urgency, number>> = Object.freeze({ routine: 1, urgent: 4, emergency: 100 });

/**
 * Weight of a second of driving on top of pickupEta. With a readyAt in the future every courier who arrives
 * in time has the same pickupEta (they wait), so without this the matcher would be indifferent between a
 * courier 1 minute and one 10 minutes away; a tenth keeps the nearer one preferred (less fuel, and the far
 * one stays free for others) without ever outweighing a real second of ETA.
 */
export const DRIVE_WEIGHT = 0.1;

/** Scores courier `i` of the snapshot for `request` (status is not checked: a busy courier's route scores too). */
export function scoreRoute(snapshot: CourierSnapshot, courierIndex: number, request: DispatchRequest, policy: DispatchPolicy, now: number): RouteScore {
  const out = emptyScore();
  const attr = snapshot.attrWord(courierIndex);
  const needed = request.capabilities === undefined ? 0 : capabilityMask(request.capabilities);
  if (((attr >>> 8) & needed) !== needed) return infeasible(out, 'missing-capability');
  if (attr >>> 16 < (request.load ?? 1)) return infeasible(out, 'over-capacity');
  const pickupMeters = distanceMeters(snapshot.lat(courierIndex), snapshot.lng(courierIndex), request.pickup.lat, request.pickup.lng);
  const vehicleSpeed = policy.vehicleSpeed[snapshot.vehicle(courierIndex)];
  return scoreTrip(pickupMeters, legMeters(request), courierSpeed(snapshot, courierIndex, policy), legSpeed(request, vehicleSpeed), request, policy, now, out);
}

/**
 * Matching cost of a scored route: urgency × (pickupEta + weights.lateness × lateness + DRIVE_WEIGHT × travel +
 * the price of the courier's scarce capabilities the request does not need); Infinity when infeasible.
 * `courierCaps`: the courier's capability bits (snapshot attrWord >>> 8; 0 when unknown).
 */
export function routeCost(score: RouteScore, request: DispatchRequest, policy: DispatchPolicy, courierCaps = 0): number {
  if (!score.feasible) return Infinity;
  return URGENCY_WEIGHT[request.urgency] * (score.pickupEta + policy.weights.lateness * score.lateness + DRIVE_WEIGHT * score.travel + scarcityCost(courierCaps, request, policy));
}

/** The capability bits of snapshot courier i that scarce pricing may charge for (policy.scarceLocal when the loop set it). */
export function pricedCaps(snapshot: CourierSnapshot, i: number, policy: DispatchPolicy): number {
  const caps = snapshot.attrWord(i) >>> 8;
  return policy.scarceLocal === undefined ? caps : caps & policy.scarceLocal[i];
}

/** Seconds a routine or urgent request pays for taking a courier whose scarce capabilities it does not need. */
export function scarcityCost(courierCaps: number, request: DispatchRequest, policy: DispatchPolicy): number {
  // called per candidate in every planner's loop: nothing is allocated, and nothing priced costs one table lookup
  const table = scarceTable(policy.scarceCapabilities ?? DEFAULT_SCARCE_CAPABILITIES);
  if ((courierCaps & table.mask) === 0 || request.urgency === 'emergency') return 0;
  let spare = courierCaps & table.mask & ~(request.capabilities === undefined ? 0 : capabilityMask(request.capabilities));
  if (policy.scarceLeaves !== undefined) spare &= policy.scarceLeaves.get(request.id) ?? 0;
  let cost = 0;
  for (let i = 0; i < table.bits.length; i++) if ((spare & table.bits[i]) !== 0) cost += table.seconds[i];
  return cost;
}

interface ScarceTable {
  /** Every priced capability's bit. */
  mask: number;
  bits: number[];
  seconds: number[];
}

const scarceTables = new WeakMap<object, ScarceTable>();

// A policy's price table as capability bits, made once per table object.
function scarceTable(prices: Readonly<Partial<Record<string, number>>>): ScarceTable {
  let t = scarceTables.get(prices);
  if (t === undefined) {
    t = { mask: 0, bits: [], seconds: [] };
    for (const [capability, seconds] of Object.entries(prices)) {
      if (!seconds) continue;
      const bit = capabilityMask([capability]);
      t.mask |= bit;
      t.bits.push(bit);
      t.seconds.push(seconds);
    }
    scarceTables.set(prices, t);
  }
  return t;
}

/**
 * The allocation-free core of scoreRoute for hot loops that already know the distances and speeds
 * (capabilities and capacity are the caller's business): fills and returns `out`.
 */
export function scoreTrip(
  pickupMeters: number,
  pickupToDropoffMeters: number,
  speedToPickup: number,
  speedOfLeg: number,
  request: DispatchRequest,
  policy: DispatchPolicy,
  now: number,
  out: RouteScore,
): RouteScore {
  const travel = travelSeconds(pickupMeters, policy.circuity, speedToPickup);
  let arrive = now + travel * 1000;
  if (request.readyAt !== undefined && request.readyAt > arrive) arrive = request.readyAt;
  const pickupEta = (arrive - now) / 1000;
  const dropoffEta = pickupEta + travelSeconds(pickupToDropoffMeters, policy.circuity, speedOfLeg);
  let lateness = 0;
  let reason: RouteInfeasibility | undefined;
  if (request.pickupBy !== undefined && arrive > request.pickupBy) {
    lateness = (arrive - request.pickupBy) / 1000;
    reason = 'pickup-window-missed';
  }
  if (request.deadline !== undefined) {
    const late = (now + dropoffEta * 1000 - request.deadline) / 1000;
    if (late > 0 && late >= lateness) {
      lateness = late;
      reason = 'deadline-missed';
    }
  }
  out.pickupEta = pickupEta;
  out.dropoffEta = dropoffEta;
  out.lateness = lateness;
  out.travel = travel;
  out.feasible = lateness === 0 || !hasHardLimits(request);
  out.reason = out.feasible ? undefined : reason;
  return out;
}

/** True when the request's time limits may not be missed (blood, rescue, emergency). */
export function hasHardLimits(request: DispatchRequest): boolean {
  return request.kind !== 'delivery' || request.urgency === 'emergency';
}

/** True when a hard limit has already passed at `now`, so no courier can help. */
export function limitPassed(request: DispatchRequest, now: number): boolean {
  if (!hasHardLimits(request)) return false;
  return (request.deadline !== undefined && request.deadline < now) || (request.pickupBy !== undefined && request.pickupBy < now);
}

/** Great-circle metres from the request's pickup to its dropoff. */
export function legMeters(request: DispatchRequest): number {
  return distanceMeters(request.pickup.lat, request.pickup.lng, request.dropoff.lat, request.dropoff.lng);
}

/** Driving speed (m/s) of courier i to a pickup: learned neighbourhood speed when plausible, else its vehicle's. */
export function courierSpeed(snapshot: CourierSnapshot, i: number, policy: DispatchPolicy): number {
  return driveSpeed(snapshot.localSpeed(i), policy.vehicleSpeed[snapshot.vehicle(i)]);
}

/** Speed (m/s) of the pickup → dropoff leg: request.legSpeed when plausible, else the vehicle's speed. */
export function legSpeed(request: DispatchRequest, vehicleSpeed: number): number {
  return driveSpeed(request.legSpeed ?? NaN, vehicleSpeed);
}

/** A fresh, feasible, all-zero score to fill with scoreTrip. */
export function emptyScore(): RouteScore {
  return { pickupEta: 0, dropoffEta: 0, lateness: 0, travel: 0, feasible: true, reason: undefined };
}

function infeasible(out: RouteScore, reason: RouteInfeasibility): RouteScore {
  out.pickupEta = Infinity;
  out.dropoffEta = Infinity;
  out.lateness = 0;
  out.travel = Infinity;
  out.feasible = false;
  out.reason = reason;
  return out;
}
