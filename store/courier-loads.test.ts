/**
 * loadCouriers on both stores: by box (a cluster core loading a region) and by id, against the rows written; and
 * listCouriers (a cluster's GET /v1/couriers) page by page against a brute-force filter of the same rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../fixtures/prng.js';
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

  it('lists the registry by id, page after page, filtered as a brute-force filter of the same rows would be', async () => {
    // more couriers, with mixed statuses, capabilities and positions (some across the antimeridian)
    const rnd = seededRandom(7);
    const rows = Array.from({ length: 60 }, (_, i) => ({
      id: `ls-${String(i).padStart(3, '0')}`,
      vehicle: 'car' as const,
      capabilities: rnd() < 0.5 ? (['cold_chain'] as const) : ([] as const),
      capacity: 1,
      status: (['available', 'offline', 'busy'] as const)[Math.floor(rnd() * 3)],
      at: rnd() < 0.2 ? undefined : ([rnd() * 20 - 10, rnd() < 0.3 ? 175 + rnd() * 10 - (rnd() < 0.5 ? 360 : 0) : rnd() * 20 - 10] as [number, number]),
    }));
    await store.upsertCouriers(rows.map(({ at: _at, capabilities, ...r }) => ({ ...r, capabilities: [...capabilities] })));
    const placed = rows.filter((r) => r.at !== undefined);
    await store.writePositions({ ids: placed.map((r) => r.id), lat: Float64Array.from(placed.map((r) => r.at![0])), lng: Float64Array.from(placed.map((r) => Math.max(-180, Math.min(180, r.at![1])))), ts: new Float64Array(placed.length).fill(at) });
    const all = (await store.loadState()).couriers;
    const inBox = (b: readonly number[], lat?: number, lng?: number): boolean =>
      lat !== undefined && lng !== undefined && lat >= b[1] && lat <= b[3] && (b[0] <= b[2] ? lng >= b[0] && lng <= b[2] : lng >= b[0] || lng <= b[2]);
    const filters = [{}, { status: 'available' }, { capability: 'cold_chain' }, { bbox: [-10, -5, 5, 10] as const }, { bbox: [170, -10, -170, 10] as const, status: 'busy' }];
    for (const f of filters) {
      const want = all
        .filter((c) => (f.status === undefined || c.status === f.status) && (f.capability === undefined || (c.capabilities as string[]).includes(f.capability)) && (f.bbox === undefined || inBox(f.bbox, c.lat, c.lng)))
        .map((c) => c.id)
        .sort();
      const got: string[] = [];
      for (let after: string | undefined; ; ) {
        const page = await store.listCouriers({ ...f, after, limit: 7 });
        got.push(...page.map((c) => c.id));
        if (page.length < 7) break;
        after = page[page.length - 1].id;
      }
      expect([JSON.stringify(f), got]).toEqual([JSON.stringify(f), want]);
    }
    expect(new Set(all.map((c) => c.id)).size).toBeGreaterThan(60);
  });
});

