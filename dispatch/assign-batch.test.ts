import { describe, expect, it } from 'vitest';
import { COURIER_STATUSES, VEHICLES } from '../engine/courier-attributes.js';
import { CourierIndex } from '../engine/courier-index.js';
import { CourierSnapshot, writeCourierSnapshot } from '../engine/courier-snapshot.js';
import { distanceMeters } from '../engine/geodesy.js';
import { Prng } from '../fixtures/prng.js';
import { bruteForceOptimum } from './matching-oracle.js';
import { planBatch, planEmergency, planExactReference, planGreedyNearest, priorityOrder } from './assign-batch.js';
import { DEFAULT_POLICY, type DispatchPlan, type DispatchPolicy, type DispatchRequest } from './dispatch-request.js';
import { routeCost, scoreRoute } from './route-scoring.js';

const NOW = Date.UTC(2026, 10, 2, 12);
const MIN = 60_000;
// cold-chain couriers priced on other work, so the oracles check the price too (none is priced by default);
// one request per courier: these oracles check the matching, stacking.test.ts checks what is stacked onto it
const BATCHED: DispatchPolicy = { ...DEFAULT_POLICY, mode: 'batched', scarceCapabilities: { cold_chain: 180 }, stacking: false };
const GREEDY: DispatchPolicy = { ...DEFAULT_POLICY, mode: 'greedy', scarceCapabilities: { cold_chain: 180 } };

function randomSnapshot(rng: Prng, n: number, spread = 0.03): CourierSnapshot {
  const index = new CourierIndex();
  for (let i = 0; i < n; i++) {
    const id = `c${i}`;
    // mostly available, so small instances have contention worth optimising
    const status = rng.chance(0.7) ? 'available' : COURIER_STATUSES[rng.int(4)];
    index.upsert(id, { vehicle: VEHICLES[rng.int(3)], capabilities: rng.chance(0.4) ? ['cold_chain'] : [], capacity: 1 + rng.int(3), status });
    index.move(id, 51.5 + rng.range(-spread, spread), -0.12 + rng.range(-spread, spread), NOW - 5000);
  }
  return CourierSnapshot.from(writeCourierSnapshot(index));
}

function randomRequests(rng: Prng, count: number, couriers: number, spread = 0.03): DispatchRequest[] {
  return Array.from({ length: count }, (_, q) => {
    const kind = rng.pick(['delivery', 'delivery', 'rescue', 'blood'] as const);
    const urgency = rng.pick(['routine', 'routine', 'urgent', 'emergency'] as const);
    const pickup = { lat: 51.5 + rng.range(-spread, spread), lng: -0.12 + rng.range(-spread, spread) };
    const req: DispatchRequest = { id: `q${q}`, kind, urgency, createdAt: NOW - rng.int(10 * MIN), pickup, dropoff: { lat: pickup.lat + rng.range(-0.02, 0.02), lng: pickup.lng + rng.range(-0.02, 0.02) } };
    if (rng.chance(0.4)) req.readyAt = NOW + rng.int(8 * MIN);
    if (rng.chance(0.5)) req.deadline = NOW + rng.range(-2, 40) * MIN; // a few already passed
    if (kind === 'rescue' && rng.chance(0.5)) req.pickupBy = NOW + rng.range(3, 20) * MIN;
    if (rng.chance(0.25)) req.capabilities = ['cold_chain'];
    if (rng.chance(0.2)) req.load = 1 + rng.int(3);
    if (rng.chance(0.2)) req.exclude = [`c${rng.int(couriers)}`];
    return req;
  });
}

/** Cost of each (request, courier) pair under the same rules, Infinity when the courier may not serve it. */
function costMatrix(snap: CourierSnapshot, requests: DispatchRequest[], policy: DispatchPolicy): number[][] {
  return requests.map((req) => {
    const row: number[] = [];
    for (let i = 0; i < snap.count; i++) {
      const eligible =
        snap.status(i) === 'available' &&
        !(req.exclude ?? []).includes(snap.id(i)) &&
        distanceMeters(snap.lat(i), snap.lng(i), req.pickup.lat, req.pickup.lng) <= policy.radius;
      row.push(eligible ? routeCost(scoreRoute(snap, i, req, policy, NOW), req, policy) + keptForColdChain(snap, i, req, policy) : Infinity);
    }
    return row;
  });
}

function expectSound(plan: DispatchPlan, snap: CourierSnapshot, requests: DispatchRequest[], policy: DispatchPolicy = BATCHED): void {
  const couriers = plan.assignments.map((a) => a.courierId);
  expect(new Set(couriers).size).toBe(couriers.length);
  expect(plan.assignments.length + plan.unassigned.length).toBe(requests.length);
  for (const a of plan.assignments) {
    const req = requests.find((r) => r.id === a.requestId) as DispatchRequest;
    const i = snap.indexOf(a.courierId);
    expect(snap.status(i)).toBe('available');
    for (const cap of req.capabilities ?? []) expect(snap.capabilities(i)).toContain(cap);
    expect(snap.capacity(i)).toBeGreaterThanOrEqual(req.load ?? 1);
    expect(req.exclude ?? []).not.toContain(a.courierId);
    const score = scoreRoute(snap, i, req, policy, NOW);
    expect(score.feasible).toBe(true);
    expect(a.pickupEta).toBeCloseTo(score.pickupEta, 6);
    expect(a.cost).toBeCloseTo(routeCost(score, req, policy) + keptForColdChain(snap, i, req, policy), 6);
  }
}

describe('planBatch', () => {
  it('finds the brute-force optimum on small random instances, and greedy is never better', () => {
    const rng = new Prng(7);
    const policy: DispatchPolicy = { ...BATCHED, candidates: 8, weights: { lateness: 4, unassigned: { routine: 900, urgent: 3_000, emergency: 1e6 } } };
    let contested = 0;
    for (let t = 0; t < 250; t++) {
      const nc = 1 + rng.int(8);
      const snap = randomSnapshot(rng, nc);
      const requests = randomRequests(rng, 1 + rng.int(6), nc);
      const optimum = bruteForceOptimum(costMatrix(snap, requests, policy), requests.map((r) => policy.weights.unassigned[r.urgency]));
      const batched = planBatch(snap, requests, policy, NOW);
      const greedy = planBatch(snap, requests, { ...policy, mode: 'greedy' }, NOW);
      const exact = planExactReference(snap, requests, policy, NOW);
      expect(batched.totalCost).toBeCloseTo(optimum, 6);
      expect(exact.totalCost).toBeCloseTo(optimum, 6);
      expect(greedy.totalCost).toBeGreaterThanOrEqual(batched.totalCost - 1e-6);
      if (greedy.totalCost > batched.totalCost + 1e-6) contested++;
      for (const plan of [batched, greedy, exact]) {
        const sum = plan.assignments.reduce((s, a) => s + a.cost, 0) + plan.unassigned.reduce((s, u) => s + policy.weights.unassigned[requests.find((r) => r.id === u.requestId)?.urgency ?? 'routine'], 0);
        expect(plan.totalCost).toBeCloseTo(sum, 6);
        expect(plan.totalPickupEta).toBeCloseTo(plan.assignments.reduce((s, a) => s + a.pickupEta, 0), 6);
        expectSound(plan, snap, requests, policy);
      }
    }
    expect(contested).toBeGreaterThan(5); // the instances do separate greedy from optimal
  });

  it('never assigns a courier twice nor an ineligible courier, in every policy', () => {
    const rng = new Prng(11);
    const snap = randomSnapshot(rng, 400, 0.05);
    const requests = randomRequests(rng, 150, 400, 0.05);
    const plans = [planBatch(snap, requests, BATCHED, NOW), planBatch(snap, requests, GREEDY, NOW), planGreedyNearest(snap, requests, BATCHED, NOW), planExactReference(snap, requests, BATCHED, NOW)];
    for (const plan of plans) {
      expectSound(plan, snap, requests);
      expect(plan.assignments.length).toBeGreaterThan(50);
      expect(plan.solveMs).toBeGreaterThanOrEqual(0);
    }
    // the exact reference over the full graph is a lower bound for the truncated candidate graph
    expect(plans[3].totalCost).toBeLessThanOrEqual(plans[0].totalCost + 1e-6);
  });

  it('matches the exact reference when candidates cover every courier', () => {
    const rng = new Prng(13);
    const snap = randomSnapshot(rng, 60);
    const requests = randomRequests(rng, 40, 60);
    const batched = planBatch(snap, requests, { ...BATCHED, candidates: 60 }, NOW);
    const exact = planExactReference(snap, requests, BATCHED, NOW);
    expect(batched.totalCost).toBeCloseTo(exact.totalCost, 6);
  });

  it('gives the contested courier to the emergency in greedy order, and says the routine request was outbid', () => {
    const index = new CourierIndex();
    index.upsert('only', { vehicle: 'car', capabilities: ['cold_chain'], capacity: 2, status: 'available' });
    index.move('only', 51.5, -0.12, NOW - 1000);
    const snap = CourierSnapshot.from(writeCourierSnapshot(index));
    const base = { kind: 'delivery' as const, pickup: { lat: 51.505, lng: -0.12 }, dropoff: { lat: 51.51, lng: -0.12 } };
    const requests: DispatchRequest[] = [
      { ...base, id: 'routine-old', urgency: 'routine', createdAt: NOW - 10 * MIN },
      { ...base, id: 'emergency-new', urgency: 'emergency', createdAt: NOW },
    ];
    expect(priorityOrder(requests)).toEqual([1, 0]);
    for (const policy of [GREEDY, BATCHED]) {
      const plan = planBatch(snap, requests, policy, NOW);
      expect(plan.assignments.map((a) => [a.requestId, a.courierId])).toEqual([['emergency-new', 'only']]);
      expect(plan.unassigned).toEqual([{ requestId: 'routine-old', reason: 'outbid' }]);
    }
    // arrival order: the naive baseline hands the courier to whoever asked first
    expect(planGreedyNearest(snap, requests, BATCHED, NOW).assignments.map((a) => a.requestId)).toEqual(['routine-old']);
  });

  it('dispatches an emergency at once to its cheapest feasible courier', () => {
    const rng = new Prng(17);
    const snap = randomSnapshot(rng, 200);
    const [req] = randomRequests(rng, 1, 200);
    const emergency: DispatchRequest = { ...req, urgency: 'emergency', kind: 'blood', deadline: NOW + 60 * MIN, capabilities: ['cold_chain'], exclude: undefined, pickupBy: undefined };
    const plan = planEmergency(snap, emergency, DEFAULT_POLICY, NOW);
    const costs = costMatrix(snap, [emergency], DEFAULT_POLICY)[0];
    const best = Math.min(...costs);
    expect(plan.assignments).toHaveLength(1);
    expect(plan.assignments[0].cost).toBeCloseTo(best, 9);
    expect(plan.assignments[0].courierId).toBe(snap.id(costs.indexOf(best)));
  });

  it('explains unassigned requests: deadline passed, nobody in radius, nobody feasible', () => {
    const index = new CourierIndex();
    index.upsert('plain', { vehicle: 'bike', capabilities: [], capacity: 1, status: 'available' });
    index.move('plain', 51.5, -0.12, NOW - 1000);
    const snap = CourierSnapshot.from(writeCourierSnapshot(index));
    const near = { pickup: { lat: 51.505, lng: -0.12 }, dropoff: { lat: 51.51, lng: -0.12 }, createdAt: NOW };
    const requests: DispatchRequest[] = [
      { ...near, id: 'passed', kind: 'rescue', urgency: 'routine', deadline: NOW - 1 },
      { ...near, id: 'paris', kind: 'delivery', urgency: 'routine', pickup: { lat: 48.85, lng: 2.35 }, dropoff: { lat: 48.86, lng: 2.35 } },
      { ...near, id: 'too-tight', kind: 'blood', urgency: 'urgent', deadline: NOW + 60_000 },
    ];
    for (const plan of [planBatch(snap, requests, BATCHED, NOW), planBatch(snap, requests, GREEDY, NOW), planGreedyNearest(snap, requests, BATCHED, NOW)]) {
      expect(plan.assignments).toEqual([]);
      expect(plan.unassigned).toEqual([
        { requestId: 'passed', reason: 'deadline-passed' },
        { requestId: 'paris', reason: 'no-courier-in-radius' },
        { requestId: 'too-tight', reason: 'no-feasible-courier' },
      ]);
    }
  });
});

describe('a snapshot of the couriers near the batch (what the dispatch loop takes)', () => {
  it('plans exactly as the whole fleet would, in every mode, while holding only couriers within reach', () => {
    const rng = new Prng(77);
    // three clusters 20–40 km apart, so a tight radius leaves whole clusters out and a wide one keeps them
    const centres = [
      { lat: 51.5, lng: -0.12 },
      { lat: 51.68, lng: -0.12 },
      { lat: 51.5, lng: 0.45 },
    ];
    for (let round = 0; round < 12; round++) {
      const index = new CourierIndex();
      for (let i = 0; i < 900; i++) {
        const c = centres[i % 3];
        const status = rng.chance(0.7) ? 'available' : COURIER_STATUSES[rng.int(4)];
        index.upsert(`c${i}`, { vehicle: VEHICLES[rng.int(3)], capabilities: rng.chance(0.4) ? ['cold_chain'] : [], capacity: 1 + rng.int(3), status });
        index.move(`c${i}`, c.lat + rng.range(-0.05, 0.05), c.lng + rng.range(-0.08, 0.08), NOW - 5000);
      }
      const policy = { ...DEFAULT_POLICY, radius: rng.pick([3_000, 8_000, 15_000]) };
      const home = centres[round % 3];
      const requests = randomRequests(rng, 1 + rng.int(25), 900).map((r) => ({ ...r, pickup: { lat: home.lat + rng.range(-0.06, 0.06), lng: home.lng + rng.range(-0.1, 0.1) } }));
      const whole = CourierSnapshot.from(writeCourierSnapshot(index, { filter: { status: 'available' } }));
      const near = CourierSnapshot.from(writeCourierSnapshot(index, { filter: { status: 'available' }, near: { points: requests.map((r) => r.pickup), radius: policy.radius } }));
      expect(near.count).toBeLessThan(whole.count);
      // every courier left out is beyond the radius of every pickup
      const kept = new Set(Array.from({ length: near.count }, (_, i) => near.id(i)));
      for (let i = 0; i < whole.count; i++) {
        if (kept.has(whole.id(i))) continue;
        for (const r of requests) expect(distanceMeters(r.pickup.lat, r.pickup.lng, whole.lat(i), whole.lng(i))).toBeGreaterThan(policy.radius);
      }
      const named = (plan: DispatchPlan) => ({ assignments: plan.assignments.map(({ requestId, courierId, pickupEta, dropoffEta, cost }) => ({ requestId, courierId, pickupEta, dropoffEta, cost })), unassigned: plan.unassigned });
      for (const mode of ['greedy', 'batched'] as const) {
        const p = { ...policy, mode };
        expect(named(planBatch(near, requests, p, NOW))).toEqual(named(planBatch(whole, requests, p, NOW)));
      }
      expect(named(planGreedyNearest(near, requests, policy, NOW))).toEqual(named(planGreedyNearest(whole, requests, policy, NOW)));
    }
  });
});

/** PRODUCT §2: a cold-chain courier on routine or urgent work that does not need it costs that work its price (× its urgency weight). */
function keptForColdChain(snap: CourierSnapshot, i: number, req: DispatchRequest, policy: DispatchPolicy): number {
  const price = policy.scarceCapabilities?.cold_chain ?? 0;
  if (req.urgency === 'emergency' || !snap.capabilities(i).includes('cold_chain') || (req.capabilities ?? []).includes('cold_chain')) return 0;
  return (req.urgency === 'urgent' ? 4 : 1) * price;
}
