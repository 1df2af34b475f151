import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PgStore } from './pg-store.js';
import type { Store } from './store.js';
import { startTcpProxy, type CutMode, type TcpProxy } from './tcp-proxy.js';
import { dropTestSchema, testDatabaseUrl } from './test-database.js';
import { PositionWriteBehind, type PositionStore } from './write-behind.js';

type PosBatch = Parameters<PositionStore['writePositions']>[0];
interface Row { lat: number; lng: number; ts: number }

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('TcpProxy', () => {
  it('forwards bytes, resets every connection while cut, and forwards again after restore', async () => {
    const echo = await echoServer();
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: echo.port });
    cleanups.push(() => echo.close(), () => proxy.close());
    const a = await connect(proxy.port);
    expect(await roundTrip(a, 'hello')).toBe('hello');
    const closed = new Promise((r) => a.once('close', r));
    proxy.cut('reset');
    await closed;
    const b = net.connect(proxy.port, '127.0.0.1');
    b.on('error', () => {});
    await new Promise((r) => b.once('close', r));
    proxy.restore();
    const c = await connect(proxy.port);
    expect(await roundTrip(c, 'again')).toBe('again');
    c.destroy();
  });

  it('swallows bytes while blackholed and closes the hung connections on restore', async () => {
    const echo = await echoServer();
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: echo.port });
    cleanups.push(() => echo.close(), () => proxy.close());
    const a = await connect(proxy.port);
    proxy.cut('blackhole');
    let got = '';
    a.on('data', (d) => { got += d; });
    a.write('lost');
    await sleep(100);
    expect(got).toBe('');
    const closed = new Promise((r) => a.once('close', r));
    proxy.restore();
    await closed;
    const c = await connect(proxy.port);
    expect(await roundTrip(c, 'back')).toBe('back');
    c.destroy();
  });
});

describe('PositionWriteBehind through an outage of a fake store, on real timers', () => {
  it('keeps recording from memory while unhealthy and writes every latest position once the store is back', async () => {
    const rows = new Map<string, Row>();
    let down = false;
    const store: PositionStore = {
      async writePositions(b) { if (down) throw new Error('ECONNREFUSED'); b.ids.forEach((id, i) => rows.set(id, { lat: b.lat[i], lng: b.lng[i], ts: b.ts[i] })); },
      async appendHistory() { if (down) throw new Error('ECONNREFUSED'); },
      async purgeHistory() { if (down) throw new Error('ECONNREFUSED'); return 0; },
      async ping() { return !down; },
    };
    const health: boolean[] = [];
    const wb = new PositionWriteBehind(store, { maxBuffered: 1_000, batchSize: 100, flushEveryMs: 10, backoffMinMs: 10, backoffMaxMs: 80, onHealthChange: (h) => health.push(h) });
    wb.start();
    cleanups.push(() => wb.close());
    const model = new Map<string, Row>();
    let ts = 0;
    const round = () => { for (let i = 0; i < 500; i++) { const r = { lat: ts, lng: -ts, ts: ts++ }; wb.record(`f${i}`, r.lat, r.lng, r.ts); model.set(`f${i}`, r); } };
    round();
    down = true;
    await waitFor(() => !wb.isHealthy(), 2_000);
    for (let k = 0; k < 20; k++) { round(); expect(wb.stats().buffered).toBeLessThanOrEqual(500); await sleep(5); }
    down = false;
    await waitFor(() => wb.isHealthy() && wb.stats().buffered === 0, 5_000);
    expect(health).toEqual([false, true]);
    expect(rows).toEqual(model);
  });
});

describe('PositionWriteBehind through a cut connection to the real PostgreSQL', () => {
  it.each<CutMode>(['reset', 'blackhole'])('%s: ingest goes on from memory, healthy=false, then writes resume in order and every courier ends at its latest position', async (mode) => {
    const url = testDatabaseUrl();
    const proxy = await startTcpProxy({ host: new URL(url).hostname, port: Number(new URL(url).port || 5432) });
    cleanups.push(() => proxy.close());
    const viaProxy = new URL(url);
    viaProxy.hostname = proxy.host;
    viaProxy.port = String(proxy.port);
    const schema = `outage_${mode}_${process.pid}_${Date.now().toString(36)}`;
    const store = new PgStore({ databaseUrl: viaProxy.toString(), schema, connectTimeoutMs: 500 });
    cleanups.push(() => dropTestSchema(url, schema), () => store.close());
    await store.migrate();

    const n = 2_000;
    await store.upsertCouriers(Array.from({ length: n }, (_, i) => ({ id: `o${i}`, vehicle: 'car' as const, capabilities: [], capacity: 1 })));
    const spy = spyStore(store);
    const health: boolean[] = [];
    const wb = new PositionWriteBehind(spy, {
      maxBuffered: 4_000, batchSize: 500, flushEveryMs: 20, pingEveryMs: 200,
      backoffMinMs: 50, backoffMaxMs: 400, callTimeoutMs: 1_000, onHealthChange: (h) => health.push(h),
    });
    wb.start();
    cleanups.push(() => wb.close());

    const model = new Map<string, Row>();
    let ts = Date.UTC(2025, 0, 1);
    const rand = prng(mode === 'reset' ? 1 : 2);
    // record() is synchronous (it returns nothing to wait on), so pings never wait on a dead connection; what
    // the outage may change is only what is buffered and written, checked below (no timing assertions here)
    const round = (order: string[]): void => {
      for (const id of order) {
        const r = { lat: Math.round((48.8 + rand() * 0.1) * 1e6) / 1e6, lng: Math.round((2.3 + rand() * 0.1) * 1e6) / 1e6, ts: ts++ };
        wb.record(id, r.lat, r.lng, r.ts);
        model.set(id, r);
      }
    };
    const ids = Array.from({ length: n }, (_, i) => `o${i}`);
    for (let k = 0; k < 3; k++) { round(ids); await sleep(30); }
    expect(await wb.flush()).toBe(true);

    proxy.cut(mode);
    const firstOrder = shuffle(ids, rand);
    round(firstOrder);
    let maxBuffered = 0;
    for (let k = 0; k < 15 || wb.isHealthy(); k++) {
      await sleep(50);
      round(shuffle(ids, rand));
      maxBuffered = Math.max(maxBuffered, wb.stats().buffered);
      if (k > 200) throw new Error('write-behind never noticed the cut');
    }
    expect(wb.isHealthy()).toBe(false);
    expect(maxBuffered).toBeLessThanOrEqual(n); // 30,000+ pings coalesced into one slot per courier
    const writtenBeforeRestore = spy.batches.length;

    proxy.restore();
    await waitFor(() => wb.isHealthy() && wb.stats().buffered === 0, 20_000);
    expect(health).toEqual([false, true]);
    // Resumed oldest first: the line formed during the outage is the first round's order, each courier once.
    expect(spy.batches.slice(writtenBeforeRestore).flat()).toEqual(firstOrder);
    const state = await store.loadState();
    const got = new Map(state.couriers.map((c) => [c.id, c]));
    for (const [id, want] of model) {
      const c = got.get(id)!;
      expect(c.lat).toBeCloseTo(want.lat, 9);
      expect(c.lng).toBeCloseTo(want.lng, 9);
      expect({ id, ts: c.lastPingAt }).toEqual({ id, ts: want.ts });
    }
  }, 60_000);
});

/** Delegates to the store and logs the ids of each batch the store accepted. */
function spyStore(store: Store): PositionStore & { batches: string[][] } {
  const batches: string[][] = [];
  return {
    batches,
    async writePositions(b: PosBatch) { await store.writePositions(b); batches.push([...b.ids]); },
    appendHistory: (b) => store.appendHistory(b),
    purgeHistory: (t) => store.purgeHistory(t),
    ping: () => store.ping(),
  };
}

async function echoServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); s.pipe(s); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => { for (const s of sockets) s.destroy(); return new Promise<void>((r) => server.close(() => r())); },
  };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

function roundTrip(s: net.Socket, text: string): Promise<string> {
  return new Promise((resolve) => {
    s.once('data', (d) => resolve(String(d)));
    s.write(text);
  });
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function shuffle<T>(xs: readonly T[], rand: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [out[i], out[j]] = [out[j], out[i]]; }
  return out;
}

function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
