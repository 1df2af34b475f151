import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planBatch } from '../dispatch/assign-batch.js';
import { DEFAULT_POLICY, type DispatchPlan, type DispatchPolicy, type DispatchRequest } from '../dispatch/dispatch-request.js';
import { CourierIndex } from '../engine/courier-index.js';
import { CourierSnapshot, writeCourierSnapshot } from '../engine/courier-snapshot.js';
import { generateScenario } from '../fixtures/city-scenario.js';
import { Prng } from '../fixtures/prng.js';
import { DispatchPool, type Planner, inlinePlanner, locateMatchBatchWorker } from './dispatch-pool.js';

// Workers load dist/workers/match-batch.js: `npm test` builds first; run `npm run build` before vitest alone.

const BATCHED: DispatchPolicy = { ...DEFAULT_POLICY, mode: 'batched' };
const GREEDY: DispatchPolicy = { ...DEFAULT_POLICY, mode: 'greedy' };
const MIN = 60_000;

interface City {
  buffer: SharedArrayBuffer;
  requests: DispatchRequest[];
  now: number;
}

/** A seeded fixture city: its couriers in a snapshot, its requests re-timed into one batch window at `now`. */
function seededCity(seed: number, couriers: number, requests: number): City {
  const scenario = generateScenario({ seed, couriers, requests, cities: 1 });
  const now = scenario.dayStart + 19 * 60 * MIN;
  const rng = new Prng(seed + 1);
  const index = new CourierIndex();
  for (const c of scenario.couriers) {
    index.upsert(c.id, { vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity, status: c.status });
    index.move(c.id, c.lat, c.lng, now - 5_000);
  }
  const batch = scenario.requests.map((f): DispatchRequest => {
    const createdAt = now - rng.int(2_000);
    const r: DispatchRequest = { id: f.id, kind: f.kind, urgency: f.urgency, createdAt, pickup: f.pickup, dropoff: f.dropoff ?? { lat: f.pickup.lat + 0.01, lng: f.pickup.lng } };
    if (f.kind === 'delivery') r.readyAt = now + rng.int(10 * MIN);
    if (f.kind === 'rescue') r.pickupBy = now + rng.range(5, 60) * MIN;
    if (f.kind !== 'delivery' || rng.chance(0.5)) r.deadline = now + rng.range(-1, 60) * MIN; // a few already passed
    if (f.coldChain === true) r.capabilities = ['cold_chain'];
    if (rng.chance(0.2)) r.load = 1 + rng.int(3);
    if (rng.chance(0.1)) r.exclude = [`c${rng.int(couriers)}`, `c${rng.int(couriers)}`];
    if (rng.chance(0.2)) r.legSpeed = rng.range(3, 9);
    return r;
  });
  return { buffer: writeCourierSnapshot(index, { createdAt: now }), requests: batch, now };
}

function inline(city: City, requests: DispatchRequest[], policy: DispatchPolicy): DispatchPlan {
  return planBatch(CourierSnapshot.from(city.buffer), requests, policy, city.now);
}

/** The plan without its wall-clock reading, for exact comparison. */
function timeless(plan: DispatchPlan): Omit<DispatchPlan, 'solveMs'> {
  const { solveMs: _, ...rest } = plan;
  return rest;
}

describe('DispatchPool', { timeout: 60_000 }, () => {
  let city: City;
  let pool: DispatchPool;

  beforeAll(() => {
    city = seededCity(11, 3_000, 300);
    pool = new DispatchPool({ minThreads: 1, maxThreads: 2 });
  });
  afterAll(() => pool.close());

  it('plans a batch in a worker thread exactly as planBatch does inline', async () => {
    for (const policy of [BATCHED, GREEDY]) {
      const before = pool.stats.worker;
      const plan = await pool.plan(city.buffer, city.requests, policy, city.now);
      const expected = inline(city, city.requests, policy);
      expect(pool.stats.worker).toBe(before + 1);
      expect(timeless(plan)).toStrictEqual(timeless(expected));
      expect(plan.assignments.length).toBeGreaterThan(200);
      expect(plan.solveMs).toBeGreaterThan(0);
    }
  });

  it('leaves the caller’s requests untouched', async () => {
    const copy = structuredClone(city.requests);
    await pool.plan(city.buffer, city.requests, BATCHED, city.now);
    expect(city.requests).toStrictEqual(copy);
  });

  it('plans concurrent batches over one shared snapshot, each exactly', async () => {
    const parts = [city.requests.slice(0, 100), city.requests.slice(100, 200), city.requests.slice(200)];
    const plans = await Promise.all(parts.map((part) => pool.plan(city.buffer, part, BATCHED, city.now)));
    plans.forEach((plan, p) => expect(timeless(plan)).toStrictEqual(timeless(inline(city, parts[p], BATCHED))));
  });

  it('keeps the main thread responsive while a large batch solves in a worker', async () => {
    const big = seededCity(12, 20_000, 2_000);
    await pool.plan(big.buffer, big.requests.slice(0, 100), BATCHED, big.now); // boot and warm a thread first
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      const plan = await pool.plan(big.buffer, big.requests, BATCHED, big.now);
      expect(plan.assignments.length).toBeGreaterThan(1_500);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThanOrEqual(3);
  });

  it('runs batches of at most inlineBelow requests on the calling thread', async () => {
    const small = new DispatchPool({ minThreads: 0, maxThreads: 1, inlineBelow: 32 });
    try {
      const plan = await small.plan(city.buffer, city.requests.slice(0, 32), BATCHED, city.now);
      expect(small.stats).toEqual({ inline: 1, worker: 0 });
      expect(timeless(plan)).toStrictEqual(timeless(inline(city, city.requests.slice(0, 32), BATCHED)));
      await small.plan(city.buffer, city.requests.slice(0, 33), BATCHED, city.now);
      expect(small.stats).toEqual({ inline: 1, worker: 1 });
    } finally {
      await small.close();
    }
  });

  it('hands the dispatch loop a bound Planner, interchangeable with inlinePlanner', async () => {
    const planners: Planner[] = [pool.planner, inlinePlanner];
    const [a, b] = await Promise.all(planners.map((plan) => plan(city.buffer, city.requests, BATCHED, city.now)));
    expect(timeless(a)).toStrictEqual(timeless(b));
  });

  it('passes a worker-side programmer error back as a rejection', async () => {
    const bad = { ...BATCHED, mode: 'fastest' } as unknown as DispatchPolicy;
    await expect(pool.plan(city.buffer, city.requests, bad, city.now)).rejects.toThrow("policy.mode must be 'batched' or 'greedy', got 'fastest'");
    await expect(pool.plan(city.buffer, city.requests.slice(0, 2), bad, city.now)).rejects.toThrow(/policy\.mode/);
  });

  it('refuses a snapshot that is not shared memory', async () => {
    const copy = new ArrayBuffer(city.buffer.byteLength);
    new Uint8Array(copy).set(new Uint8Array(city.buffer));
    await expect(pool.plan(copy as unknown as SharedArrayBuffer, city.requests, BATCHED, city.now)).rejects.toThrow(/must be the SharedArrayBuffer from writeCourierSnapshot/);
  });

  it('shuts its worker threads on close() and refuses work afterwards', async () => {
    const own = new DispatchPool({ minThreads: 2, maxThreads: 2 });
    await own.plan(city.buffer, city.requests, BATCHED, city.now);
    expect(own.threads).toBeGreaterThan(0);
    await own.close();
    expect(own.threads).toBe(0);
    await expect(own.plan(city.buffer, city.requests, BATCHED, city.now)).rejects.toThrow('DispatchPool.plan: the pool is closed; create a new DispatchPool');
    await own.close(); // idempotent
  });
});

describe('locateMatchBatchWorker', () => {
  it('finds the compiled task under dist/ from source and from dist alike', () => {
    const fromSource = locateMatchBatchWorker(new URL('./dispatch-pool.ts', import.meta.url).href);
    const fromDist = locateMatchBatchWorker(new URL('../dist/workers/dispatch-pool.js', import.meta.url).href);
    expect(fromSource.href).toBe(new URL('../dist/workers/match-batch.js', import.meta.url).href);
    expect(fromDist.href).toBe(fromSource.href);
  });

  it('tells you to build when the compiled task is missing', () => {
    const root = mkdtempSync(join(tmpdir(), 'geodispatch-'));
    try {
      writeFileSync(join(root, 'package.json'), '{}');
      const from = pathToFileURL(join(root, 'workers', 'dispatch-pool.js')).href;
      expect(() => locateMatchBatchWorker(from)).toThrow(/match-batch\.js is missing; run npm run build/);
    } finally {
      rmSync(root, { recursive: true });
    }
  });
});
