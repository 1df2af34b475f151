import { describe, expect, it } from 'vitest';
import { CourierIndex } from '../engine/courier-index.js';
import { CourierSnapshot, writeCourierSnapshot } from '../engine/courier-snapshot.js';
import { capabilityMask } from '../engine/courier-attributes.js';
import { DEFAULT_POLICY, type DispatchPolicy, type DispatchRequest } from './dispatch-request.js';
import { routeCost, scarcityCost } from './route-scoring.js';
import { CapabilityDemand, DEFAULT_SCARCITY, scarcityPrice } from './scarcity.js';

const NOW = Date.UTC(2026, 10, 2, 12);
const BANK = { lat: 51.5, lng: -0.12 };
const COLD = capabilityMask(['cold_chain']);

function snapshotOf(couriers: [string, number, number, boolean][]): CourierSnapshot {
  const index = new CourierIndex();
  for (const [id, lat, lng, cold] of couriers) {
    index.upsert(id, { vehicle: 'car', capabilities: cold ? ['cold_chain'] : [], capacity: 2, status: 'available' });
    index.move(id, lat, lng, NOW);
  }
  return CourierSnapshot.from(writeCourierSnapshot(index));
}

const plain = (id: string, dropLat: number): DispatchRequest => ({ id, kind: 'delivery', urgency: 'routine', createdAt: NOW, pickup: BANK, dropoff: { lat: dropLat, lng: -0.12 } });

describe('scarce capabilities priced from demand', () => {
  it('charges maxSeconds × need ÷ supply, capped, and nothing without need or supply', () => {
    expect(scarcityPrice(1, 4, 600)).toBe(150);
    expect(scarcityPrice(9, 4, 600)).toBe(600);
    expect(scarcityPrice(0, 4, 600)).toBe(0);
    expect(scarcityPrice(3, 0, 600)).toBe(0);
  });

  it('prices only couriers within reach of where the work starts, and only work that takes them out of reach', () => {
    const demand = new CapabilityDemand(DEFAULT_SCARCITY);
    // six cold-chain legs from the bank in the last hour: three expected over the next half hour
    demand.note(['cold_chain'], NOW - 2 * 3_600_000, BANK); // outside the window: forgotten
    for (let m = 5; m >= 0; m--) demand.note(['cold_chain'], NOW - m * 60_000, BANK);
    const snapshot = snapshotOf([['near-cold', 51.51, -0.12, true], ['far-cold', 51.8, -0.12, true], ['near-plain', 51.5, -0.11, false], ['near-cold-2', 51.49, -0.12, true]]);
    const batch = demand.prices(snapshot, [plain('stays', 51.52), plain('leaves', 51.9)], NOW, 15_000);
    expect(demand.recent('cold_chain', NOW)).toHaveLength(6);
    // need 6/3600 × 1800 = 3 over supply 2 (the two near the bank): the cap
    expect(batch.prices).toEqual({ cold_chain: 600 });
    expect(batch.local[snapshot.indexOf('near-cold-2')]).toBe(COLD);
    expect(batch.local[snapshot.indexOf('near-plain')]).toBe(0);
    expect(batch.local[snapshot.indexOf('near-cold')]).toBe(COLD);
    expect(batch.local[snapshot.indexOf('far-cold')]).toBe(0);
    expect(batch.leaves.get('leaves')).toBe(COLD);
    expect(batch.leaves.get('stays')).toBeUndefined();

    const policy: DispatchPolicy = { ...DEFAULT_POLICY, scarceCapabilities: batch.prices, scarceLocal: batch.local, scarceLeaves: batch.leaves };
    expect(scarcityCost(COLD, plain('leaves', 51.9), policy)).toBe(600);
    expect(scarcityCost(COLD, plain('stays', 51.52), policy)).toBe(0);
    expect(scarcityCost(COLD, { ...plain('leaves', 51.9), urgency: 'emergency' }, policy)).toBe(0);
    expect(scarcityCost(COLD, { ...plain('leaves', 51.9), capabilities: ['cold_chain'] }, policy)).toBe(0);
    const score = { pickupEta: 100, dropoffEta: 400, lateness: 0, travel: 100, feasible: true };
    expect(routeCost(score, plain('leaves', 51.9), policy, COLD) - routeCost(score, plain('leaves', 51.9), policy, 0)).toBe(600);
  });

  it('prices nothing where no such work was seen or waits', () => {
    const demand = new CapabilityDemand(DEFAULT_SCARCITY);
    const snapshot = snapshotOf([['c', 51.5, -0.12, true]]);
    expect(demand.prices(snapshot, [plain('x', 51.6)], NOW, 15_000).prices).toEqual({});
    // a leg waiting now counts even before any rate is known
    const waiting = { ...plain('blood', 51.52), capabilities: ['cold_chain' as const] };
    expect(demand.prices(snapshot, [waiting, plain('x', 51.9)], NOW, 15_000).prices).toEqual({ cold_chain: 600 });
  });
});
