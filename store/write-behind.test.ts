import { dropTestSchema } from './test-database.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from './store.js';
import { CourierIndex } from '../engine/courier-index.js';
import { PositionWriteBehind, type PositionStore, type WriteBehindOptions } from './write-behind.js';

type PosBatch = Parameters<PositionStore['writePositions']>[0];
type HistBatch = Parameters<PositionStore['appendHistory']>[0];
interface Row { lat: number; lng: number; ts: number; status?: string }

/** In-memory Store: applies batches in order, can fail, answer ping() false, or hold a call open. */
class FakeStore implements PositionStore {
  batches: PosBatch[] = [];
  history: HistBatch[] = [];
  purges: number[] = [];
  rows = new Map<string, Row>();
  calls = 0;
  failing = false;
  pingOk = true;
  hold: { release: () => void; promise: Promise<void> } | null = null;

  async writePositions(b: PosBatch): Promise<void> {
    this.calls++;
    if (this.hold) await this.hold.promise;
    if (this.failing) throw new Error('connection refused');
    this.batches.push(b);
    for (let i = 0; i < b.ids.length; i++) {
      const prev = this.rows.get(b.ids[i]);
      const status = b.status?.[i] ?? prev?.status;
      this.rows.set(b.ids[i], { lat: b.lat[i], lng: b.lng[i], ts: b.ts[i], ...(status !== undefined ? { status } : {}) });
    }
  }
  async appendHistory(b: HistBatch): Promise<void> {
    this.calls++;
    if (this.failing) throw new Error('connection refused');
    this.history.push(b);
  }
  async purgeHistory(olderThan: number): Promise<number> {
    this.calls++;
    if (this.failing) throw new Error('connection refused');
    this.purges.push(olderThan);
    return 0;
  }
  async ping(): Promise<boolean> {
    return !this.failing && this.pingOk;
  }
  holdNext(): void {
    let release!: () => void;
    const promise = new Promise<void>((r) => { release = r; });
    this.hold = { promise, release: () => { this.hold = null; release(); } };
  }
  writtenIds(): string[] {
    return this.batches.flatMap((b) => b.ids);
  }
}

function fakeClock(t = 1_000_000) {
  return { t, now() { return this.t; } };
}

function build(opts: WriteBehindOptions = {}) {
  const store = new FakeStore();
  const clock = fakeClock();
  const health: boolean[] = [];
  const wb = new PositionWriteBehind(store, { onHealthChange: (h) => health.push(h), ...opts }, clock);
  return { store, clock, wb, health };
}

/** Seeded PRNG (mulberry32) so every run sees the same pings. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('PositionWriteBehind', () => {
  it('coalesces pings so only the latest position per courier is written, in order of first arrival', async () => {
    const { store, wb } = build();
    wb.record('a', 1, 1, 10);
    wb.record('b', 2, 2, 10, 'available');
    wb.record('a', 1.5, 1.5, 11);
    wb.record('b', 2.5, 2.5, 12);
    wb.record('a', 1.7, 1.7, 13);
    expect(wb.stats()).toMatchObject({ buffered: 2, coalesced: 3 });
    expect(await wb.flush()).toBe(true);
    expect(store.batches).toHaveLength(1);
    const b = store.batches[0];
    expect(b.ids).toEqual(['a', 'b']);
    expect([...b.lat]).toEqual([1.7, 2.5]);
    expect([...b.ts]).toEqual([13, 12]);
    expect(b.status).toEqual([undefined, 'available']);
    expect(wb.stats()).toMatchObject({ buffered: 0, written: 2 });
  });

  it('drops a ping older than the one already buffered for that courier', async () => {
    const { store, wb } = build();
    wb.record('a', 1, 1, 20);
    wb.record('a', 9, 9, 15);
    await wb.flush();
    expect([...store.batches[0].lat]).toEqual([1]);
    expect(wb.stats().staleDropped).toBe(1);
  });

  it('keyed by the engine\'s slots, writes a reused slot\'s position under its new courier and drops ids the engine does not know', async () => {
    const couriers = new CourierIndex();
    const profile = { vehicle: 'bike' as const, capabilities: [], capacity: 1 };
    couriers.upsert('gone', profile);
    const { store, wb } = build({ keys: couriers });
    wb.record('gone', 1, 1, 50);
    couriers.remove('gone');
    couriers.upsert('new', profile); // takes the freed slot
    expect(couriers.keyOf('new')).toBe(0);
    wb.record('new', 2, 2, 10); // older than the waiting entry's ping, but another courier's
    wb.record('stranger', 3, 3, 60);
    await wb.flush();
    expect(store.writtenIds()).toEqual(['new']);
    expect([...store.batches[0].lat]).toEqual([2]);
    expect(wb.stats()).toMatchObject({ unknown: 1, staleDropped: 0 });
  });

  it('never holds more than its bound under 1,000,000 pings for 200,000 couriers, shedding the longest-waiting courier', async () => {
    const cap = 50_000;
    const { store, wb } = build({ maxBuffered: cap, batchSize: 5_000, maxHistoryBuffered: 10_000 });
    const rand = prng(7);
    // Model: a FIFO of first arrivals (queue + seq per id, so an evicted id's old entry is skipped) and the latest lat.
    const lineSeq = new Map<string, number>();
    const latest = new Map<string, number>();
    const queue: [string, number][] = [];
    let head = 0;
    let modelShed = 0;
    let maxSeen = 0;
    for (let i = 0; i < 1_000_000; i++) {
      const id = `c${Math.floor(rand() * 200_000)}`;
      const lat = i / 1e6;
      wb.record(id, lat, 0, i);
      if (!lineSeq.has(id)) {
        if (lineSeq.size === cap) {
          while (lineSeq.get(queue[head][0]) !== queue[head][1]) head++;
          lineSeq.delete(queue[head][0]);
          head++;
          modelShed++;
        }
        lineSeq.set(id, i);
        queue.push([id, i]);
      }
      latest.set(id, lat);
      if ((i & 1023) === 0) maxSeen = Math.max(maxSeen, wb.stats().buffered);
    }
    const order = queue.slice(head).filter(([id, seq]) => lineSeq.get(id) === seq).map(([id]) => id);
    const s = wb.stats();
    expect(maxSeen).toBeLessThanOrEqual(cap);
    expect(s.buffered).toBe(cap);
    expect(s.shed).toBe(modelShed);
    expect(s.shed).toBeGreaterThan(0);
    expect(s.historyBuffered).toBe(10_000);
    expect(s.historyShed).toBeGreaterThan(0);
    await wb.flush();
    expect(store.writtenIds()).toEqual(order);
    expect(store.batches.flatMap((b) => [...b.lat])).toEqual(order.map((id) => latest.get(id)));
  });

  it('writes batches of at most batchSize rows, oldest first, one statement per batch', async () => {
    const { store, wb } = build({ batchSize: 1_000 });
    const ids = Array.from({ length: 12_345 }, (_, i) => `k${(i * 7919) % 12_345}`);
    ids.forEach((id, i) => wb.record(id, i, i, i));
    await wb.flush();
    expect(store.batches.map((b) => b.ids.length)).toEqual([...Array(12).fill(1_000), 345]);
    expect(store.writtenIds()).toEqual(ids);
  });

  it('forgets a courier: its waiting position and history are never written, nor re-queued after a batch in flight', async () => {
    const { store, wb } = build({ batchSize: 2 });
    await wb.tick();
    wb.record('a', 1, 1, 1);
    wb.record('b', 2, 2, 2);
    wb.record('c', 3, 3, 3);
    wb.forget('c'); // waiting in line
    store.holdNext();
    const first = wb.tick(); // a and b in flight
    await Promise.resolve();
    wb.record('a', 10, 10, 4); // re-recorded while in flight: would follow the batch …
    wb.forget('a'); // … but the courier is gone
    store.hold!.release();
    await first;
    await wb.flush();
    expect(store.batches.map((b) => b.ids)).toEqual([['a', 'b']]);
    expect(store.history.flatMap((h) => h.ids)).toEqual(['b']);
    expect(wb.stats().buffered).toBe(0);
  });

  it('keeps one batch in flight at a time and re-queues a courier re-recorded while its batch was in flight', async () => {
    const { store, wb, clock } = build({ batchSize: 2 });
    await wb.tick(); // first contact: ping and purge
    store.calls = 0;
    wb.record('a', 1, 1, 1);
    wb.record('b', 2, 2, 2);
    wb.record('c', 3, 3, 3);
    store.holdNext();
    const first = wb.tick();
    await Promise.resolve();
    clock.t += 1_000;
    void wb.tick();
    void wb.tick();
    expect(store.calls).toBe(1);
    wb.record('a', 10, 10, 4); // 'a' is in flight: its newer position must follow
    expect(wb.stats()).toMatchObject({ inFlight: 2, buffered: 3 });
    store.hold!.release();
    await first;
    expect(store.batches.map((b) => b.ids)).toEqual([['a', 'b'], ['c', 'a']]);
    expect(store.rows.get('a')).toEqual({ lat: 10, lng: 10, ts: 4 });
    expect(wb.stats().buffered).toBe(0);
  });

  it('samples history at most once per interval per courier', async () => {
    const { store, wb } = build({ historyEveryMs: 30_000 });
    for (let t = 0; t <= 100_000; t += 1_000) for (const id of ['a', 'b', 'c']) wb.record(id, t, t, t);
    wb.record('a', 0, 0, 120_000);
    await wb.flush();
    const rows = store.history.flatMap((b) => b.ids.map((id, i) => `${id}@${b.ts[i]}`));
    for (const id of ['b', 'c']) expect(rows.filter((r) => r.startsWith(`${id}@`))).toEqual([0, 30_000, 60_000, 90_000].map((t) => `${id}@${t}`));
    expect(rows.filter((r) => r.startsWith('a@'))).toEqual([0, 30_000, 60_000, 90_000, 120_000].map((t) => `a@${t}`));
  });

  it('purges history older than now minus the retention, once per purge period', async () => {
    const { store, wb, clock } = build({ historyRetentionMs: 7 * 86_400_000, purgeEveryMs: 3_600_000 });
    const t0 = clock.t;
    await wb.tick();
    expect(store.purges).toEqual([t0 - 7 * 86_400_000]);
    clock.t += 3_599_999;
    await wb.tick();
    expect(store.purges).toHaveLength(1);
    clock.t += 1;
    await wb.tick();
    expect(store.purges).toEqual([t0 - 7 * 86_400_000, t0 + 3_600_000 - 7 * 86_400_000]);
  });

  it('reports unhealthy when the store throws, keeps the buffer bounded and backs off exponentially up to the cap', async () => {
    const { store, wb, clock, health } = build({ maxBuffered: 100, batchSize: 10, backoffMinMs: 100, backoffMaxMs: 1_000 });
    store.failing = true;
    wb.record('x', 0, 0, 0);
    await wb.tick();
    expect(wb.isHealthy()).toBe(false);
    expect(health).toEqual([false]);
    const attempts: number[] = [];
    let failures = wb.stats().failures;
    let n = 0;
    for (let ms = 0; ms <= 10_000; ms += 10) {
      clock.t += 10;
      for (let i = 0; i < 5; i++) wb.record(`c${n++ % 300}`, ms, ms, ms);
      await wb.tick();
      if (wb.stats().failures > failures) { attempts.push(ms); failures = wb.stats().failures; }
      expect(wb.stats().buffered).toBeLessThanOrEqual(100);
    }
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
    expect(gaps.slice(0, 4)).toEqual([200, 400, 800, 1_000]);
    expect(new Set(gaps.slice(3))).toEqual(new Set([1_000]));
    expect(wb.stats().shed).toBeGreaterThan(0);
    expect(health).toEqual([false]);
  });

  it('reports unhealthy when ping() answers false even with nothing to write', async () => {
    const { store, wb, clock, health } = build({ pingEveryMs: 5_000 });
    await wb.tick();
    expect(wb.isHealthy()).toBe(true);
    store.pingOk = false;
    clock.t += 5_000;
    await wb.tick();
    expect(wb.isHealthy()).toBe(false);
    expect(wb.stats().lastError).toMatch(/ping/);
    store.pingOk = true;
    clock.t += 60_000;
    await wb.tick();
    expect(health).toEqual([false, true]);
  });

  it('recovers after an outage: healthy again and every courier ends with exactly its latest position', async () => {
    const { store, wb, clock, health } = build({ maxBuffered: 20_000, batchSize: 500, backoffMaxMs: 2_000 });
    const rand = prng(42);
    const model = new Map<string, Row>();
    const ping = (n: number) => {
      for (let i = 0; i < n; i++) {
        const id = `d${Math.floor(rand() * 5_000)}`;
        const row = { lat: rand() * 90, lng: rand() * 180, ts: clock.t };
        const status = rand() < 0.01 ? (rand() < 0.5 ? 'available' : 'offline') : undefined;
        wb.record(id, row.lat, row.lng, row.ts, status);
        const st = status ?? model.get(id)?.status;
        model.set(id, { ...row, ...(st !== undefined ? { status: st } : {}) });
      }
    };
    for (let step = 0; step < 50; step++) { ping(200); clock.t += 100; await wb.tick(); }
    store.failing = true;
    for (let step = 0; step < 300; step++) { ping(200); clock.t += 100; await wb.tick(); }
    expect(wb.isHealthy()).toBe(false);
    expect(wb.stats().buffered).toBeLessThanOrEqual(20_000);
    store.failing = false;
    for (let step = 0; step < 50; step++) { ping(200); clock.t += 100; await wb.tick(); }
    clock.t += 2_000;
    await wb.flush();
    expect(wb.isHealthy()).toBe(true);
    expect(health).toEqual([false, true]);
    expect(wb.stats().shed).toBe(0);
    expect(new Map(store.rows)).toEqual(model);
  });

  it('counts a store call that never answers as a failure after callTimeoutMs', async () => {
    const { store, wb } = build({ callTimeoutMs: 30 });
    await wb.tick();
    wb.record('a', 1, 1, 1);
    store.holdNext();
    await wb.flush();
    expect(wb.isHealthy()).toBe(false);
    expect(wb.stats().lastError).toMatch(/timed out/);
    expect(wb.stats().buffered).toBe(1);
    store.hold!.release();
  });

  it('throws with the fix when batchSize does not fit the buffer', () => {
    expect(() => new PositionWriteBehind(new FakeStore(), { maxBuffered: 10, batchSize: 6 })).toThrow(/lower batchSize/);
  });
});

const stores: { name: string; open: () => Promise<{ store: Store; drop: () => Promise<void> }> }[] = [
  { name: 'PGlite', open: async () => { const store = await openStore({ dataDir: 'memory://' }); return { store, drop: async () => {} }; } },
];
if (process.env.TEST_DATABASE_URL) {
  const url = process.env.TEST_DATABASE_URL;
  stores.push({
    name: 'PostgreSQL',
    open: async () => {
      const schema = `wb_${process.pid}_${Date.now().toString(36)}`;
      const store = await openStore({ databaseUrl: url, dataDir: '', schema });
      return { store, drop: () => dropTestSchema(url, schema) };
    },
  });
}

describe.each(stores)('PositionWriteBehind over the real store ($name)', ({ open }) => {
  let store: Store;
  let drop: () => Promise<void>;
  beforeAll(async () => { ({ store, drop } = await open()); }, 120_000);
  afterAll(async () => { await store?.close(); await drop?.(); });

  it('writes 50,000 pings behind so that loadState holds every courier\'s latest position', async () => {
    const couriers = 5_000;
    await store.upsertCouriers(Array.from({ length: couriers }, (_, i) => ({ id: `r${i}`, vehicle: 'bike' as const, capabilities: [], capacity: 1 })));
    const wb = new PositionWriteBehind(store, { batchSize: 5_000 });
    const rand = prng(99);
    const model = new Map<string, Row>();
    const t0 = Date.UTC(2025, 0, 1);
    for (let i = 0; i < 50_000; i++) {
      const id = `r${Math.floor(rand() * couriers)}`;
      const row = { lat: Math.round((51.4 + rand() * 0.2) * 1e6) / 1e6, lng: Math.round((-0.2 + rand() * 0.3) * 1e6) / 1e6, ts: t0 + i };
      const status = i % 97 === 0 ? 'available' : undefined;
      wb.record(id, row.lat, row.lng, row.ts, status);
      const st = status ?? model.get(id)?.status ?? 'offline';
      model.set(id, { ...row, status: st });
      if (i % 10_000 === 9_999) await wb.tick();
    }
    expect(await wb.flush()).toBe(true);
    expect(wb.isHealthy()).toBe(true);
    const state = await store.loadState();
    const got = new Map(state.couriers.map((c) => [c.id, c]));
    for (const [id, want] of model) {
      const c = got.get(id)!;
      expect(c.lat).toBeCloseTo(want.lat, 9);
      expect(c.lng).toBeCloseTo(want.lng, 9);
      expect({ id, ts: c.lastPingAt, status: c.status }).toEqual({ id, ts: want.ts, status: want.status });
    }
    expect(wb.stats()).toMatchObject({ shed: 0, failures: 0 });
  }, 120_000);

  it('drops the one row the store refuses and writes the rest, staying healthy', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `poison${i}`);
    await store.upsertCouriers(ids.map((id) => ({ id, vehicle: 'car' as const, capabilities: [], capacity: 1 })));
    const wb = new PositionWriteBehind(store, { batchSize: 16, maxBuffered: 64 });
    const t0 = Date.now() - 60_000;
    ids.forEach((id, i) => wb.record(id, 51.5 + i * 1e-4, -0.1, i === 13 ? 5e-324 : t0 + i)); // 5e-324 ms underflows to_timestamp
    expect(await wb.flush()).toBe(true);
    expect(wb.isHealthy()).toBe(true);
    expect(wb.stats()).toMatchObject({ poisoned: 2, failures: 0 }); // the position row and its history sample
    const stored = new Map((await store.loadState()).couriers.map((c) => [c.id, c]));
    for (const [i, id] of ids.entries()) expect(stored.get(id)?.lastPingAt, id).toBe(i === 13 ? undefined : t0 + i);
  }, 60_000);
});

