/**
 * The Store methods of the fleet API on every implementation (PGlite always, PostgreSQL when TEST_DATABASE_URL
 * is set, in a throwaway schema): deletes, the newest-first keyset page of requests against a brute-force sort,
 * and a courier's history window.
 */
import { HeldUnits, storeFailureKind } from './store-errors.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PGliteStore } from './pglite-store.js';
import { type RequestRow, type Store, openStore } from './store.js';
import { dropTestSchema, testSchemaName } from './test-database.js';

const databaseUrl = process.env.TEST_DATABASE_URL;
const schema = testSchemaName('gd_fleet_store');
const implementations: { name: string; open: () => Promise<Store>; cleanup: () => Promise<void> }[] = [
  { name: 'pglite', open: async () => { const s = await PGliteStore.open('memory://'); await s.migrate(); return s; }, cleanup: async () => undefined },
  ...(databaseUrl ? [{ name: 'pg', open: () => openStore({ databaseUrl, dataDir: 'unused', schema }), cleanup: () => dropTestSchema(databaseUrl, schema) }] : []),
];

const T0 = Date.UTC(2031, 4, 1);
const positions = (rows: [number, number, number][]) => ({ lat: Float64Array.from(rows.map((r) => r[0])), lng: Float64Array.from(rows.map((r) => r[1])), ts: Float64Array.from(rows.map((r) => r[2])) });

describe.each(implementations)('the fleet methods of the $name store', (impl) => {
  let store: Store;
  beforeAll(async () => {
    store = await impl.open();
  });
  afterAll(async () => {
    await store?.close();
    await impl.cleanup();
  });

  it('pages parent requests newest first by (created, id), ties included, exactly as a sort of them all', async () => {
    const requests: RequestRow[] = [];
    for (let i = 0; i < 60; i++) {
      // every third shares its creation time with the one before: the id breaks the tie
      const createdAt = T0 + Math.floor(i / 3) * 1000 + (i % 3 === 2 ? 0 : (i % 3) * 7);
      const owner = i % 4 === 0 ? 'ward-b' : 'ward-a';
      requests.push({ id: `lr-${String((i * 37) % 60).padStart(2, '0')}`, kind: i % 5 === 0 ? 'blood' : 'delivery', urgency: 'routine', status: i % 7 === 0 ? 'cancelled' : 'pending', createdAt, updatedAt: createdAt, requesterId: owner, requesterRole: 'requester' });
    }
    const legs: RequestRow[] = requests.filter((r) => r.kind === 'blood').map((r) => ({ ...r, id: `${r.id}/bank`, parentId: r.id, createdAt: r.createdAt + 5000 }));
    await store.commitTransition({ seq: 9_100_001, at: T0, requests: [...requests, ...legs] });

    const newestFirst = (rows: RequestRow[]) => [...rows].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)).map((r) => r.id);
    const walk = async (query: { requesterId?: string; requesterRole?: string; status?: string; kind?: string; since?: number }, limit: number) => {
      const out: string[] = [];
      let after: { createdAt: number; id: string } | undefined;
      for (;;) {
        const page = await store.listRequests({ ...query, after, limit });
        out.push(...page.map((r) => r.id));
        if (page.length < limit) return out;
        after = { createdAt: page[page.length - 1].createdAt, id: page[page.length - 1].id };
      }
    };
    const ours = (ids: string[]) => ids.filter((id) => id.startsWith('lr-'));
    expect(ours(await walk({}, 7))).toEqual(newestFirst(requests));
    expect(await walk({ requesterId: 'ward-b', requesterRole: 'requester' }, 4)).toEqual(newestFirst(requests.filter((r) => r.requesterId === 'ward-b')));
    expect(await walk({ requesterId: 'ward-a', requesterRole: 'dispatcher' }, 50)).toEqual([]);
    expect(ours(await walk({ status: 'cancelled', kind: 'delivery' }, 3))).toEqual(newestFirst(requests.filter((r) => r.status === 'cancelled' && r.kind === 'delivery')));
    const since = T0 + 10_000;
    expect(ours(await walk({ since }, 5))).toEqual(newestFirst(requests.filter((r) => r.createdAt >= since)));
    const [first] = await store.listRequests({ requesterId: 'ward-a', limit: 1 });
    expect(first).toMatchObject({ kind: expect.any(String), status: expect.any(String), urgency: 'routine', requesterId: 'ward-a', requesterRole: 'requester' });
  });

  it('deletes a site and its lots, but not while one of its lots holds reserved units', async () => {
    const lot = { product: 'red_cells' as const, bloodType: 'O-' as const, expiresAt: T0 + 86_400_000, count: 5 };
    await store.upsertSites([{ id: 'ds-free', kind: 'blood_bank', name: 'free', lat: 1, lng: 1 }, { id: 'ds-held', kind: 'blood_bank', name: 'held', lat: 1, lng: 1 }]);
    await store.upsertInventory('ds-free', [lot]);
    await store.upsertInventory('ds-held', [lot]);
    await store.commitTransition({ seq: 9_100_002, at: T0, reservationsMade: [{ requestId: 'ds-r', siteId: 'ds-held', ...lot, count: 2 }] });
    expect(await store.deleteSite('ds-held')).toEqual({ deleted: false, reserved: true });
    expect(await store.deleteSite('ds-free')).toEqual({ deleted: true, reserved: false });
    expect(await store.deleteSite('ds-free')).toEqual({ deleted: false, reserved: false });
    const state = await store.loadState();
    expect(state.sites.map((s) => s.id)).toContain('ds-held');
    expect(state.sites.map((s) => s.id)).not.toContain('ds-free');
    expect(state.inventory.has('ds-free')).toBe(false);
    expect(state.inventory.get('ds-held')?.[0]).toMatchObject({ count: 5, reserved: 2 });
  });

  it('keeps the units open reservations hold on their lot: an inventory write dropping or shrinking it below them is refused', async () => {
    const lot = { product: 'red_cells' as const, bloodType: 'A+' as const, expiresAt: T0 + 86_400_000, count: 3 };
    await store.upsertSites([{ id: 'ds-renamed', kind: 'blood_bank', name: 'renamed', lat: 1, lng: 1 }]);
    await store.upsertInventory('ds-renamed', [lot]);
    await store.commitTransition({ seq: 9_100_003, at: T0, reservationsMade: [{ requestId: 'ds-r2', siteId: 'ds-renamed', ...lot, count: 2 }] });
    // renamed (another expiry), emptied or shrunk below the 2 held: refused, nothing changed
    for (const lots of [[{ ...lot, expiresAt: lot.expiresAt + 1_000 }], [], [{ ...lot, count: 1 }]]) {
      const refused = store.upsertInventory('ds-renamed', lots);
      await expect(refused).rejects.toBeInstanceOf(HeldUnits);
      expect(storeFailureKind(await refused.catch((e: unknown) => e))).toBe('invalid');
    }
    expect((await store.loadStock(['ds-renamed'])).get('ds-renamed')).toMatchObject([{ count: 3, reserved: 2, expiresAt: lot.expiresAt }]);
    // kept with at least the held units, and other lots changed freely: taken
    await store.upsertInventory('ds-renamed', [{ ...lot, count: 2 }, { ...lot, bloodType: 'O-', count: 4 }]);
    expect(await store.deleteSite('ds-renamed')).toEqual({ deleted: false, reserved: true });
    await store.commitTransition({ seq: 9_100_004, at: T0, reservationsReleased: [{ requestId: 'ds-r2', siteId: 'ds-renamed', ...lot, count: 2 }] });
    await store.upsertInventory('ds-renamed', []);
    expect(await store.deleteSite('ds-renamed')).toEqual({ deleted: true, reserved: false });
  });

  it('says what holds a courier: an open assignment, else a live offer', async () => {
    expect(await store.courierCommitment('cc-free')).toBeUndefined();
    await store.commitTransition({ seq: 9_100_005, at: T0, offers: [{ id: 'cc-o1', requestId: 'cc-r1', courierId: 'cc-held', status: 'live', createdAt: T0, expiresAt: T0 + 15_000 }] });
    expect(await store.courierCommitment('cc-held')).toEqual({ requestId: 'cc-r1', offerId: 'cc-o1' });
    await store.commitTransition({ seq: 9_100_006, at: T0, offerStatus: [{ id: 'cc-o1', status: 'accepted' }], assignmentsStarted: [{ requestId: 'cc-r1', courierId: 'cc-held', offerId: 'cc-o1', createdAt: T0 }] });
    expect(await store.courierCommitment('cc-held')).toEqual({ requestId: 'cc-r1' });
    await store.commitTransition({ seq: 9_100_007, at: T0, assignmentsEnded: [{ requestId: 'cc-r1' }] });
    expect(await store.courierCommitment('cc-held')).toBeUndefined();
  });

  it('deletes a courier with its history; a later position write does not bring it back', async () => {
    await store.upsertCouriers([{ id: 'dc-gone', vehicle: 'car', capabilities: [], capacity: 1 }, { id: 'dc-kept', vehicle: 'van', capabilities: [], capacity: 2 }]);
    const now = Date.now() - 60_000;
    await store.appendHistory({ ids: ['dc-gone', 'dc-kept'], ...positions([[1, 2, now], [3, 4, now]]) });
    expect(await store.deleteCourier('dc-gone')).toBe(true);
    expect(await store.deleteCourier('dc-gone')).toBe(false);
    await store.writePositions({ ids: ['dc-gone', 'dc-kept'], ...positions([[5, 6, now + 1000], [7, 8, now + 1000]]) });
    const couriers = (await store.loadState()).couriers;
    expect(couriers.find((c) => c.id === 'dc-gone')).toBeUndefined();
    expect(couriers.find((c) => c.id === 'dc-kept')).toMatchObject({ lat: 7, lng: 8, lastPingAt: now + 1000 });
    expect(await store.courierHistory('dc-gone', now - 1, now + 1, 10)).toEqual([]);
    expect(await store.courierHistory('dc-kept', now - 1, now + 1, 10)).toEqual([{ ts: now, lat: 3, lng: 4 }]);
    expect(await store.deleteDonor('dc-no-donor')).toBe(false);
  });

  it('reads a courier\'s history oldest first within [from, to], at most `limit` samples', async () => {
    const start = T0 + 3_600_000;
    const rows: [number, number, number][] = Array.from({ length: 10 }, (_, i) => [10 + i / 100, 20 - i / 100, start + i * 30_000]);
    await store.appendHistory({ ids: rows.map(() => 'hc-1'), ...positions([...rows].reverse()) });
    await store.appendHistory({ ids: ['hc-other'], ...positions([[0, 0, start]]) });
    const all = await store.courierHistory('hc-1', start, start + 9 * 30_000, 100);
    expect(all).toEqual(rows.map(([lat, lng, ts]) => ({ ts, lat, lng })));
    const window = await store.courierHistory('hc-1', start + 30_000, start + 90_000, 100);
    expect(window.map((p) => p.ts)).toEqual([start + 30_000, start + 60_000, start + 90_000]);
    expect((await store.courierHistory('hc-1', start, start + 9 * 30_000, 4)).map((p) => p.ts)).toEqual(rows.slice(0, 4).map((r) => r[2]));
  });
});
