/**
 * Batch matching benchmarks on the fixture city, each against its baseline in the same run:
 *
 *   dispatch.batch.inline   planBatch (batched) solve, median ms        vs planGreedyNearest on the same batch
 *   dispatch.batch.worker   the same batch through DispatchPool, ms     vs planBatch inline
 *                           (packing, transfer, worker solve, unpacking)
 *   dispatch.batch.gain     batched total pickup ETA, s                 vs planBatch greedy mode, and vs planGreedyNearest
 *   dispatch.batch.gap      batched total cost above the exact optimum, vs planExactReference (full feasible graph,
 *                           %                                               200 candidates a request) on the same requests
 *
 *   node dist/bench/dispatch-bench.js            2,000 requests × 20,000 couriers; gap on the whole batch
 *   node dist/bench/dispatch-bench.js --quick    fewer runs, gap on 300 requests (< 1 min)
 *   node dist/bench/dispatch-bench.js --couriers 50000 --requests 4000 --seed 9 --threads 2
 *
 * The city: London from the fixtures; ~60 % of couriers available, the rest busy, offered or offline.
 * The batch: the scenario's own delivery / rescue / blood requests, re-timed into one 2 s window at the
 * evening peak; blood legs run from the nearest open blood bank to the hospital, rescues to the nearest
 * open food bank or shelter; a few requests carry exclusions and learned leg speeds.
 */
import { performance } from 'node:perf_hooks';
import { planBatch, planExactReference, planGreedyNearest } from '../dispatch/assign-batch.js';
import { DEFAULT_POLICY, type DispatchPlan, type DispatchPolicy, type DispatchRequest } from '../dispatch/dispatch-request.js';
import { COURIER_STATUSES } from '../engine/courier-attributes.js';
import { CourierIndex } from '../engine/courier-index.js';
import { CourierSnapshot, writeCourierSnapshot } from '../engine/courier-snapshot.js';
import { distanceMeters } from '../engine/geodesy.js';
import { type RequestFixture, type SiteFixture, generateScenario } from '../fixtures/city-scenario.js';
import { Prng, streamSeed } from '../fixtures/prng.js';
import { DispatchPool } from '../workers/dispatch-pool.js';
import { costRatio, median, parseArgs, report } from './bench-report.js';

const args = parseArgs(process.argv.slice(2));
const quick = args.has('quick');
const seed = Number(args.get('seed') ?? 42);
const couriers = Number(args.get('couriers') ?? 20_000);
const requestCount = Number(args.get('requests') ?? 2_000);
const threads = args.has('threads') ? Number(args.get('threads')) : undefined;
// medians of 7 / 21 runs: a batch solve is tens of ms, so the spread is GC and JIT noise, not sampling
const runs = quick ? 7 : 21;
// the exact reference scores every courier in radius per request (~3.5 ms each here): the whole batch takes
// ~7 s, so --quick measures the first 300 requests to stay well under a minute
const gapRequests = Math.min(requestCount, Number(args.get('gap') ?? (quick ? 300 : requestCount)));
// 200 cheapest feasible couriers per request: 10× policy.candidates, far past where the optimum can reach
const exactCap = Number(args.get('cap') ?? 200);
const WINDOW_MS = DEFAULT_POLICY.windowMs;
const MINUTE = 60_000;
const BATCHED: DispatchPolicy = { ...DEFAULT_POLICY, mode: 'batched' };
const GREEDY: DispatchPolicy = { ...DEFAULT_POLICY, mode: 'greedy' };

process.stderr.write(`dispatch bench: ${requestCount} requests × ${couriers} couriers, seed ${seed}${quick ? ', quick' : ''}\n`);
const city = buildCity(seed, couriers, requestCount);
const snapshot = CourierSnapshot.from(city.buffer);
const { requests, now } = city;
process.stderr.write(`  snapshot ${snapshot.count} couriers (${city.available} available), ${requests.length} requests ${kindMix(requests)}\n`);

// --- inline solve vs the naive baseline
const batchedPlan = planBatch(snapshot, requests, BATCHED, now); // warm-up, and the plan the other figures use
const nearestPlan = planGreedyNearest(snapshot, requests, BATCHED, now);
// each run opens the buffer afresh, as a worker does per task and the dispatch loop per window: the reader's
// lazy id map (built on the first exclusion) is part of the cost of planning over a new snapshot
const inlineMs = timeRuns(() => planBatch(CourierSnapshot.from(city.buffer), requests, BATCHED, now));
const nearestMs = timeRuns(() => planGreedyNearest(CourierSnapshot.from(city.buffer), requests, BATCHED, now));
report({ bench: 'dispatch.batch.inline', n: requests.length, value: inlineMs, unit: 'ms', baseline: 'greedy-nearest', baselineValue: nearestMs, ratio: costRatio(inlineMs, nearestMs) });

// --- the same batch through worker threads, transfer included
const pool = new DispatchPool(threads === undefined ? {} : { maxThreads: threads, minThreads: threads });
try {
  const workerPlan = await pool.plan(city.buffer, requests, BATCHED, now); // boots a thread and loads the task
  if (workerPlan.totalCost !== batchedPlan.totalCost) throw new Error(`worker plan cost ${workerPlan.totalCost} differs from inline ${batchedPlan.totalCost}`);
  const samples: number[] = [];
  const solves: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const plan = await pool.plan(city.buffer, requests, BATCHED, now);
    samples.push(performance.now() - t0);
    solves.push(plan.solveMs);
  }
  const workerMs = median(samples);
  process.stderr.write(`  worker: median solve in the thread ${median(solves).toFixed(1)} ms, the rest is packing, messaging and unpacking\n`);
  report({ bench: 'dispatch.batch.worker', n: requests.length, value: workerMs, unit: 'ms', baseline: 'inline', baselineValue: inlineMs, ratio: costRatio(workerMs, inlineMs) });
} finally {
  await pool.close();
}

// --- what batching buys: total pickup ETA against one-at-a-time dispatch
const greedyPlan = planBatch(snapshot, requests, GREEDY, now);
describePlans(requests.length, { batched: batchedPlan, greedy: greedyPlan, 'greedy-nearest': nearestPlan });
const eta = batchedPlan.totalPickupEta;
report({ bench: 'dispatch.batch.gain', n: requests.length, value: eta, unit: 's', baseline: 'greedy', baselineValue: greedyPlan.totalPickupEta, ratio: greedyPlan.totalPickupEta / eta });
report({ bench: 'dispatch.batch.gain', n: requests.length, value: eta, unit: 's', baseline: 'greedy-nearest', baselineValue: nearestPlan.totalPickupEta, ratio: nearestPlan.totalPickupEta / eta });

// --- what truncating to policy.candidates costs: gap to the exact optimum (total cost includes unassigned penalties)
const sub = requests.slice(0, gapRequests);
const subBatched = planBatch(snapshot, sub, BATCHED, now);
const exact = planExactReference(snapshot, sub, BATCHED, now, exactCap);
const gap = (100 * (subBatched.totalCost - exact.totalCost)) / exact.totalCost;
process.stderr.write(
  `  gap batch: ${sub.length} requests, exact ${exact.solveMs.toFixed(0)} ms (cap ${exactCap}); cost ${subBatched.totalCost.toFixed(1)} vs ${exact.totalCost.toFixed(1)}; ` +
    `pickup ETA ${subBatched.totalPickupEta.toFixed(1)} vs ${exact.totalPickupEta.toFixed(1)} s (${((100 * (subBatched.totalPickupEta - exact.totalPickupEta)) / exact.totalPickupEta).toFixed(3)} %); assigned ${subBatched.assignments.length} vs ${exact.assignments.length}\n`,
);
report({ bench: 'dispatch.batch.gap', n: sub.length, value: gap, unit: '%', baseline: 'exact', baselineValue: exact.totalCost, ratio: costRatio(subBatched.totalCost, exact.totalCost) });

/** Median wall time (ms) of `runs` calls. */
function timeRuns(fn: () => unknown): number {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

function describePlans(n: number, plans: Record<string, DispatchPlan>): void {
  for (const [name, p] of Object.entries(plans)) {
    const late = p.assignments.filter((a) => a.lateness > 0).length;
    process.stderr.write(
      `  ${name.padEnd(15)} assigned ${p.assignments.length}/${n}, late ${late}, total pickup ETA ${p.totalPickupEta.toFixed(0)} s (mean ${(p.totalPickupEta / Math.max(1, p.assignments.length)).toFixed(1)} s), cost ${p.totalCost.toFixed(0)}\n`,
    );
  }
}

function kindMix(requests: readonly DispatchRequest[]): string {
  const count = (k: string) => requests.filter((r) => r.kind === k).length;
  return `(delivery ${count('delivery')}, rescue ${count('rescue')}, blood ${count('blood')})`;
}

/** The fixture city as one snapshot and one batch of requests, all seeded. */
function buildCity(seed: number, n: number, nRequests: number): { buffer: SharedArrayBuffer; requests: DispatchRequest[]; now: number; available: number } {
  const scenario = generateScenario({ seed, couriers: n, requests: nRequests, cities: 1 });
  const now = scenario.dayStart + 19.5 * 60 * MINUTE; // London's dinner peak (UTC+0 in November)
  const rng = new Prng(streamSeed(seed, 100));
  // a busy evening: 60 % waiting for work, 25 % on a job, 5 % holding an offer, 10 % logged off
  const statusWeights = [0.1, 0.6, 0.05, 0.25]; // COURIER_STATUSES order
  const index = new CourierIndex({ initialCapacity: n });
  let available = 0;
  for (const c of scenario.couriers) {
    const status = COURIER_STATUSES[rng.weighted(statusWeights)];
    if (status === 'available') available++;
    index.upsert(c.id, { vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity, status });
    index.move(c.id, c.lat, c.lng, now - rng.int(30_000));
  }
  const open = (kinds: string[]) => scenario.sites.filter((s) => s.open && kinds.includes(s.kind));
  const banks = open(['blood_bank']);
  const refuges = open(['food_bank', 'shelter']);
  const requests = scenario.requests.map((f) => toDispatchRequest(f, rng, now, banks, refuges, n));
  return { buffer: writeCourierSnapshot(index, { createdAt: now }), requests, now, available };
}

/** One fixture request re-timed into the batch window ending at `now`. */
function toDispatchRequest(f: RequestFixture, rng: Prng, now: number, banks: SiteFixture[], refuges: SiteFixture[], couriers: number): DispatchRequest {
  const createdAt = now - rng.int(WINDOW_MS);
  const shift = createdAt - f.createdAt;
  const r: DispatchRequest = { id: f.id, kind: f.kind, urgency: f.urgency, createdAt, pickup: f.pickup, dropoff: f.dropoff ?? f.pickup };
  if (f.kind === 'delivery') {
    // kitchens at every stage: some orders are ready now, others in up to 12 minutes
    r.readyAt = now + Math.round(rng.range(0, 12) * MINUTE);
    r.deadline = r.readyAt + 45 * MINUTE;
    if (rng.chance(0.3)) r.capabilities = ['insulated'];
  } else if (f.kind === 'rescue') {
    r.dropoff = latLng(nearest(refuges, f.pickup));
    r.readyAt = createdAt;
    r.pickupBy = (f.pickupBy as number) + shift;
    r.deadline = (f.deadline as number) + shift;
    r.load = 1 + rng.int(3);
    if (f.coldChain === true) r.capabilities = ['cold_chain'];
  } else {
    // a pickup leg: nearest open blood bank → the hospital
    r.pickup = latLng(nearest(banks, f.pickup));
    r.dropoff = f.pickup;
    r.deadline = (f.deadline as number) + shift;
    r.capabilities = f.blood?.product === 'platelets' ? ['insulated'] : ['cold_chain'];
    r.load = 1;
  }
  if (rng.chance(0.05)) r.exclude = Array.from({ length: 1 + rng.int(2) }, () => `c${rng.int(couriers)}`);
  if (rng.chance(0.2)) r.legSpeed = rng.range(3, 10);
  return r;
}

function nearest(sites: SiteFixture[], p: { lat: number; lng: number }): SiteFixture {
  let best = sites[0];
  let bestD = Infinity;
  for (const s of sites) {
    const d = distanceMeters(s.lat, s.lng, p.lat, p.lng);
    if (d < bestD) [best, bestD] = [s, d];
  }
  return best;
}

function latLng(s: SiteFixture): { lat: number; lng: number } {
  return { lat: s.lat, lng: s.lng };
}
