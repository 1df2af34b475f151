/**
 * Measures writePositions and appendHistory throughput (rows/s) in batches of 5,000 on each store:
 * PGlite always (in a temp dataDir), PostgreSQL when DATABASE_URL or TEST_DATABASE_URL is set (in a
 * throwaway schema). Prints one line per figure and one JSON line per figure.
 *
 *   npm run build && node dist/bench/store-write-bench.js [--couriers 100000] [--batches 40] [--batch 5000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededRandom } from '../fixtures/prng.js';
import { PgStore } from '../store/pg-store.js';
import { PGliteStore } from '../store/pglite-store.js';
import type { CourierRow, Store } from '../store/store.js';

const args = parseArgs(process.argv.slice(2));
const COURIERS = args.couriers ?? 100_000;
const BATCHES = args.batches ?? 40;
const BATCH = args.batch ?? 5_000;

await main();

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gd-throughput-'));
  try {
    const pglite = await PGliteStore.open(dir);
    await pglite.migrate();
    await measure(pglite);
    await pglite.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const url = process.env.DATABASE_URL ?? process.env.TEST_DATABASE_URL;
  if (url) {
    const schema = `gd_bench_${process.pid}`;
    const store = new PgStore({ databaseUrl: url, schema });
    try {
      await store.migrate();
      await measure(store);
    } finally {
      await store.dropSchema();
      await store.close();
    }
  }
}

async function measure(store: Store): Promise<void> {
  const rng = seededRandom(42);
  const couriers: CourierRow[] = [];
  for (let i = 0; i < COURIERS; i++) couriers.push({ id: `c${i}`, vehicle: 'bike', capabilities: [], capacity: 1 });
  for (let i = 0; i < COURIERS; i += 20_000) await store.upsertCouriers(couriers.slice(i, i + 20_000));

  const ids = new Array<string>(BATCH);
  const lat = new Float64Array(BATCH);
  const lng = new Float64Array(BATCH);
  const ts = new Float64Array(BATCH);
  let now = Date.now();
  const fill = (): void => {
    now += 1000;
    for (let j = 0; j < BATCH; j++) {
      ids[j] = `c${Math.floor(rng() * COURIERS)}`;
      lat[j] = 48.8 + rng() * 0.2;
      lng[j] = 2.2 + rng() * 0.3;
      ts[j] = now;
    }
  };
  fill();
  await store.writePositions({ ids, lat, lng, ts }); // warm-up: plans cached, pages touched
  // BATCHES fresh batches through one write; only the write is timed, not filling the arrays
  const timed = async (op: string, write: () => Promise<unknown>): Promise<void> => {
    let elapsed = 0;
    for (let b = 0; b < BATCHES; b++) {
      fill();
      const t = performance.now();
      await write();
      elapsed += performance.now() - t;
    }
    report(store.kind, op, (BATCH * BATCHES) / (elapsed / 1000), elapsed / BATCHES);
  };
  await timed('writePositions', () => store.writePositions({ ids, lat, lng, ts }));
  await timed('appendHistory', () => store.appendHistory({ ids, lat, lng, ts }));
}

function report(store: string, op: string, rowsPerSecond: number, msPerBatch: number): void {
  console.log(`${store.padEnd(7)} ${op.padEnd(15)} ${Math.round(rowsPerSecond).toLocaleString('en-US').padStart(9)} rows/s  ${msPerBatch.toFixed(1)} ms per batch of ${BATCH} (${COURIERS} couriers)`);
  console.log(JSON.stringify({ bench: 'store-write', store, op, batch: BATCH, couriers: COURIERS, rowsPerSecond: Math.round(rowsPerSecond), msPerBatch: +msPerBatch.toFixed(2) }));
}

function parseArgs(argv: string[]): { couriers?: number; batches?: number; batch?: number } {
  const out: Record<string, number> = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    const value = Number(argv[i + 1]);
    if (!['couriers', 'batches', 'batch'].includes(key) || !(value > 0)) throw new Error(`usage: store-write-bench [--couriers N] [--batches N] [--batch N], got '${argv[i]} ${argv[i + 1]}'`);
    out[key] = value;
  }
  return out;
}
