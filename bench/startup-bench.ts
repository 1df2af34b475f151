/**
 * Startup time with a big store: N couriers (with positions) and M sites loaded into the store, then
 * `loadState()` + `recover()` timed, against the same run's baseline: the same rows read with a plain
 * `SELECT * FROM couriers` + `SELECT * FROM sites` (no JSON shaping, no rebuild).
 *
 *   node dist/bench/startup-bench.js [--couriers 1000000] [--sites 100000] [--runs 2]
 *   DATABASE_URL=postgres://… also measures real PostgreSQL (a fresh schema, dropped after)
 *
 * Prints one JSON line per figure (bench/bench-report.ts) and the store kind in `store`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { report, parseArgs } from './bench-report.js';
import { DEFAULT_POLICY } from '../dispatch/dispatch-request.js';
import { DispatchLoop } from '../dispatch/dispatch-loop.js';
import { seededRandom } from '../fixtures/prng.js';
import { recover } from '../store/recovery.js';
import { type Store, openStore } from '../store/store.js';

/** Rows per upsert / position statement while filling: large enough to amortise, small enough for one JSON parameter. */
const FILL_BATCH = 20_000;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const couriers = Number(args.get('couriers') ?? 1_000_000);
  const sites = Number(args.get('sites') ?? 100_000);
  const runs = Number(args.get('runs') ?? 2);
  const dir = mkdtempSync(join(tmpdir(), 'geodispatch-startup-'));
  try {
    await measure('pglite', () => openStore({ dataDir: dir }), couriers, sites, runs);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const url = process.env.DATABASE_URL ?? process.env.TEST_DATABASE_URL;
  if (url) {
    const schema = `startup_bench_${process.pid}`;
    await measure('pg', () => openStore({ databaseUrl: url, dataDir: '', schema }), couriers, sites, runs, schema).catch((err: unknown) => {
      process.stderr.write(`  PostgreSQL not measured: ${(err as Error).message}\n`);
    });
  }
}

async function measure(kind: string, open: () => Promise<Store>, couriers: number, sites: number, runs: number, dropSchema?: string): Promise<void> {
  let store = await open();
  const fillStarted = performance.now();
  await fill(store, couriers, sites);
  const fillMs = performance.now() - fillStarted;
  process.stderr.write(`  ${kind}: filled ${couriers} couriers + ${sites} sites in ${(fillMs / 1000).toFixed(1)} s\n`);
  await store.close();
  for (let run = 0; run < runs; run++) {
    const openStarted = performance.now();
    store = await open();
    const openMs = performance.now() - openStarted;
    const raw = (store as unknown as { db: { query(text: string): Promise<unknown[]> } }).db; // the baseline reads past the interface on purpose
    const b0 = performance.now();
    const rows = (await raw.query('SELECT * FROM couriers')).length + (await raw.query('SELECT * FROM sites')).length;
    const baselineMs = performance.now() - b0;
    const l0 = performance.now();
    const state = await store.loadState();
    const loadMs = performance.now() - l0;
    const r0 = performance.now();
    const rebuilt = recover(state, { now: Date.now(), createLoop: (e) => new DispatchLoop({ ...e, policy: DEFAULT_POLICY }) });
    const recoverMs = performance.now() - r0;
    const extra = { store: kind, run, couriers: rebuilt.engine.couriers.size, sites: rebuilt.engine.sites.size, rows, openMs: Math.round(openMs), fillMs: Math.round(fillMs) };
    report({ bench: 'startup.loadState', n: couriers + sites, value: loadMs, unit: 'ms', baseline: 'SELECT * couriers+sites', baselineValue: baselineMs, ratio: baselineMs / loadMs, ...extra });
    report({ bench: 'startup.rebuild', n: couriers + sites, value: recoverMs, unit: 'ms', ...extra });
    report({ bench: 'startup.total', n: couriers + sites, value: openMs + loadMs + recoverMs, unit: 'ms', baseline: 'open + SELECT * couriers+sites', baselineValue: openMs + baselineMs, ratio: (openMs + baselineMs) / (openMs + loadMs + recoverMs), ...extra });
    if (run < runs - 1 || dropSchema === undefined) await store.close();
  }
  if (dropSchema !== undefined) {
    const raw = (store as unknown as { db: { query(text: string): Promise<unknown[]> } }).db;
    await raw.query(`DROP SCHEMA ${dropSchema} CASCADE`).catch(() => undefined);
    await store.close();
  }
}

/** Couriers spread over a 40 km square around London with positions; sites likewise, a tenth of them blood banks with stock. */
async function fill(store: Store, couriers: number, sites: number): Promise<void> {
  const rnd = seededRandom(42);
  const vehicles = ['bike', 'car', 'van'] as const;
  for (let i = 0; i < sites; i += FILL_BATCH) {
    const n = Math.min(FILL_BATCH, sites - i);
    const rows = Array.from({ length: n }, (_, j) => {
      const k = i + j;
      return { id: `s${k}`, kind: k % 10 === 0 ? ('blood_bank' as const) : ('restaurant' as const), name: `site ${k}`, lat: 51.3 + rnd() * 0.4, lng: -0.4 + rnd() * 0.6 };
    });
    await store.upsertSites(rows);
  }
  for (let k = 0; k < Math.min(sites, 1000); k += 10) {
    await store.upsertInventory(`s${k}`, [{ product: 'red_cells', bloodType: 'O+', count: 20, expiresAt: Date.now() + 20 * 86_400_000 }]);
  }
  for (let i = 0; i < couriers; i += FILL_BATCH) {
    const n = Math.min(FILL_BATCH, couriers - i);
    const ids = Array.from({ length: n }, (_, j) => `c${i + j}`);
    await store.upsertCouriers(ids.map((id, j) => ({ id, vehicle: vehicles[(i + j) % 3], capabilities: (i + j) % 7 === 0 ? ['cold_chain'] : [], capacity: 2, status: 'available' })));
    const lat = new Float64Array(n), lng = new Float64Array(n), ts = new Float64Array(n).fill(Date.now());
    for (let j = 0; j < n; j++) {
      lat[j] = 51.3 + rnd() * 0.4;
      lng[j] = -0.4 + rnd() * 0.6;
    }
    await store.writePositions({ ids, lat, lng, ts });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
