/**
 * GroupCommits on the machine's PostgreSQL: the regions' commits go into shared transactions, and one region's
 * stale fence in a group fails only that region's call (the others are stored, each outcome reaches its own caller).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StaleEpoch } from '../store/store-errors.js';
import { type Store, type Transition, openStore } from '../store/store.js';
import { dropTestSchema, testDatabaseUrl, testSchemaName } from '../store/test-database.js';
import { GroupCommits } from './group-commits.js';

const T0 = Date.UTC(2030, 0, 1);

function created(seq: number, id: string): Transition {
  return {
    seq, at: T0,
    requests: [{ id, kind: 'delivery', urgency: 'routine', status: 'pending', createdAt: T0, updatedAt: T0, requesterId: 'req-1', payload: {} }],
    events: [{ seq, at: T0, type: 'request.created', requestId: id }],
  };
}

describe('GroupCommits', () => {
  const url = testDatabaseUrl();
  const schema = testSchemaName('gd_grp');
  let store: Store;

  beforeAll(async () => {
    store = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
    await store.migrate();
    for (const r of ['g-a', 'g-b', 'g-c']) await store.claimRegion(r, 1);
  });

  afterAll(async () => {
    await store.close();
    await dropTestSchema(url, schema);
  });

  it('commits many regions\' calls in few transactions, and a stale region fails alone', async () => {
    const commits = new GroupCommits(store);
    await store.claimRegion('g-c', 2); // region g-c moved on: its epoch-1 commits are stale
    const calls = [];
    for (let i = 0; i < 30; i++) {
      const region = ['g-a', 'g-b', 'g-c'][i % 3];
      calls.push(commits.commitTransitions([created(1_000 + i, `${region}-${i}`)], [{ region, epoch: 1 }]).then(() => 'ok', (err: unknown) => err));
    }
    const outcomes = await Promise.all(calls);
    outcomes.forEach((o, i) => (i % 3 === 2 ? expect(o).toBeInstanceOf(StaleEpoch) : expect(o).toBe('ok')));
    const stored = new Set((await store.loadState()).requests.map((r) => r.id));
    for (let i = 0; i < 30; i++) expect(stored.has(`${['g-a', 'g-b', 'g-c'][i % 3]}-${i}`)).toBe(i % 3 !== 2);
    expect(commits.stats.calls).toBe(30);
    expect(commits.stats.groups).toBeLessThan(10); // the first call alone, the rest together (then the stale group call by call)
  });
});
