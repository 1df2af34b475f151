import { cellToParent, latLngToCell } from 'h3-js';
import { describe, expect, it } from 'vitest';
import type { AddRoute } from '../api/http-routes.js';
import type { PositionIngest } from '../api/ingest.js';
import { encodeReply } from '../api/http-body.js';
import { registerLocationRoutes } from '../api/location-routes.js';
import { RequestBook } from '../api/request-book.js';
import { trackFrameOf } from '../api/request-views.js';
import { CellSpeeds } from '../engine/cell-speeds.js';
import { CourierIndex } from '../engine/courier-index.js';
import { CourierSnapshot, writeCourierSnapshot } from '../engine/courier-snapshot.js';
import { DonorIndex } from '../engine/donor-index.js';
import { distanceMeters } from '../engine/geodesy.js';
import { SiteIndex } from '../engine/site-index.js';
import { DispatchLoop, type SubmitPlan, type SubmitResult } from './dispatch-loop.js';
import { DEFAULT_POLICY, type DispatchPolicy } from './dispatch-request.js';
import { scoreRoute } from './route-scoring.js';
import { driveSeconds, driveSpeed, learnedSpeed, travelSeconds } from './travel-time.js';

const NOW = Date.UTC(2025, 0, 15, 12);
const DAY = 86_400_000;
/** Where the trip starts (the courier, the blood bank, the rescue's pickup): well inside its res-7 speed cell. */
const A = { lat: 51.5, lng: -0.1 };
/** Where it ends (the request's pickup, the hospital, the food bank, the /v1/nearby point, the dropoff): ~3.5 km away. */
const B = { lat: 51.52, lng: -0.06 };
const METRES = distanceMeters(A.lat, A.lng, B.lat, B.lng);
const GREEDY: DispatchPolicy = { ...DEFAULT_POLICY, mode: 'greedy' };
/** 61 m in 10 s: 6.1 m/s, not a float32, so every caller must read the estimate the way the snapshot stores it. */
const LEARNED = Math.fround(6.1);

/** Learned speeds with one estimate: the cell of A (as the courier index buckets it), or none. */
function speedsAtA(learned: boolean): CellSpeeds {
  const speeds = new CellSpeeds();
  const cell = cellToParent(latLngToCell(A.lat, A.lng, 9), speeds.resolution);
  expect(latLngToCell(A.lat, A.lng, speeds.resolution), 'A must lie in its bucket’s speed cell').toBe(cell);
  if (learned) expect(speeds.observe(cell, 61, 10_000)).toBe(true);
  return speeds;
}

interface FiveEtas {
  routeScoring: number;
  bloodBank: number;
  rescueRecipient: number;
  trackView: number;
  nearby: number;
}

/**
 * The trip A → B timed by each former ETA: route scoring (a car courier at A, a pickup at B), blood
 * allocation (a bank at A, the hospital at B) and rescue choice (pickup at A, a food bank at B) through
 * DispatchLoop.submit, the track view of a request picked up at A and bound for B, and /v1/nearby at B.
 */
function fiveEtas(policy: DispatchPolicy, speeds: CellSpeeds): FiveEtas {
  const couriers = new CourierIndex(); // no speeds: nothing here is learned from pings, the estimate is set above
  const sites = new SiteIndex();
  const donors = new DonorIndex();
  couriers.upsert('c1', { vehicle: 'car', capabilities: [], capacity: 1, status: 'available' });
  couriers.move('c1', A.lat, A.lng, NOW);
  sites.upsert('bank', { kind: 'blood_bank', name: 'bank', ...A });
  sites.setInventory('bank', [{ product: 'red_cells', bloodType: 'A+', count: 4, expiresAt: NOW + 10 * DAY }]);
  sites.upsert('pantry', { kind: 'food_bank', name: 'pantry', ...B });
  const loop = new DispatchLoop({ couriers, sites, donors, speeds, policy });

  const snapshot = CourierSnapshot.from(writeCourierSnapshot(couriers, { speeds: loop.speeds, createdAt: NOW }));
  const request = { id: 'scored', kind: 'delivery' as const, urgency: 'routine' as const, createdAt: NOW, pickup: B, dropoff: A };
  const routeScoring = scoreRoute(snapshot, 0, request, loop.policy, NOW).travel;

  // a delivery the courier picks up at A: what is left is the drive to its dropoff at B
  const base = { urgency: 'routine' as const, createdAt: NOW, requesterId: 'req' };
  planOf(loop.submit({ ...base, id: 'd1', kind: 'delivery', pickup: A, dropoff: B }, NOW));
  const [offer] = loop.tick(NOW);
  expect(offer.requestId).toBe('d1');
  expect(loop.accept(offer.id, 'c1', NOW).ok).toBe(true);
  expect(loop.progress('d1', 'c1', 'picked_up', NOW).ok).toBe(true);
  const book = new RequestBook(loop.parents);
  book.record({ id: 'd1', kind: 'delivery', owner: 'req', ownerRole: 'requester', urgency: 'routine', createdAt: NOW, pickup: A, dropoff: B, legs: ['d1'] });
  const trackView = trackFrameOf({ book, loop, couriers }, 'd1')?.eta;

  const blood = planOf(loop.submit({ ...base, id: 'blood', kind: 'blood', dropoff: B, blood: { product: 'red_cells', bloodType: 'A+', units: 1 } }, NOW));
  const rescue = planOf(loop.submit({ ...base, id: 'rescue', kind: 'rescue', pickup: A }, NOW));

  const nearby = nearbyCourierEta({ couriers, sites, donors, ingest: {} as PositionIngest, policy: loop.policy, speeds: loop.speeds }, B);

  return {
    routeScoring,
    bloodBank: blood.sources![0].etaSeconds,
    rescueRecipient: rescue.recipient!.etaSeconds,
    trackView: trackView!,
    nearby,
  };
}

function planOf(result: SubmitResult): SubmitPlan {
  if (result.ok !== true) throw new Error(`expected the submission to be accepted, got ${JSON.stringify(result)}`);
  return result;
}

/** GET /v1/nearby?lat&lng through the handler the API registers, without a server: the first courier's eta. */
function nearbyCourierEta(deps: Parameters<typeof registerLocationRoutes>[1], at: { lat: number; lng: number }): number {
  const routes = new Map<string, Parameters<AddRoute>[2]>();
  registerLocationRoutes((method, pattern, spec) => routes.set(`${method} ${pattern}`, spec), deps);
  const reply = routes.get('get /v1/nearby')!.run({
    params: [], query: new URLSearchParams({ lat: String(at.lat), lng: String(at.lng) }).toString(), accept: undefined, idempotencyKey: undefined,
    principal: { sub: 'd', role: 'dispatcher', via: 'api-key' }, body: undefined, now: NOW,
  });
  // what the wire carries: the reply encoded as a JSON client asks for it
  const body = JSON.parse(String(encodeReply((reply as { body: unknown }).body, undefined).body)) as { results: { id: string; eta: number }[] };
  expect(body.results.map((r) => r.id)).toEqual(['c1']);
  return body.results[0].eta;
}

/** All five against one oracle: the track view and /v1/nearby answer whole seconds, the others exact ones. */
function expectAllEqual(etas: FiveEtas, seconds: number): void {
  expect(etas.routeScoring).toBeCloseTo(seconds, 6);
  expect(etas.bloodBank).toBeCloseTo(seconds, 6);
  expect(etas.rescueRecipient).toBeCloseTo(seconds, 6);
  expect(etas.trackView).toBe(Math.round(seconds));
  expect(etas.nearby).toBe(Math.round(seconds));
}

describe('travel time: one model behind every ETA', () => {
  it('route scoring, blood allocation, rescue choice, the track view and /v1/nearby give the same seconds for the same trip and learned speed', () => {
    const etas = fiveEtas(GREEDY, speedsAtA(true));
    expectAllEqual(etas, (METRES * DEFAULT_POLICY.circuity) / LEARNED);
    expect(etas.routeScoring).toBeGreaterThan(600); // a real trip, so a whole-second rounding cannot hide a disagreement
  });

  it('a configured circuity of 2 lengthens all five alike', () => {
    const before = fiveEtas(GREEDY, speedsAtA(true));
    const after = fiveEtas({ ...GREEDY, circuity: 2 }, speedsAtA(true));
    expectAllEqual(after, (METRES * 2) / LEARNED);
    for (const key of Object.keys(before) as (keyof FiveEtas)[]) expect(after[key], key).toBeGreaterThan(before[key] * 1.45);
  });

  it('without a learned speed all five drive at the configured vehicle speed, not the default one', () => {
    const slowCars: DispatchPolicy = { ...GREEDY, vehicleSpeed: { ...DEFAULT_POLICY.vehicleSpeed, car: 5 } };
    expectAllEqual(fiveEtas(slowCars, speedsAtA(false)), (METRES * DEFAULT_POLICY.circuity) / 5);
    expectAllEqual(fiveEtas(GREEDY, speedsAtA(false)), (METRES * DEFAULT_POLICY.circuity) / DEFAULT_POLICY.vehicleSpeed.car);
  });
});

describe('driveSeconds', () => {
  it('is great-circle metres times circuity over the learned speed of the cell the drive starts in', () => {
    const speeds = speedsAtA(true);
    expect(driveSeconds(A, B, { policy: DEFAULT_POLICY, vehicle: 'bike', speeds })).toBe(travelSeconds(METRES, 1.35, LEARNED));
    // the learned speed is where the drive starts: B's cell has none, so the bike's speed times B → A
    expect(driveSeconds(B, A, { policy: DEFAULT_POLICY, vehicle: 'bike', speeds })).toBeCloseTo((METRES * 1.35) / 4.5, 6);
    expect(driveSeconds(A, B, { policy: DEFAULT_POLICY, vehicle: 'van' })).toBeCloseTo((METRES * 1.35) / 7.5, 6);
  });

  it('reads a courier’s bucket cell exactly as the snapshot does', () => {
    const speeds = speedsAtA(true);
    const bucket = latLngToCell(A.lat, A.lng, 9);
    expect(learnedSpeed(speeds, A, bucket)).toBe(LEARNED);
    expect(learnedSpeed(speeds, A)).toBe(LEARNED);
    expect(learnedSpeed(speeds, B)).toBeNaN();
    expect(learnedSpeed(undefined, A)).toBeNaN();
  });

  it('ignores an implausible learned speed: under 1 m/s is parked couriers, over 40 m/s GPS noise', () => {
    expect(driveSpeed(0.9, 8.5)).toBe(8.5);
    expect(driveSpeed(1, 8.5)).toBe(1);
    expect(driveSpeed(40, 8.5)).toBe(40);
    expect(driveSpeed(41, 8.5)).toBe(8.5);
    expect(driveSpeed(NaN, 8.5)).toBe(8.5);
  });
});
