import { describe, expect, it } from 'vitest';
import { CourierIndex } from '../engine/courier-index.js';
import { CourierSnapshot, writeCourierSnapshot } from '../engine/courier-snapshot.js';
import { distanceMeters } from '../engine/geodesy.js';
import { Prng } from '../fixtures/prng.js';
import { planBatch } from './assign-batch.js';
import { bruteForceOptimum } from './matching-oracle.js';
import { DEFAULT_POLICY, type DispatchPlan, type DispatchPolicy, type DispatchRequest, type LatLng } from './dispatch-request.js';
import { URGENCY_WEIGHT } from './route-scoring.js';
import { DEFAULT_STACKING, stackPlan, timeStack } from './stacking.js';

const NOW = Date.UTC(2026, 10, 2, 12);
const MIN = 60_000;
const PAIRS: DispatchPolicy = { ...DEFAULT_POLICY, mode: 'batched', stacking: { ...DEFAULT_STACKING, maxStops: 2 } };
const UNSTACKED: DispatchPolicy = { ...DEFAULT_POLICY, mode: 'batched', stacking: false };
// half the oracle's worlds price cold-chain couriers: a plain delivery pays 120 s to ride on one
const PRICE = { cold_chain: 120 };

/** Restaurants a few hundred metres apart, so pickups cluster as at a food court. */
const RESTAURANTS: LatLng[] = [{ lat: 51.5, lng: -0.12 }, { lat: 51.503, lng: -0.118 }, { lat: 51.51, lng: -0.1 }];

interface World {
  snapshot: CourierSnapshot;
  requests: DispatchRequest[];
}

/** ≤ 8 couriers and more deliveries than couriers, pickups at a few restaurants, dropoffs scattered. */
function randomWorld(rng: Prng): World {
  const index = new CourierIndex();
  const couriers = 2 + rng.int(7);
  for (let i = 0; i < couriers; i++) {
    index.upsert(`c${i}`, { vehicle: rng.pick(['bike', 'car'] as const), capabilities: rng.chance(0.3) ? ['cold_chain'] : [], capacity: 1 + rng.int(3), status: 'available' });
    index.move(`c${i}`, 51.5 + rng.range(-0.02, 0.02), -0.12 + rng.range(-0.02, 0.02), NOW - 1000);
  }
  const requests = Array.from({ length: couriers + 1 + rng.int(5) }, (_, q): DispatchRequest => {
    const at = rng.pick(RESTAURANTS);
    const pickup = { lat: at.lat + rng.range(-0.001, 0.001), lng: at.lng + rng.range(-0.001, 0.001) };
    // dropoffs mostly one way from the restaurant, so some stacks pay and some do not
    const dropoff = { lat: pickup.lat + rng.range(0.005, 0.03), lng: pickup.lng + rng.range(-0.01, 0.01) };
    const r: DispatchRequest = { id: `q${q}`, kind: 'delivery', urgency: rng.chance(0.2) ? 'urgent' : 'routine', createdAt: NOW - rng.int(5 * MIN), pickup, dropoff };
    if (rng.chance(0.6)) r.readyAt = NOW + rng.int(10 * MIN);
    if (rng.chance(0.7)) r.deadline = NOW + rng.range(15, 60) * MIN;
    if (rng.chance(0.1)) r.capabilities = ['cold_chain'];
    if (rng.chance(0.1)) r.exclude = [`c${rng.int(couriers)}`];
    if (rng.chance(0.08)) r.kind = 'rescue'; // never stacked
    if (rng.chance(0.05)) r.urgency = 'emergency'; // never stacked
    return r;
  });
  return { snapshot: CourierSnapshot.from(writeCourierSnapshot(index)), requests };
}

// ---- the oracle's own arithmetic: written apart from stacking.ts, so a shared mistake cannot hide ----

const driveS = (from: LatLng, to: LatLng, speed: number): number => (distanceMeters(from.lat, from.lng, to.lat, to.lng) * PAIRS.circuity) / speed;

interface Timed {
  dropAt: number[];
  late: number[];
  end: number;
}

/** Every stop order of a pair (or a single) from the courier: pickups a→b, then dropoffs in either order. */
function orders(n: number): [number[], number[]][] {
  if (n === 1) return [[[0], [0]]];
  return [[[0, 1], [0, 1]], [[0, 1], [1, 0]], [[1, 0], [0, 1]], [[1, 0], [1, 0]]];
}

function drive(courier: { at: LatLng; speed: number }, members: DispatchRequest[], pickups: number[], drops: number[]): Timed {
  let t = NOW;
  let at = courier.at;
  const late = members.map(() => 0);
  const dropAt = members.map(() => 0);
  for (const m of pickups) {
    t += driveS(at, members[m].pickup, courier.speed) * 1000;
    t = Math.max(t, members[m].readyAt ?? t);
    at = members[m].pickup;
  }
  for (const m of drops) {
    t += driveS(at, members[m].dropoff, courier.speed) * 1000;
    dropAt[m] = t;
    late[m] = members[m].deadline === undefined ? 0 : Math.max(0, (t - members[m].deadline!) / 1000);
    at = members[m].dropoff;
  }
  return { dropAt, late, end: t };
}

const weighted = (members: DispatchRequest[], d: Timed): number =>
  members.reduce((sum, m, k) => sum + URGENCY_WEIGHT[m.urgency] * ((d.dropAt[k] - NOW) / 1000 + PAIRS.weights.lateness * d.late[k]), 0);

/**
 * What adding leftover `r` to host `h` costs (the stacking rule of PRODUCT §2 as the policy states it), or undefined
 * when the rules forbid it: both stackable, room, capabilities, not declined, pickups within the gap, nobody later
 * than alone, the route growing by at most detourShare of r's own drive, and worth less than leaving r unmatched.
 */
function pairCost(w: World, courierId: string, h: DispatchRequest, r: DispatchRequest, priced: boolean): number | undefined {
  const stack = PAIRS.stacking as { pickupGapSeconds: number; detourShare: number };
  const i = w.snapshot.indexOf(courierId);
  const speed = PAIRS.vehicleSpeed[w.snapshot.vehicle(i)];
  const courier = { at: { lat: w.snapshot.lat(i), lng: w.snapshot.lng(i) }, speed };
  if ([h, r].some((x) => x.kind !== 'delivery' || x.urgency === 'emergency')) return undefined;
  if (w.snapshot.capacity(i) < (h.load ?? 1) + (r.load ?? 1)) return undefined;
  if ((r.capabilities ?? []).some((c) => !w.snapshot.capabilities(i).includes(c))) return undefined;
  if ((r.exclude ?? []).includes(courierId)) return undefined;
  if (driveS(h.pickup, r.pickup, speed) > stack.pickupGapSeconds) return undefined;
  const aloneH = drive(courier, [h], [0], [0]);
  const aloneR = drive(courier, [r], [0], [0]);
  let best: number | undefined;
  let bestEnd = 0;
  for (const [p, d] of orders(2)) {
    const t = drive(courier, [h, r], p, d);
    if (t.late[0] > aloneH.late[0] + 1e-6 || t.late[1] > aloneR.late[0] + 1e-6) continue;
    const cost = weighted([h, r], t);
    if (best === undefined || cost < best - 1e-9) [best, bestEnd] = [cost, t.end];
  }
  if (best === undefined) return undefined;
  const direct = driveS(r.pickup, r.dropoff, speed);
  if ((bestEnd - aloneH.end) / 1000 > stack.detourShare * direct + 1e-6) return undefined;
  const price = priced && w.snapshot.capabilities(i).includes('cold_chain') && !(r.capabilities ?? []).includes('cold_chain') ? PRICE.cold_chain : 0;
  const delta = best - weighted([h], aloneH) - URGENCY_WEIGHT[r.urgency] * (direct - price);
  return delta <= PAIRS.weights.unassigned[r.urgency] ? Math.max(0, delta) : undefined;
}

/** The cheapest way to put leftovers on hosts, each host taking at most one: every partial matching enumerated. */
function bruteForce(w: World, hosts: { courierId: string; request: DispatchRequest }[], leftovers: DispatchRequest[], priced: boolean): number {
  const table = leftovers.map((r) => hosts.map((h) => pairCost(w, h.courierId, h.request, r, priced) ?? Infinity));
  return bruteForceOptimum(table, leftovers.map((r) => PAIRS.weights.unassigned[r.urgency]));
}

describe('stacking', () => {
  it('times a stack stop by stop: drive, wait for the food, drive on', () => {
    const a: DispatchRequest = { id: 'a', kind: 'delivery', urgency: 'routine', createdAt: NOW, pickup: { lat: 51.5, lng: -0.12 }, dropoff: { lat: 51.51, lng: -0.12 }, readyAt: NOW + 10 * MIN };
    const b: DispatchRequest = { ...a, id: 'b', readyAt: undefined, dropoff: { lat: 51.52, lng: -0.12 }, deadline: NOW };
    const courier = { lat: 51.5, lng: -0.12, speedToFirst: 5, vehicleSpeed: 5 };
    const route = timeStack(courier, [a, b], [0, 1], [0, 1], PAIRS, NOW);
    const leg = (distanceMeters(51.5, -0.12, 51.51, -0.12) * PAIRS.circuity) / 5;
    expect(route.pickupEta).toEqual([600, 600]); // waits at the restaurant for a; b is picked up at the same door
    expect(route.dropoffEta[0]).toBeCloseTo(600 + leg, 6);
    expect(route.dropoffEta[1]).toBeCloseTo(600 + 2 * leg, 3);
    expect(route.lateness[1]).toBeCloseTo(600 + 2 * leg, 3); // b's deadline was now
  });

  it('adds leftovers to couriers exactly as cheaply as every partial matching of pairs allows, cold-chain couriers priced or not (≤ 8 couriers, 400 worlds)', () => {
    let stackedWorlds = 0;
    let stacked = 0;
    let pricedAway = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const w = randomWorld(new Prng(seed));
      const priced = seed % 2 === 0;
      const base = planBatch(w.snapshot, w.requests, priced ? { ...UNSTACKED, scarceCapabilities: PRICE } : UNSTACKED, NOW);
      const plan = stackPlan(base, w.snapshot, w.requests, priced ? { ...PAIRS, scarceCapabilities: PRICE } : PAIRS, NOW);
      // the price moved a leftover off a cold-chain courier it would otherwise have ridden with
      const pairs = (p: DispatchPlan): string => JSON.stringify(p.assignments.map((a) => [a.requestId, a.courierId]).sort());
      if (priced && pairs(stackPlan(base, w.snapshot, w.requests, PAIRS, NOW)) !== pairs(plan)) pricedAway++;
      const byId = new Map(w.requests.map((r) => [r.id, r]));
      const hosts = base.assignments.map((a) => ({ courierId: a.courierId, request: byId.get(a.requestId)! }));
      const leftovers = base.unassigned.filter((u) => u.reason === 'outbid' || u.reason === 'no-feasible-courier').map((u) => byId.get(u.requestId)!);
      const optimum = bruteForce(w, hosts, leftovers, priced);
      const otherPenalties = base.unassigned.filter((u) => !leftovers.some((l) => l.id === u.requestId)).reduce((s, u) => s + PAIRS.weights.unassigned[byId.get(u.requestId)!.urgency], 0);
      const soloCost = base.assignments.reduce((s, a) => s + a.cost, 0);
      expect(plan.totalCost - soloCost - otherPenalties, `seed ${seed}`).toBeCloseTo(optimum, 3);
      checkStacks(w, plan, base, `seed ${seed}`);
      const added = plan.assignments.length - base.assignments.length;
      stacked += added;
      if (added > 0) stackedWorlds++;
    }
    // the worlds are contended enough that stacking happens often, and sparing enough that it is not automatic
    expect(stackedWorlds).toBeGreaterThan(80);
    expect(stacked).toBeGreaterThan(120);
    expect(pricedAway).toBeGreaterThan(0);
  });

  it('leaves a plan alone when stacking is off, nothing is left over, or no courier has room', () => {
    const w = randomWorld(new Prng(7));
    const base = planBatch(w.snapshot, w.requests, UNSTACKED, NOW);
    expect(stackPlan(base, w.snapshot, w.requests, UNSTACKED, NOW)).toBe(base);
    const one = { ...base, unassigned: [] };
    expect(stackPlan(one, w.snapshot, w.requests, PAIRS, NOW)).toBe(one);
    const index = new CourierIndex();
    index.upsert('solo', { vehicle: 'bike', capabilities: [], capacity: 1, status: 'available' });
    index.move('solo', 51.5, -0.12, NOW);
    const snapshot = CourierSnapshot.from(writeCourierSnapshot(index));
    const same = (id: string): DispatchRequest => ({ id, kind: 'delivery', urgency: 'routine', createdAt: NOW, pickup: RESTAURANTS[0], dropoff: { lat: 51.51, lng: -0.12 } });
    const plan = planBatch(snapshot, [same('x'), same('y')], PAIRS, NOW);
    expect(plan.assignments.map((a) => a.requestId)).toHaveLength(1); // capacity 1: no stack
  });

  it('stacks two orders from one restaurant to one street on one courier, in one stop order', () => {
    const index = new CourierIndex();
    index.upsert('car', { vehicle: 'car', capabilities: [], capacity: 4, status: 'available' });
    index.move('car', 51.49, -0.12, NOW);
    const snapshot = CourierSnapshot.from(writeCourierSnapshot(index));
    const order = (id: string, lat: number): DispatchRequest => ({ id, kind: 'delivery', urgency: 'routine', createdAt: NOW, pickup: RESTAURANTS[0], dropoff: { lat, lng: -0.12 }, deadline: NOW + 60 * MIN });
    const plan = planBatch(snapshot, [order('near', 51.52), order('far', 51.53)], { ...DEFAULT_POLICY, mode: 'batched' }, NOW);
    expect(plan.assignments.map((a) => [a.requestId, a.courierId]).sort()).toEqual([['far', 'car'], ['near', 'car']]);
    const near = plan.assignments.find((a) => a.requestId === 'near')!;
    const far = plan.assignments.find((a) => a.requestId === 'far')!;
    expect(near.pickupEta).toBeCloseTo(far.pickupEta, 6);
    expect(near.dropoffEta).toBeLessThan(far.dropoffEta);
    expect(plan.unassigned).toEqual([]);
  });
});

/** Every stack in the plan: one courier, members stackable, within its capacity, and no member later than alone. */
function checkStacks(w: World, plan: DispatchPlan, base: DispatchPlan, label: string): void {
  const byCourier = new Map<string, string[]>();
  for (const a of plan.assignments) byCourier.set(a.courierId, [...(byCourier.get(a.courierId) ?? []), a.requestId]);
  const byId = new Map(w.requests.map((r) => [r.id, r]));
  for (const [courierId, ids] of byCourier) {
    if (ids.length === 1) continue;
    expect(ids.length, label).toBe(2);
    const members = ids.map((id) => byId.get(id)!);
    expect(members.every((m) => m.kind === 'delivery' && m.urgency !== 'emergency'), label).toBe(true);
    expect(w.snapshot.capacity(w.snapshot.indexOf(courierId)), label).toBeGreaterThanOrEqual(members.reduce((s, m) => s + (m.load ?? 1), 0));
    expect(base.assignments.some((a) => a.courierId === courierId && ids.includes(a.requestId)), label).toBe(true);
  }
}
