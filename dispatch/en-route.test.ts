import { describe, expect, it } from 'vitest';
import { capabilityMask } from '../engine/courier-attributes.js';
import { CourierIndex } from '../engine/courier-index.js';
import { DonorIndex } from '../engine/donor-index.js';
import { distanceMeters } from '../engine/geodesy.js';
import { SiteIndex } from '../engine/site-index.js';
import { Prng } from '../fixtures/prng.js';
import { DispatchLoop } from './dispatch-loop.js';
import { DEFAULT_POLICY, type DispatchPolicy, type DispatchRequest, type LatLng } from './dispatch-request.js';
import { bruteForceOptimum } from './matching-oracle.js';
import { DEFAULT_EN_ROUTE, type EnRouteCourier, planEnRoute, remainingTrip } from './en-route.js';

const NOW = Date.UTC(2026, 10, 2, 12);
const MIN = 60_000;
const POLICY: DispatchPolicy = { ...DEFAULT_POLICY, mode: 'batched' };
// half the oracle's cases price cold-chain couriers: plain work pays 120 s to take one (emergencies never pay)
const PRICED: DispatchPolicy = { ...POLICY, scarceCapabilities: { cold_chain: 120 } };
const COLD = capabilityMask(['cold_chain']);

// the oracle's own arithmetic, apart from en-route.ts
const secs = (a: LatLng, b: LatLng, speed: number): number => (distanceMeters(a.lat, a.lng, b.lat, b.lng) * POLICY.circuity) / speed;
const WEIGHT = { routine: 1, urgent: 4, emergency: 100 } as const;

function edgeCost(r: DispatchRequest, k: EnRouteCourier, policy: DispatchPolicy): number | undefined {
  if (k.finishIn > DEFAULT_EN_ROUTE.finishWithinSeconds) return undefined;
  if ((k.caps & capabilityMask(r.capabilities ?? [])) !== capabilityMask(r.capabilities ?? []) || k.capacity < (r.load ?? 1)) return undefined;
  if ((r.exclude ?? []).includes(k.id)) return undefined;
  const drive = secs(k.end, r.pickup, k.speed);
  if (drive > DEFAULT_EN_ROUTE.nearSeconds) return undefined;
  const arrive = Math.max(NOW + (k.finishIn + drive) * 1000, r.readyAt ?? -Infinity);
  const drop = arrive + secs(r.pickup, r.dropoff, k.speed) * 1000;
  const late = Math.max(0, r.deadline === undefined ? 0 : (drop - r.deadline) / 1000, r.pickupBy === undefined ? 0 : (arrive - r.pickupBy) / 1000);
  if (late > 0 && (r.kind !== 'delivery' || r.urgency === 'emergency')) return undefined;
  const price = (k.caps & COLD) !== 0 && !(r.capabilities ?? []).includes('cold_chain') && r.urgency !== 'emergency' ? (policy.scarceCapabilities?.cold_chain ?? 0) : 0;
  const cost = WEIGHT[r.urgency] * ((arrive - NOW) / 1000 + POLICY.weights.lateness * late + price);
  return cost <= POLICY.weights.unassigned[r.urgency] ? cost : undefined;
}

function bruteForce(requests: DispatchRequest[], couriers: EnRouteCourier[], policy: DispatchPolicy): number {
  const table = requests.map((r) => couriers.map((k) => edgeCost(r, k, policy) ?? Infinity));
  return bruteForceOptimum(table, requests.map((r) => POLICY.weights.unassigned[r.urgency]));
}

function randomCase(rng: Prng): { requests: DispatchRequest[]; couriers: EnRouteCourier[] } {
  const at = (): LatLng => ({ lat: 51.5 + rng.range(-0.02, 0.02), lng: -0.12 + rng.range(-0.02, 0.02) });
  const couriers = Array.from({ length: 1 + rng.int(6) }, (_, c): EnRouteCourier => ({
    id: `k${c}`, end: at(), finishIn: rng.range(0, 600), speed: rng.pick([4.5, 8.5]), caps: rng.chance(0.3) ? capabilityMask(['cold_chain']) : 0, capacity: 1 + rng.int(3),
  }));
  const requests = Array.from({ length: 1 + rng.int(6) }, (_, q): DispatchRequest => {
    const r: DispatchRequest = { id: `r${q}`, kind: rng.pick(['delivery', 'delivery', 'rescue', 'blood'] as const), urgency: rng.pick(['routine', 'urgent', 'emergency'] as const), createdAt: NOW, pickup: at(), dropoff: at() };
    if (rng.chance(0.4)) r.readyAt = NOW + rng.int(15 * MIN);
    if (rng.chance(0.5)) r.deadline = NOW + rng.range(5, 40) * MIN;
    if (rng.chance(0.2)) r.capabilities = ['cold_chain'];
    if (rng.chance(0.2)) r.load = 1 + rng.int(3);
    if (rng.chance(0.2)) r.exclude = [`k${rng.int(couriers.length)}`];
    return r;
  });
  return { requests, couriers };
}

describe('en route', () => {
  it('times the rest of a trip: pickups not yet made (waiting for the food), then the dropoffs, nearest first', () => {
    const from = { lat: 51.5, lng: -0.12 };
    const pickup = { lat: 51.5, lng: -0.11 };
    const near = { lat: 51.51, lng: -0.11 };
    const far = { lat: 51.53, lng: -0.11 };
    const trip = remainingTrip(from, [{ at: pickup, readyAt: NOW + 10 * MIN }], [{ at: far }, { at: near }], 5, POLICY, NOW);
    expect(trip.end).toEqual(far);
    expect(trip.finishIn).toBeCloseTo(600 + secs(pickup, near, 5) + secs(near, far, 5), 6);
    expect(remainingTrip(from, [], [], 5, POLICY, NOW)).toEqual({ finishIn: 0, end: from });
  });

  it('matches legs to couriers finishing nearby exactly as cheaply as every partial matching allows, cold-chain couriers priced or not (500 cases)', () => {
    let matched = 0;
    let pricedAway = 0;
    for (let seed = 1; seed <= 500; seed++) {
      const { requests, couriers } = randomCase(new Prng(seed));
      const policy = seed % 2 === 0 ? PRICED : POLICY;
      const plan = planEnRoute(requests, couriers, policy, NOW);
      const penalties = requests.filter((r) => !plan.some((a) => a.requestId === r.id)).reduce((s, r) => s + POLICY.weights.unassigned[r.urgency], 0);
      expect(plan.reduce((s, a) => s + a.cost, 0) + penalties, `seed ${seed}`).toBeCloseTo(bruteForce(requests, couriers, policy), 4);
      expect(new Set(plan.map((a) => a.courierId)).size, `seed ${seed}: a courier twice`).toBe(plan.length);
      for (const a of plan) expect(edgeCost(requests.find((r) => r.id === a.requestId)!, couriers.find((k) => k.id === a.courierId)!, policy), `seed ${seed}`).toBeCloseTo(a.cost, 4);
      matched += plan.length;
      // the price moved plain work off a cold-chain courier it would otherwise have taken
      if (policy === PRICED && JSON.stringify(planEnRoute(requests, couriers, POLICY, NOW).map((a) => a.courierId)) !== JSON.stringify(plan.map((a) => a.courierId))) pricedAway++;
    }
    expect(matched).toBeGreaterThan(300);
    expect(pricedAway).toBeGreaterThan(2);
  });

  it('is off with policy.enRoute false', () => {
    const { requests, couriers } = randomCase(new Prng(3));
    expect(planEnRoute(requests, couriers.map((c) => ({ ...c, finishIn: 0, end: requests[0].pickup })), { ...POLICY, enRoute: false }, NOW)).toEqual([]);
  });

  it('offers a leg nobody free can take to the busy courier about to drop off next door, who keeps its load', () => {
    const first = { kind: 'delivery' as const, id: 'first', urgency: 'routine' as const, createdAt: NOW, requesterId: 'diner', pickup: { lat: 51.5, lng: -0.12 }, dropoff: { lat: 51.505, lng: -0.12 } };
    // one courier carrying `first`; a second order is picked up where the first is dropped, two minutes away
    const world = (policy: DispatchPolicy, capacity = 2) => {
      const couriers = new CourierIndex();
      couriers.upsert('busy', { vehicle: 'car', capabilities: [], capacity, status: 'available' });
      couriers.move('busy', 51.5, -0.12, NOW);
      const loop = new DispatchLoop({ couriers, sites: new SiteIndex(), donors: new DonorIndex(), policy });
      expect(loop.submit(first, NOW).ok).toBe(true);
      const [offer] = loop.tick(NOW);
      expect(loop.accept(offer.id, 'busy', NOW + 1000).ok).toBe(true);
      expect(loop.progress('first', 'busy', 'picked_up', NOW + 2000).ok).toBe(true);
      expect(loop.submit({ ...first, id: 'second', pickup: { lat: 51.5052, lng: -0.12 }, dropoff: { lat: 51.51, lng: -0.12 } }, NOW + 3000).ok).toBe(true);
      return { couriers, loop, offers: loop.tick(NOW + 3000) };
    };
    expect(world({ ...POLICY, mode: 'greedy', enRoute: false }).offers).toEqual([]); // without en route it waits
    // a courier whose load leaves no room is not asked (a driver may pick up before its last drop)
    expect(world({ ...POLICY, mode: 'greedy' }, 1).offers).toEqual([]);

    const { couriers, loop, offers } = world({ ...POLICY, mode: 'greedy' });
    const [enRoute] = offers;
    expect(enRoute).toMatchObject({ requestId: 'second', courierId: 'busy' });
    const details = enRoute.details as { eta: number; enRoute: { finishIn: number } };
    expect(details.enRoute.finishIn).toBeGreaterThan(0);
    expect(details.eta).toBeGreaterThan(details.enRoute.finishIn); // the rest of the trip, then the drive over
    expect(couriers.get('busy')!.status).toBe('busy');
    expect(loop.accept(enRoute.id, 'busy', NOW + 4000).ok).toBe(true);
    expect(loop.lifecycle.courier('busy')!.requestIds).toEqual(['first', 'second']);
    // one leg queued after the trip at most (the courier has a pickup to make): a third order there waits
    expect(loop.submit({ ...first, id: 'third', pickup: { lat: 51.5052, lng: -0.12 }, dropoff: { lat: 51.51, lng: -0.12 } }, NOW + 5000).ok).toBe(true);
    expect(loop.tick(NOW + 5000)).toEqual([]);
    expect(loop.progress('first', 'busy', 'delivered', NOW + 60_000).ok).toBe(true);
    expect(couriers.get('busy')!.status).toBe('busy');
    expect(loop.progress('second', 'busy', 'picked_up', NOW + 70_000).ok).toBe(true);
    expect(loop.cancel('third', NOW + 100_000).ok).toBe(true);
    expect(loop.progress('second', 'busy', 'delivered', NOW + 200_000).ok).toBe(true);
    expect(couriers.get('busy')!.status).toBe('available');
    expect(loop.checkInvariants()).toEqual([]);
  });
});
