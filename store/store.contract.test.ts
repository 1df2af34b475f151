/**
 * One contract suite over every Store (what only one implementation has: store-backends.test.ts): PGlite always, real PostgreSQL + PostGIS when TEST_DATABASE_URL is set
 * (in a throwaway schema per run, so parallel runs do not collide). Tests share one store per implementation
 * and keep apart by id prefix, seq range and map region.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distanceMeters } from '../engine/geodesy.js';
import { seededRandom } from '../fixtures/prng.js';
import { SCHEMA_VERSION } from './migrations.js';
import { dropTestSchema } from './test-database.js';
import { PgStore } from './pg-store.js';
import { PGliteStore } from './pglite-store.js';
import type { SqlStore } from './sql-store.js';
import { StoreClosed, storeFailureKind } from './store-errors.js';
import {
  type CourierRow,
  type IdempotencyRow,
  type RequestRow,
  type ReservationRow,
  type SiteRow,
  type Store,
  type StoredRequest,
  type Transition,
  openStore,
} from './store.js';

interface Implementation {
  name: string;
  open(): Promise<SqlStore>;
  /** Drops whatever the run created. */
  cleanup(): Promise<void>;
}

const implementations: Implementation[] = [
  {
    name: 'pglite',
    open: async () => {
      const store = await PGliteStore.open('memory://');
      await store.migrate();
      return store;
    },
    cleanup: async () => undefined,
  },
];

const databaseUrl = process.env.TEST_DATABASE_URL;
if (databaseUrl) {
  const schema = `gd_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  implementations.push({
    name: 'pg',
    open: async () => (await openStore({ databaseUrl, dataDir: 'unused', schema })) as PgStore,
    cleanup: () => dropTestSchema(databaseUrl, schema),
  });
}

const T0 = Date.UTC(2030, 0, 1);
// pings an hour old: in the past of the database clock, as real pings are (T0 would count as a bogus future ping)
const P0 = Date.now() - 3_600_000;

describe.each(implementations)('the $name store', (impl) => {
  let store: SqlStore;

  beforeAll(async () => {
    store = await impl.open();
  }, 120_000);

  afterAll(async () => {
    await store?.close();
    await impl.cleanup();
  });

  it('migrations run once and are idempotent (version recorded)', async () => {
    expect(await store.migrate()).toBe(SCHEMA_VERSION);
    expect(await store.migrate()).toBe(SCHEMA_VERSION);
    expect(await store.appliedMigrations()).toEqual([
      { version: 1, name: 'initial schema' },
      { version: 2, name: 'idempotency keys, request reference and role' },
      { version: 3, name: 'no spatial index on the couriers written behind' },
      { version: 4, name: 'request lists newest first' },
      { version: 5, name: 'webhooks: outbox numbering of events, registry, delivery log' },
      { version: 6, name: 'region epochs: fencing for cluster cores' },
      { version: 7, name: 'cluster dispatch: seq blocks per region taken, open requests per requester' },
    ]);
    expect((await store.loadState()).schemaVersion).toBe(SCHEMA_VERSION);
  });

  it('upserts round-trip through loadState', async () => {
    await store.upsertSites([
      { id: 'rt-bank', kind: 'blood_bank', name: 'Bank', lat: 48.85, lng: 2.35, capacity: 10, occupancy: 3 },
      { id: 'rt-shelter', kind: 'shelter', name: 'Shelter', lat: 48.86, lng: 2.36, open: false },
    ]);
    // occupancy omitted keeps the stored value; capacity omitted means unlimited
    await store.upsertSites([{ id: 'rt-bank', kind: 'blood_bank', name: 'Bank 2', lat: 48.851, lng: 2.351 }]);
    const expiry = T0 + 86_400_000;
    await store.upsertInventory('rt-bank', [
      { product: 'red_cells', bloodType: 'O-', expiresAt: expiry, count: 4 },
      { product: 'plasma', bloodType: 'A+', expiresAt: expiry + 1, count: 2 },
    ]);
    await store.upsertDonors([{ id: 'rt-donor', bloodType: 'B+', lat: 48.8, lng: 2.3, available: true, lastDonation: { red_cells: T0 - 1000 } }]);
    await store.upsertCouriers([{ id: 'rt-courier', vehicle: 'van', capabilities: ['cold_chain', 'bulky'], capacity: 3, status: 'available' }]);
    await store.upsertCouriers([{ id: 'rt-courier', vehicle: 'car', capabilities: ['cold_chain'], capacity: 2 }]);
    const square = { type: 'Polygon' as const, coordinates: [[[2.3, 48.8], [2.4, 48.8], [2.4, 48.9], [2.3, 48.9], [2.3, 48.8]]] };
    await store.putGeofence({ id: 'rt-fence', kind: 'zone', geometry: { type: 'Feature', geometry: square, properties: {} } });
    await store.putGeofence({ id: 'rt-gone', kind: 'zone', geometry: square });
    await store.deleteGeofence('rt-gone');
    await store.saveCellSpeeds([{ cell: 'rt-cell', mps: 4.5, samples: 12 }]);
    await store.saveCellSpeeds([{ cell: 'rt-cell', mps: 5.25, samples: 13 }]);

    const s = await store.loadState();
    expect(s.sites.filter((x) => x.id.startsWith('rt-'))).toEqual([
      { id: 'rt-bank', kind: 'blood_bank', name: 'Bank 2', lat: 48.851, lng: 2.351, capacity: Infinity, occupancy: 3, open: true },
      { id: 'rt-shelter', kind: 'shelter', name: 'Shelter', lat: 48.86, lng: 2.36, capacity: Infinity, occupancy: 0, open: false },
    ]);
    expect(s.inventory.get('rt-bank')).toEqual([
      { product: 'red_cells', bloodType: 'O-', expiresAt: expiry, count: 4, reserved: 0 },
      { product: 'plasma', bloodType: 'A+', expiresAt: expiry + 1, count: 2, reserved: 0 },
    ]);
    expect(s.donors.filter((x) => x.id.startsWith('rt-'))).toEqual([
      { id: 'rt-donor', bloodType: 'B+', lat: 48.8, lng: 2.3, available: true, lastDonation: { red_cells: T0 - 1000 } },
    ]);
    expect(s.couriers.filter((x) => x.id.startsWith('rt-'))).toEqual([
      { id: 'rt-courier', vehicle: 'car', capabilities: ['cold_chain'], capacity: 2, status: 'available' },
    ]);
    expect(s.geofences.filter((x) => x.id.startsWith('rt-'))).toEqual([{ id: 'rt-fence', kind: 'zone', geometry: square }]);
    expect(s.cellSpeeds.filter((x) => x.cell.startsWith('rt-'))).toEqual([{ cell: 'rt-cell', mps: 5.25, samples: 13 }]);

    // a new feed keeps listed lots' reserved units and drops unlisted lots; one that would leave a lot fewer units
    // than open reservations hold there is refused (fleet-store.contract.test.ts has the cases)
    await commit(store, { seq: 1_000, at: T0, reservationsMade: [{ requestId: 'rt-r', siteId: 'rt-bank', product: 'red_cells', bloodType: 'O-', expiresAt: expiry, count: 3 }] });
    await expect(store.upsertInventory('rt-bank', [{ product: 'red_cells', bloodType: 'O-', expiresAt: expiry, count: 2 }])).rejects.toMatchObject({ code: 'E_SITE_RESERVED' });
    await store.upsertInventory('rt-bank', [{ product: 'red_cells', bloodType: 'O-', expiresAt: expiry, count: 3 }]);
    expect((await store.loadState()).inventory.get('rt-bank')).toEqual([{ product: 'red_cells', bloodType: 'O-', expiresAt: expiry, count: 3, reserved: 3 }]);
  });

  it('writePositions of 10,000 couriers in one call then loadState shows the latest positions', async () => {
    const n = 10_000;
    const couriers: CourierRow[] = [];
    for (let i = 0; i < n; i++) couriers.push({ id: `wp-${i}`, vehicle: 'bike', capabilities: [], capacity: 1 });
    await store.upsertCouriers(couriers);
    const ids = couriers.map((c) => c.id);
    const first = positions(n, (i) => [10 + i * 1e-4, 20 + i * 1e-4, P0 + 1000]);
    await store.writePositions({ ids, ...first, status: ids.map(() => 'available') });
    // second batch: even couriers move; odd ones send a stale ping (ignored); one unknown id (skipped);
    // courier 0 appears twice and the later ping wins
    const moved = positions(n + 2, (i) => (i >= n ? [1, 1, P0 + 3000] : [30 + i * 1e-4, 40 + i * 1e-4, i % 2 === 0 ? P0 + 2000 : P0 + 500]));
    moved.lat[n] = 5;
    moved.lng[n] = 6;
    await store.writePositions({ ids: [...ids, 'wp-0', 'wp-unknown'], ...moved });

    const s = await store.loadState();
    const got = new Map(s.couriers.filter((c) => c.id.startsWith('wp-')).map((c) => [c.id, c]));
    expect(got.size).toBe(n);
    expect(got.get('wp-0')).toMatchObject({ lat: 5, lng: 6, lastPingAt: P0 + 3000, status: 'available' });
    for (let i = 1; i < n; i++) {
      const c = got.get(`wp-${i}`)!;
      const [lat, lng, ts] = i % 2 === 0 ? [30 + i * 1e-4, 40 + i * 1e-4, P0 + 2000] : [10 + i * 1e-4, 20 + i * 1e-4, P0 + 1000];
      expect(c.lat).toBeCloseTo(lat, 9);
      expect(c.lng).toBeCloseTo(lng, 9);
      expect(c.lastPingAt).toBe(ts);
      expect(c.status).toBe('available');
    }
  }, 120_000);

  it('appendHistory + purgeHistory removes exactly the older rows', async () => {
    const n = 100;
    const ids = Array.from({ length: n }, (_, i) => `hist-${i % 7}`);
    await store.appendHistory({ ids, ...positions(n, (i) => [1 + i * 1e-3, 2, T0 + i * 1000]) });
    expect(await store.purgeHistory(T0 + 40_000)).toBe(40);
    expect(await store.purgeHistory(T0 + 40_000)).toBe(0);
    expect(await store.purgeHistory(T0 + 100_000)).toBe(60);
  });

  it('commitTransition is atomic: a transition that violates the one-live-assignment constraint rolls back entirely', async () => {
    await store.upsertCouriers([
      { id: 'at-c1', vehicle: 'car', capabilities: [], capacity: 1, status: 'available' },
      { id: 'at-c2', vehicle: 'car', capabilities: [], capacity: 1, status: 'available' },
    ]);
    await commit(store, {
      seq: 2_001,
      at: T0,
      requests: [request('at-r1', 'assigned')],
      offers: [{ id: 'at-o1', requestId: 'at-r1', courierId: 'at-c1', status: 'accepted', createdAt: T0, expiresAt: T0 + 15_000 }],
      assignmentsStarted: [{ requestId: 'at-r1', courierId: 'at-c1', offerId: 'at-o1', createdAt: T0 }],
      courierStatus: [{ id: 'at-c1', status: 'busy' }],
      events: [{ seq: 2_001, at: T0, type: 'request.assigned', requestId: 'at-r1', courierId: 'at-c1', payload: { offerId: 'at-o1' } }],
    });
    const before = await store.loadState();

    const bad: Transition = {
      seq: 2_002,
      at: T0 + 1,
      requests: [request('at-r2', 'pending')],
      requestStatus: [{ id: 'at-r1', status: 'picked_up' }],
      offers: [{ id: 'at-o2', requestId: 'at-r1', courierId: 'at-c2', status: 'live', createdAt: T0 + 1, expiresAt: T0 + 15_001 }],
      assignmentsStarted: [{ requestId: 'at-r1', courierId: 'at-c2', offerId: 'at-o2', createdAt: T0 + 1 }],
      reservationsMade: [{ requestId: 'at-r2', siteId: 'nowhere', product: 'plasma', bloodType: 'A+', expiresAt: T0, count: 1 }],
      courierStatus: [{ id: 'at-c2', status: 'busy' }],
      events: [{ seq: 2_002, at: T0 + 1, type: 'request.created', requestId: 'at-r2' }],
    };
    await expect(store.commitTransition(bad)).rejects.toThrow(/assignments_one_live|unique/i);
    // a group is one database transaction: a good transition grouped with the bad one is not stored either
    const good: Transition = { seq: 2_003, at: T0 + 2, requests: [request('at-r3', 'pending')], events: [{ seq: 2_003, at: T0 + 2, type: 'request.created', requestId: 'at-r3' }] };
    await expect(store.commitTransitions([good, bad])).rejects.toThrow(/assignments_one_live|unique/i);

    const after = await store.loadState();
    const mine = (s: typeof after) => ({
      requests: s.requests.filter((r) => r.id.startsWith('at-')),
      offers: s.offers.filter((o) => o.id.startsWith('at-')),
      assignments: s.assignments.filter((a) => a.requestId.startsWith('at-')),
      reservations: s.reservations.filter((r) => r.requestId.startsWith('at-')),
      couriers: s.couriers.filter((c) => c.id.startsWith('at-')),
    });
    expect(mine(after)).toEqual(mine(before));
    expect(mine(after).requests).toEqual([request('at-r1', 'assigned')]);
    expect(mine(after).assignments).toEqual([{ requestId: 'at-r1', courierId: 'at-c1', offerId: 'at-o1', createdAt: T0 }]);
    expect(after.lastEventSeq).toBe(before.lastEventSeq);

    // the failed seq was not burnt: the corrected transition (end the old assignment first) commits
    await commit(store, { ...bad, requestStatus: [{ id: 'at-r1', status: 'assigned' }], assignmentsEnded: [{ requestId: 'at-r1' }], reservationsMade: [] });
    const fixed = await store.loadState();
    expect(fixed.assignments.filter((a) => a.requestId === 'at-r1')).toEqual([{ requestId: 'at-r1', courierId: 'at-c2', offerId: 'at-o2', createdAt: T0 + 1 }]);
    expect(fixed.requests.map((r) => r.id).filter((id) => id.startsWith('at-'))).toEqual(['at-r1', 'at-r2']);
    // and the good one, grouped again behind a replay of a stored seq (which writes nothing), is stored
    await store.commitTransitions([{ ...bad, requestStatus: [{ id: 'at-r1', status: 'cancelled' }] }, good]);
    const regrouped = await store.loadState();
    expect(regrouped.requests.map((r) => r.id).filter((id) => id.startsWith('at-'))).toEqual(['at-r1', 'at-r2', 'at-r3']);
    expect(regrouped.requests.find((r) => r.id === 'at-r1')?.status).toBe('assigned');
    expect(fixed.lastEventSeq).toBeGreaterThanOrEqual(2_002);
  });

  it('commitTransition is idempotent by seq: the same seq twice is a no-op', async () => {
    await store.upsertSites([{ id: 'id-bank', kind: 'blood_bank', name: 'B', lat: 1, lng: 1 }]);
    await store.upsertInventory('id-bank', [{ product: 'red_cells', bloodType: 'A+', expiresAt: T0, count: 5 }]);
    const t: Transition = {
      seq: 3_001,
      at: T0,
      requests: [request('id-r1', 'pending')],
      reservationsMade: [{ requestId: 'id-r1', siteId: 'id-bank', product: 'red_cells', bloodType: 'A+', expiresAt: T0, count: 2 }],
      events: [{ seq: 3_001, at: T0, type: 'request.created', requestId: 'id-r1' }],
    };
    await store.commitTransition(t);
    await store.commitTransition(t);
    // a replay with different content under the same seq changes nothing either
    await store.commitTransition({ ...t, requestStatus: [{ id: 'id-r1', status: 'cancelled' }] });
    const s = await store.loadState();
    expect(s.inventory.get('id-bank')).toEqual([{ product: 'red_cells', bloodType: 'A+', expiresAt: T0, count: 5, reserved: 2 }]);
    expect(s.reservations.filter((r) => r.requestId === 'id-r1')).toHaveLength(1);
    expect(s.requests.filter((r) => r.id === 'id-r1')).toEqual([request('id-r1', 'pending')]);
  });

  it('reservations released are not in loadState, and neither are issued ones', async () => {
    await store.upsertSites([{ id: 'rs-bank', kind: 'blood_bank', name: 'B', lat: 2, lng: 2 }]);
    await store.upsertInventory('rs-bank', [
      { product: 'red_cells', bloodType: 'O+', expiresAt: T0, count: 6 },
      { product: 'red_cells', bloodType: 'O-', expiresAt: T0, count: 4 },
    ]);
    const keep: ReservationRow = { requestId: 'rs-r1', siteId: 'rs-bank', product: 'red_cells', bloodType: 'O+', expiresAt: T0, count: 1 };
    const release: ReservationRow = { ...keep, requestId: 'rs-r2', count: 2 };
    const issue: ReservationRow = { ...keep, requestId: 'rs-r3', bloodType: 'O-', count: 3 };
    await commit(store, { seq: 4_001, at: T0, reservationsMade: [keep, release, issue] });
    await commit(store, { seq: 4_002, at: T0 + 1, reservationsReleased: [release], reservationsIssued: [issue] });
    await commit(store, { seq: 4_003, at: T0 + 2, reservationsReleased: [release] }); // released once only

    const s = await store.loadState();
    expect(s.reservations.filter((r) => r.requestId.startsWith('rs-'))).toEqual([keep]);
    expect(s.inventory.get('rs-bank')).toEqual([
      { product: 'red_cells', bloodType: 'O+', expiresAt: T0, count: 6, reserved: 1 },
      { product: 'red_cells', bloodType: 'O-', expiresAt: T0, count: 1, reserved: 0 },
    ]);
  });

  it('geography columns answer a KNN query with the right ids', async () => {
    // an empty corner of the map (the Tasman Sea), far from every other test's points
    const rng = seededRandom(7);
    const sites: SiteRow[] = [];
    for (let i = 0; i < 200; i++) sites.push({ id: `knn-${i}`, kind: 'hospital', name: `H${i}`, lat: -40 + rng() * 2, lng: 160 + rng() * 2 });
    await store.upsertSites(sites);
    await store.upsertCouriers(sites.map((s) => ({ id: s.id, vehicle: 'car', capabilities: [], capacity: 1 })));
    await store.writePositions({ ids: sites.map((s) => s.id), ...positions(sites.length, (i) => [sites[i].lat, sites[i].lng, P0]) });
    for (let q = 0; q < 20; q++) {
      const lat = -40 + rng() * 2;
      const lng = 160 + rng() * 2;
      const oracle = [...sites].sort((a, b) => distanceMeters(lat, lng, a.lat, a.lng) - distanceMeters(lat, lng, b.lat, b.lng)).slice(0, 3).map((s) => s.id);
      expect(await store.nearest('sites', lat, lng, 3)).toEqual(oracle);
      expect(await store.nearest('couriers', lat, lng, 3)).toEqual(oracle);
    }
  });

  it('after close ping() answers false without throwing and every other call rejects with StoreClosed, an unavailable failure', async () => {
    const other = await impl.open();
    expect(await other.ping()).toBe(true);
    await other.close();
    await expect(other.ping()).resolves.toBe(false);
    await other.close(); // twice is fine
    const calls: (() => Promise<unknown>)[] = [
      () => other.loadState(),
      () => other.commitTransition({ seq: 1, at: T0, requests: [request('cl-r', 'pending')] }),
      () => other.writePositions({ ids: ['cl-c'], ...positions(1, () => [1, 1, P0]) }),
      () => other.findIdempotency('requester:cl', 'k', 0),
      () => other.getRequest('cl-r'),
      () => other.migrate(),
    ];
    for (const call of calls) {
      const err = await call().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(StoreClosed);
      expect((err as Error).message).toBe('the store is closed: open a new one to read or write');
      expect(storeFailureKind(err)).toBe('unavailable');
    }
  }, 120_000);

  it('idempotency rows commit with their request and findIdempotency answers only that principal and key from notBefore on', async () => {
    const row: IdempotencyRow = {
      principal: 'requester:alice',
      key: 'ik-1',
      requestId: 'ik-r1',
      bodyHash: 'sha256:1f2e',
      status: 201,
      reply: { id: 'ik-r1', status: 'pending', legs: ['ik-r1'] },
      createdAt: T0 + 500,
    };
    await commit(store, { seq: 7_001, at: T0 + 500, requests: [request('ik-r1', 'pending')], idempotency: [row], events: [{ seq: 7_001, at: T0 + 500, type: 'request.created', requestId: 'ik-r1' }] });

    expect(await store.findIdempotency('requester:alice', 'ik-1', T0)).toEqual(row);
    expect(await store.findIdempotency('requester:alice', 'ik-1', T0 + 500)).toEqual(row);
    expect(await store.findIdempotency('requester:alice', 'ik-1', T0 + 501)).toBeUndefined();
    expect(await store.findIdempotency('requester:alice', 'ik-other', T0)).toBeUndefined();
    expect(await store.findIdempotency('dispatcher:alice', 'ik-1', T0)).toBeUndefined();
    expect(await store.findIdempotency('requester:bob', 'ik-1', T0)).toBeUndefined();
    expect((await store.getRequest('ik-r1'))?.request).toEqual(request('ik-r1', 'pending'));
  });

  it('a transition reusing a stored (principal, key) is refused as invalid, leaves nothing behind and does not burn its seq', async () => {
    const first: IdempotencyRow = { principal: 'requester:dana', key: 'dk-1', requestId: 'dk-r1', bodyHash: 'h1', status: 201, reply: { id: 'dk-r1' }, createdAt: T0 };
    await commit(store, { seq: 7_011, at: T0, requests: [request('dk-r1', 'pending')], idempotency: [first] });
    const before = await store.loadState();

    const again: Transition = {
      seq: 7_012,
      at: T0 + 1,
      requests: [request('dk-r2', 'pending')],
      idempotency: [{ ...first, requestId: 'dk-r2', bodyHash: 'h2', reply: { id: 'dk-r2' }, createdAt: T0 + 1 }],
      events: [{ seq: 7_012, at: T0 + 1, type: 'request.created', requestId: 'dk-r2' }],
    };
    const err = await store.commitTransition(again).then(() => undefined, (e: unknown) => e);
    expect((err as { code?: string }).code).toBe('23505');
    expect(storeFailureKind(err)).toBe('invalid');

    const after = await store.loadState();
    expect(after.requests.filter((r) => r.id.startsWith('dk-'))).toEqual([request('dk-r1', 'pending')]);
    expect(after.lastEventSeq).toBe(before.lastEventSeq);
    expect(await store.getRequest('dk-r2')).toBeUndefined();
    expect(await store.findIdempotency('requester:dana', 'dk-1', 0)).toEqual(first);

    // the same seq with a fresh key commits
    const corrected = { ...again.idempotency![0], key: 'dk-2' };
    await commit(store, { ...again, idempotency: [corrected] });
    expect((await store.getRequest('dk-r2'))?.request).toEqual(request('dk-r2', 'pending'));
    expect(await store.findIdempotency('requester:dana', 'dk-2', 0)).toEqual(corrected);
    expect((await store.loadState()).lastEventSeq).toBeGreaterThanOrEqual(7_012);
  });

  it('a transition creating a request id that exists is refused as invalid and changes nothing', async () => {
    const mine: RequestRow = { ...request('ex-r1', 'pending'), requesterId: 'alice', payload: { note: 'mine' } };
    await commit(store, { seq: 7_021, at: T0, requests: [mine] });

    const theirs: Transition = {
      seq: 7_022,
      at: T0 + 1,
      requests: [{ ...mine, requesterId: 'mallory', payload: { note: 'theirs' }, status: 'cancelled' }],
      idempotency: [{ principal: 'requester:mallory', key: 'ex-k', requestId: 'ex-r1', bodyHash: 'h', status: 201, reply: {}, createdAt: T0 + 1 }],
      events: [{ seq: 7_022, at: T0 + 1, type: 'request.created', requestId: 'ex-r1' }],
    };
    const err = await store.commitTransition(theirs).then(() => undefined, (e: unknown) => e);
    expect((err as { code?: string }).code).toBe('23505');
    expect(storeFailureKind(err)).toBe('invalid');

    expect(await store.getRequest('ex-r1')).toEqual({ request: mine, legs: [], assignments: [], reservations: [], offers: [] });
    expect(await store.findIdempotency('requester:mallory', 'ex-k', 0)).toBeUndefined();

    // the seq is still free for a request with a new id
    await commit(store, { ...theirs, requests: [{ ...theirs.requests![0], id: 'ex-r2' }], idempotency: [] });
    expect((await store.getRequest('ex-r2'))?.request.requesterId).toBe('mallory');
  });

  it('reference and requesterRole round-trip through loadState and are absent when not given', async () => {
    const withBoth: RequestRow = { ...request('rf-r1', 'pending'), reference: 'PO-1234/ward 7', requesterRole: 'dispatcher' };
    await commit(store, { seq: 7_031, at: T0, requests: [withBoth, request('rf-r2', 'pending')] });
    const s = await store.loadState();
    expect(s.requests.filter((r) => r.id.startsWith('rf-'))).toEqual([withBoth, request('rf-r2', 'pending')]);
  });

  it('two requests of one requester may carry the same idempotencyKey, which is informational since schema 2', async () => {
    const a: RequestRow = { ...request('sk-r1', 'pending'), idempotencyKey: 'same' };
    const b: RequestRow = { ...request('sk-r2', 'pending'), idempotencyKey: 'same' };
    await commit(store, { seq: 7_035, at: T0, requests: [a, b] });
    expect((await store.loadState()).requests.filter((r) => r.id.startsWith('sk-'))).toEqual([a, b]);
  });

  it('a reference longer than 128 characters is refused as invalid', async () => {
    const t: Transition = { seq: 7_041, at: T0, requests: [{ ...request('rl-r1', 'pending'), reference: 'x'.repeat(129) }] };
    const err = await store.commitTransition(t).then(() => undefined, (e: unknown) => e);
    expect((err as { code?: string }).code).toBe('23514');
    expect(storeFailureKind(err)).toBe('invalid');
    await commit(store, { ...t, requests: [{ ...request('rl-r1', 'pending'), reference: 'x'.repeat(128) }] });
    expect((await store.getRequest('rl-r1'))?.request.reference).toBe('x'.repeat(128));
  });

  it('purgeIdempotency deletes exactly the rows created before olderThan and returns how many', async () => {
    // 2001: older than every other test's rows, so the counts are this test's own
    const old = Date.UTC(2001, 0, 1);
    const row = (key: string, createdAt: number): IdempotencyRow => ({ principal: 'admin:root', key, requestId: `pi-${key}`, bodyHash: 'h', status: 201, reply: { id: `pi-${key}` }, createdAt });
    await commit(store, { seq: 7_051, at: old, idempotency: [row('a', old), row('b', old + 1_000), row('c', old + 2_000)] });
    expect(await store.purgeIdempotency(old + 1_000)).toBe(1);
    expect(await store.purgeIdempotency(old + 1_000)).toBe(0);
    expect(await store.findIdempotency('admin:root', 'a', 0)).toBeUndefined();
    expect(await store.findIdempotency('admin:root', 'b', 0)).toEqual(row('b', old + 1_000));
    expect(await store.purgeIdempotency(old + 2_001)).toBe(2);
    expect(await store.findIdempotency('admin:root', 'c', 0)).toBeUndefined();
  });

  it('a key used again after its TTL replaces the expired row; a key within its TTL still refuses the transition', async () => {
    const row = (requestId: string, createdAt: number, replacesBefore?: number): IdempotencyRow => ({
      principal: 'requester:ttl', key: 'again', requestId, bodyHash: 'h', status: 201, reply: { id: requestId }, createdAt, ...(replacesBefore === undefined ? {} : { replacesBefore }),
    });
    await commit(store, { seq: 7_091, at: T0, requests: [request('ttl-r1', 'pending')], idempotency: [row('ttl-r1', T0)] });
    // still within its TTL (the stored row is not older than replacesBefore): refused, nothing stored
    const early: Transition = { seq: 7_092, at: T0 + 10, requests: [request('ttl-r2', 'pending')], idempotency: [row('ttl-r2', T0 + 10, T0)] };
    expect(storeFailureKind(await store.commitTransition(early).then(() => undefined, (e: unknown) => e))).toBe('invalid');
    // expired: the new request and its key row are stored, the old request stays
    await commit(store, { seq: 7_093, at: T0 + 20, requests: [request('ttl-r3', 'pending')], idempotency: [row('ttl-r3', T0 + 20, T0 + 1)] });
    const { replacesBefore: _, ...stored } = row('ttl-r3', T0 + 20);
    expect(await store.findIdempotency('requester:ttl', 'again', 0)).toEqual(stored);
    expect((await store.getRequest('ttl-r1'))?.request.id).toBe('ttl-r1');
    expect(await store.getRequest('ttl-r2')).toBeUndefined();
  });

  it('listIdempotencyKeys pages through the keys created since notBefore, in (principal, key) order', async () => {
    // 2040: newer than every other test's rows, so notBefore leaves only this test's
    const at = Date.UTC(2040, 0, 1);
    const rows = ['b:2', 'a:9', 'a:10', 'b:1', 'a:1'].map((pk, i): IdempotencyRow => {
      const [principal, key] = pk.split(':');
      return { principal: `lk-${principal}`, key, requestId: `lk-${i}`, bodyHash: 'h', status: 201, reply: {}, createdAt: at + i };
    });
    await commit(store, { seq: 7_081, at, idempotency: rows });
    const pages: string[][] = [];
    let after: { principal: string; key: string } | undefined;
    for (;;) {
      const page = await store.listIdempotencyKeys(at + 1, after, 2);
      pages.push(page.map((k) => `${k.principal}:${k.key}`));
      if (page.length < 2) break;
      after = page[page.length - 1];
    }
    // 'b:2' was created before notBefore; text order puts key '10' before '9'
    expect(pages).toEqual([['lk-a:1', 'lk-a:10'], ['lk-a:9', 'lk-b:1'], []]);
  });

  it('getRequest returns a parent with its legs and every assignment, reservation and offer, closed ones included', async () => {
    const parent: RequestRow = { ...request('gr-p', 'pending'), kind: 'blood', urgency: 'urgent', requesterRole: 'requester', idempotencyKey: 'gk', reference: 'ward-7' };
    const leg = (id: string): RequestRow => ({ id, parentId: 'gr-p', kind: 'delivery', urgency: 'urgent', status: 'pending', createdAt: T0, updatedAt: T0, payload: { leg: id } });
    const oNeg: ReservationRow = { requestId: 'gr-p.1', siteId: 'gr-bank', product: 'red_cells', bloodType: 'O-', expiresAt: T0 + 86_400_000, count: 2 };
    const aPos: ReservationRow = { ...oNeg, bloodType: 'A+', count: 1 };
    const held: ReservationRow = { ...oNeg, requestId: 'gr-p.2', product: 'plasma', count: 3 };
    const offer = (id: string, requestId: string, courierId: string, createdAt: number) => ({ id, requestId, courierId, status: 'live' as const, createdAt, expiresAt: createdAt + 15_000 });
    await commit(store, {
      seq: 7_061,
      at: T0,
      requests: [parent, leg('gr-p.1'), leg('gr-p.2')],
      reservationsMade: [oNeg, aPos, held],
      offers: [offer('gr-o1', 'gr-p.1', 'gr-c1', T0), offer('gr-o2', 'gr-p.2', 'gr-c3', T0)],
    });
    await commit(store, {
      seq: 7_062,
      at: T0 + 1_000,
      offerStatus: [{ id: 'gr-o1', status: 'accepted' }, { id: 'gr-o2', status: 'accepted' }],
      assignmentsStarted: [
        { requestId: 'gr-p.1', courierId: 'gr-c1', offerId: 'gr-o1', createdAt: T0 + 1_000 },
        { requestId: 'gr-p.2', courierId: 'gr-c3', offerId: 'gr-o2', createdAt: T0 + 1_000 },
      ],
    });
    await commit(store, {
      seq: 7_063,
      at: T0 + 2_000,
      assignmentsEnded: [{ requestId: 'gr-p.1' }],
      offers: [{ ...offer('gr-o3', 'gr-p.1', 'gr-c2', T0 + 2_000), status: 'accepted', details: { etaS: 300 } }],
      assignmentsStarted: [{ requestId: 'gr-p.1', courierId: 'gr-c2', offerId: 'gr-o3', createdAt: T0 + 2_000 }],
      reservationsReleased: [aPos],
    });
    await commit(store, { seq: 7_064, at: T0 + 3_000, reservationsIssued: [oNeg], requestStatus: [{ id: 'gr-p.1', status: 'picked_up' }] });

    const expected: StoredRequest = {
      request: parent,
      legs: [{ ...leg('gr-p.1'), status: 'picked_up', updatedAt: T0 + 3_000 }, leg('gr-p.2')],
      assignments: [
        { requestId: 'gr-p.1', courierId: 'gr-c1', offerId: 'gr-o1', createdAt: T0 + 1_000, endedAt: T0 + 2_000 },
        { requestId: 'gr-p.2', courierId: 'gr-c3', offerId: 'gr-o2', createdAt: T0 + 1_000 },
        { requestId: 'gr-p.1', courierId: 'gr-c2', offerId: 'gr-o3', createdAt: T0 + 2_000 },
      ],
      reservations: [{ ...oNeg, issuedAt: T0 + 3_000 }, { ...aPos, releasedAt: T0 + 2_000 }, held],
      offers: [
        { ...offer('gr-o1', 'gr-p.1', 'gr-c1', T0), status: 'accepted' },
        { ...offer('gr-o2', 'gr-p.2', 'gr-c3', T0), status: 'accepted' },
        { ...offer('gr-o3', 'gr-p.1', 'gr-c2', T0 + 2_000), status: 'accepted', details: { etaS: 300 } },
      ],
    };
    expect(await store.getRequest('gr-p')).toEqual(expected);
    expect(await store.getRequest('gr-p.1')).toBeUndefined();
    expect(await store.getRequest('gr-unknown')).toBeUndefined();
  });

  it('getRequest of a delivery that is its own single leg has no legs and its own assignments and offers', async () => {
    const own: RequestRow = { ...request('gs-d', 'assigned'), parentId: 'gs-d' };
    const o = { id: 'gs-o1', requestId: 'gs-d', courierId: 'gs-c1', status: 'accepted' as const, createdAt: T0, expiresAt: T0 + 15_000 };
    await commit(store, { seq: 7_071, at: T0, requests: [own], offers: [o], assignmentsStarted: [{ requestId: 'gs-d', courierId: 'gs-c1', offerId: 'gs-o1', createdAt: T0 }] });
    expect(await store.getRequest('gs-d')).toEqual({
      request: own,
      legs: [],
      assignments: [{ requestId: 'gs-d', courierId: 'gs-c1', offerId: 'gs-o1', createdAt: T0 }],
      reservations: [],
      offers: [o],
    });
  });

  it('writePositions overwrites a stored ping from the far future with the next one, then ignores older pings again', async () => {
    await store.upsertCouriers([{ id: 'fut-c', vehicle: 'car', capabilities: [], capacity: 1 }]);
    const now = Date.now();
    const tenYears = 10 * 365 * 86_400_000;
    await store.writePositions({ ids: ['fut-c'], ...positions(1, () => [1, 1, now + tenYears]) });
    await store.writePositions({ ids: ['fut-c'], ...positions(1, () => [2, 2, now]) });
    await store.writePositions({ ids: ['fut-c'], ...positions(1, () => [3, 3, now - 1_000]) });
    const s = await store.loadState();
    expect(s.couriers.filter((c) => c.id === 'fut-c')).toEqual([{ id: 'fut-c', vehicle: 'car', capabilities: [], capacity: 1, status: 'offline', lat: 2, lng: 2, lastPingAt: now }]);
  });
});

/** A request row for the lifecycle tests. */
function request(id: string, status: 'pending' | 'assigned') {
  return { id, kind: 'delivery' as const, urgency: 'routine' as const, status, createdAt: T0, updatedAt: T0, requesterId: 'req-1', payload: { note: id } };
}

async function commit(store: Store, t: Transition): Promise<void> {
  await store.commitTransition(t);
}

function positions(n: number, at: (i: number) => [number, number, number]) {
  const lat = new Float64Array(n);
  const lng = new Float64Array(n);
  const ts = new Float64Array(n);
  for (let i = 0; i < n; i++) [lat[i], lng[i], ts[i]] = at(i);
  return { lat, lng, ts };
}
