/**
 * A region's dispatch moving between two cores, on the machine's PostgreSQL (no processes, one bus in memory):
 * the core that lost the region's epoch cannot commit (its accept is refused, nothing stored, nothing kept, the
 * caller told to retry), and the next owner rebuilds the region from the store: the request pending again, the
 * offer live at the hand-over expired, a new offer made and accepted there.
 */
import { unpack } from 'msgpackr';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../api/auth.js';
import { DEFAULT_POLICY } from '../dispatch/dispatch-request.js';
import { CourierIndex } from '../engine/courier-index.js';
import { GeofenceIndex } from '../engine/geofence-index.js';
import { type Store, openStore } from '../store/store.js';
import { dropTestSchema, testDatabaseUrl, testSchemaName } from '../store/test-database.js';
import { DispatchPool } from '../workers/dispatch-pool.js';
import { LocalBus } from './bus.js';
import { CoreDispatch, driverChannel } from './core-dispatch.js';
import { type ForwardedCall, OwnerCommands } from './owner-commands.js';
import { regionOf } from './regions.js';

const P = { lat: 51.5074, lng: -0.1278 };
const REGION = regionOf(P.lat, P.lng);
const requester: Principal = { sub: 'shop-1', role: 'requester', via: 'jwt' };
const driver: Principal = { sub: 'c1', role: 'driver', via: 'jwt' };

describe('a region dispatch handed from one core to another', () => {
  const url = testDatabaseUrl();
  const schema = testSchemaName('gd_cdu');
  let store: Store;
  const bus = new LocalBus();
  const pool = new DispatchPool({ maxThreads: 1 });
  const epochs = new Map<string, number>(); // core name → the epoch it believes it holds REGION under
  let owner = 'core-1';
  const commands = new OwnerCommands(bus, 'e1', { holders: async () => [owner] }, 2_000);
  const frames: Record<string, unknown>[] = [];
  const cores: CoreDispatch[] = [];
  const indexes = new Map<string, CourierIndex>();
  let assignedId = '';

  const core = (name: string, openPerRequester = 100, regionOfCourier: (id: string) => string | undefined = () => undefined): CoreDispatch => {
    const couriers = new CourierIndex();
    couriers.upsert('c1', { vehicle: 'car', capabilities: [], capacity: 1, status: 'available' });
    couriers.move('c1', P.lat + 0.001, P.lng, Date.now());
    indexes.set(name, couriers);
    const c = new CoreDispatch({
      name, bus, store, couriers, planner: pool.planner, borrowCouriers: async () => undefined, regionOfCourier,
      epochOf: (r) => (r === REGION ? epochs.get(name) : undefined),
      policy: { ...DEFAULT_POLICY, mode: 'greedy' }, offerTtlMs: 60_000, tickMs: 20, openPerRequester, idempotencyTtlMs: 60_000,
      fences: new GeofenceIndex(), mapRequest: () => undefined, forgetCourier: (id) => void couriers.remove(id),
      onError: () => undefined,
    });
    cores.push(c);
    return c;
  };
  /** `c` starts and takes REGION under `epoch` (claimed in PostgreSQL), the only core believing it holds it. */
  const takeRegion = async (c: CoreDispatch, name: string, epoch: number): Promise<void> => {
    await c.start();
    expect((await store.claimRegion(REGION, epoch)).claimed).toBe(true);
    epochs.clear();
    epochs.set(name, epoch);
    owner = name;
    c.gain(REGION, epoch);
    await c.settled();
  };
  const ask = (verb: Parameters<OwnerCommands['ask']>[1], call: Partial<ForwardedCall> & { principal: Principal }) =>
    commands.ask(REGION, verb, { params: [], body: undefined, idempotencyKey: undefined, now: Date.now(), ...call });
  const nextOffer = async (not?: string): Promise<{ offerId: string; requestId: string }> => {
    for (const end = Date.now() + 5_000; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
      const i = frames.findIndex((f) => f.t === 'offer' && f.offerId !== not);
      if (i >= 0) return frames.splice(i, 1)[0] as { offerId: string; requestId: string };
    }
    throw new Error(`no offer; frames ${JSON.stringify(frames)}`);
  };

  beforeAll(async () => {
    store = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
    await store.migrate();
    await store.upsertCouriers([{ id: 'c1', vehicle: 'car', capabilities: [], capacity: 1, status: 'available' }]);
    await bus.subscribe(driverChannel('c1'), (_c, payload) => frames.push(unpack(payload) as Record<string, unknown>));
    await commands.start();
  });

  afterAll(async () => {
    for (const c of cores) await c.stop();
    await pool.close();
    await store.close();
    await dropTestSchema(url, schema);
  });

  it('the old owner cannot commit once the epoch moved on; the new one rebuilds, expires the live offer and offers again', async () => {
    const first = core('core-1');
    await first.start();
    expect((await store.claimRegion(REGION, 1)).claimed).toBe(true);
    epochs.set('core-1', 1);
    first.gain(REGION, 1);
    await first.settled();

    const made = await ask('create', { principal: requester, body: { kind: 'delivery', urgency: 'emergency', pickup: P, dropoff: { lat: P.lat + 0.01, lng: P.lng } } });
    expect(made.status).toBe(201);
    const id = (made.body as { id: string }).id;
    expect(id.startsWith(`r.${REGION}.`)).toBe(true);
    const offer = await nextOffer();
    expect(offer.requestId).toBe(id);

    // another core takes the region (core-1 paused past its lease and does not know yet)
    expect((await store.claimRegion(REGION, 2)).claimed).toBe(true);
    await expect(ask('accept', { principal: driver, params: [offer.offerId] })).rejects.toMatchObject({ status: 503, code: 'E_REGION_UNAVAILABLE' });
    const stored = await store.getRequest(id);
    expect(stored?.assignments).toEqual([]);
    expect(stored?.offers.map((o) => o.status)).toEqual(['live']);
    expect(first.report().dispatchRegions).toBe(0); // it stopped serving the region at the first refusal
    await expect(ask('read', { principal: requester, params: [id] })).rejects.toMatchObject({ status: 503 });

    // the new owner: the request comes back pending, the live offer is expired, the leg is offered again
    const second = core('core-2');
    await second.start();
    epochs.set('core-2', 2);
    owner = 'core-2';
    second.gain(REGION, 2);
    await second.settled();
    const again = await nextOffer(offer.offerId);
    expect(again.requestId).toBe(id);
    expect(frames).toContainEqual(expect.objectContaining({ t: 'revoked', offerId: offer.offerId, reason: 'expired' }));
    await expect(ask('accept', { principal: driver, params: [offer.offerId] })).rejects.toMatchObject({ status: 404 });
    expect((await ask('accept', { principal: driver, params: [again.offerId] })).status).toBe(200);
    const read = await ask('read', { principal: requester, params: [id] });
    expect(read.body).toMatchObject({ id, status: 'assigned' });
    assignedId = id;

    // a core that does not hold the region (handed back, nothing loading) answers reads from PostgreSQL, and a
    // cancel of a request still open there with "retry" (its owner must do it), never with a guess
    epochs.delete('core-2');
    second.lose(REGION);
    expect((await ask('read', { principal: requester, params: [id] })).body).toMatchObject({ id, status: 'assigned' });
    await expect(ask('cancel', { principal: requester, params: [id] })).rejects.toMatchObject({ status: 503, code: 'E_REGION_UNAVAILABLE' });
    await expect(ask('read', { principal: { ...requester, sub: 'shop-2' }, params: [id] })).rejects.toMatchObject({ status: 404 });

    const after = await store.getRequest(id);
    expect(after?.assignments).toHaveLength(1);
    expect(Object.fromEntries(after!.offers.map((o) => [o.id, o.status]))).toEqual({ [offer.offerId]: 'expired', [again.offerId]: 'accepted' });
    // each seq once, the new owner's above the old one's
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      const rows = (await db.query<{ seq: string; type: string; offer: string | null }>(`SELECT seq::text, type, payload->>'offerId' AS offer FROM "${schema}".events WHERE request_id = $1 ORDER BY seq`, [id])).rows;
      expect(rows[0].type).toBe('request.created');
      expect(rows.filter((r) => r.type === 'request.created')).toHaveLength(1);
      expect(rows.filter((r) => r.type === 'offer.accepted')).toHaveLength(1);
      // the old owner's offer is numbered in its block, everything the new owner did above it, in order
      const made = rows.filter((r) => r.type === 'offer.created');
      expect(made).toHaveLength(2);
      expect(BigInt(made[1].seq)).toBeGreaterThan(BigInt(made[0].seq) + 1_000_000n);
    } finally {
      await db.end();
    }
  }, 30_000);

  it('bounds a requester\'s open requests across the cluster, and other cores holding a courier follow its status', async () => {
    const third = core('core-3', 3);
    await third.start();
    expect((await store.claimRegion(REGION, 3)).claimed).toBe(true);
    epochs.set('core-3', 3);
    owner = 'core-3';
    third.gain(REGION, 3);
    await third.settled();
    // the assignment restored here is cancelled: c1 is free for what follows
    expect((await ask('cancel', { principal: { sub: 'desk', role: 'dispatcher', via: 'jwt' }, params: [assignedId] })).status).toBe(200);
    frames.length = 0;
    const body = { kind: 'delivery', pickup: P, dropoff: { lat: P.lat + 0.01, lng: P.lng } };
    const shop9: Principal = { sub: 'shop-9', role: 'requester', via: 'jwt' };
    expect((await ask('create', { principal: shop9, body })).status).toBe(201);
    expect((await ask('create', { principal: shop9, body })).status).toBe(201);
    // another core committed one of shop-9's requests in its region
    const at = Date.now();
    await store.commitTransitions([{
      seq: 9_000_000_000_000, at,
      requests: [{ id: 'r.elsewhere.1', kind: 'delivery', urgency: 'routine', status: 'pending', createdAt: at, updatedAt: at, requesterId: 'shop-9', requesterRole: 'requester', payload: {} }],
      events: [{ seq: 9_000_000_000_000, at, type: 'request.created', requestId: 'r.elsewhere.1' }],
    }]);
    // counted once this core reads the store again (its counts are at most 1 s old): 3 open, the bound
    await new Promise((r) => setTimeout(r, 1_100));
    await expect(ask('create', { principal: shop9, body })).rejects.toMatchObject({ status: 429, code: 'E_TOO_MANY_OPEN_REQUESTS' });
    // this core's own creates count at once
    const shop11: Principal = { ...shop9, sub: 'shop-11' };
    for (let i = 0; i < 3; i++) expect((await ask('create', { principal: shop11, body })).status).toBe(201);
    await expect(ask('create', { principal: shop11, body })).rejects.toMatchObject({ status: 429 });
    // core-1 (no region now) holds c1 too: it follows what core-3's dispatch did with c1 (offered, busy)
    const offered = await nextOffer();
    await new Promise((r) => setTimeout(r, 50));
    expect(indexes.get('core-1')!.get('c1')?.status).toBe(indexes.get('core-3')!.get('c1')?.status);
    expect(['offered', 'busy']).toContain(indexes.get('core-1')!.get('c1')?.status);
    expect((await ask('accept', { principal: driver, params: [offered.offerId] })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
    expect(indexes.get('core-1')!.get('c1')?.status).toBe('busy');
    // creates racing each other on one core count against each other: exactly the bound gets through
    const shop12: Principal = { ...shop9, sub: 'shop-12' };
    const raced = await Promise.allSettled(Array.from({ length: 10 }, () => ask('create', { principal: shop12, body })));
    expect(raced.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    expect(raced.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.status)).toEqual(Array(7).fill(429));
    // one ends here: counted off at once, not a second later
    const first = (raced.find((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{ body: unknown }>).value.body as { id: string };
    expect((await ask('cancel', { principal: shop12, params: [first.id] })).status).toBe(200);
    expect((await ask('create', { principal: shop12, body })).status).toBe(201);
    // another requester is not held back by shop-9
    expect((await ask('create', { principal: { ...shop9, sub: 'shop-10' }, body })).status).toBe(201);
  }, 30_000);

  it('stores the asked shift even when this core\'s copy of the courier trails another core\'s change', async () => {
    await takeRegion(core('core-5', 100, (id) => (id === 'c1' ? REGION : undefined)), 'core-5', 5);
    const shift = (status: string) => commands.askCore('core-5', '', 'courierStatus', { params: ['c1'], body: { status }, idempotencyKey: undefined, now: Date.now(), principal: driver });
    // whatever c1 carries is cancelled first: a courier on a leg keeps its status, as in one process
    for (const r of await store.listRequests({ limit: 100 })) {
      if (r.status !== 'delivered' && r.status !== 'cancelled' && r.status !== 'failed' && r.id.startsWith(`r.${REGION}.`)) {
        await ask('cancel', { principal: { sub: 'desk', role: 'dispatcher', via: 'jwt' }, params: [r.id] }).catch(() => undefined);
      }
    }
    expect((await shift('offline')).body).toMatchObject({ id: 'c1', status: 'offline' });
    expect((await store.loadCouriers({ ids: ['c1'] }))[0].status).toBe('offline');
    // another core set it available (stored), and this core did not hear of it
    await store.upsertCouriers([{ id: 'c1', vehicle: 'car', capabilities: [], capacity: 1, status: 'available' }]);
    expect((await shift('offline')).body).toMatchObject({ id: 'c1', status: 'offline' });
    expect((await store.loadCouriers({ ids: ['c1'] }))[0].status).toBe('offline');
    // a courier another core holds is not this core's to answer for
    await expect(commands.askCore('core-5', '', 'courierStatus', { params: ['c9'], body: { status: 'offline' }, idempotencyKey: undefined, now: Date.now(), principal: driver })).rejects.toMatchObject({ code: 'E_NOT_HELD_HERE' });
  }, 30_000);

  it('a blood request comes back on the bank it reserved when the region changes hands, whatever banks were stocked since', async () => {
    const expiresAt = Date.now() + 86_400_000;
    await store.upsertSites([{ id: 'bx', kind: 'blood_bank', name: 'X', lat: P.lat + 0.05, lng: P.lng }, { id: 'hx', kind: 'hospital', name: 'H', lat: P.lat, lng: P.lng }]);
    await store.upsertInventory('bx', [{ product: 'platelets', bloodType: 'AB+', count: 1, expiresAt }]);
    await takeRegion(core('core-6'), 'core-6', 6);
    const made = await ask('create', { principal: requester, body: { kind: 'blood', hospitalSiteId: 'hx', product: 'platelets', bloodType: 'AB+', units: 1, urgency: 'urgent' } });
    expect(made.status).toBe(201);
    const id = (made.body as { id: string }).id;
    // a nearer bank is stocked, then another core takes the region (and its copy has both banks' stock)
    await store.upsertSites([{ id: 'by', kind: 'blood_bank', name: 'Y', lat: P.lat + 0.01, lng: P.lng }]);
    await store.upsertInventory('by', [{ product: 'platelets', bloodType: 'AB+', count: 5, expiresAt }]);
    await takeRegion(core('core-7'), 'core-7', 7);
    const read = await ask('read', { principal: requester, params: [id] });
    expect(read.body).toMatchObject({ id, status: 'pending' });
    expect((await store.getRequest(id))?.request.status).toBe('pending');
    // the reservation stays where it was made, and the new bank's stock is untouched
    expect((await store.loadStock(['bx', 'by'])).get('bx')).toMatchObject([{ count: 1, reserved: 1 }]);
    expect((await store.loadStock(['by'])).get('by')).toMatchObject([{ count: 5, reserved: 0 }]);
  }, 30_000);
});
