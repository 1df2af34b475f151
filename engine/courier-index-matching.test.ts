import { describe, expect, it } from 'vitest';
import { seededRandom } from '../fixtures/prng.js';
import { CAPABILITIES, COURIER_STATUSES, type Capability, type CourierStatus, VEHICLES } from './courier-attributes.js';
import { CourierIndex } from './courier-index.js';

describe('CourierIndex.matching', () => {
  it('returns every courier the filter admits, positioned or not, removed ones never, as a brute force over the same couriers', () => {
    const random = seededRandom(11);
    const index = new CourierIndex({ initialCapacity: 16 });
    const truth = new Map<string, { status: CourierStatus; capabilities: Capability[] }>();
    for (let i = 0; i < 2_000; i++) {
      const id = `m-${i}`;
      const capabilities = CAPABILITIES.filter(() => random() < 0.3);
      index.upsert(id, { vehicle: VEHICLES[i % 3], capabilities, capacity: 1 + (i % 4) });
      let status: CourierStatus = 'offline';
      if (random() < 0.5) {
        index.move(id, 51 + random(), -0.5 + random(), 1_000 + i);
        status = COURIER_STATUSES[Math.floor(random() * COURIER_STATUSES.length)];
        index.setStatus(id, status);
      }
      truth.set(id, { status, capabilities });
      if (random() < 0.1) {
        index.remove(id);
        truth.delete(id);
      }
    }
    for (const status of [undefined, ...COURIER_STATUSES]) {
      for (const capability of [undefined, ...CAPABILITIES]) {
        const want = [...truth].filter(([, t]) => (status === undefined || t.status === status) && (capability === undefined || t.capabilities.includes(capability))).map(([id]) => id).sort();
        const got = index.matching({ ...(status ? { status } : {}), ...(capability ? { capability } : {}) });
        expect([...got].sort(), `${status} ${capability}`).toEqual(want);
      }
    }
  });
});
