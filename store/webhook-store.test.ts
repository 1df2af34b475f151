/**
 * The webhook store over every implementation (PGlite; PostgreSQL with TEST_DATABASE_URL): the outbox numbers
 * lifecycle and loose events in one sequence, a new webhook starts after the events already stored, the cursor
 * only moves forward, the delivery log counts attempts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PGliteStore } from './pglite-store.js';
import { type Store, openStore } from './store.js';
import { dropTestSchema, testSchemaName } from './test-database.js';
import { eventFilter } from './webhook-store.js';

const impls: { name: string; open: () => Promise<Store>; cleanup: () => Promise<void> }[] = [
  { name: 'pglite', open: async () => { const s = await PGliteStore.open('memory://'); await s.migrate(); return s; }, cleanup: async () => undefined },
];
const url = process.env.TEST_DATABASE_URL;
if (url) {
  const schema = testSchemaName('gd_hooks');
  impls.push({ name: 'pg', open: () => openStore({ databaseUrl: url, dataDir: 'unused', schema }), cleanup: () => dropTestSchema(url, schema) });
}

const T0 = Date.UTC(2030, 0, 1);

describe.each(impls)('the webhook store on $name', (impl) => {
  let store: Store;
  beforeAll(async () => { store = await impl.open(); });
  afterAll(async () => { await store.close(); await impl.cleanup(); });

  it('numbers lifecycle and loose events in one outbox sequence, in commit order', async () => {
    await store.commitTransition({ seq: 10, at: T0, events: [{ seq: 9, at: T0, type: 'request.created', requestId: 'r1' }, { seq: 10, at: T0, type: 'donor.callout', requestId: 'r1', payload: { called: 2 } }] });
    await store.appendEvents([{ at: T0 + 1, type: 'fence.enter', courierId: 'c1', payload: { fenceId: 'f1' } }]);
    await store.commitTransition({ seq: 11, at: T0 + 2, events: [{ at: T0 + 2, type: 'stock.low', payload: { siteId: 'b1' } }] });
    const { events, scannedTo } = await store.readOutbox(0, eventFilter(['*']), 100);
    expect(events.map((e) => e.type)).toEqual(['request.created', 'donor.callout', 'fence.enter', 'stock.low']);
    expect(events.map((e) => e.outboxSeq)).toEqual([...events.map((e) => e.outboxSeq)].sort((a, b) => a - b));
    expect(scannedTo).toBe(events[3].outboxSeq);
    expect(events[1]).toMatchObject({ requestId: 'r1', payload: { called: 2 }, at: T0 });
    expect(events[2]).toMatchObject({ courierId: 'c1', payload: { fenceId: 'f1' } });
    expect((await store.loadState()).lastEventSeq).toBe(11);
  });

  it('filters by exact names and prefixes, and says how far it looked when nothing matched', async () => {
    const all = await store.readOutbox(0, eventFilter(['*']), 100);
    const newest = all.events.at(-1)!.outboxSeq;
    const fences = await store.readOutbox(0, eventFilter(['fence.*']), 100);
    expect(fences.events.map((e) => e.type)).toEqual(['fence.enter']);
    expect(fences.scannedTo).toBe(newest);
    const exact = await store.readOutbox(0, eventFilter(['stock.low', 'request.created']), 1);
    expect(exact.events.map((e) => e.type)).toEqual(['request.created']);
    expect(exact.scannedTo).toBe(exact.events[0].outboxSeq);
    expect((await store.readOutbox(0, eventFilter(['request%']), 100)).events).toEqual([]);
  });

  it('starts a new webhook after the newest stored event and keeps its cursor when it is updated', async () => {
    const newest = (await store.readOutbox(0, eventFilter(['*']), 100)).scannedTo;
    const hook = await store.putWebhook({ id: 'h1', url: 'https://example.com/a', events: ['request.*'], secret: 'x'.repeat(16), at: T0 });
    expect(hook).toMatchObject({ id: 'h1', url: 'https://example.com/a', events: ['request.*'], cursor: newest, createdAt: T0, updatedAt: T0 });
    await store.appendEvents([{ at: T0 + 5, type: 'request.test' }]);
    await store.recordDeliveries('h1', [], newest + 1);
    const again = await store.putWebhook({ id: 'h1', url: 'https://example.com/b', events: ['offer.*'], secret: 'y'.repeat(16), at: T0 + 9 });
    expect(again).toMatchObject({ url: 'https://example.com/b', events: ['offer.*'], cursor: newest + 1, createdAt: T0, updatedAt: T0 + 9 });
    await store.recordDeliveries('h1', [], newest);
    expect((await store.listWebhooks()).find((h) => h.id === 'h1')?.cursor).toBe(newest + 1);
  });

  it('counts attempts per event in the delivery log, newest first, and forgets them with the webhook', async () => {
    await store.putWebhook({ id: 'h2', url: 'https://example.com/', events: ['*'], secret: 's'.repeat(16), at: T0 });
    await store.recordDeliveries('h2', [{ outboxSeq: 7, type: 'request.created', status: 500, error: 'HTTP 500', nextAttemptAt: T0 + 1000, at: T0 }]);
    await store.recordDeliveries('h2', [{ outboxSeq: 7, type: 'request.created', status: 200, deliveredAt: T0 + 1001, at: T0 + 1001 }, { outboxSeq: 8, type: 'offer.created', status: 204, deliveredAt: T0 + 1002, at: T0 + 1002 }], 8);
    const log = await store.listDeliveries('h2', undefined, 10);
    expect(log).toEqual([
      { seq: 8, type: 'offer.created', attempts: 1, lastStatus: 204, deliveredAt: T0 + 1002, updatedAt: T0 + 1002 },
      { seq: 7, type: 'request.created', attempts: 2, lastStatus: 200, deliveredAt: T0 + 1001, updatedAt: T0 + 1001 },
    ]);
    expect(await store.listDeliveries('h2', 8, 10)).toHaveLength(1);
    expect(await store.purgeDeliveries(T0 + 1002)).toBe(1);
    expect(await store.deleteWebhook('h2')).toBe(true);
    expect(await store.deleteWebhook('h2')).toBe(false);
    expect(await store.listDeliveries('h2', undefined, 10)).toBeUndefined();
    // a record for a webhook deleted meanwhile is dropped, not an error
    await store.recordDeliveries('h2', [{ outboxSeq: 9, type: 'x', status: 200, deliveredAt: T0, at: T0 }], 9);
  });
});
