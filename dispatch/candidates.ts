/**
 * Candidate couriers for one request: the few worth offering to the matcher.
 *
 *   snapshot.nearby(pickup, k = OVERFETCH × policy.candidates, radius,
 *                   status available, capabilities, capacity ≥ load, not excluded)      nearest first
 *     ─► skip couriers already used (greedy) ─► scoreTrip (hit distance, learned speed) ─► drop infeasible
 *     ─► keep the policy.candidates cheapest by routeCost                                 cheapest first
 *
 * Nearest-by-distance is only a proxy for cheapest-by-cost (speeds differ by vehicle and neighbourhood, and a
 * readyAt wait flattens the difference), so the search over-fetches and re-ranks. The scan reuses typed
 * scratch arrays; beyond what nearby() returns it allocates nothing per candidate.
 */
import type { CourierSnapshot } from '../engine/courier-snapshot.js';
import type { DispatchPolicy, DispatchRequest } from './dispatch-request.js';
import { type RouteScore, courierSpeed, emptyScore, legMeters, legSpeed, pricedCaps, routeCost, scoreTrip } from './route-scoring.js';

/** One candidate: snapshot index, metres to the pickup, its route and cost. */
export interface Candidate {
  index: number;
  distance: number;
  score: RouteScore;
  cost: number;
}

/**
 * Nearest couriers fetched per candidate kept. Twice k: in city scenarios the cheapest k almost always sit
 * among the nearest 2k, while the scoring work stays linear in k.
 */
export const OVERFETCH = 2;

/** The policy.candidates cheapest feasible couriers among the OVERFETCH × as many nearest, cheapest first. */
export function candidatesFor(snapshot: CourierSnapshot, request: DispatchRequest, policy: DispatchPolicy, now: number): Candidate[] {
  const search = new CandidateSearch(policy.candidates);
  const n = search.collect(snapshot, request, policy, now);
  const out: Candidate[] = new Array(n);
  for (let c = 0; c < n; c++) {
    const score: RouteScore = { pickupEta: search.pickupEta[c], dropoffEta: search.dropoffEta[c], lateness: search.lateness[c], travel: search.travel[c], feasible: true };
    out[c] = { index: search.index[c], distance: search.distance[c], score, cost: search.cost[c] };
  }
  return out;
}

/**
 * A reusable candidate search for batch loops: collect() leaves the kept candidates, cheapest first, in
 * the public typed arrays (valid until the next collect()).
 */
export class CandidateSearch {
  /** Candidates held after the last collect(). */
  count = 0;
  /** Couriers nearby() returned (available, capable, in radius) in the last collect(). */
  nearbyHits = 0;
  /** Of those, couriers skipped because `used` marked them. */
  usedSkipped = 0;
  index: Int32Array;
  distance: Float64Array;
  cost: Float64Array;
  pickupEta: Float64Array;
  dropoffEta: Float64Array;
  lateness: Float64Array;
  travel: Float64Array;
  private readonly scratch = emptyScore();

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new Error(`CandidateSearch: capacity must be a non-negative integer (policy.candidates), got ${capacity}`);
    this.index = new Int32Array(capacity);
    this.distance = new Float64Array(capacity);
    this.cost = new Float64Array(capacity);
    this.pickupEta = new Float64Array(capacity);
    this.dropoffEta = new Float64Array(capacity);
    this.lateness = new Float64Array(capacity);
    this.travel = new Float64Array(capacity);
  }

  /**
   * Finds the `keep` cheapest feasible couriers among the `fetch` nearest eligible ones, skipping those with
   * used[i] = 1; returns how many were kept.
   */
  collect(
    snapshot: CourierSnapshot,
    request: DispatchRequest,
    policy: DispatchPolicy,
    now: number,
    used?: Uint8Array,
    fetch = OVERFETCH * policy.candidates,
    keep = policy.candidates,
  ): number {
    if (keep > this.index.length) this.grow(keep);
    this.count = 0;
    this.nearbyHits = 0;
    this.usedSkipped = 0;
    if (keep === 0 || fetch === 0) return 0;
    const hits = snapshot.nearby(request.pickup.lat, request.pickup.lng, {
      k: fetch,
      radius: policy.radius,
      status: 'available',
      capability: request.capabilities,
      minCapacity: request.load ?? 1,
      exclude: request.exclude === undefined || request.exclude.length === 0 ? undefined : new Set(request.exclude),
    });
    this.nearbyHits = hits.length;
    const leg = legMeters(request);
    const score = this.scratch;
    for (let h = 0; h < hits.length; h++) {
      const i = hits[h].index;
      if (used !== undefined && used[i] === 1) {
        this.usedSkipped++;
        continue;
      }
      scoreTrip(hits[h].distance, leg, courierSpeed(snapshot, i, policy), legSpeed(request, policy.vehicleSpeed[snapshot.vehicle(i)]), request, policy, now, score);
      if (!score.feasible) continue;
      this.offer(i, hits[h].distance, routeCost(score, request, policy, pricedCaps(snapshot, i, policy)), score, keep);
    }
    return this.count;
  }

  // Sorted insertion into at most `keep` slots: k is ~20, so a shift beats a heap and keeps the order.
  private offer(i: number, distance: number, cost: number, score: RouteScore, keep: number): void {
    let at = this.count;
    while (at > 0 && before(cost, distance, i, this.cost[at - 1], this.distance[at - 1], this.index[at - 1])) at--;
    if (at >= keep) return;
    const last = Math.min(this.count, keep - 1);
    for (let s = last; s > at; s--) this.move(s - 1, s);
    this.index[at] = i;
    this.distance[at] = distance;
    this.cost[at] = cost;
    this.pickupEta[at] = score.pickupEta;
    this.dropoffEta[at] = score.dropoffEta;
    this.lateness[at] = score.lateness;
    this.travel[at] = score.travel;
    if (this.count < keep) this.count++;
  }

  private move(from: number, to: number): void {
    this.index[to] = this.index[from];
    this.distance[to] = this.distance[from];
    this.cost[to] = this.cost[from];
    this.pickupEta[to] = this.pickupEta[from];
    this.dropoffEta[to] = this.dropoffEta[from];
    this.lateness[to] = this.lateness[from];
    this.travel[to] = this.travel[from];
  }

  private grow(capacity: number): void {
    const grown = new CandidateSearch(capacity);
    this.index = grown.index;
    this.distance = grown.distance;
    this.cost = grown.cost;
    this.pickupEta = grown.pickupEta;
    this.dropoffEta = grown.dropoffEta;
    this.lateness = grown.lateness;
    this.travel = grown.travel;
  }
}

// cheaper first; equal cost: nearer, then lower snapshot index (deterministic)
function before(cost: number, distance: number, i: number, cost2: number, distance2: number, i2: number): boolean {
  if (cost !== cost2) return cost < cost2;
  if (distance !== distance2) return distance < distance2;
  return i < i2;
}
