/**
 * Stacking (PRODUCT §2): a courier with `capacity` > 1 carries several deliveries whose pickups are close, when
 * no stop of the stack becomes late. Runs after a planner has matched one request per courier, on what it left:
 *
 *   plan ──► hosts: assigned routine/urgent deliveries, one stack per courier (its stops so far)
 *        └─► leftovers: deliveries the plan could not match (outbid, no feasible courier)
 *                 │ per leftover: stacks with a pickup within policy.stacking.pickupGapSeconds of driving,
 *                 │ room (capacity ≥ loads) and the capabilities it needs, not a courier it declined
 *                 ▼
 *            best stop order of stack + leftover (every order of pickups, then of dropoffs)
 *                 │ no member later than alone with this courier; the route grows by ≤ detourShare × the
 *                 │ leftover's own drive; cost Δ ≤ the leftover's unassigned penalty
 *                 ▼
 *            min-cost assignment leftovers × stacks (each stack takes at most one per round) ── rounds until
 *            maxStops or nothing more fits
 *
 *   Δ = Σ members urgency × (dropoffEta + weights.lateness × lateness), after − before, minus the leftover's own
 *       direct pickup→dropoff drive: what the stack costs everyone already on it plus the leftover's wait and detour.
 *
 * Blood, rescue and emergencies are never stacked (hard limits; an emergency rides alone). Each member's
 * PlannedAssignment keeps its own pickupEta / dropoffEta along the stack's route; members of one stack share a
 * courierId, and their ETAs give the stop order. Pure: no clock but performance.now() for solveMs.
 */
import { performance } from 'node:perf_hooks';
import type { CourierSnapshot } from '../engine/courier-snapshot.js';
import { capabilityMask } from '../engine/courier-attributes.js';
import { distanceMeters } from '../engine/geodesy.js';
import type { DispatchPlan, DispatchPolicy, DispatchRequest, PlannedAssignment, StackingPolicy } from './dispatch-request.js';
import { solveAssignment } from './min-cost-assignment.js';
import { PointGrid } from './point-grid.js';
import { URGENCY_WEIGHT, courierSpeed, legSpeed, pricedCaps, scarcityCost } from './route-scoring.js';
import { travelSeconds } from './travel-time.js';

/**
 * Stacks of up to three deliveries whose pickups are at most five minutes' drive apart, each adding at most half
 * its own drive to the route. Over the peak (bench/dispatch-day.ts --peak) a share of 0.5 delivered as much as
 * the unstacked planner and 0.8 or more delivered less: a stack that saves under half a trip costs its other stops more.
 */
export const DEFAULT_STACKING: Readonly<StackingPolicy> = Object.freeze({ pickupGapSeconds: 300, maxStops: 3, detourShare: 0.5 });

/** The member ETAs of one stop order: seconds from now, and lateness per member. */
export interface StackRoute {
  /** Members in pickup order. */
  pickupOrder: number[];
  /** Members in dropoff order. */
  dropoffOrder: number[];
  pickupEta: number[];
  dropoffEta: number[];
  lateness: number[];
}

/** The courier a stack starts from: where it is and how fast it drives. */
export interface StackCourier {
  lat: number;
  lng: number;
  /** m/s to the first pickup (learned or vehicle). */
  speedToFirst: number;
  /** m/s between stops when a leg has no learned speed. */
  vehicleSpeed: number;
}

/** True when a request may ride in a stack: a routine or urgent delivery. */
export function stackable(r: DispatchRequest): boolean {
  return r.kind === 'delivery' && r.urgency !== 'emergency';
}

/**
 * Times one stop order: courier → pickups in `pickupOrder` (waiting for readyAt) → dropoffs in `dropoffOrder`.
 * Between stops the courier drives at its vehicle speed, except a member's own pickup → dropoff hop at its leg speed.
 */
export function timeStack(courier: StackCourier, members: readonly DispatchRequest[], pickupOrder: readonly number[], dropoffOrder: readonly number[], policy: DispatchPolicy, now: number): StackRoute {
  const n = members.length;
  const pickupEta = new Array<number>(n).fill(0);
  const dropoffEta = new Array<number>(n).fill(0);
  const lateness = new Array<number>(n).fill(0);
  let lat = courier.lat;
  let lng = courier.lng;
  let t = now;
  let speed = courier.speedToFirst;
  for (const m of pickupOrder) {
    const r = members[m];
    t += travelSeconds(distanceMeters(lat, lng, r.pickup.lat, r.pickup.lng), policy.circuity, speed) * 1000;
    if (r.readyAt !== undefined && r.readyAt > t) t = r.readyAt;
    pickupEta[m] = (t - now) / 1000;
    if (r.pickupBy !== undefined && t > r.pickupBy) lateness[m] = (t - r.pickupBy) / 1000;
    lat = r.pickup.lat;
    lng = r.pickup.lng;
    speed = courier.vehicleSpeed;
  }
  let last = pickupOrder[pickupOrder.length - 1];
  for (const m of dropoffOrder) {
    const r = members[m];
    // the hop from a member's own pickup straight to its own dropoff runs at its leg speed, as a lone trip would
    const hop = last === m && lat === r.pickup.lat && lng === r.pickup.lng ? legSpeed(r, courier.vehicleSpeed) : courier.vehicleSpeed;
    t += travelSeconds(distanceMeters(lat, lng, r.dropoff.lat, r.dropoff.lng), policy.circuity, hop) * 1000;
    dropoffEta[m] = (t - now) / 1000;
    if (r.deadline !== undefined && t > r.deadline) lateness[m] = Math.max(lateness[m], (t - r.deadline) / 1000);
    lat = r.dropoff.lat;
    lng = r.dropoff.lng;
    last = m;
  }
  return { pickupOrder: [...pickupOrder], dropoffOrder: [...dropoffOrder], pickupEta, dropoffEta, lateness };
}

/** Matching cost of a route: Σ urgency × (dropoffEta + weights.lateness × lateness). */
export function stackCost(route: StackRoute, members: readonly DispatchRequest[], policy: DispatchPolicy): number {
  let cost = 0;
  for (let m = 0; m < members.length; m++) cost += URGENCY_WEIGHT[members[m].urgency] * (route.dropoffEta[m] + policy.weights.lateness * route.lateness[m]);
  return cost;
}

/**
 * The cheapest stop order of `members` in which no member is later than `allowed[m]` seconds, or undefined.
 * Every order of pickups, then every order of dropoffs: (n!)² routes, so n stays small (maxStops ≤ 4).
 */
export function bestStackRoute(courier: StackCourier, members: readonly DispatchRequest[], allowed: readonly number[], policy: DispatchPolicy, now: number): { route: StackRoute; cost: number } | undefined {
  let best: { route: StackRoute; cost: number } | undefined;
  const orders = permutations(members.length);
  for (const pickups of orders) {
    for (const drops of orders) {
      const route = timeStack(courier, members, pickups, drops, policy, now);
      if (route.lateness.some((late, m) => late > allowed[m] + 1e-9)) continue;
      const cost = stackCost(route, members, policy);
      if (best === undefined || cost < best.cost - 1e-9) best = { route, cost };
    }
  }
  return best;
}

/** Adds leftovers of `plan` to the stacks of couriers it already uses; a plan with no stackable leftover comes back as it was. */
export function stackPlan(plan: DispatchPlan, snapshot: CourierSnapshot, requests: readonly DispatchRequest[], policy: DispatchPolicy, now: number): DispatchPlan {
  const stacking = policy.stacking;
  if (stacking === false || plan.unassigned.length === 0 || plan.assignments.length === 0) return plan;
  const { pickupGapSeconds, maxStops, detourShare } = stacking ?? DEFAULT_STACKING;
  if (!(maxStops >= 2)) return plan;
  const started = performance.now();
  const byId = new Map(requests.map((r) => [r.id, r]));
  // the usual case with couriers to spare: nothing stackable was left, so nothing is built
  const leftovers = plan.unassigned.filter((u) => (u.reason === 'outbid' || u.reason === 'no-feasible-courier') && stackable(byId.get(u.requestId)!)).map((u) => byId.get(u.requestId)!);
  if (leftovers.length === 0) return plan;
  const fastest = Math.max(...Object.values(policy.vehicleSpeed));
  const maxAbsLat = Math.max(...requests.map((r) => Math.abs(r.pickup.lat)));
  const grid = new PointGrid((pickupGapSeconds * fastest) / policy.circuity, maxAbsLat);
  // only couriers whose pickup is near a leftover's can take one: the others are not looked at
  leftovers.forEach((r, q) => grid.add(r.pickup.lat, r.pickup.lng, q));
  const stacks: Stack[] = [];
  const stackOf = new Map<string, Stack>();
  for (const a of plan.assignments) {
    const r = byId.get(a.requestId);
    if (r === undefined || grid.near(r.pickup.lat, r.pickup.lng).length === 0) continue;
    const i = snapshot.indexOf(a.courierId);
    if (i < 0) continue;
    const existing = stackOf.get(a.courierId);
    if (existing !== undefined) {
      existing.open = false; // a courier the planner gave two requests already (not ours to reshape)
      continue;
    }
    const s: Stack = {
      courierIndex: i, courierId: a.courierId, members: [r], allowed: [a.lateness], open: stackable(r),
      route: { pickupOrder: [0], dropoffOrder: [0], pickupEta: [a.pickupEta], dropoffEta: [a.dropoffEta], lateness: [a.lateness] }, cost: 0,
      courier: { lat: snapshot.lat(i), lng: snapshot.lng(i), speedToFirst: courierSpeed(snapshot, i, policy), vehicleSpeed: policy.vehicleSpeed[snapshot.vehicle(i)] },
    };
    s.cost = stackCost(s.route, s.members, policy);
    stacks.push(s);
    stackOf.set(a.courierId, s);
  }
  const open = stacks.filter((s) => s.open);
  if (open.length === 0) return plan;

  const placed = new Set<string>();
  let totalCost = plan.totalCost;
  for (let round = 1; round < maxStops; round++) {
    grid.clear();
    const cols = open.filter((s) => s.members.length === round);
    if (cols.length === 0) break;
    cols.forEach((s, c) => s.members.forEach((m) => grid.add(m.pickup.lat, m.pickup.lng, c)));
    const rows = leftovers.filter((r) => !placed.has(r.id));
    const rowStart = new Int32Array(rows.length + 1);
    const colIndex: number[] = [];
    const cost: number[] = [];
    const tried: { route: StackRoute; delta: number }[] = [];
    const penalty = new Float64Array(rows.length);
    for (let q = 0; q < rows.length; q++) {
      const r = rows[q];
      penalty[q] = policy.weights.unassigned[r.urgency];
      const need = r.capabilities === undefined ? 0 : capabilityMask(r.capabilities);
      // the policy.candidates stacks with the nearest pickups that fit: room, capabilities, not declined, within the gap
      const fitting: { c: number; gap: number }[] = [];
      for (const c of grid.near(r.pickup.lat, r.pickup.lng)) {
        const s = cols[c];
        const attr = snapshot.attrWord(s.courierIndex);
        if (((attr >>> 8) & need) !== need) continue;
        if (attr >>> 16 < s.members.reduce((sum, m) => sum + (m.load ?? 1), 0) + (r.load ?? 1)) continue;
        if (r.exclude !== undefined && r.exclude.includes(s.courierId)) continue;
        const gap = Math.min(...s.members.map((m) => driveGap(m, r, s.courier.vehicleSpeed, policy)));
        if (gap <= pickupGapSeconds) fitting.push({ c, gap });
      }
      fitting.sort((a, b) => a.gap - b.gap || a.c - b.c);
      for (const { c } of fitting.slice(0, policy.candidates)) {
        const s = cols[c];
        const alone = timeStack(s.courier, [r], [0], [0], policy, now).lateness[0];
        const found = bestStackRoute(s.courier, [...s.members, r], [...s.allowed, alone], policy, now);
        if (found === undefined) continue;
        const direct = travelSeconds(distanceMeters(r.pickup.lat, r.pickup.lng, r.dropoff.lat, r.dropoff.lng), policy.circuity, legSpeed(r, s.courier.vehicleSpeed));
        // worth a courier's time: the stack's route grows by at most detourShare of the leftover's own drive (a long
        // wait for food, or dropoffs in other directions, and a courier of its own does better)
        if (finish(found.route) - finish(s.route) > detourShare * direct) continue;
        // a courier with a scarce capability the leftover does not need keeps it from that work longer (scarcity.ts)
        const delta = found.cost - s.cost - URGENCY_WEIGHT[r.urgency] * (direct - scarcityCost(pricedCaps(snapshot, s.courierIndex, policy), r, policy));
        if (!(delta <= penalty[q])) continue;
        colIndex.push(c);
        cost.push(Math.max(0, delta));
        tried.push({ route: found.route, delta });
      }
      rowStart[q + 1] = colIndex.length;
    }
    if (colIndex.length === 0) break;
    const solved = solveAssignment({ rows: rows.length, cols: cols.length, rowStart, colIndex: Int32Array.from(colIndex), cost: Float64Array.from(cost), unassignedCost: penalty });
    let added = 0;
    for (let q = 0; q < rows.length; q++) {
      const c = solved.rowToCol[q];
      if (c < 0) continue;
      let e = rowStart[q];
      while (colIndex[e] !== c) e++;
      const s = cols[c];
      const r = rows[q];
      s.members.push(r);
      s.allowed.push(timeStack(s.courier, [r], [0], [0], policy, now).lateness[0]);
      s.route = tried[e].route;
      s.cost = stackCost(s.route, s.members, policy);
      totalCost += tried[e].delta - penalty[q];
      placed.add(r.id);
      added++;
    }
    if (added === 0) break;
  }
  if (placed.size === 0) return plan;
  return rebuild(plan, stacks, placed, totalCost, performance.now() - started);
}

interface Stack {
  courierIndex: number;
  courierId: string;
  courier: StackCourier;
  members: DispatchRequest[];
  /** Per member: the lateness it may have (what it has alone with this courier). */
  allowed: number[];
  route: StackRoute;
  cost: number;
  /** False when the stack may take no more (its first member is not stackable, or the planner stacked it). */
  open: boolean;
}

/** The plan with stacked members' assignments along their stack's route and the placed leftovers out of `unassigned`. */
function rebuild(plan: DispatchPlan, stacks: readonly Stack[], placed: ReadonlySet<string>, totalCost: number, stackMs: number): DispatchPlan {
  const routed = new Map<string, PlannedAssignment>();
  for (const s of stacks) {
    if (s.members.length < 2) continue;
    s.members.forEach((m, k) => {
      const cost = URGENCY_WEIGHT[m.urgency] * s.route.pickupEta[k];
      routed.set(m.id, { requestId: m.id, courierId: s.courierId, pickupEta: s.route.pickupEta[k], dropoffEta: s.route.dropoffEta[k], lateness: s.route.lateness[k], cost });
    });
  }
  const assignments: PlannedAssignment[] = plan.assignments.map((a) => routed.get(a.requestId) ?? a);
  for (const [id, a] of routed) if (placed.has(id)) assignments.push(a);
  const totalPickupEta = assignments.reduce((sum, a) => sum + a.pickupEta, 0);
  return { assignments, unassigned: plan.unassigned.filter((u) => !placed.has(u.requestId)), totalCost, totalPickupEta, solveMs: plan.solveMs + stackMs };
}

/** Seconds from now until the route's last dropoff. */
function finish(route: StackRoute): number {
  return Math.max(...route.dropoffEta);
}

/** Seconds of driving between two requests' pickups at `speed`. */
function driveGap(a: DispatchRequest, b: DispatchRequest, speed: number, policy: DispatchPolicy): number {
  return travelSeconds(distanceMeters(a.pickup.lat, a.pickup.lng, b.pickup.lat, b.pickup.lng), policy.circuity, speed);
}

/** Every permutation of 0..n-1 (n ≤ 4 here), cached. */
function permutations(n: number): readonly (readonly number[])[] {
  const cached = PERMUTATIONS[n];
  if (cached !== undefined) return cached;
  const out: number[][] = [];
  const walk = (prefix: number[], rest: number[]): void => {
    if (rest.length === 0) out.push(prefix);
    for (let i = 0; i < rest.length; i++) walk([...prefix, rest[i]], [...rest.slice(0, i), ...rest.slice(i + 1)]);
  };
  walk([], Array.from({ length: n }, (_, i) => i));
  PERMUTATIONS[n] = out;
  return out;
}
const PERMUTATIONS: (readonly (readonly number[])[] | undefined)[] = [];
