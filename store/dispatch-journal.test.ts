/**
 * The journal's promise to its callers, on a scripted store (a unit test: the real stores are covered by the
 * contract suite and the end-to-end suites): stored before acknowledged, refused changes taken back out of
 * memory, one bad change never wedging the queue, an unknown outcome retried until known.
 */
import { describe, expect, it } from 'vitest';
import { DispatchLoop } from '../dispatch/dispatch-loop.js';
import { DEFAULT_POLICY } from '../dispatch/dispatch-request.js';
import { CourierIndex } from '../engine/courier-index.js';
import { DonorIndex } from '../engine/donor-index.js';
import { SiteIndex } from '../engine/site-index.js';
import { CommitFailure, DispatchJournal, type JournalStore, MAX_GROUP } from './dispatch-journal.js';
import { CommitOutcomeUnknown } from './store-errors.js';
import type { Transition } from './store.js';

const T0 = Date.UTC(2026, 0, 5, 9);

/** A store whose next answers are scripted: 'ok', an error, or 'hang'. */
class ScriptedStore implements JournalStore {
  readonly committed: number[] = [];
  readonly calls: number[] = [];
  script: ('ok' | 'hang' | Error)[] = [];
  reachable = true;

  /** Store calls, each with the seqs it carried (a group is one call). */
  readonly groups: number[][] = [];
  /** Transitions the store refuses as invalid (a constraint), wherever they come. */
  refuse: (t: Transition) => boolean = () => false;

  // all or none, as one database transaction
  async commitTransitions(ts: readonly Transition[]): Promise<void> {
    for (const t of ts) this.calls.push(t.seq);
    this.groups.push(ts.map((t) => t.seq));
    const next = this.script.shift() ?? 'ok';
    await new Promise((r) => setTimeout(r, 1));
    if (next === 'hang') return new Promise(() => undefined);
    if (next instanceof Error) throw next;
    if (ts.some(this.refuse)) throw sqlError('23505');
    for (const t of ts) if (!this.committed.includes(t.seq)) this.committed.push(t.seq);
  }

  async ping(): Promise<boolean> {
    return this.reachable;
  }
}

function world(store: ScriptedStore, options: ConstructorParameters<typeof DispatchJournal>[3] = {}) {
  const couriers = new CourierIndex();
  for (const id of ['k1', 'k2', 'k3']) {
    couriers.upsert(id, { vehicle: 'car', capabilities: [], capacity: 1 });
    couriers.move(id, 51.5, -0.1, T0);
  }
  const loop = new DispatchLoop({ couriers, sites: new SiteIndex(), donors: new DonorIndex(), policy: { ...DEFAULT_POLICY, mode: 'greedy' } });
  const journal = new DispatchJournal(store, loop, 1, { backoffMinMs: 5, backoffMaxMs: 20, ...options });
  /** A courier status change made in memory and handed to the journal, as the pump does. */
  const status = (id: string, to: 'available' | 'offline') => {
    expect(loop.setCourierStatus(id, to, T0).ok).toBe(true);
    const { events, rollback } = loop.drainTransition();
    return journal.record(events, rollback);
  };
  const statusOf = (id: string) => couriers.get(id)!.status;
  return { loop, journal, status, statusOf };
}

const failure = (p: Promise<unknown>): Promise<CommitFailure> => p.then(() => { throw new Error('expected a CommitFailure'); }, (err: CommitFailure) => err);
const sqlError = (code: string): Error => Object.assign(new Error(`sqlstate ${code}`), { code });

describe('DispatchJournal', () => {
  it('acknowledges a change once the store holds it, in the order changes were made', async () => {
    const store = new ScriptedStore();
    const { status, journal } = world(store);
    const a = status('k1', 'available');
    const b = status('k2', 'available');
    await Promise.all([a.acknowledged, b.acknowledged, a.stored, b.stored]);
    expect(store.committed).toHaveLength(2);
    expect(store.committed[0]).toBeLessThan(store.committed[1]);
    expect(journal.committed).toBe(2);
  });

  it('takes every queued change back out of memory when the store is unreachable, refuses new ones until it answers again', async () => {
    const store = new ScriptedStore();
    const changes: boolean[] = [];
    const { status, statusOf, journal } = world(store, { onHealthChange: (healthy) => changes.push(healthy) });
    store.script = [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })];
    store.reachable = false;
    const a = status('k1', 'available');
    const b = status('k2', 'available');
    expect([statusOf('k1'), statusOf('k2')]).toEqual(['available', 'available']);
    expect((await failure(a.acknowledged)).kind).toBe('unavailable');
    expect((await failure(b.stored)).kind).toBe('unavailable');
    expect([statusOf('k1'), statusOf('k2')]).toEqual(['offline', 'offline']);
    expect(journal.isHealthy()).toBe(false);
    // while down a change is refused at once and taken back
    const c = status('k3', 'available');
    expect((await failure(c.acknowledged)).kind).toBe('unavailable');
    expect(statusOf('k3')).toBe('offline');
    store.reachable = true;
    for (let i = 0; i < 100 && !journal.isHealthy(); i++) await new Promise((r) => setTimeout(r, 5));
    expect(journal.isHealthy()).toBe(true);
    await status('k1', 'available').acknowledged;
    expect(statusOf('k1')).toBe('available');
    expect(changes).toEqual([false, true]);
  });

  it('drops a change the store refuses, and the dispatch changes built on it, without wedging the queue or turning unhealthy', async () => {
    const store = new ScriptedStore();
    const { status, statusOf, journal } = world(store);
    store.script = [sqlError('23505')];
    const refused = status('k1', 'available');
    const after = status('k2', 'available');
    const applied: string[] = [];
    const write = journal.write(async () => undefined, () => applied.push('w'));
    expect((await failure(refused.acknowledged)).kind).toBe('refused');
    expect((await failure(after.acknowledged)).kind).toBe('dropped');
    await write.acknowledged;
    expect(applied).toEqual(['w']);
    expect([statusOf('k1'), statusOf('k2')]).toEqual(['offline', 'offline']);
    expect(journal.isHealthy()).toBe(true);
    await status('k3', 'available').acknowledged;
    expect(statusOf('k3')).toBe('available');
  });

  it('keeps a change whose commit answer was lost, tells the caller at once, and retries it until the store has it', async () => {
    const store = new ScriptedStore();
    const { status, statusOf, journal } = world(store);
    store.script = [new CommitOutcomeUnknown(new Error('Connection terminated unexpectedly')), new CommitOutcomeUnknown(new Error('again'))];
    const a = status('k1', 'available');
    expect((await failure(a.acknowledged)).kind).toBe('uncertain');
    expect(statusOf('k1')).toBe('available');
    await a.stored;
    expect(store.calls).toHaveLength(3);
    expect(new Set(store.calls).size).toBe(1); // the same transition (seq) each time
    expect(journal.isHealthy()).toBe(true);
  });

  it('treats a store call that never answers as an unknown outcome', async () => {
    const store = new ScriptedStore();
    const { status, journal } = world(store, { callTimeoutMs: 30 });
    store.script = ['hang'];
    const a = status('k1', 'available');
    expect((await failure(a.acknowledged)).kind).toBe('uncertain');
    await a.stored;
    expect(store.committed).toHaveLength(1);
    expect(journal.backlog).toBe(0);
  });

  it('applies a store-first write to memory only after the store took it, and never when it refused', async () => {
    const store = new ScriptedStore();
    const { journal } = world(store);
    const applied: string[] = [];
    let stored = false;
    const ok = journal.write(async () => {
      expect(applied).toEqual([]);
      stored = true;
    }, () => applied.push('ok'));
    await ok.acknowledged;
    expect([stored, applied]).toEqual([true, ['ok']]);
    const refused = journal.write(async () => {
      throw sqlError('23503');
    }, () => applied.push('refused'));
    expect((await failure(refused.acknowledged)).kind).toBe('refused');
    expect(applied).toEqual(['ok']);
  });
});

describe('DispatchJournal after an unknown outcome', () => {
  it('never takes back a change that may be stored, even when the store is then unreachable for a while', async () => {
    const store = new ScriptedStore();
    const { status, statusOf } = world(store);
    const down = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    store.script = [new CommitOutcomeUnknown(new Error('lost')), down, down];
    const a = status('k1', 'available');
    expect((await failure(a.acknowledged)).kind).toBe('uncertain');
    await a.stored;
    expect(statusOf('k1')).toBe('available');
    expect(store.calls).toHaveLength(4);
  });
});

describe('DispatchJournal groups the transitions waiting at its head', () => {
  it('stores the changes queued behind a store call together, in one call, in order, and acknowledges each', async () => {
    const store = new ScriptedStore();
    const { status, journal } = world(store);
    const changes = [status('k1', 'available'), status('k2', 'available'), status('k3', 'available'), status('k1', 'offline')];
    await Promise.all(changes.map((c) => c.acknowledged));
    expect(store.groups.map((g) => g.length)).toEqual([1, 3]);
    expect(store.committed).toEqual([...store.committed].sort((a, b) => a - b));
    expect(journal.committed).toBe(4);
  });

  it('a refused group goes one by one: only the refused change is dropped and taken back, the others are stored', async () => {
    const store = new ScriptedStore();
    store.refuse = (t) => t.courierStatus?.some((c) => c.id === 'k3') ?? false;
    const { status, statusOf, journal } = world(store);
    const first = status('k1', 'available');
    const ok = status('k2', 'available');
    const bad = status('k3', 'available');
    expect(statusOf('k3')).toBe('available');
    await Promise.all([first.acknowledged, ok.acknowledged]);
    expect((await failure(bad.acknowledged)).kind).toBe('refused');
    expect(store.groups.map((g) => g.length)).toEqual([1, 2, 1, 1]);
    expect([statusOf('k1'), statusOf('k2'), statusOf('k3')]).toEqual(['available', 'available', 'offline']);
    expect(journal.committed).toBe(2);
    expect(journal.backlog).toBe(0);
  });

  it('never takes more than MAX_GROUP transitions in one call', async () => {
    const store = new ScriptedStore();
    const { status, journal } = world(store);
    const changes = Array.from({ length: MAX_GROUP + 10 }, (_, i) => status(`k${1 + (i % 3)}`, i % 2 ? 'offline' : 'available'));
    await Promise.all(changes.map((c) => c.acknowledged));
    expect(Math.max(...store.groups.map((g) => g.length))).toBe(MAX_GROUP);
    expect(journal.committed).toBe(MAX_GROUP + 10);
  });
});

describe('DispatchJournal and the loop\'s parents', () => {
  it('writes a blood request\'s parent row and its legs\' parentId from the loop\'s parents, even when the loop forgot it before the publish', async () => {
    const transitions: Transition[] = [];
    const store: JournalStore = { commitTransitions: async (ts) => void transitions.push(...ts), ping: async () => true };
    const sites = new SiteIndex();
    sites.upsert('bank', { kind: 'blood_bank', name: 'Bank', lat: 51.5, lng: -0.1 });
    sites.setInventory('bank', [{ product: 'red_cells', bloodType: 'O+', count: 5, expiresAt: T0 + 10 * 86_400_000 }]);
    const loop = new DispatchLoop({ couriers: new CourierIndex(), sites, donors: new DonorIndex(), policy: { ...DEFAULT_POLICY, mode: 'greedy' } });
    const journal = new DispatchJournal(store, loop, 1);
    const dropoff = { lat: 51.51, lng: -0.12 };
    const submission = { id: 'b1', kind: 'blood' as const, urgency: 'urgent' as const, createdAt: T0, requesterId: 'h1', dropoff, blood: { product: 'red_cells' as const, bloodType: 'O+' as const, units: 2 } };
    const res = loop.submit(submission, T0);
    if (!res.ok) throw new Error(`expected the blood request to be accepted, got ${res.reason}`);
    journal.describe({ id: 'b1', requesterId: 'h1', submission, pickup: { lat: 51.5, lng: -0.1 }, dropoff, legs: res.legs });
    expect(loop.cancel('b1', T0).ok).toBe(true);
    expect(loop.forgetEnded(T0, 0)).toEqual(['b1']);
    const { events, rollback } = loop.drainTransition();
    await journal.record(events, rollback).stored;
    const rows = transitions.flatMap((t) => t.requests ?? []);
    expect(rows.map((r) => [r.id, r.parentId])).toEqual([['b1', undefined], ['b1/bank', 'b1']]);
  });
});
