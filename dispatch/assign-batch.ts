/**
 * Matching policies over one courier snapshot: who goes where, for a batch of requests.
 *
 *   requests ──► per request: limitPassed? ──yes──► unassigned 'deadline-passed'
 *                   │ no
 *                   ▼
 *               CandidateSearch (k cheapest feasible of the 2k nearest available, capable couriers)
 *                   │
 *      ┌────────────┴──────────────┬──────────────────────────────┐
 *   batched                      greedy                        planGreedyNearest (baseline)
 *   CSR graph, rows = requests,  priority order (emergency,     arrival order; nearest unused
 *   cols = snapshot couriers,    urgent, routine, oldest);      feasible courier, whatever its ETA
 *   row penalty = unassigned     each takes its cheapest
 *   [urgency] ─► solveAssignment unused candidate
 *      └────────────┬──────────────┴──────────────────────────────┘
 *                   ▼
 *               DispatchPlan (assignments in request order; totalCost = costs + penalties of the unassigned)
 *
 * All three share the feasibility rules (candidates.ts, route-scoring.ts) and one give-up rule: a courier
 * whose cost exceeds the request's unassigned penalty is never sent (leaving the request is cheaper), so the
 * plans differ only in how they choose. Greedy and the baseline re-query with a wider net when every fetched
 * courier is already taken, as a live one-at-a-time dispatcher would see the next-nearest free courier.
 * `solveMs` is the only wall-clock reading (performance.now()); all domain time comes from `now`.
 */
import { performance } from 'node:perf_hooks';
import type { CourierSnapshot } from '../engine/courier-snapshot.js';
import { CandidateSearch, OVERFETCH } from './candidates.js';
import type { DispatchPlan, DispatchPolicy, DispatchRequest, PlannedAssignment, UnassignedReason, Urgency } from './dispatch-request.js';
import { solveAssignment } from './min-cost-assignment.js';
import { stackPlan } from './stacking.js';
import { type RouteScore, courierSpeed, emptyScore, legMeters, legSpeed, limitPassed, pricedCaps, routeCost, scoreTrip } from './route-scoring.js';

/**
 * Plans a batch with policy.mode ('batched': exact min-cost over the candidate graph, then what it left stacked
 * onto couriers with room (stacking.ts; off with policy.stacking false); 'greedy': one request at a time).
 */
export function planBatch(snapshot: CourierSnapshot, requests: readonly DispatchRequest[], policy: DispatchPolicy, now: number): DispatchPlan {
  if (policy.mode === 'batched') return stackPlan(planBatched(snapshot, requests, policy, now), snapshot, requests, policy, now);
  if (policy.mode === 'greedy') return planGreedy(snapshot, requests, policy, now);
  throw new Error(`planBatch: policy.mode must be 'batched' or 'greedy', got '${String(policy.mode)}'`);
}

/** Dispatches one request at once (emergencies skip the batch window): its cheapest feasible courier. */
export function planEmergency(snapshot: CourierSnapshot, request: DispatchRequest, policy: DispatchPolicy, now: number): DispatchPlan {
  return planGreedy(snapshot, [request], policy, now);
}

/** Baseline for benchmarks: in arrival order, each request takes the geometrically nearest free feasible courier. */
export function planGreedyNearest(snapshot: CourierSnapshot, requests: readonly DispatchRequest[], policy: DispatchPolicy, now: number): DispatchPlan {
  const started = performance.now();
  const outcome = new Outcome(requests, policy);
  const used = new Uint8Array(snapshot.count);
  const score = emptyScore();
  for (const r of arrivalOrder(requests)) {
    const request = requests[r];
    if (limitPassed(request, now)) {
      outcome.reasons[r] = 'deadline-passed';
      continue;
    }
    const leg = legMeters(request);
    let fetch = Math.max(1, OVERFETCH * policy.candidates);
    let reason: UnassignedReason = 'no-courier-in-radius';
    for (;;) {
      const hits = snapshot.nearby(request.pickup.lat, request.pickup.lng, nearbyOptions(request, policy, fetch));
      let taken = false;
      let skipped = 0;
      for (let h = 0; h < hits.length && !taken; h++) {
        const i = hits[h].index;
        if (used[i] === 1) {
          skipped++;
          continue;
        }
        scoreTrip(hits[h].distance, leg, courierSpeed(snapshot, i, policy), legSpeed(request, policy.vehicleSpeed[snapshot.vehicle(i)]), request, policy, now, score);
        const cost = routeCost(score, request, policy, pricedCaps(snapshot, i, policy));
        if (cost > outcome.penalty[r]) continue;
        used[i] = 1;
        outcome.assign(r, i, cost, score);
        taken = true;
      }
      if (taken) break;
      if (hits.length > skipped) reason = 'no-feasible-courier';
      else if (skipped > 0) reason = 'outbid';
      // widen only when taken couriers crowded the net; farther couriers will not beat a deadline nearer ones missed
      if (skipped === 0 || hits.length < fetch || fetch >= snapshot.count) break;
      fetch *= 4;
    }
    if (outcome.col[r] < 0) outcome.reasons[r] = reason;
  }
  return outcome.toPlan(snapshot, started);
}

/**
 * Exact reference for benchmarks: the same objective solved over the full feasible graph (every feasible
 * courier within policy.radius, or the maxCandidates cheapest per request), to measure what truncating to
 * policy.candidates costs. Memory and time grow with requests × couriers in radius: keep instances small.
 */
export function planExactReference(snapshot: CourierSnapshot, requests: readonly DispatchRequest[], policy: DispatchPolicy, now: number, maxCandidates = Infinity): DispatchPlan {
  const started = performance.now();
  const outcome = new Outcome(requests, policy);
  const graph = new EdgeList(requests.length, 1024);
  const score = emptyScore();
  for (let r = 0; r < requests.length; r++) {
    const request = requests[r];
    if (limitPassed(request, now)) {
      outcome.reasons[r] = 'deadline-passed';
      graph.endRow(r);
      continue;
    }
    const hits = snapshot.nearby(request.pickup.lat, request.pickup.lng, nearbyOptions(request, policy, snapshot.count));
    const leg = legMeters(request);
    const row: { i: number; cost: number; distance: number; pickupEta: number; dropoffEta: number; lateness: number }[] = [];
    for (const hit of hits) {
      scoreTrip(hit.distance, leg, courierSpeed(snapshot, hit.index, policy), legSpeed(request, policy.vehicleSpeed[snapshot.vehicle(hit.index)]), request, policy, now, score);
      const cost = routeCost(score, request, policy, pricedCaps(snapshot, hit.index, policy));
      if (cost <= outcome.penalty[r]) row.push({ i: hit.index, cost, distance: hit.distance, pickupEta: score.pickupEta, dropoffEta: score.dropoffEta, lateness: score.lateness });
    }
    row.sort((a, b) => a.cost - b.cost || a.distance - b.distance || a.i - b.i);
    const kept = Math.min(row.length, maxCandidates);
    for (let c = 0; c < kept; c++) graph.push(row[c].i, row[c].cost, row[c].pickupEta, row[c].dropoffEta, row[c].lateness);
    graph.endRow(r);
    outcome.reasons[r] = hits.length === 0 ? 'no-courier-in-radius' : 'no-feasible-courier';
  }
  solveGraph(graph, snapshot, outcome);
  return outcome.toPlan(snapshot, started);
}

/** Priority order for greedy dispatch: emergency, urgent, routine; then oldest first; then input order. */
export function priorityOrder(requests: readonly DispatchRequest[]): number[] {
  const order = requests.map((_, r) => r);
  return order.sort((a, b) => URGENCY_RANK[requests[a].urgency] - URGENCY_RANK[requests[b].urgency] || requests[a].createdAt - requests[b].createdAt || a - b);
}

const URGENCY_RANK: Readonly<Record<Urgency, number>> = Object.freeze({ emergency: 0, urgent: 1, routine: 2 });

function planBatched(snapshot: CourierSnapshot, requests: readonly DispatchRequest[], policy: DispatchPolicy, now: number): DispatchPlan {
  const started = performance.now();
  const outcome = new Outcome(requests, policy);
  const search = new CandidateSearch(policy.candidates);
  const graph = new EdgeList(requests.length, requests.length * policy.candidates);
  for (let r = 0; r < requests.length; r++) {
    const request = requests[r];
    if (limitPassed(request, now)) {
      outcome.reasons[r] = 'deadline-passed';
      graph.endRow(r);
      continue;
    }
    const n = search.collect(snapshot, request, policy, now);
    const penalty = outcome.penalty[r];
    // an edge dearer than the penalty is never optimal (dropping the row is cheaper and frees the courier)
    for (let c = 0; c < n && search.cost[c] <= penalty; c++) {
      graph.push(search.index[c], search.cost[c], search.pickupEta[c], search.dropoffEta[c], search.lateness[c]);
    }
    graph.endRow(r);
    outcome.reasons[r] = search.nearbyHits === 0 ? 'no-courier-in-radius' : 'no-feasible-courier';
  }
  solveGraph(graph, snapshot, outcome);
  return outcome.toPlan(snapshot, started);
}

function planGreedy(snapshot: CourierSnapshot, requests: readonly DispatchRequest[], policy: DispatchPolicy, now: number): DispatchPlan {
  const started = performance.now();
  const outcome = new Outcome(requests, policy);
  const search = new CandidateSearch(policy.candidates);
  const used = new Uint8Array(snapshot.count);
  const score = emptyScore();
  for (const r of priorityOrder(requests)) {
    const request = requests[r];
    if (limitPassed(request, now)) {
      outcome.reasons[r] = 'deadline-passed';
      continue;
    }
    let fetch = OVERFETCH * policy.candidates;
    for (;;) {
      const n = search.collect(snapshot, request, policy, now, used, fetch);
      // every fetched courier taken: widen the net, as a live dispatcher would see the next free ones
      if (n > 0 || search.usedSkipped === 0 || search.nearbyHits < fetch || fetch >= snapshot.count) break;
      fetch *= 4;
    }
    if (search.count > 0 && search.cost[0] <= outcome.penalty[r]) {
      const i = search.index[0];
      used[i] = 1;
      score.pickupEta = search.pickupEta[0];
      score.dropoffEta = search.dropoffEta[0];
      score.lateness = search.lateness[0];
      outcome.assign(r, i, search.cost[0], score);
    } else {
      outcome.reasons[r] = search.nearbyHits === 0 ? 'no-courier-in-radius' : search.count === 0 && search.usedSkipped > 0 ? 'outbid' : 'no-feasible-courier';
    }
  }
  return outcome.toPlan(snapshot, started);
}

function nearbyOptions(request: DispatchRequest, policy: DispatchPolicy, k: number) {
  return {
    k,
    radius: policy.radius,
    status: 'available' as const,
    capability: request.capabilities,
    minCapacity: request.load ?? 1,
    exclude: request.exclude === undefined || request.exclude.length === 0 ? undefined : new Set(request.exclude),
  };
}

function arrivalOrder(requests: readonly DispatchRequest[]): number[] {
  return requests.map((_, r) => r).sort((a, b) => requests[a].createdAt - requests[b].createdAt || a - b);
}

/** Solves the graph exactly and records each matched row; unmatched rows with edges lost their couriers ('outbid'). */
function solveGraph(graph: EdgeList, snapshot: CourierSnapshot, outcome: Outcome): void {
  const { rowStart, colIndex, cost } = graph.csr();
  const result = solveAssignment({ rows: graph.rows, cols: snapshot.count, rowStart, colIndex, cost, unassignedCost: outcome.penalty });
  const score = emptyScore();
  for (let r = 0; r < graph.rows; r++) {
    const col = result.rowToCol[r];
    if (col < 0) {
      if (rowStart[r + 1] > rowStart[r]) outcome.reasons[r] = 'outbid';
      continue;
    }
    let e = rowStart[r];
    while (colIndex[e] !== col) e++;
    score.pickupEta = graph.pickupEta[e];
    score.dropoffEta = graph.dropoffEta[e];
    score.lateness = graph.lateness[e];
    outcome.assign(r, col, cost[e], score);
  }
}

/** A growable CSR edge list with the route figures of each edge. */
class EdgeList {
  readonly rows: number;
  private readonly rowStart: Int32Array;
  private size = 0;
  colIndex: Int32Array;
  cost: Float64Array;
  pickupEta: Float64Array;
  dropoffEta: Float64Array;
  lateness: Float64Array;

  constructor(rows: number, capacity: number) {
    this.rows = rows;
    this.rowStart = new Int32Array(rows + 1);
    const cap = Math.max(16, capacity);
    this.colIndex = new Int32Array(cap);
    this.cost = new Float64Array(cap);
    this.pickupEta = new Float64Array(cap);
    this.dropoffEta = new Float64Array(cap);
    this.lateness = new Float64Array(cap);
  }

  push(col: number, cost: number, pickupEta: number, dropoffEta: number, lateness: number): void {
    if (this.size === this.colIndex.length) this.grow();
    const e = this.size++;
    this.colIndex[e] = col;
    this.cost[e] = cost;
    this.pickupEta[e] = pickupEta;
    this.dropoffEta[e] = dropoffEta;
    this.lateness[e] = lateness;
  }

  /** Closes row r (rows must be closed in order). */
  endRow(r: number): void {
    this.rowStart[r + 1] = this.size;
  }

  csr(): { rowStart: Int32Array; colIndex: Int32Array; cost: Float64Array } {
    return { rowStart: this.rowStart, colIndex: this.colIndex.subarray(0, this.size), cost: this.cost.subarray(0, this.size) };
  }

  private grow(): void {
    const cap = this.colIndex.length * 2;
    const widen = <T extends Int32Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.colIndex = widen(this.colIndex, (n) => new Int32Array(n));
    this.cost = widen(this.cost, (n) => new Float64Array(n));
    this.pickupEta = widen(this.pickupEta, (n) => new Float64Array(n));
    this.dropoffEta = widen(this.dropoffEta, (n) => new Float64Array(n));
    this.lateness = widen(this.lateness, (n) => new Float64Array(n));
  }
}

/** Per-request result of a planning run, turned into a DispatchPlan at the end. */
class Outcome {
  readonly col: Int32Array;
  readonly penalty: Float64Array;
  readonly reasons: (UnassignedReason | undefined)[];
  private readonly requests: readonly DispatchRequest[];
  private readonly cost: Float64Array;
  private readonly pickupEta: Float64Array;
  private readonly dropoffEta: Float64Array;
  private readonly lateness: Float64Array;

  constructor(requests: readonly DispatchRequest[], policy: DispatchPolicy) {
    const n = requests.length;
    this.requests = requests;
    this.col = new Int32Array(n).fill(-1);
    this.penalty = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      const p = policy.weights.unassigned[requests[r].urgency];
      if (p === undefined) throw new Error(`request '${requests[r].id}' has urgency '${String(requests[r].urgency)}'; expected routine, urgent or emergency`);
      this.penalty[r] = p;
    }
    this.reasons = new Array(n).fill(undefined);
    this.cost = new Float64Array(n);
    this.pickupEta = new Float64Array(n);
    this.dropoffEta = new Float64Array(n);
    this.lateness = new Float64Array(n);
  }

  assign(r: number, courier: number, cost: number, score: Pick<RouteScore, 'pickupEta' | 'dropoffEta' | 'lateness'>): void {
    this.col[r] = courier;
    this.cost[r] = cost;
    this.pickupEta[r] = score.pickupEta;
    this.dropoffEta[r] = score.dropoffEta;
    this.lateness[r] = score.lateness;
    this.reasons[r] = undefined;
  }

  toPlan(snapshot: CourierSnapshot, started: number): DispatchPlan {
    const assignments: PlannedAssignment[] = [];
    const unassigned: DispatchPlan['unassigned'] = [];
    let totalCost = 0;
    let totalPickupEta = 0;
    for (let r = 0; r < this.requests.length; r++) {
      const requestId = this.requests[r].id;
      if (this.col[r] < 0) {
        unassigned.push({ requestId, reason: this.reasons[r] ?? 'no-feasible-courier' });
        totalCost += this.penalty[r];
        continue;
      }
      const a = { requestId, courierId: snapshot.id(this.col[r]), pickupEta: this.pickupEta[r], dropoffEta: this.dropoffEta[r], lateness: this.lateness[r], cost: this.cost[r] };
      assignments.push(a);
      totalCost += a.cost;
      totalPickupEta += a.pickupEta;
    }
    return { assignments, unassigned, totalCost, totalPickupEta, solveMs: performance.now() - started };
  }
}
