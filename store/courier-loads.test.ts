/** loadCouriers on both stores: by box (a cluster core loading a region) and by id, against the rows written. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from './store.js';
import { bothStores } from './test-database.js';

const stores = bothStores('gd_loads');

describe.each(stores)('loadCouriers on the $name store', ({ open }) => {
  let store: Store;
  let done: () => Promise<void>;
  const at = Date.now() - 60_000;
  const points: [string, number, number][] = [['in-1', 51.5, -0.1], ['in-2', 51.6, 0.05], ['out-lat', 52.5, -0.1], ['out-lng', 51.5, 1.2], ['edge', 51.7, 0.1]];
  beforeAll(async () => {
    ({ store, done } = await open());
    await store.upsertCouriers([...points.map(([id]) => id), 'no-position'].map((id) => ({ id, vehicle: 'bike' as const, capabilities: ['cold_chain' as const], capacity: 2, status: 'available' as const })));
    await store.writePositions({ ids: points.map(([id]) => id), lat: Float64Array.from(points.map((p) => p[1])), lng: Float64Array.from(points.map((p) => p[2])), ts: new Float64Array(points.length).fill(at) });
  });
  afterAll(async () => done());

  it('loads the couriers whose stored position is inside the box, bounds included, with their profiles', async () => {
    const got = await store.loadCouriers({ box: { minLat: 51.4, maxLat: 51.7, minLng: -0.2, maxLng: 0.1 } });
    expect(got.map((c) => c.id)).toEqual(['edge', 'in-1', 'in-2']);
    expect(got[1]).toEqual({ id: 'in-1', vehicle: 'bike', capabilities: ['cold_chain'], capacity: 2, status: 'available', lat: 51.5, lng: -0.1, lastPingAt: at });
  });

  it('loads by id, positionless couriers included, unknown ids left out', async () => {
    const got = await store.loadCouriers({ ids: ['no-position', 'out-lng', 'nobody'] });
    expect(got.map((c) => c.id)).toEqual(['no-position', 'out-lng']);
    expect(got[0].lat).toBeUndefined();
  });
});
