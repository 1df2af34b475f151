/**
 * Measures writePositions and appendHistory throughput (rows/s) in batches of 5,000 on each store:
 * PGlite always (in a temp dataDir), PostgreSQL when DATABASE_URL or TEST_DATABASE_URL is set (in a
 * throwaway schema). Prints one line per figure and one JSON line per figure.
 *
 * Then dispatch commits as the journal makes them (groups of 25 transitions: five deliveries' created, offered,
 * accepted, picked up and delivered), timed over GROWTH_SAMPLE deliveries on nearly empty tables and again after
 * GROWN deliveries are stored: the ratio says whether a commit slows as the tables grow (it should not: each
 * transition names its rows by key).
 *
 *   npm run build && node dist/bench/store-write-bench.js [--couriers 100000] [--batches 40] [--batch 5000] [--grown 30000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededRandom } from '../fixtures/prng.js';
import { PgStore } from '../store/pg-store.js';
import { PGliteStore } from '../store/pglite-store.js';
import type { CourierRow, Store, Transition } from '../store/store.js';

const args = parseArgs(process.argv.slice(2));
const COURIERS = args.couriers ?? 100_000;
const BATCHES = args.batches ?? 40;
const BATCH = args.batch ?? 5_000;
const GROWN = Math.max(args.grown ?? 20_000, 4 * 2_000);
const GROWTH_SAMPLE = 2_000;
/** Transitions per commit: the journal's groups under request load average about this many. */
const GROUP = 25;

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
  await commitsAsTablesGrow(store);
}

/** Delivery transitions per second on nearly empty tables and on GROWN stored deliveries, and their ratio. */
async function commitsAsTablesGrow(store: Store): Promise<void> {
  let seq = 1;
  let delivery = 0;
  const at = Date.now();
  const deliveries = async (n: number): Promise<number> => {
    const t0 = performance.now();
    let group: Transition[] = [];
    for (let i = 0; i < n; i++) {
      for (const t of lifecycle(delivery++, () => seq++, at)) group.push(t);
      if (group.length >= GROUP) {
        await store.commitTransitions(group);
        group = [];
      }
    }
    if (group.length > 0) await store.commitTransitions(group);
    return (n * 5) / ((performance.now() - t0) / 1000);
  };
  const small = await deliveries(GROWTH_SAMPLE);
  await deliveries(GROWN - 3 * GROWTH_SAMPLE);
  const grown = await deliveries(GROWTH_SAMPLE);
  const t0 = performance.now();
  const maintained = await store.maintain();
  const maintainMs = performance.now() - t0;
  const after = await deliveries(GROWTH_SAMPLE);
  console.log(`${store.kind.padEnd(7)} maintain()      ${maintained.length === 0 ? 'nothing to do (autovacuum)' : `${maintainMs.toFixed(0)} ms over ${maintained.length} tables`}`);
  for (const [op, rate] of [['commits (small)', small], [`commits (${GROWN})`, grown], ['after maintain', after]] as const) {
    console.log(`${store.kind.padEnd(7)} ${op.padEnd(15)} ${Math.round(rate).toLocaleString('en-US').padStart(9)} transitions/s in groups of ${GROUP}`);
  }
  console.log(`${store.kind.padEnd(7)} commits at ${GROWN} stored deliveries ÷ on empty tables: ×${(grown / small).toFixed(2)}`);
  console.log(JSON.stringify({ bench: 'store-write', store: store.kind, op: 'commitTransitions', group: GROUP, grown: GROWN, transitionsPerSecondSmall: Math.round(small), transitionsPerSecondGrown: Math.round(grown), ratio: +(grown / small).toFixed(3), maintainMs: Math.round(maintainMs), transitionsPerSecondAfterMaintain: Math.round(after) }));
}

/** One delivery's five transitions (created, offered, accepted, picked up, delivered) on courier c<n mod 1000>. */
function lifecycle(n: number, nextSeq: () => number, at: number): Transition[] {
  const id = `bench-r${n}`;
  const offer = `bench-o${n}`;
  const courier = `c${n % 1_000}`;
  const step = (t: Omit<Transition, 'seq' | 'at' | 'events'>, type: string): Transition => {
    const seq = nextSeq();
    return { seq, at, ...t, events: [{ seq, at, type, requestId: id, courierId: courier }] };
  };
  return [
    step({ requests: [{ id, kind: 'delivery', urgency: 'routine', status: 'pending', requesterId: 'bench', payload: {}, createdAt: at, updatedAt: at }] }, 'request.created'),
    step({ requestStatus: [{ id, status: 'offered' }], offers: [{ id: offer, requestId: id, courierId: courier, status: 'live', createdAt: at, expiresAt: at + 15_000 }] }, 'request.offered'),
    step({ requestStatus: [{ id, status: 'assigned' }], offerStatus: [{ id: offer, status: 'accepted' }], assignmentsStarted: [{ requestId: id, courierId: courier, offerId: offer, createdAt: at }], courierStatus: [{ id: courier, status: 'busy' }] }, 'request.assigned'),
    step({ requestStatus: [{ id, status: 'picked_up' }] }, 'request.picked_up'),
    step({ requestStatus: [{ id, status: 'delivered' }], assignmentsEnded: [{ requestId: id }], courierStatus: [{ id: courier, status: 'available' }] }, 'request.delivered'),
  ];
}

function report(store: string, op: string, rowsPerSecond: number, msPerBatch: number): void {
  console.log(`${store.padEnd(7)} ${op.padEnd(15)} ${Math.round(rowsPerSecond).toLocaleString('en-US').padStart(9)} rows/s  ${msPerBatch.toFixed(1)} ms per batch of ${BATCH} (${COURIERS} couriers)`);
  console.log(JSON.stringify({ bench: 'store-write', store, op, batch: BATCH, couriers: COURIERS, rowsPerSecond: Math.round(rowsPerSecond), msPerBatch: +msPerBatch.toFixed(2) }));
}

function parseArgs(argv: string[]): { couriers?: number; batches?: number; batch?: number; grown?: number } {
  const out: Record<string, number> = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    const value = Number(argv[i + 1]);
    if (!['couriers', 'batches', 'batch', 'grown'].includes(key) || !(value > 0)) throw new Error(`usage: store-write-bench [--couriers N] [--batches N] [--batch N] [--grown N], got '${argv[i]} ${argv[i + 1]}'`);
    out[key] = value;
  }
  return out;
}
