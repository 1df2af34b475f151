/**
 * Fencing epochs on both stores, and on real PostgreSQL the part that needs two writers: a core that lost its
 * region cannot commit, and a claim waits for a fenced commit in flight instead of slipping past it.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEQ_BLOCK_SIZE } from './region-fences.js';
import { APPEND_EVENTS, OUTBOX_LOCK } from './webhook-sql.js';
import { StaleEpoch, StockConflict, storeFailureKind } from './store-errors.js';
import { type Store, type Transition, openStore } from './store.js';
import { bothStores, dropTestSchema, testDatabaseUrl, testSchemaName } from './test-database.js';

const T0 = Date.UTC(2030, 0, 1);

/** A request created: the smallest transition with a row to look for afterwards. */
function created(seq: number, id: string): Transition {
  return {
    seq,
    at: T0,
    requests: [{ id, kind: 'delivery', urgency: 'routine', status: 'pending', createdAt: T0, updatedAt: T0, requesterId: 'req-1', payload: {} }],
    events: [{ seq, at: T0, type: 'request.created', requestId: id }],
  };
}

async function requestIds(store: Store): Promise<string[]> {
  return (await store.loadState()).requests.map((r) => r.id).sort();
}

const stores = bothStores('gd_fence');

describe.each(stores)('region fences on the $name store', ({ open }) => {
  let store: Store;
  let done: () => Promise<void>;
  beforeAll(async () => ({ store, done } = await open()));
  afterAll(async () => done());

  it('commits under the claimed epoch and refuses an older or unclaimed one, writing nothing', async () => {
    expect(await store.claimRegion('r-a', 3)).toEqual({ claimed: true, epoch: 3 });
    await store.commitTransitions([created(1, 'a-1')], [{ region: 'r-a', epoch: 3 }]);
    expect(await store.claimRegion('r-a', 4)).toEqual({ claimed: true, epoch: 4 });
    const stale = store.commitTransitions([created(2, 'a-2')], [{ region: 'r-a', epoch: 3 }]);
    await expect(stale).rejects.toBeInstanceOf(StaleEpoch);
    await expect(stale).rejects.toMatchObject({ code: 'E_STALE_EPOCH', region: 'r-a', epoch: 3, storedEpoch: 4 });
    expect(storeFailureKind(await stale.catch((e: unknown) => e))).toBe('invalid');
    await expect(store.commitTransitions([created(3, 'a-3')], [{ region: 'r-never', epoch: 1 }])).rejects.toMatchObject({ storedEpoch: 0 });
    expect(await requestIds(store)).toEqual(['a-1']);
    // the seq refused is not spent: the new holder commits it
    await store.commitTransitions([created(2, 'a-2')], [{ region: 'r-a', epoch: 4 }]);
    expect(await requestIds(store)).toEqual(['a-1', 'a-2']);
  });

  it('hands out seq blocks that never overlap and only grow, above any single process numbering', async () => {
    const blocks = await Promise.all([store.nextSeqBlock(), store.nextSeqBlock(), store.nextSeqBlock()]);
    const sorted = [...blocks].sort((a, b) => a - b);
    expect(new Set(blocks).size).toBe(3);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i] - sorted[i - 1]).toBeGreaterThanOrEqual(SEQ_BLOCK_SIZE);
    expect(sorted[0]).toBeGreaterThanOrEqual(SEQ_BLOCK_SIZE);
    const later = await store.nextSeqBlock();
    expect(later).toBeGreaterThan(sorted[2]);
    // a seq of a block commits like any other
    await store.claimRegion('r-s', 1);
    await store.commitTransitions([created(later + 1, 's-1')], [{ region: 'r-s', epoch: 1 }]);
    expect(await requestIds(store)).toContain('s-1');
    // what a core taking a region reads: the open requests alone, as loadState has them
    const open = await store.loadOpenDispatch();
    expect(open.requests.map((r) => r.id).sort()).toEqual((await store.loadState()).requests.map((r) => r.id).sort());
    expect(open.requests.map((r) => r.id)).toContain('s-1');
  });

  it('never lowers an epoch; the same epoch again is the holder re-claiming', async () => {
    expect(await store.claimRegion('r-b', 7)).toEqual({ claimed: true, epoch: 7 });
    expect(await store.claimRegion('r-b', 5)).toEqual({ claimed: false, epoch: 7 });
    expect(await store.claimRegion('r-b', 7)).toEqual({ claimed: true, epoch: 7 });
    expect(await store.regionEpochs(['r-b', 'r-a', 'r-none'])).toEqual(new Map([['r-a', 4], ['r-b', 7]]));
  });

  it('checks every fence of a group (a core commits for several regions at once)', async () => {
    await store.claimRegion('r-c', 1);
    await store.claimRegion('r-d', 2);
    await expect(store.commitTransitions([created(10, 'c-1')], [{ region: 'r-c', epoch: 1 }, { region: 'r-d', epoch: 1 }])).rejects.toMatchObject({ region: 'r-d' });
    await store.commitTransitions([created(10, 'c-1')], [{ region: 'r-c', epoch: 1 }, { region: 'r-d', epoch: 2 }]);
    expect(await requestIds(store)).toContain('c-1');
  });

  it('refuses a malformed fence as a programming error', async () => {
    await expect(store.claimRegion('', 1)).rejects.toThrow(/region id/);
    await expect(store.claimRegion('r-e', 0)).rejects.toThrow(/positive integer epoch/);
    await expect(store.commitTransitions([created(20, 'e-1')], [{ region: 'r-e', epoch: 1.5 }])).rejects.toThrow(/positive integer epoch/);
  });
});

describe('region fences between two writers on PostgreSQL', () => {
  const url = testDatabaseUrl();
  const schema = testSchemaName('gd_fence2');
  let a: Store;
  let b: Store;
  beforeAll(async () => {
    a = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
    await a.migrate();
    b = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await dropTestSchema(url, schema);
  });

  it('refuses the paused core once the new one has claimed, and lets the new one commit', async () => {
    await a.claimRegion('r-x', 1);
    await a.commitTransitions([created(1, 'x-1')], [{ region: 'r-x', epoch: 1 }]);
    expect(await b.claimRegion('r-x', 2)).toEqual({ claimed: true, epoch: 2 });
    await expect(a.commitTransitions([created(2, 'x-2')], [{ region: 'r-x', epoch: 1 }])).rejects.toBeInstanceOf(StaleEpoch);
    await b.commitTransitions([created(3, 'x-3')], [{ region: 'r-x', epoch: 2 }]);
    expect(await requestIds(b)).toEqual(['x-1', 'x-3']);
  });

  it('makes a claim wait for a fenced commit in flight under the old epoch, so that commit never lands after it', async () => {
    await a.claimRegion('r-y', 1);
    await a.commitTransitions([created(5, 'y-0')], [{ region: 'r-y', epoch: 1 }]);
    // another session holds y-0's row, so core A's next commit stops after its fence check, mid-transaction
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`SET search_path TO ${schema}, public`);
      await client.query('BEGIN');
      await client.query(`SELECT id FROM requests WHERE id = 'y-0' FOR UPDATE`);
      const order: string[] = [];
      const commitA = a
        .commitTransitions([{ seq: 6, at: T0, requestStatus: [{ id: 'y-0', status: 'cancelled' }] }], [{ region: 'r-y', epoch: 1 }])
        .then(() => order.push('a committed'));
      await new Promise((r) => setTimeout(r, 200));
      const claimB = b.claimRegion('r-y', 2).then((r) => (order.push('b claimed'), r));
      await new Promise((r) => setTimeout(r, 300));
      expect(order).toEqual([]);
      await client.query('COMMIT');
      await commitA;
      expect(await claimB).toEqual({ claimed: true, epoch: 2 });
      expect(order).toEqual(['a committed', 'b claimed']);
    } finally {
      await client.end();
    }
  });

  it('numbers events in commit order across writers: an events commit waits while another writer\'s events are uncommitted', async () => {
    await a.claimRegion('r-o', 1);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`SET search_path TO ${schema}, public`);
      // another writer (the hub, another core) inserting events, not committed yet
      await client.query('BEGIN');
      await client.query(OUTBOX_LOCK);
      await client.query(APPEND_EVENTS, [JSON.stringify([{ at: T0, type: 'stock.low', payload: { siteId: 'o' } }])]);
      let committed = false;
      const commitA = a.commitTransitions([created(40, 'o-1')], [{ region: 'r-o', epoch: 1 }]).then(() => (committed = true));
      const appendB = b.appendEvents([{ at: T0, type: 'fence.enter', courierId: 'c-o' }]);
      await new Promise((r) => setTimeout(r, 300));
      // neither may take an outbox_seq that commits before the open one's: a webhook cursor past them would skip it
      expect(committed).toBe(false);
      await client.query('COMMIT');
      await Promise.all([commitA, appendB]);
      const { events } = await b.readOutbox(0, { exact: ['stock.low', 'request.created', 'fence.enter'], prefixes: [] }, 1000);
      const seqOf = (pred: (e: { type: string; requestId?: string }) => boolean): number => events.find(pred)!.outboxSeq;
      const first = seqOf((e) => e.type === 'stock.low');
      expect(seqOf((e) => e.requestId === 'o-1')).toBeGreaterThan(first);
      expect(seqOf((e) => e.type === 'fence.enter')).toBeGreaterThan(first);
    } finally {
      await client.end();
    }
  });

  it('refuses a cluster commit reserving blood units another core took meanwhile (StockConflict), stores nothing of it, and serialises racing reservations', async () => {
    const lot = { siteId: 'bank-s', product: 'red_cells', bloodType: 'O-', expiresAt: T0 + 86_400_000 };
    await a.upsertSites([{ id: 'bank-s', kind: 'blood_bank', name: 'Bank S', lat: 51.5, lng: -0.1 }]);
    await a.upsertInventory('bank-s', [{ product: lot.product, bloodType: lot.bloodType, count: 3, expiresAt: lot.expiresAt }]);
    await a.claimRegion('r-s1', 1);
    await b.claimRegion('r-s2', 1);
    const reserving = (seq: number, id: string, count: number): Transition => ({ ...created(seq, id), reservationsMade: [{ requestId: id, ...lot, count }] });
    // core A reserves 2 of 3; core B's copy still shows 3 and asks for 2: refused, nothing of it stored
    await a.commitTransitions([reserving(50, 'sa-1', 2)], [{ region: 'r-s1', epoch: 1 }]);
    const refused = b.commitTransitions([reserving(51, 'sb-1', 2)], [{ region: 'r-s2', epoch: 1 }]);
    await expect(refused).rejects.toBeInstanceOf(StockConflict);
    await expect(refused).rejects.toMatchObject({ sites: ['bank-s'] });
    expect(storeFailureKind(await refused.catch((e: unknown) => e))).toBe('invalid');
    expect(await requestIds(b)).not.toContain('sb-1');
    // what is left is still there for the asking; a retried group holding the applied transition passes again
    await b.commitTransitions([reserving(52, 'sb-2', 1)], [{ region: 'r-s2', epoch: 1 }]);
    await a.commitTransitions([reserving(50, 'sa-1', 2)], [{ region: 'r-s1', epoch: 1 }]);
    expect((await b.loadStock(['bank-s'])).get('bank-s')).toMatchObject([{ count: 3, reserved: 3 }]);
    // units handed back in the same commit are not counted free (the reserved counter would be capped, then
    // lowered below the reservations held): refused; handed back first, they are taken
    await expect(a.commitTransitions([{ seq: 53, at: T0, reservationsReleased: [{ requestId: 'sa-1', ...lot, count: 2 }] }, reserving(54, 'sa-2', 2)], [{ region: 'r-s1', epoch: 1 }])).rejects.toBeInstanceOf(StockConflict);
    await a.commitTransitions([{ seq: 53, at: T0, reservationsReleased: [{ requestId: 'sa-1', ...lot, count: 2 }] }], [{ region: 'r-s1', epoch: 1 }]);
    await a.commitTransitions([reserving(54, 'sa-2', 2)], [{ region: 'r-s1', epoch: 1 }]);
    // the counter is the units open reservations hold
    expect((await a.loadStock(['bank-s'])).get('bank-s')).toMatchObject([{ count: 3, reserved: 3 }]);

    // two cores racing for the last units of a fresh lot: exactly one gets them
    const lot2 = { ...lot, expiresAt: lot.expiresAt + 1_000 };
    await a.upsertInventory('bank-s', [{ product: lot.product, bloodType: lot.bloodType, count: 3, expiresAt: lot.expiresAt }, { product: lot2.product, bloodType: lot2.bloodType, count: 2, expiresAt: lot2.expiresAt }]);
    const race = await Promise.allSettled([
      a.commitTransitions([{ ...created(60, 'ra-1'), reservationsMade: [{ requestId: 'ra-1', ...lot2, count: 2 }] }], [{ region: 'r-s1', epoch: 1 }]),
      b.commitTransitions([{ ...created(61, 'rb-1'), reservationsMade: [{ requestId: 'rb-1', ...lot2, count: 2 }] }], [{ region: 'r-s2', epoch: 1 }]),
    ]);
    expect(race.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect((race.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toBeInstanceOf(StockConflict);
    expect((await a.loadStock(['bank-s'])).get('bank-s')!.find((l) => l.expiresAt === lot2.expiresAt)).toMatchObject({ count: 2, reserved: 2 });
  });
});
