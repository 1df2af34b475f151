/**
 * En route (PRODUCT §2): a busy courier whose current trip ends within a few minutes near a pickup is a candidate
 * for it, its ETA counting the rest of that trip. The loop asks this after a plan, for the legs the plan left:
 *
 *   legs left (no courier in radius, none feasible, outbid)
 *        │ per leg: busy couriers near its pickup, holding no offer, with the capabilities and capacity it needs,
 *        │ on their last run (every leg they carry picked up) and carrying fewer than maxCarried legs
 *        ▼
 *   remainingTrip(courier): from where it is, its dropoffs (nearest first) ──► finishIn s, end
 *        │ finishIn ≤ finishWithinSeconds, end → pickup ≤ nearSeconds of driving
 *        ▼
 *   pickupEta = finishIn + drive(end → pickup), waiting for readyAt; hard limits (blood, rescue, emergency) must hold
 *        ▼
 *   min-cost assignment legs × couriers (one leg per courier; cost as route-scoring's, ≤ the leg's unassigned penalty)
 *
 * Pure: the loop gathers the couriers (where they are, what they carry) and offers the result with `{ busy: true }`.
 */
import { capabilityMask } from '../engine/courier-attributes.js';
import type { CourierIndex } from '../engine/courier-index.js';
import type { RequestLifecycle } from './request-lifecycle.js';
import { distanceMeters } from '../engine/geodesy.js';
import type { DispatchPolicy, DispatchRequest, EnRoutePolicy, LatLng, PlannedAssignment } from './dispatch-request.js';
import { solveAssignment } from './min-cost-assignment.js';
import { DEFAULT_STACKING } from './stacking.js';
import { URGENCY_WEIGHT, hasHardLimits, legSpeed, scarcityCost } from './route-scoring.js';
import { travelSeconds } from './travel-time.js';

/** A trip ending within five minutes, ten minutes' drive or less from the pickup. */
export const DEFAULT_EN_ROUTE: Readonly<EnRoutePolicy> = Object.freeze({ finishWithinSeconds: 300, nearSeconds: 600 });

/** The most legs one courier may carry at once under `policy`: a stack (or one leg), and one leg taken en route after it. */
export function maxCarried(policy: Pick<DispatchPolicy, 'stacking' | 'enRoute'>): number {
  const stack = policy.stacking === false ? 1 : (policy.stacking ?? DEFAULT_STACKING).maxStops;
  return Math.max(1, stack) + (policy.enRoute === false ? 0 : 1);
}

/** A busy courier as en-route matching sees it. */
export interface EnRouteCourier {
  id: string;
  /** Where its current trip ends (its last dropoff). */
  end: LatLng;
  /** Seconds from now until it gets there. */
  finishIn: number;
  /** m/s it drives at. */
  speed: number;
  /** Capability bits (engine/courier-attributes capabilityMask). */
  caps: number;
  capacity: number;
}

/** One stop still ahead of a busy courier. */
export interface StopAhead {
  at: LatLng;
  /** Epoch ms before which the courier waits there (food not ready); undefined for a dropoff. */
  readyAt?: number;
}

/**
 * The rest of a courier's trip: from `from`, every pickup not yet made (nearest first, waiting for its food), then
 * every dropoff (nearest first). Seconds until it ends and where.
 */
export function remainingTrip(from: LatLng, pickups: readonly StopAhead[], dropoffs: readonly StopAhead[], speed: number, policy: Pick<DispatchPolicy, 'circuity'>, now: number): { finishIn: number; end: LatLng } {
  let at = from;
  let t = now;
  for (const stop of stopOrder(from, pickups, dropoffs)) {
    t += travelSeconds(metres(at, stop.at), policy.circuity, speed) * 1000;
    if (stop.readyAt !== undefined && stop.readyAt > t) t = stop.readyAt;
    at = stop.at;
  }
  return { finishIn: (t - now) / 1000, end: at };
}

/** The order remainingTrip drives a busy courier's stops in: from `from`, the pickups nearest first, then the dropoffs. */
export function stopOrder<S extends { at: LatLng }>(from: LatLng, pickups: readonly S[], dropoffs: readonly S[]): S[] {
  const out: S[] = [];
  let at = from;
  for (const group of [pickups, dropoffs]) {
    const left = [...group];
    while (left.length > 0) {
      let best = 0;
      for (let k = 1; k < left.length; k++) if (metres(at, left[k].at) < metres(at, left[best].at)) best = k;
      const [stop] = left.splice(best, 1);
      out.push(stop);
      at = stop.at;
    }
  }
  return out;
}

/** Matches legs to couriers finishing nearby: at most one leg per courier, each at most its unassigned penalty. */
export function planEnRoute(requests: readonly DispatchRequest[], couriers: readonly EnRouteCourier[], policy: DispatchPolicy, now: number): PlannedAssignment[] {
  const { finishWithinSeconds, nearSeconds } = policy.enRoute === false ? { finishWithinSeconds: -1, nearSeconds: -1 } : (policy.enRoute ?? DEFAULT_EN_ROUTE);
  if (finishWithinSeconds < 0 || requests.length === 0 || couriers.length === 0) return [];
  const rowStart = new Int32Array(requests.length + 1);
  const colIndex: number[] = [];
  const cost: number[] = [];
  const eta: { pickupEta: number; dropoffEta: number; lateness: number }[] = [];
  const penalty = new Float64Array(requests.length);
  for (let q = 0; q < requests.length; q++) {
    const r = requests[q];
    penalty[q] = policy.weights.unassigned[r.urgency];
    const need = r.capabilities === undefined ? 0 : capabilityMask(r.capabilities);
    for (let c = 0; c < couriers.length; c++) {
      const k = couriers[c];
      if (k.finishIn > finishWithinSeconds || (k.caps & need) !== need || k.capacity < (r.load ?? 1)) continue;
      if (r.exclude !== undefined && r.exclude.includes(k.id)) continue;
      const drive = travelSeconds(metres(k.end, r.pickup), policy.circuity, k.speed);
      if (drive > nearSeconds) continue;
      let arrive = now + (k.finishIn + drive) * 1000;
      if (r.readyAt !== undefined && r.readyAt > arrive) arrive = r.readyAt;
      const pickupEta = (arrive - now) / 1000;
      const dropoffEta = pickupEta + travelSeconds(metres(r.pickup, r.dropoff), policy.circuity, legSpeed(r, k.speed));
      let lateness = r.pickupBy !== undefined && arrive > r.pickupBy ? (arrive - r.pickupBy) / 1000 : 0;
      if (r.deadline !== undefined) lateness = Math.max(lateness, (now + dropoffEta * 1000 - r.deadline) / 1000);
      if (lateness > 0 && hasHardLimits(r)) continue;
      const edge = URGENCY_WEIGHT[r.urgency] * (pickupEta + policy.weights.lateness * lateness + scarcityCost(k.caps, r, policy));
      if (!(edge <= penalty[q])) continue;
      colIndex.push(c);
      cost.push(edge);
      eta.push({ pickupEta, dropoffEta, lateness });
    }
    rowStart[q + 1] = colIndex.length;
  }
  if (colIndex.length === 0) return [];
  const solved = solveAssignment({ rows: requests.length, cols: couriers.length, rowStart, colIndex: Int32Array.from(colIndex), cost: Float64Array.from(cost), unassignedCost: penalty });
  const out: PlannedAssignment[] = [];
  for (let q = 0; q < requests.length; q++) {
    const c = solved.rowToCol[q];
    if (c < 0) continue;
    let e = rowStart[q];
    while (colIndex[e] !== c) e++;
    out.push({ requestId: requests[q].id, courierId: couriers[c].id, ...eta[e], cost: cost[e] });
  }
  return out;
}

/** What enRouteCourierOf reads of a dispatch loop. */
export interface EnRouteView {
  lifecycle: Pick<RequestLifecycle, 'courier' | 'request'>;
  couriers: Pick<CourierIndex, 'get'>;
  policy: DispatchPolicy;
  /** A leg's route (pickup, dropoff, load), or undefined. */
  legOf: (legId: string) => DispatchRequest | undefined;
}

/**
 * A busy courier as en-route matching sees it (where and when its trip ends), or undefined when it may take nothing
 * now: it holds an offer, has a pickup still to make, or carries maxCarried legs already. Its capacity is what its
 * load leaves. Read from lifecycle state only, so a restart (which restores what was carried, not how) cannot forget it.
 */
export function enRouteCourierOf(courierId: string, now: number, view: EnRouteView): EnRouteCourier | undefined {
  const held = view.lifecycle.courier(courierId);
  const indexed = view.couriers.get(courierId);
  if (held?.status !== 'busy' || held.offerIds.length > 0 || indexed === undefined || !Number.isFinite(indexed.lat)) return undefined;
  // only a courier on its last run (every leg it carries picked up: one queued leg at most) with room under maxCarried
  if (held.requestIds.length >= maxCarried(view.policy)) return undefined;
  const dropoffs: StopAhead[] = [];
  let load = 0;
  for (const id of held.requestIds) {
    const d = view.legOf(id);
    if (d === undefined || view.lifecycle.request(id)?.status !== 'picked_up') return undefined;
    dropoffs.push({ at: d.dropoff });
    load += d.load ?? 1;
  }
  const speed = view.policy.vehicleSpeed[indexed.vehicle];
  const trip = remainingTrip({ lat: indexed.lat, lng: indexed.lng }, [], dropoffs, speed, view.policy, now);
  // a driver may pick the next load up before the last drop: what it carries must leave room for it
  return { id: courierId, ...trip, speed, caps: capabilityMask(indexed.capabilities), capacity: indexed.capacity - load };
}

function metres(a: LatLng, b: LatLng): number {
  return distanceMeters(a.lat, a.lng, b.lat, b.lng);
}
