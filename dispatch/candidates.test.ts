import { describe, expect, it } from 'vitest';
import { CellSpeeds } from '../engine/cell-speeds.js';
import { COURIER_STATUSES, VEHICLES } from '../engine/courier-attributes.js';
import { CourierIndex } from '../engine/courier-index.js';
import { CourierSnapshot, writeCourierSnapshot } from '../engine/courier-snapshot.js';
import { distanceMeters } from '../engine/geodesy.js';
import { Prng } from '../fixtures/prng.js';
import { candidatesFor } from './candidates.js';
import { DEFAULT_POLICY, type DispatchPolicy, type DispatchRequest } from './dispatch-request.js';
import { routeCost, scoreRoute } from './route-scoring.js';

const NOW = Date.UTC(2026, 10, 2, 12);
const MIN = 60_000;

function randomSnapshot(rng: Prng, n: number): CourierSnapshot {
  const speeds = new CellSpeeds();
  const index = new CourierIndex({ speeds });
  for (let i = 0; i < n; i++) {
    const id = `c${i}`;
    index.upsert(id, { vehicle: VEHICLES[rng.int(3)], capabilities: rng.chance(0.3) ? ['cold_chain'] : [], capacity: 1 + rng.int(3), status: COURIER_STATUSES[rng.int(4)] });
    const lat = 51.5 + rng.range(-0.04, 0.04);
    const lng = -0.12 + rng.range(-0.06, 0.06);
    index.move(id, lat, lng, NOW - 20_000);
    // a third of couriers leave a ping 10 s later, so their neighbourhoods learn a speed
    if (rng.chance(0.3)) index.move(id, lat + rng.range(0, 0.0008), lng, NOW - 10_000);
  }
  return CourierSnapshot.from(writeCourierSnapshot(index, { speeds }));
}

function randomRequest(rng: Prng, id: string, n: number): DispatchRequest {
  const kind = rng.pick(['delivery', 'rescue', 'blood'] as const);
  const urgency = rng.pick(['routine', 'urgent', 'emergency'] as const);
  const pickup = { lat: 51.5 + rng.range(-0.04, 0.04), lng: -0.12 + rng.range(-0.06, 0.06) };
  const req: DispatchRequest = { id, kind, urgency, createdAt: NOW - rng.int(10 * MIN), pickup, dropoff: { lat: pickup.lat + rng.range(-0.02, 0.02), lng: pickup.lng + rng.range(-0.02, 0.02) } };
  if (rng.chance(0.5)) req.readyAt = NOW + rng.int(15 * MIN);
  if (rng.chance(0.6)) req.deadline = NOW + rng.range(5, 40) * MIN;
  if (kind === 'rescue' && rng.chance(0.5)) req.pickupBy = NOW + rng.range(3, 20) * MIN;
  if (rng.chance(0.3)) req.capabilities = ['cold_chain'];
  if (rng.chance(0.3)) req.load = 1 + rng.int(3);
  if (rng.chance(0.3)) req.exclude = Array.from({ length: 1 + rng.int(20) }, () => `c${rng.int(n)}`);
  if (rng.chance(0.2)) req.legSpeed = rng.range(2, 12);
  return req;
}

interface Brute {
  index: number;
  distance: number;
  cost: number;
}

// the same rules, written out one courier at a time: available, capable, room for the load, not excluded, in radius
function eligibleByBruteForce(snap: CourierSnapshot, req: DispatchRequest, policy: DispatchPolicy): Brute[] {
  const out: Brute[] = [];
  for (let i = 0; i < snap.count; i++) {
    if (snap.status(i) !== 'available') continue;
    if (!(req.capabilities ?? []).every((c) => snap.capabilities(i).includes(c))) continue;
    if (snap.capacity(i) < (req.load ?? 1)) continue;
    if ((req.exclude ?? []).includes(snap.id(i))) continue;
    const distance = distanceMeters(snap.lat(i), snap.lng(i), req.pickup.lat, req.pickup.lng);
    if (distance > policy.radius) continue;
    out.push({ index: i, distance, cost: routeCost(scoreRoute(snap, i, req, policy, NOW), req, policy) + keptForColdChain(snap, i, req, policy) });
  }
  return out;
}

const byCost = (a: Brute, b: Brute) => a.cost - b.cost || a.distance - b.distance || a.index - b.index;
const byDistance = (a: Brute, b: Brute) => a.distance - b.distance || a.index - b.index;

describe('candidatesFor', () => {
  it('returns every feasible courier, cheapest first, when candidates cover the population', () => {
    const rng = new Prng(101);
    const snap = randomSnapshot(rng, 300);
    const policy = { ...DEFAULT_POLICY, candidates: 300, radius: 4_000 };
    for (let q = 0; q < 150; q++) {
      const req = randomRequest(rng, `q${q}`, 300);
      const expected = eligibleByBruteForce(snap, req, policy).filter((b) => b.cost < Infinity).sort(byCost);
      const got = candidatesFor(snap, req, policy, NOW);
      expect(got.map((c) => c.index)).toEqual(expected.map((b) => b.index));
      got.forEach((c, k) => {
        expect(c.cost).toBeCloseTo(expected[k].cost, 9);
        expect(c.distance).toBeCloseTo(expected[k].distance, 6);
        expect(c.score.feasible).toBe(true);
        const direct = scoreRoute(snap, c.index, req, policy, NOW);
        expect(c.score.pickupEta).toBeCloseTo(direct.pickupEta, 9);
        expect(c.score.dropoffEta).toBeCloseTo(direct.dropoffEta, 9);
        expect(c.score.lateness).toBeCloseTo(direct.lateness, 9);
      });
    }
  });

  it('keeps the k cheapest feasible couriers among the 2k nearest eligible ones', () => {
    const rng = new Prng(202);
    const snap = randomSnapshot(rng, 400);
    const policy = { ...DEFAULT_POLICY, candidates: 6 };
    let nonEmpty = 0;
    for (let q = 0; q < 200; q++) {
      const req = randomRequest(rng, `q${q}`, 400);
      const nearest = eligibleByBruteForce(snap, req, policy).sort(byDistance).slice(0, 12);
      const expected = nearest.filter((b) => b.cost < Infinity).sort(byCost).slice(0, 6);
      const got = candidatesFor(snap, req, policy, NOW);
      expect(got.map((c) => c.index)).toEqual(expected.map((b) => b.index));
      if (got.length > 0) nonEmpty++;
    }
    expect(nonEmpty).toBeGreaterThan(100);
  });

  it('never offers an offline, offered, busy, excluded, incapable or too small courier', () => {
    const rng = new Prng(303);
    const snap = randomSnapshot(rng, 300);
    for (let q = 0; q < 100; q++) {
      const req = randomRequest(rng, `q${q}`, 300);
      for (const c of candidatesFor(snap, req, DEFAULT_POLICY, NOW)) {
        expect(snap.status(c.index)).toBe('available');
        expect(snap.capacity(c.index)).toBeGreaterThanOrEqual(req.load ?? 1);
        for (const cap of req.capabilities ?? []) expect(snap.capabilities(c.index)).toContain(cap);
        expect(req.exclude ?? []).not.toContain(snap.id(c.index));
      }
    }
  });

  it('returns nothing when no courier is in radius', () => {
    const snap = randomSnapshot(new Prng(404), 50);
    const far: DispatchRequest = { id: 'far', kind: 'delivery', urgency: 'routine', createdAt: NOW, pickup: { lat: 48.85, lng: 2.35 }, dropoff: { lat: 48.86, lng: 2.35 } };
    expect(candidatesFor(snap, far, DEFAULT_POLICY, NOW)).toEqual([]);
  });
});

/** PRODUCT §2: a cold-chain courier on routine or urgent work that does not need it costs that work its price (× its urgency weight). */
function keptForColdChain(snap: CourierSnapshot, i: number, req: DispatchRequest, policy: DispatchPolicy): number {
  const price = policy.scarceCapabilities?.cold_chain ?? 0;
  if (req.urgency === 'emergency' || !snap.capabilities(i).includes('cold_chain') || (req.capabilities ?? []).includes('cold_chain')) return 0;
  return (req.urgency === 'urgent' ? 4 : 1) * price;
}
