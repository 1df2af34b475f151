/**
 * The small worlds the DispatchLoop suites run on (dispatch-loop.test.ts, dispatch-loop.property.test.ts): indexes
 * filled from a fixture city and the city's requests turned into submissions at a chosen time.
 */
import { expect } from 'vitest';
import { CourierIndex } from '../engine/courier-index.js';
import { DonorIndex } from '../engine/donor-index.js';
import { SiteIndex } from '../engine/site-index.js';
import type { RequestFixture, Scenario } from '../fixtures/city-scenario.js';
import { loadScenario } from '../fixtures/load-scenario.js';
import { DEFAULT_POLICY, type DispatchPolicy } from './dispatch-request.js';
import { type DispatchEvent, DispatchLoop, type RequestSubmission } from './dispatch-loop.js';
import type { LifecycleEvent, Offer } from './request-lifecycle.js';

export const SMALL_CITY = loadScenario('small-city');
export const T0 = SMALL_CITY.dayStart + 12 * 3_600_000;
export const BATCHED: DispatchPolicy = { ...DEFAULT_POLICY, mode: 'batched', windowMs: 2_000 };
export const GREEDY: DispatchPolicy = { ...DEFAULT_POLICY, mode: 'greedy' };

export interface World {
  loop: DispatchLoop;
  couriers: CourierIndex;
  sites: SiteIndex;
  donors: DonorIndex;
  scenario: Scenario;
}

/** Indexes filled from a scenario (fixture 'busy' couriers start available: their work is outside this loop). */
export function world(policy: DispatchPolicy = BATCHED, scenario: Scenario = SMALL_CITY): World {
  const couriers = new CourierIndex();
  const sites = new SiteIndex();
  const donors = new DonorIndex();
  for (const c of scenario.couriers) {
    couriers.upsert(c.id, { vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity, status: c.status === 'offline' ? 'offline' : 'available' });
    couriers.move(c.id, c.lat, c.lng, scenario.dayStart);
  }
  for (const d of scenario.donors) donors.upsert(d.id, d);
  for (const s of scenario.sites) {
    sites.upsert(s.id, s);
    if (s.inventory) sites.setInventory(s.id, s.inventory);
  }
  return { loop: new DispatchLoop({ couriers, sites, donors, policy }), couriers, sites, donors, scenario };
}

/** The scenario's first request of a kind, moved to `at` (readyAt, pickup window and deadline shift with it). */
export function fixtureAt(kind: RequestFixture['kind'], at: number, n = 0, scenario = SMALL_CITY): RequestSubmission {
  const f = scenario.requests.filter((r) => r.kind === kind)[n];
  return submissionOf(f, at);
}

export function submissionOf(f: RequestFixture, at: number): RequestSubmission {
  const shift = (t: number | undefined): number | undefined => (t === undefined ? undefined : t - f.createdAt + at);
  const base = { id: f.id, urgency: f.urgency, createdAt: at, requesterId: f.requesterId, deadline: shift(f.deadline) };
  if (f.kind === 'delivery') return { ...base, kind: 'delivery', pickup: f.pickup, dropoff: f.dropoff!, readyAt: shift(f.readyAt), coldChain: f.coldChain };
  if (f.kind === 'rescue') return { ...base, kind: 'rescue', pickup: f.pickup, dropoff: f.dropoff, readyAt: shift(f.readyAt), pickupBy: shift(f.pickupBy), coldChain: f.coldChain };
  return { ...base, kind: 'blood', dropoff: f.dropoff!, blood: f.blood! };
}

export function delivery(id: string, at: number, urgency: RequestSubmission['urgency'] = 'routine', n = 0): RequestSubmission {
  return { ...fixtureAt('delivery', at, n), id, urgency };
}

export function ok<T extends { ok: unknown }>(res: T): Extract<T, { ok: true }> {
  if (res.ok !== true) throw new Error(`expected ok, got ${JSON.stringify(res)}`);
  return res as Extract<T, { ok: true }>;
}

export function lifecycleEvents(events: readonly DispatchEvent[]): LifecycleEvent[] {
  return events.filter((e): e is LifecycleEvent => e.type !== 'blood.status');
}

export function onlyOffer(offers: Offer[]): Offer {
  expect(offers).toHaveLength(1);
  return offers[0];
}
