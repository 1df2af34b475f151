import { describe, expect, it } from 'vitest';
import type { DispatchPlan, DispatchRequest } from '../dispatch/dispatch-request.js';
import { PACKING_FORMAT, packPlan, packRequests, unpackPlan, unpackRequests } from './request-packing.js';

const NOW = Date.UTC(2026, 10, 2, 19);

const OPTIONAL: ((r: DispatchRequest, q: number) => void)[] = [
  (r, q) => (r.readyAt = NOW + 60_000 * q),
  (r, q) => (r.deadline = NOW + 3_600_000 + q),
  (r, q) => (r.pickupBy = NOW + 1_800_000 - q),
  (r) => (r.capabilities = ['cold_chain', 'medical']),
  (r, q) => (r.load = 1 + (q % 7)),
  (r, q) => (r.exclude = [`c${q}`, 'courier-ü-🚲', '']),
  (r, q) => (r.legSpeed = 4.5 + q / 1000),
];

/** One request per subset of the optional fields: all 128 combinations, present or absent. */
function everyCombination(): DispatchRequest[] {
  const kinds = ['delivery', 'rescue', 'blood'] as const;
  const urgencies = ['routine', 'urgent', 'emergency'] as const;
  const out: DispatchRequest[] = [];
  for (let mask = 0; mask < 1 << OPTIONAL.length; mask++) {
    const r: DispatchRequest = {
      id: `q${mask}-${'é'.repeat(mask % 3)}`,
      kind: kinds[mask % 3],
      urgency: urgencies[(mask >> 2) % 3],
      createdAt: NOW - mask * 17,
      pickup: { lat: 51.5 + mask * 1e-7, lng: -0.1234567891234 - mask * 1e-9 },
      dropoff: { lat: -33.8688, lng: 151.2093 + mask / 3 },
    };
    OPTIONAL.forEach((set, f) => {
      if (mask & (1 << f)) set(r, mask);
    });
    out.push(r);
  }
  return out;
}

describe('packRequests / unpackRequests', () => {
  it('round-trips every combination of optional fields exactly, leaving absent fields absent', () => {
    const requests = everyCombination();
    const back = unpackRequests(packRequests(requests));
    expect(back).toStrictEqual(requests);
    expect(Object.keys(back[0]).sort()).toEqual(['createdAt', 'dropoff', 'id', 'kind', 'pickup', 'urgency']);
  });

  it('keeps empty capability and exclusion lists distinct from absent ones', () => {
    const base: DispatchRequest = { id: 'a', kind: 'delivery', urgency: 'routine', createdAt: NOW, pickup: { lat: 1, lng: 2 }, dropoff: { lat: 3, lng: 4 } };
    const requests = [{ ...base, capabilities: [], exclude: [] }, base];
    expect(unpackRequests(packRequests(requests))).toStrictEqual(requests);
  });

  it('survives a real transfer: one Float64Array moved, one string cloned', () => {
    const requests = everyCombination();
    const packed = packRequests(requests);
    const moved = structuredClone(packed, { transfer: [packed.numbers.buffer] });
    expect(packed.numbers.length).toBe(0); // detached here: the buffer moved, it was not copied
    expect(typeof moved.text).toBe('string');
    expect(unpackRequests(moved)).toStrictEqual(requests);
  });

  it('returns capabilities deduplicated in CAPABILITIES order', () => {
    const r: DispatchRequest = { id: 'x', kind: 'blood', urgency: 'urgent', createdAt: NOW, pickup: { lat: 0, lng: 0 }, dropoff: { lat: 0, lng: 0 }, capabilities: ['medical', 'cold_chain', 'medical'] };
    expect(unpackRequests(packRequests([r]))[0].capabilities).toEqual(['cold_chain', 'medical']);
  });

  it('packs an empty batch', () => {
    expect(unpackRequests(packRequests([]))).toEqual([]);
  });

  it('refuses what it cannot name, and a batch from another packing format', () => {
    const bad = { id: 'x', kind: 'parcel', urgency: 'routine', createdAt: NOW, pickup: { lat: 0, lng: 0 }, dropoff: { lat: 0, lng: 0 } } as unknown as DispatchRequest;
    expect(() => packRequests([bad])).toThrow("request 'x': kind 'parcel' cannot be packed; expected one of delivery, rescue, blood");
    expect(() => packRequests([{ ...bad, kind: 'delivery', capabilities: ['jetpack'] } as unknown as DispatchRequest])).toThrow(/unknown capability 'jetpack'/);
    const packed = packRequests([{ ...bad, kind: 'delivery' }]);
    packed.numbers[0] = PACKING_FORMAT + 1;
    expect(() => unpackRequests(packed)).toThrow(/rebuild both sides together \(npm run build\)/);
  });
});

describe('packPlan / unpackPlan', () => {
  it('round-trips a plan field for field', () => {
    const plan: DispatchPlan = {
      assignments: [
        { requestId: 'q1', courierId: 'c9', pickupEta: 123.456789, dropoffEta: 987.654321, lateness: 0, cost: 135.7 },
        { requestId: 'q-ü', courierId: '🚲-7', pickupEta: 1e-9, dropoffEta: 2, lateness: 33.3, cost: 1e7 },
      ],
      unassigned: [
        { requestId: 'q2', reason: 'no-courier-in-radius' },
        { requestId: 'q3', reason: 'no-feasible-courier' },
        { requestId: 'q4', reason: 'outbid' },
        { requestId: '', reason: 'deadline-passed' },
      ],
      totalCost: 12_345.678,
      totalPickupEta: 123.456790001,
      solveMs: 4.25,
    };
    expect(unpackPlan(packPlan(plan))).toStrictEqual(plan);
    const empty: DispatchPlan = { assignments: [], unassigned: [], totalCost: 0, totalPickupEta: 0, solveMs: 0 };
    expect(unpackPlan(packPlan(empty))).toStrictEqual(empty);
  });
});
