/**
 * IdempotencyKeys against a stand-in store (a Map of rows): which lookups read the store once the filter of
 * stored keys is loaded, and that no key that may be stored is ever answered "unknown" without a read.
 */
import { describe, expect, it } from 'vitest';
import type { IdempotencyRow } from '../store/store.js';
import { ApiError } from './api-error.js';
import { IdempotencyKeys } from './idempotency.js';

const T0 = Date.UTC(2030, 0, 1);
const TTL = 24 * 3_600_000;

function fakeStore(rows: IdempotencyRow[]) {
  const byKey = new Map(rows.map((r) => [`${r.principal}\u0000${r.key}`, r]));
  return {
    reads: 0,
    byKey,
    async findIdempotency(principal: string, key: string, notBefore: number) {
      this.reads++;
      const r = byKey.get(`${principal}\u0000${key}`);
      return r !== undefined && r.createdAt >= notBefore ? r : undefined;
    },
    async listIdempotencyKeys(notBefore: number, after: { principal: string; key: string } | undefined, limit: number) {
      const all = [...byKey.values()].filter((r) => r.createdAt >= notBefore).map(({ principal, key }) => ({ principal, key }));
      all.sort((a, b) => (a.principal < b.principal ? -1 : a.principal > b.principal ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      const from = after === undefined ? 0 : all.findIndex((k) => k.principal > after.principal || (k.principal === after.principal && k.key > after.key));
      return from < 0 ? [] : all.slice(from, from + limit);
    },
  };
}

const row = (principal: string, key: string, id: string, createdAt = T0): IdempotencyRow => ({ principal, key, requestId: id, bodyHash: 'h', status: 201, reply: { id }, createdAt });

describe('IdempotencyKeys with the filter of stored keys', () => {
  it('replays stored keys (loaded over several pages) and answers new keys without a store read', async () => {
    // 25,000 stored keys: more than two load pages
    const store = fakeStore(Array.from({ length: 25_000 }, (_, i) => row(`requester:${i % 7}`, `k${i}`, `r${i}`)));
    const keys = new IdempotencyKeys(store, TTL, () => T0 + 1000);
    await keys.load();
    const replay = await keys.run('requester:2', 'k24999', 'h', async () => expect.fail('a stored key must not create again'));
    expect(replay).toEqual({ status: 201, body: { id: 'r24999' }, headers: { 'idempotent-replayed': 'true' } });
    const readsBefore = store.reads;
    let created = 0;
    for (let i = 0; i < 500; i++) {
      await keys.run('requester:3', `new-${i}`, 'h', async () => ({ status: 201, body: { id: `n${i}`, n: created++ } }));
    }
    expect(created).toBe(500);
    // a few false "maybe"s of the filter read the store; almost every new key does not
    expect(store.reads - readsBefore).toBeLessThan(10);
  });

  it('reads the store for a key whose create failed or is unknown, so a stored outcome is never missed', async () => {
    const store = fakeStore([]);
    const keys = new IdempotencyKeys(store, TTL, () => T0);
    await keys.load();
    // the create fails in a way that may still have stored it (an unknown commit outcome)
    await expect(keys.run('requester:1', 'retry-me', 'h', async () => {
      store.byKey.set('requester:1\u0000retry-me', row('requester:1', 'retry-me', 'r-late'));
      throw new ApiError(504, 'E_STORE_TIMEOUT', 'not known whether it was stored');
    })).rejects.toThrow('not known');
    const reads = store.reads;
    const again = await keys.run('requester:1', 'retry-me', 'h', async () => expect.fail('the stored key must be found'));
    expect(store.reads).toBe(reads + 1);
    expect(again.body).toEqual({ id: 'r-late' });
  });

  it('reads the store for every new key until the filter is loaded', async () => {
    const store = fakeStore([row('requester:1', 'old', 'r-old')]);
    const keys = new IdempotencyKeys(store, TTL, () => T0);
    await keys.run('requester:1', 'fresh', 'h', async () => ({ status: 201, body: { id: 'r-fresh' } }));
    expect(store.reads).toBe(1);
    expect((await keys.run('requester:1', 'old', 'h', async () => expect.fail('stored'))).body).toEqual({ id: 'r-old' });
  });
});
