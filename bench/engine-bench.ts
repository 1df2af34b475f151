/**
 * Engine micro benchmarks on the fixture cities, each against its baseline in the same run:
 *
 *   engine.memory   bytes per courier in the index           vs rbush with one item per courier
 *   engine.nearby   k=10, status=available, ops/s + p50/p99  vs geokdbush `around` (static kd-tree)
 *   engine.within   ~1 km² bbox, ops/s                        vs brute-force scan of the same points
 *   engine.move     realistic ping stream, ops/s              vs rbush remove + insert of the same pings
 *   engine.nearby.small  k=10 at n=10,000                     vs brute force over the same points
 *
 *   npm run bench:engine              100,000 and 1,000,000 couriers
 *   npm run bench:engine -- --quick   100,000 couriers, short runs (< 1 min)
 *   npm run bench:engine -- --n 250000 --cities 4 --seed 9
 */
import Benchmark from 'benchmark';
import KDBush from 'kdbush';
import { around } from 'geokdbush';
import RBush from 'rbush';
import { CourierIndex } from '../engine/courier-index.js';
import { COURIER_STATUSES, VEHICLES, type CourierStatus } from '../engine/courier-attributes.js';
import { distanceMeters } from '../engine/geodesy.js';
import { generateCourierPositions } from '../fixtures/city-scenario.js';
import { generateMoveStream } from '../fixtures/move-stream.js';
import { Prng } from '../fixtures/prng.js';
import { collectGarbage, costRatio, median, parseArgs, quantile, rateRatio, report } from './bench-report.js';

interface PointItem {
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
  i: number;
}

const args = parseArgs(process.argv.slice(2));
const quick = args.has('quick');
const sizes = args.has('n') ? [Number(args.get('n'))] : quick ? [100_000] : [100_000, 1_000_000];
const cities = Number(args.get('cities') ?? 10);
const seed = Number(args.get('seed') ?? 42);
// benchmark.js keeps sampling a case for maxTime seconds; quick mode trades precision for a sub-minute run
const maxTime = quick ? 0.6 : 3;
// inline the bench function's call instead of decompiling its source: our cases close over local state
(Benchmark as unknown as { support: { decompilation: boolean } }).support.decompilation = false;

if (!collectGarbage()) process.stderr.write('note: run node with --expose-gc for exact memory figures\n');
process.stderr.write(`engine bench: sizes ${sizes.join(', ')}, ${cities} cities, seed ${seed}${quick ? ', quick' : ''}\n`);

for (const n of sizes) runSize(n);
runSmallBruteForce(10_000);

function runSize(n: number): void {
  const pos = generateCourierPositions(seed, n, cities);
  const rng = new Prng(seed + 1);
  const status = new Uint8Array(n);
  // a busy evening: 60 % waiting for work, 25 % on a job, 5 % holding an offer, 10 % logged off
  const statusWeights = [0.1, 0.6, 0.05, 0.25];
  const ids: string[] = new Array(n);
  for (let i = 0; i < n; i++) {
    status[i] = rng.weighted(statusWeights);
    ids[i] = `c${i}`;
  }

  collectGarbage();
  const before = process.memoryUsage();
  const index = new CourierIndex({ initialCapacity: n });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    index.upsert(ids[i], { vehicle: VEHICLES[i % 3], capabilities: i % 10 === 0 ? ['cold_chain'] : ['insulated'], capacity: 2, status: COURIER_STATUSES[status[i]] as CourierStatus });
    index.move(ids[i], pos.lat[i], pos.lng[i], 1);
  }
  const buildMs = performance.now() - t0;
  collectGarbage();
  const after = process.memoryUsage();
  const indexBytes = after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers);

  const items: PointItem[] = new Array(n);
  for (let i = 0; i < n; i++) items[i] = { minX: pos.lng[i], minY: pos.lat[i], maxX: pos.lng[i], maxY: pos.lat[i], i };
  collectGarbage();
  const beforeTree = process.memoryUsage();
  const tree = new RBush<PointItem>();
  tree.load(items);
  collectGarbage();
  const rbushBytes = process.memoryUsage().heapUsed - beforeTree.heapUsed + n * 64; // + the items themselves (5 fields ≈ 64 B)
  const perCourier = indexBytes / n;
  report({ bench: 'engine.memory', n, value: perCourier, unit: 'bytes/courier', baseline: 'rbush', baselineValue: rbushBytes / n, ratio: costRatio(perCourier, rbushBytes / n), target: 150 });
  process.stderr.write(`  (index built in ${buildMs.toFixed(0)} ms, ${index.stats().cells} cells)\n`);

  // nearby, k = 10, available couriers, from points drawn from the same city model
  const queries = generateCourierPositions(seed + 2, 20_000, cities);
  const q = queries.lat.length;
  const opts = { k: 10, status: 'available' as const };
  let j = 0;
  const ours = hz('nearby', () => {
    index.nearby(queries.lat[j], queries.lng[j], opts);
    j = (j + 1) % q;
  });
  const kd = new KDBush(n);
  for (let i = 0; i < n; i++) kd.add(pos.lng[i], pos.lat[i]);
  kd.finish();
  const available = (i: number): boolean => status[i] === 1;
  const theirs = hz('geokdbush', () => {
    around(kd, queries.lng[j], queries.lat[j], 10, Infinity, available);
    j = (j + 1) % q;
  });
  const lat = latencies(q, (i) => index.nearby(queries.lat[i], queries.lng[i], opts));
  const latKd = latencies(q, (i) => around(kd, queries.lng[i], queries.lat[i], 10, Infinity, available));
  report({ bench: 'engine.nearby', n, value: ours, unit: 'ops/s', baseline: 'geokdbush', baselineValue: theirs, ratio: rateRatio(ours, theirs), k: 10, filter: 'status=available', target: 200_000 });
  report({ bench: 'engine.nearby.p50', n, value: lat.p50, unit: 'us', baseline: 'geokdbush', baselineValue: latKd.p50, ratio: costRatio(lat.p50, latKd.p50) });
  report({ bench: 'engine.nearby.p99', n, value: lat.p99, unit: 'us', baseline: 'geokdbush', baselineValue: latKd.p99, ratio: costRatio(lat.p99, latKd.p99), target: 50 });

  // within a ~1.5 km × 1 km box around the same query points
  const boxes = Array.from({ length: 1000 }, (_, i) => [queries.lng[i] - 0.01, queries.lat[i] - 0.0045, queries.lng[i] + 0.01, queries.lat[i] + 0.0045] as const);
  let b = 0;
  const withinOurs = hz('within', () => {
    index.within(boxes[b]);
    b = (b + 1) % boxes.length;
  });
  const withinBrute = hz('within brute force', () => {
    bruteWithin(pos.lat, pos.lng, boxes[b]);
    b = (b + 1) % boxes.length;
  });
  report({ bench: 'engine.within', n, value: withinOurs, unit: 'ops/s', baseline: 'brute-force', baselineValue: withinBrute, ratio: rateRatio(withinOurs, withinBrute), box: '~1.5 km x 1 km' });

  // moves: a realistic ping stream (4 s between a courier's pings, 3–15 m/s, stops and turns)
  const stream = generateMoveStream(pos, { seed: seed + 3, count: quick ? 400_000 : 2_000_000 });
  const m = stream.index.length;
  const streamIds = Array.from(stream.index, (i) => ids[i]);
  const statsBefore = index.stats();
  let k = 0;
  let pass = 0;
  const movesOurs = hz('move', () => {
    index.move(streamIds[k], stream.lat[k], stream.lng[k], stream.ts[k] + pass * 1e9);
    if (++k === m) {
      k = 0;
      pass++;
    }
  });
  const statsAfter = index.stats();
  let r = 0;
  const movesRbush = hz('rbush move', () => {
    const item = items[stream.index[r]];
    tree.remove(item);
    item.minX = item.maxX = stream.lng[r];
    item.minY = item.maxY = stream.lat[r];
    tree.insert(item);
    r = (r + 1) % m;
  });
  const share = (statsAfter.cellChanges - statsBefore.cellChanges) / Math.max(1, statsAfter.moves - statsBefore.moves);
  report({ bench: 'engine.move', n, value: movesOurs, unit: 'ops/s', baseline: 'rbush', baselineValue: movesRbush, ratio: rateRatio(movesOurs, movesRbush), cellChangeShare: Number(share.toFixed(4)), target: 2_000_000 });
}

function runSmallBruteForce(n: number): void {
  const pos = generateCourierPositions(seed + 5, n, 1);
  const index = new CourierIndex();
  for (let i = 0; i < n; i++) {
    index.upsert(`s${i}`, { vehicle: 'bike', capabilities: [], capacity: 1, status: i % 3 === 0 ? 'busy' : 'available' });
    index.move(`s${i}`, pos.lat[i], pos.lng[i], 1);
  }
  const queries = generateCourierPositions(seed + 6, 2000, 1);
  const opts = { k: 10, status: 'available' as const };
  let j = 0;
  const ours = hz('nearby small', () => {
    index.nearby(queries.lat[j], queries.lng[j], opts);
    j = (j + 1) % 2000;
  });
  const dist = new Float64Array(n);
  const brute = hz('brute force', () => {
    const la = queries.lat[j];
    const ln = queries.lng[j];
    for (let i = 0; i < n; i++) dist[i] = i % 3 === 0 ? Infinity : distanceMeters(la, ln, pos.lat[i], pos.lng[i]);
    dist.slice().sort().subarray(0, 10);
    j = (j + 1) % 2000;
  });
  report({ bench: 'engine.nearby.small', n, value: ours, unit: 'ops/s', baseline: 'brute-force', baselineValue: brute, ratio: rateRatio(ours, brute), k: 10 });
}

/** ops/s of fn by benchmark.js (mean of its samples). */
function hz(name: string, fn: () => void): number {
  const bench = new Benchmark(name, fn, { maxTime, minSamples: 5, initCount: 1000 });
  bench.run();
  if (bench.error) throw bench.error;
  return bench.hz;
}

/** Per-call latency in µs over `count` calls after a warm-up, as p50 / p99. */
function latencies(count: number, fn: (i: number) => unknown): { p50: number; p99: number } {
  for (let i = 0; i < Math.min(count, 2000); i++) fn(i);
  const us = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const t = process.hrtime.bigint();
    fn(i);
    us[i] = Number(process.hrtime.bigint() - t) / 1000;
  }
  return { p50: median(us), p99: quantile(us, 0.99) };
}

function bruteWithin(lat: Float64Array, lng: Float64Array, box: readonly [number, number, number, number]): number {
  let hits = 0;
  for (let i = 0; i < lat.length; i++) if (lng[i] >= box[0] && lng[i] <= box[2] && lat[i] >= box[1] && lat[i] <= box[3]) hits++;
  return hits;
}
