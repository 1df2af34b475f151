/**
 * Recovery round trips: a dispatch loop journaled into a real (embedded, in-memory) store, the store's state
 * loaded back and rebuilt; the rebuilt loop must hold the same requests, assignments and reservations, and
 * offers that were live must be expired with their requests pending again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DispatchLoop, inlinePlanner } from '../dispatch/dispatch-loop.js';
import { DEFAULT_POLICY } from '../dispatch/dispatch-request.js';
import { CourierIndex } from '../engine/courier-index.js';
import { DonorIndex } from '../engine/donor-index.js';
import { SiteIndex } from '../engine/site-index.js';
import { latLngToCell } from 'h3-js';
import { CellSpeeds } from '../engine/cell-speeds.js';
import { DispatchJournal } from './dispatch-journal.js';
import { recover } from './recovery.js';
import { type Store, openStore } from './store.js';

const T0 = Date.UTC(2026, 0, 5, 9);
const policy = { ...DEFAULT_POLICY, mode: 'greedy' as const };
const EXPIRES = T0 + 10 * 86_400_000;

let sharedStore: Store;
beforeAll(async () => {
  sharedStore = await openStore({ dataDir: 'memory://' });
}, 60_000);
afterAll(async () => {
  await sharedStore?.close();
});

/** The world before the crash: three couriers near a bank and a hospital, stock in the bank. */
async function world(store: Store = sharedStore): Promise<{ loop: DispatchLoop; journal: DispatchJournal; sites: SiteIndex; couriers: CourierIndex }> {
  const couriers = new CourierIndex();
  const sites = new SiteIndex();
  const loop = new DispatchLoop({ couriers, sites, donors: new DonorIndex(), policy, offerIdPrefix: 'boot1-' });
  const siteRows = [
    { id: 'bank', kind: 'blood_bank' as const, name: 'Bank', lat: 51.5, lng: -0.1 },
    { id: 'hosp', kind: 'hospital' as const, name: 'Hospital', lat: 51.51, lng: -0.12 },
  ];
  for (const s of siteRows) sites.upsert(s.id, s);
  const lots = [{ product: 'red_cells' as const, bloodType: 'O+' as const, count: 10, expiresAt: EXPIRES }];
  sites.setInventory('bank', lots);
  await store.upsertSites(siteRows);
  await store.upsertInventory('bank', lots);
  const rows = ['k1', 'k2', 'k3'].map((id) => ({ id, vehicle: 'car' as const, capabilities: ['cold_chain' as const], capacity: 2, status: 'available' as const }));
  await store.upsertCouriers(rows);
  rows.forEach((c, i) => {
    couriers.upsert(c.id, c);
    couriers.move(c.id, 51.5 + i * 0.001, -0.1, T0);
  });
  await store.writePositions({ ids: rows.map((r) => r.id), lat: Float64Array.from([51.5, 51.501, 51.502]), lng: Float64Array.from([-0.1, -0.1, -0.1]), ts: Float64Array.from([T0, T0, T0]) });
  return { loop, journal: new DispatchJournal(store, loop, 1), sites, couriers };
}

/** The loop's events since the last drain with their rollback, as the API's pump hands them to the journal. */
function drained(loop: DispatchLoop): Parameters<DispatchJournal['record']> {
  const { events, rollback } = loop.drainTransition();
  return [events, rollback];
}

describe('recover', () => {
  it('rebuilds assignments and exact reservations, and expires offers that were live', async () => {
    const store = sharedStore;
    const { loop, journal, sites } = await world();
    const submit = (s: Parameters<DispatchLoop['submit']>[0]): string[] => {
      const res = loop.submit(s, T0);
      if (!res.ok) throw new Error(res.reason);
      const pickup = s.kind === 'blood' ? { lat: 51.5, lng: -0.1 } : s.pickup;
      journal.describe({ id: s.id, requesterId: s.requesterId, submission: s, pickup, dropoff: s.dropoff ?? pickup, legs: res.legs });
      journal.record(...drained(loop));
      return res.legs;
    };
    const [bloodLeg] = submit({ id: 'b1', kind: 'blood', urgency: 'emergency', createdAt: T0, requesterId: 'h', dropoff: { lat: 51.51, lng: -0.12 }, blood: { product: 'red_cells', bloodType: 'O+', units: 3 } });
    submit({ id: 'd1', kind: 'delivery', urgency: 'urgent', createdAt: T0, requesterId: 'r', pickup: { lat: 51.5, lng: -0.1 }, dropoff: { lat: 51.52, lng: -0.1 } });
    submit({ id: 'd2', kind: 'delivery', urgency: 'routine', createdAt: T0 + 1, requesterId: 'r', pickup: { lat: 51.5, lng: -0.1 }, dropoff: { lat: 51.52, lng: -0.1 } });
    const offers = loop.tick(T0 + 10, inlinePlanner);
    journal.record(...drained(loop));
    expect(offers.length).toBe(3);
    const bloodOffer = offers.find((o) => o.requestId === bloodLeg)!;
    const d1Offer = offers.find((o) => o.requestId === 'd1')!;
    expect(loop.accept(bloodOffer.id, bloodOffer.courierId, T0 + 20).ok).toBe(true);
    expect(loop.accept(d1Offer.id, d1Offer.courierId, T0 + 20).ok).toBe(true);
    journal.record(...drained(loop)); // d2's offer stays live: the crash comes now
    await journal.settled();
    expect(sites.lots('bank')[0]).toMatchObject({ available: 7, reserved: 3 });

    const state = await store.loadState();
    const d2Offer = offers.find((o) => o.requestId === 'd2')!;
    expect(state.offers.map((o) => o.requestId)).toEqual(['d2']);
    // each process numbers its offers under its own prefix, as api/main.ts does
    const rebuilt = recover(state, { now: T0 + 60_000, createLoop: (e) => new DispatchLoop({ ...e, policy, offerIdPrefix: 'boot2-' }) });

    expect(rebuilt.report.dropped).toEqual([]);
    expect(rebuilt.requests.map((r) => r.id).sort()).toEqual(['b1', 'd1', 'd2']);
    expect(rebuilt.loop.status('b1')).toMatchObject({ status: 'assigned', legs: [{ id: bloodLeg, courierId: bloodOffer.courierId }] });
    expect(rebuilt.loop.status('d1')).toMatchObject({ status: 'assigned', legs: [{ courierId: d1Offer.courierId }] });
    expect(rebuilt.loop.status('d2')?.status).toBe('pending');
    expect(rebuilt.engine.couriers.get(bloodOffer.courierId)?.status).toBe('busy');
    expect(rebuilt.engine.couriers.get(d2Offer.courierId)?.status).toBe('available');
    expect(rebuilt.engine.sites.lots('bank')).toEqual([{ product: 'red_cells', bloodType: 'O+', expiresAt: EXPIRES, available: 7, reserved: 3 }]);
    expect(rebuilt.loop.checkInvariants()).toEqual([]);
    expect(rebuilt.expiry).toMatchObject({ offerStatus: [{ id: d2Offer.id, status: 'expired' }], requestStatus: [{ id: 'd2', status: 'pending' }] });
    expect(rebuilt.expiry!.seq).toBeGreaterThan(state.lastEventSeq);

    // the expiry is stored once; the rebuilt loop re-dispatches d2 and cancelling b1 hands its 3 units back
    const again = new DispatchJournal(store, rebuilt.loop, rebuilt.seqBase);
    await again.commit(rebuilt.expiry!).acknowledged;
    expect((await store.loadState()).offers).toEqual([]);
    expect(rebuilt.loop.tick(T0 + 60_010, inlinePlanner).map((o) => o.requestId)).toEqual(['d2']);
    expect(rebuilt.loop.cancel('b1', T0 + 60_020).ok).toBe(true);
    again.record(...drained(rebuilt.loop));
    await again.settled();
    const after = await store.loadState();
    expect(after.inventory.get('bank')).toMatchObject([{ count: 10, reserved: 0 }]);
    expect(after.reservations).toEqual([]);
    expect(after.requests.map((r) => r.id).sort()).toEqual(['d1', 'd2']);
  }, 60_000);
});

describe('recover, what a driver was told', () => {
  it('keeps the accepted offer id, keeps decliners off a request, and leaves no stand-in unit on an emptied bank', async () => {
    const store = await openStore({ dataDir: 'memory://' });
    try {
      const { loop, journal } = await world(store);
      const submit = (sub: Parameters<DispatchLoop['submit']>[0], pickup: { lat: number; lng: number }): string[] => {
        const res = loop.submit(sub, T0);
        if (!res.ok) throw new Error(res.reason);
        journal.describe({ id: sub.id, requesterId: sub.requesterId, submission: sub, pickup, dropoff: sub.dropoff ?? pickup, legs: res.legs });
        journal.record(...drained(loop));
        return res.legs;
      };
      // all ten units of the bank: once picked up, the bank has no stored stock left
      const [bloodLeg] = submit({ id: 'b2', kind: 'blood', urgency: 'emergency', createdAt: T0, requesterId: 'h', dropoff: { lat: 51.51, lng: -0.12 }, blood: { product: 'red_cells', bloodType: 'O+', units: 10 } }, { lat: 51.5, lng: -0.1 });
      submit({ id: 'd3', kind: 'delivery', urgency: 'urgent', createdAt: T0, requesterId: 'r', pickup: { lat: 51.5, lng: -0.1 }, dropoff: { lat: 51.52, lng: -0.1 } }, { lat: 51.5, lng: -0.1 });
      const offers = loop.tick(T0 + 10, inlinePlanner);
      const bloodOffer = offers.find((o) => o.requestId === bloodLeg)!;
      const d3Offer = offers.find((o) => o.requestId === 'd3')!;
      expect(loop.accept(bloodOffer.id, bloodOffer.courierId, T0 + 20).ok).toBe(true);
      expect(loop.progress(bloodLeg, bloodOffer.courierId, 'picked_up', T0 + 30).ok).toBe(true);
      expect(loop.decline(d3Offer.id, d3Offer.courierId, T0 + 20).ok).toBe(true);
      journal.record(...drained(loop));
      await journal.settled();

      const rebuilt = recover(await store.loadState(), { now: T0 + 60_000, createLoop: (e) => new DispatchLoop({ ...e, policy, offerIdPrefix: 'boot2-' }) });
      expect(rebuilt.report.dropped).toEqual([]);
      expect(rebuilt.loop.lifecycle.assignmentOf(bloodLeg)).toMatchObject({ courierId: bloodOffer.courierId, offerId: bloodOffer.id });
      expect(rebuilt.loop.status('b2')?.status).toBe('picked_up');
      // the picked-up leg's units left the shelf before the crash: nothing on it now, not even the replay's stand-in
      expect(rebuilt.engine.sites.lots('bank')).toEqual([]);
      expect(rebuilt.loop.lifecycle.excludedCouriers('d3')).toEqual([d3Offer.courierId]);
      const [again] = rebuilt.loop.tick(T0 + 60_010, inlinePlanner);
      expect(again?.requestId).toBe('d3');
      expect(again?.courierId).not.toBe(d3Offer.courierId);
      expect(rebuilt.loop.checkInvariants()).toEqual([]);
    } finally {
      await store.close();
    }
  }, 60_000);
});

describe('recover, learned speeds', () => {
  it('restores the cell speeds the server saved, so ETAs after a restart use what was learned before it', async () => {
    const learned = new CellSpeeds();
    const cell = latLngToCell(51.5, -0.1, 7);
    for (let i = 0; i < 5; i++) expect(learned.observe(cell, 120, 10_000)).toBe(true); // 12 m/s
    await sharedStore.saveCellSpeeds(learned.toJSON().cells.map(([c, mps, samples]) => ({ cell: c, mps, samples })));
    const rebuilt = recover(await sharedStore.loadState(), { now: T0, createLoop: (e) => new DispatchLoop({ ...e, policy }) });
    expect(rebuilt.engine.speeds.speedOf(cell)).toEqual(learned.speedOf(cell));
    expect(rebuilt.engine.speeds.speedOf(cell)?.samples).toBe(5);
  }, 60_000);
});
