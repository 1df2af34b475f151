import { cellToParent, latLngToCell } from 'h3-js';
import { describe, expect, it } from 'vitest';
import { CellSpeeds } from '../engine/cell-speeds.js';
import { type Capability, type Vehicle, capabilityMask } from '../engine/courier-attributes.js';
import { CourierIndex } from '../engine/courier-index.js';
import { CourierSnapshot, writeCourierSnapshot } from '../engine/courier-snapshot.js';
import { EARTH_RADIUS_M } from '../engine/geodesy.js';
import { DEFAULT_POLICY, type DispatchRequest } from './dispatch-request.js';
import { routeCost, scoreRoute } from './route-scoring.js';

const NOW = 1_000_000;
// along a meridian the great-circle distance is exactly Δφ · R, so 0.01° of latitude is:
const STEP = ((0.01 * Math.PI) / 180) * EARTH_RADIUS_M; // 1111.9508 m
const BIKE = DEFAULT_POLICY.vehicleSpeed.bike; // 4.5 m/s
const C = DEFAULT_POLICY.circuity; // 1.35

interface TestCourier {
  id: string;
  lat: number;
  lng: number;
  vehicle?: Vehicle;
  capabilities?: Capability[];
  capacity?: number;
}

function snapshotOf(couriers: TestCourier[], speeds?: CellSpeeds): CourierSnapshot {
  const index = new CourierIndex({ speeds });
  for (const c of couriers) {
    index.upsert(c.id, { vehicle: c.vehicle ?? 'bike', capabilities: c.capabilities ?? [], capacity: c.capacity ?? 1, status: 'available' });
    index.move(c.id, c.lat, c.lng, NOW - 1000);
  }
  return CourierSnapshot.from(writeCourierSnapshot(index, { speeds }));
}

// courier at 51.50, pickup 0.01° north, dropoff another 0.01° north: one STEP per leg
function request(extra: Partial<DispatchRequest> = {}): DispatchRequest {
  return { id: 'q1', kind: 'delivery', urgency: 'routine', createdAt: NOW, pickup: { lat: 51.51, lng: -0.1 }, dropoff: { lat: 51.52, lng: -0.1 }, ...extra };
}

describe('route scoring', () => {
  const snap = snapshotOf([{ id: 'bike', lat: 51.5, lng: -0.1 }]);
  const i = snap.indexOf('bike');

  it('computes both ETAs as great-circle metres times circuity over the vehicle speed', () => {
    const score = scoreRoute(snap, i, request(), DEFAULT_POLICY, NOW);
    expect(score.travel).toBeCloseTo((STEP * C) / BIKE, 6); // 333.585 s
    expect(score.pickupEta).toBeCloseTo(333.5852, 3);
    expect(score.dropoffEta).toBeCloseTo(667.1705, 3);
    expect(score).toMatchObject({ lateness: 0, feasible: true });
    expect(routeCost(score, request(), DEFAULT_POLICY)).toBeCloseTo(333.5852 * 1.1, 3); // pickupEta + 0.1 × travel
  });

  it('waits at the pickup until readyAt and counts the wait in pickupEta but not in travel', () => {
    const score = scoreRoute(snap, i, request({ readyAt: NOW + 600_000 }), DEFAULT_POLICY, NOW);
    expect(score.pickupEta).toBe(600);
    expect(score.travel).toBeCloseTo(333.5852, 3);
    expect(score.dropoffEta).toBeCloseTo(600 + 333.5852, 3);
  });

  it('does not wait when the food is ready before the courier arrives', () => {
    const score = scoreRoute(snap, i, request({ readyAt: NOW + 100_000 }), DEFAULT_POLICY, NOW);
    expect(score.pickupEta).toBeCloseTo(333.5852, 3);
  });

  it('prices lateness on a routine delivery deadline yet keeps the route feasible', () => {
    const req = request({ deadline: NOW + 500_000 });
    const score = scoreRoute(snap, i, req, DEFAULT_POLICY, NOW);
    expect(score.feasible).toBe(true);
    expect(score.lateness).toBeCloseTo(167.1705, 3);
    // 333.585 + 4 × 167.170 + 0.1 × 333.585
    expect(routeCost(score, req, DEFAULT_POLICY)).toBeCloseTo(333.5852 + 4 * 167.1705 + 33.35852, 2);
  });

  it('makes blood, rescue and emergency time limits hard', () => {
    const blood = scoreRoute(snap, i, request({ kind: 'blood', deadline: NOW + 500_000 }), DEFAULT_POLICY, NOW);
    expect(blood).toMatchObject({ feasible: false, reason: 'deadline-missed' });
    expect(blood.lateness).toBeCloseTo(167.1705, 3);
    expect(routeCost(blood, request({ kind: 'blood' }), DEFAULT_POLICY)).toBe(Infinity);
    const emergency = scoreRoute(snap, i, request({ urgency: 'emergency', deadline: NOW + 500_000 }), DEFAULT_POLICY, NOW);
    expect(emergency).toMatchObject({ feasible: false, reason: 'deadline-missed' });
    const rescue = scoreRoute(snap, i, request({ kind: 'rescue', pickupBy: NOW + 300_000, deadline: NOW + 4 * 3_600_000 }), DEFAULT_POLICY, NOW);
    expect(rescue).toMatchObject({ feasible: false, reason: 'pickup-window-missed' });
    expect(rescue.lateness).toBeCloseTo(33.5852, 3);
    const onTime = scoreRoute(snap, i, request({ kind: 'rescue', pickupBy: NOW + 400_000, deadline: NOW + 700_000 }), DEFAULT_POLICY, NOW);
    expect(onTime).toMatchObject({ feasible: true, lateness: 0 });
  });

  it('uses the learned neighbourhood speed when known and the request leg speed for the second leg', () => {
    const speeds = new CellSpeeds();
    const cell = cellToParent(latLngToCell(51.5, -0.1, 9), speeds.resolution);
    expect(speeds.observe(cell, 60, 10_000)).toBe(true); // 6 m/s, the first sample seeds the estimate
    const live = snapshotOf([{ id: 'bike', lat: 51.5, lng: -0.1 }], speeds);
    expect(live.localSpeed(0)).toBe(6);
    const score = scoreRoute(live, 0, request(), DEFAULT_POLICY, NOW);
    expect(score.pickupEta).toBeCloseTo((STEP * C) / 6, 6);
    expect(score.dropoffEta - score.pickupEta).toBeCloseTo((STEP * C) / BIKE, 6); // leg: vehicle speed
    const withLeg = scoreRoute(live, 0, request({ legSpeed: 10 }), DEFAULT_POLICY, NOW);
    expect(withLeg.dropoffEta - withLeg.pickupEta).toBeCloseTo((STEP * C) / 10, 6);
    const implausible = scoreRoute(live, 0, request({ legSpeed: 100 }), DEFAULT_POLICY, NOW);
    expect(implausible.dropoffEta - implausible.pickupEta).toBeCloseTo((STEP * C) / BIKE, 6);
  });

  it('falls back to the vehicle speed when the learned speed is unknown', () => {
    const snapCar = snapshotOf([{ id: 'car', lat: 51.5, lng: -0.1, vehicle: 'car' }]);
    expect(Number.isNaN(snapCar.localSpeed(0))).toBe(true);
    const score = scoreRoute(snapCar, 0, request(), DEFAULT_POLICY, NOW);
    expect(score.pickupEta).toBeCloseTo((STEP * C) / DEFAULT_POLICY.vehicleSpeed.car, 6);
  });

  it('refuses a courier without the cold chain the request needs, or without room for the load', () => {
    const two = snapshotOf([
      { id: 'plain', lat: 51.5, lng: -0.1, capacity: 1 },
      { id: 'cold', lat: 51.5, lng: -0.1001, capabilities: ['cold_chain'], capacity: 4 },
    ]);
    const req = request({ kind: 'blood', capabilities: ['cold_chain'] });
    expect(scoreRoute(two, two.indexOf('plain'), req, DEFAULT_POLICY, NOW)).toMatchObject({ feasible: false, reason: 'missing-capability' });
    expect(scoreRoute(two, two.indexOf('cold'), req, DEFAULT_POLICY, NOW)).toMatchObject({ feasible: true });
    expect(scoreRoute(two, two.indexOf('plain'), request({ load: 2 }), DEFAULT_POLICY, NOW)).toMatchObject({ feasible: false, reason: 'over-capacity' });
    expect(scoreRoute(two, two.indexOf('cold'), request({ load: 4 }), DEFAULT_POLICY, NOW)).toMatchObject({ feasible: true });
  });

  it('weights an urgent second four times and an emergency second a hundred times a routine one', () => {
    const score = scoreRoute(snap, i, request(), DEFAULT_POLICY, NOW);
    const routine = routeCost(score, request(), DEFAULT_POLICY);
    expect(routeCost(score, request({ urgency: 'urgent' }), DEFAULT_POLICY)).toBeCloseTo(4 * routine, 9);
    expect(routeCost(score, request({ urgency: 'emergency' }), DEFAULT_POLICY)).toBeCloseTo(100 * routine, 9);
  });

  it('prices a scarce capability on work that does not need it, when the policy names one; never an emergency or work that needs it', () => {
    const score = scoreRoute(snap, i, request(), DEFAULT_POLICY, NOW);
    const plain = routeCost(score, request(), DEFAULT_POLICY);
    const cold = capabilityMask(['cold_chain']);
    expect(routeCost(score, request(), DEFAULT_POLICY, cold)).toBeCloseTo(plain, 9); // none priced by default
    const priced = { ...DEFAULT_POLICY, scarceCapabilities: { cold_chain: 180 } };
    expect(routeCost(score, request(), priced, cold)).toBeCloseTo(plain + 180, 9);
    expect(routeCost(score, request({ urgency: 'urgent' }), priced, cold)).toBeCloseTo(4 * (plain + 180), 9);
    expect(routeCost(score, request({ urgency: 'emergency' }), priced, cold)).toBeCloseTo(100 * plain, 9);
    expect(routeCost(score, request({ capabilities: ['cold_chain'] }), priced, cold)).toBeCloseTo(plain, 9);
    expect(routeCost(score, request(), priced, capabilityMask(['insulated', 'bulky']))).toBeCloseTo(plain, 9);
    expect(routeCost(score, request(), { ...DEFAULT_POLICY, scarceCapabilities: { cold_chain: 0, medical: 60 } }, capabilityMask(['cold_chain', 'medical']))).toBeCloseTo(plain + 60, 9);
  });
});
