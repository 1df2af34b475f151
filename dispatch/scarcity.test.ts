import { describe, expect, it } from 'vitest';
import { CourierIndex } from '../engine/courier-index.js';
import { DonorIndex } from '../engine/donor-index.js';
import { distanceMeters } from '../engine/geodesy.js';
import { SiteIndex } from '../engine/site-index.js';
import { Prng } from '../fixtures/prng.js';
import { DispatchLoop } from './dispatch-loop.js';
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

  it('prices exactly the couriers within the radius of some place such work started, wherever the cities are (oracle, 200 worlds)', () => {
    let priced = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const rng = new Prng(seed);
      // two to four cities up to ~60 km apart; sightings at least ~1 km apart (a kilometre-wide town is one place)
      const cities = Array.from({ length: 2 + rng.int(3) }, () => ({ lat: 51.5 + rng.range(-0.3, 0.3), lng: -0.12 + rng.range(-0.5, 0.5) }));
      const places: { lat: number; lng: number }[] = [];
      while (places.length < 1 + rng.int(12)) {
        const c = rng.pick(cities);
        const p = { lat: c.lat + rng.range(-0.05, 0.05), lng: c.lng + rng.range(-0.08, 0.08) };
        if (places.every((q) => Math.abs(q.lat - p.lat) > 0.01 || Math.abs(q.lng - p.lng) > 0.01)) places.push(p);
      }
      const demand = new CapabilityDemand(DEFAULT_SCARCITY);
      places.forEach((p, i) => demand.note(['cold_chain'], NOW - i * 60_000, p));
      const couriers = Array.from({ length: 40 }, (_, i): [string, number, number, boolean] => {
        const c = rng.pick(cities);
        return [`c${i}`, c.lat + rng.range(-0.25, 0.25), c.lng + rng.range(-0.4, 0.4), rng.chance(0.5)];
      });
      const snapshot = snapshotOf(couriers);
      const radius = rng.pick([2_000, 15_000, 30_000]);
      const batch = demand.prices(snapshot, [], NOW, radius);
      for (const [id, lat, lng, cold] of couriers) {
        const within = places.some((p) => distanceMeters(lat, lng, p.lat, p.lng) <= radius);
        expect(batch.local[snapshot.indexOf(id)], `seed ${seed} ${id}`).toBe(cold && within ? COLD : 0);
        if (cold && within) priced++;
      }
    }
    expect(priced).toBeGreaterThan(1_000);
  });

  it('is on in a dispatch loop by default: a plain order that takes the cold-chain courier away goes to a plain one; scarcity false turns it off', () => {
    const BANK_PICKUP = { lat: 51.5, lng: -0.12 };
    const world = (scarcity?: false) => {
      const couriers = new CourierIndex();
      const at = (id: string, lat: number, cold: boolean): void => {
        couriers.upsert(id, { vehicle: 'car', capabilities: cold ? ['cold_chain'] : [], capacity: 1, status: 'available' });
        couriers.move(id, lat, -0.12, NOW);
      };
      at('cold-a', 51.5, true);
      const loop = new DispatchLoop({ couriers, sites: new SiteIndex(), donors: new DonorIndex(), policy: { ...DEFAULT_POLICY, ...(scarcity === false ? { scarcity } : {}) } });
      // a chilled load leaves the bank: cold-a takes it, and the loop has seen cold-chain work start there
      expect(loop.submit({ kind: 'delivery', id: 'chilled', urgency: 'routine', createdAt: NOW, requesterId: 'lab', pickup: BANK_PICKUP, dropoff: { lat: 51.51, lng: -0.12 }, coldChain: true }, NOW).ok).toBe(true);
      const [first] = loop.tick(NOW + 2_000);
      expect(first).toMatchObject({ requestId: 'chilled', courierId: 'cold-a' });
      expect(loop.accept(first.id, 'cold-a', NOW + 3_000).ok).toBe(true);
      // then a plain order from the bank's street to a town 25 km off: cold-b is at the door, the plain car 1 km away
      at('cold-b', 51.5, true);
      at('plain', 51.509, false);
      expect(loop.submit({ kind: 'delivery', id: 'parcel', urgency: 'routine', createdAt: NOW + 10_000, requesterId: 'shop', pickup: BANK_PICKUP, dropoff: { lat: 51.725, lng: -0.12 } }, NOW + 10_000).ok).toBe(true);
      return loop.tick(NOW + 12_000);
    };
    // need 1 leg/h × 0.5 h over 1 free cold-chain courier nearby: 300 s, more than the plain car's extra 1 km
    expect(world()).toMatchObject([{ requestId: 'parcel', courierId: 'plain' }]);
    expect(world(false)).toMatchObject([{ requestId: 'parcel', courierId: 'cold-b' }]);
  });
});
