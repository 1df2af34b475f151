/**
 * Nearest across region owners against a brute-force oracle: couriers around a point where three regions meet,
 * split between two cores by region, queried through the bus (local, then Redis with real leases).
 */
import { cellToBoundary } from 'h3-js';
import type { Redis } from 'ioredis';
import { pack, unpack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CourierIndex } from '../engine/courier-index.js';
import { distanceMeters } from '../engine/geodesy.js';
import { seededRandom } from '../fixtures/prng.js';
import { type Bus, LocalBus } from './bus.js';
import { BadNearestQuery, type NearestQuery, NearestResponder, NearestScatter, type OwnerDirectory, type RankedHit, mergeNearest } from './nearest-scatter.js';
import { RedisBus } from './redis-bus.js';
import { RegionLeases } from './region-lease.js';
import { leaseDirectory, registerRegions } from './region-ownership.js';
import { regionOf, regionsTouched } from './regions.js';
import { connectTestRedis } from './test-redis.js';

// a vertex of London's region: three regions meet there
const [VLAT, VLNG] = cellToBoundary(regionOf(51.5074, -0.1278))[0];
const CORES = ['core-1', 'core-2'];

interface Courier {
  id: string;
  lat: number;
  lng: number;
}

function fleet(n: number, seed: number): Courier[] {
  const rand = seededRandom(seed);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  return Array.from({ length: n }, (_, i) => ({ id: `c${i}`, lat: VLAT + gauss() * 0.15, lng: VLNG + gauss() * 0.25 }));
}

/** Regions dealt to the cores in turn, busiest first (both get a big share); regions with no courier to core-1. */
function ownerOf(couriers: Courier[]): (region: string) => string {
  const count = new Map<string, number>();
  for (const c of couriers) count.set(regionOf(c.lat, c.lng), (count.get(regionOf(c.lat, c.lng)) ?? 0) + 1);
  const regions = [...count.keys()].sort((a, b) => count.get(b)! - count.get(a)! || (a < b ? -1 : 1));
  return (region) => CORES[Math.max(0, regions.indexOf(region)) % 2];
}

/** Two cores, each with an index of its own regions' couriers. */
function shard(couriers: Courier[]): Map<string, CourierIndex> {
  const owner = ownerOf(couriers);
  const cores = new Map(CORES.map((c) => [c, new CourierIndex()]));
  for (const c of couriers) {
    const index = cores.get(owner(regionOf(c.lat, c.lng)))!;
    index.upsert(c.id, { status: 'available', vehicle: 'bike', capabilities: [], capacity: 1 });
    index.move(c.id, c.lat, c.lng, 1);
  }
  return cores;
}

function answerWith(index: CourierIndex): (q: NearestQuery) => RankedHit[] {
  return (q) => index.nearby(q.lat, q.lng, { k: q.k, radius: q.radius }).map((h) => ({ id: h.id, distance: h.distance }));
}

function bruteForce(couriers: Courier[], q: NearestQuery): RankedHit[] {
  return couriers
    .map((c) => ({ id: c.id, distance: distanceMeters(q.lat, q.lng, c.lat, c.lng) }))
    .filter((h) => h.distance <= q.radius)
    .sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1))
    .slice(0, q.k);
}

function queries(n: number, seed: number): NearestQuery[] {
  const rand = seededRandom(seed);
  return Array.from({ length: n }, () => ({
    lat: VLAT + (rand() - 0.5) * 0.3,
    lng: VLNG + (rand() - 0.5) * 0.5,
    k: 1 + Math.floor(rand() * 30),
    radius: 200 + rand() * rand() * 40_000,
  }));
}

function expectSameHits(got: RankedHit[], want: RankedHit[], q: NearestQuery): void {
  const where = `query (${q.lat}, ${q.lng}) k=${q.k} r=${q.radius.toFixed(0)}`;
  expect(got.map((h) => h.id), where).toEqual(want.map((h) => h.id));
  got.forEach((h, i) => expect(Math.abs(h.distance - want[i].distance), where).toBeLessThan(0.01));
}

describe('mergeNearest', () => {
  it('keeps the k nearest, ties by id, and a courier answered twice once at its smaller distance', () => {
    const merged = mergeNearest([[{ id: 'b', distance: 5 }, { id: 'x', distance: 9 }], [{ id: 'a', distance: 5 }, { id: 'x', distance: 2 }], []], 3);
    expect(merged).toEqual([{ id: 'x', distance: 2 }, { id: 'a', distance: 5 }, { id: 'b', distance: 5 }]);
    expect(mergeNearest([[{ id: 'a', distance: 1 }]], 0)).toEqual([]);
  });
});

describe('nearest scattered to region owners over the local bus', () => {
  const couriers = fleet(4_000, 11);
  const owner = ownerOf(couriers);
  const cores = shard(couriers);
  const bus: Bus = new LocalBus();
  const directory: OwnerDirectory = { holders: async (rs) => rs.map(owner), liveCores: async () => CORES };
  const edge = new NearestScatter<RankedHit>(bus, 'edge-a', directory);
  beforeAll(async () => {
    for (const [name, index] of cores) await new NearestResponder(bus, name, answerWith(index)).start();
    await edge.start();
  });

  it('the fleet sits across regions held by both cores', () => {
    expect([...cores.values()].map((i) => i.stats().couriers).every((n) => n > 500)).toBe(true);
  });

  it('answers 300 queries around the meeting point as a brute force over the whole fleet does', async () => {
    for (const q of queries(300, 12)) {
      const { hits, missing } = await edge.nearest(q);
      expect(missing).toEqual([]);
      expectSameHits(hits, bruteForce(couriers, q), q);
    }
  });

  it('a core refuses a malformed query with an error the edge reports, and ignores one it cannot answer to', async () => {
    const errors: unknown[] = [];
    const replies: unknown[] = [];
    const probe = new LocalBus();
    await new NearestResponder(probe, 'core-x', () => [], (e) => errors.push(e)).start();
    await probe.subscribe('edge:p:nearest', (_c, payload) => replies.push(unpack(payload)));
    for (const q of [{ lat: 91, lng: 0, k: 1, radius: 1 }, { lat: '51.5', lng: 0, k: 1, radius: 1 }, { lat: 0, lng: 0, k: 1e9, radius: 1 }, { lat: 0, lng: 0, k: 1, radius: -1 }, { lat: 0, lng: 0, k: 1, radius: '5' }, null]) {
      await probe.publish('core:core-x:nearest', pack({ id: 'q', replyTo: 'edge:p:nearest', q }));
    }
    await probe.publish('core:core-x:nearest', pack({ id: 'q', replyTo: 'core:core-x:nearest', q: { lat: 0, lng: 0, k: 1, radius: 1 } }));
    await probe.publish('core:core-x:nearest', Buffer.from([0xc1]));
    await new Promise((r) => setTimeout(r, 20));
    const where = 'lat must be a number in -90..90 and lng in -180..180';
    const radius = 'radius must be a number from 0 to 20037509 m';
    expect(replies.map((r) => (r as { error: string }).error)).toEqual([where, where, 'k must be an integer from 1 to 1000', radius, radius, 'no query']);
    expect(errors).toHaveLength(2);
  });

  it('the edge refuses to scatter a query no core would answer, instead of answering it empty', async () => {
    await expect(edge.nearest({ lat: 95, lng: 0, k: 1, radius: 10 })).rejects.toBeInstanceOf(BadNearestQuery);
    await expect(edge.nearest({ lat: 0, lng: 0, k: 0, radius: 10 })).rejects.toThrow(/k must be/);
  });

  it('asks every live core when the radius is too large to list regions', async () => {
    const q = { lat: VLAT, lng: VLNG, k: 7, radius: 600_000 };
    const { hits, missing } = await edge.nearest(q);
    expect(missing).toEqual([]);
    expectSameHits(hits, bruteForce(couriers, q), q);
  });
});

describe('nearest scattered to region owners over Redis, owners from the leases', () => {
  let redis: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  const conns: Redis[] = [];
  const couriers = fleet(2_000, 21);
  const owner = ownerOf(couriers);
  const cores = shard(couriers);
  const responders = new Map<string, NearestResponder<RankedHit>>();
  let edge: NearestScatter<RankedHit>;
  let leases: Map<string, RegionLeases>;
  const held: [string, string, number][] = [];

  beforeAll(async () => {
    ({ redis, prefix, cleanup } = await connectTestRedis());
    leases = new Map(CORES.map((c) => [c, new RegionLeases(redis, { owner: c, prefix })]));
    const regions = new Set<string>();
    for (const q of queries(40, 22)) {
      const touched = regionsTouched(q.lat, q.lng, q.radius);
      if (touched !== 'all') touched.forEach((r) => regions.add(r));
    }
    await registerRegions(redis, [...regions], prefix);
    for (const r of regions) {
      const core = owner(r);
      const epoch = await leases.get(core)!.acquire(r);
      held.push([r, core, epoch!]);
    }
    const bus = (): Bus => {
      const c = redis.duplicate();
      conns.push(c);
      return new RedisBus(c, { prefix });
    };
    for (const [name, index] of cores) {
      const r = new NearestResponder(bus(), name, answerWith(index));
      await r.start();
      responders.set(name, r);
    }
    edge = new NearestScatter<RankedHit>(bus(), 'edge-b', leaseDirectory(redis, leases.get('core-1')!, prefix), 500);
    await edge.start();
  });
  afterAll(async () => {
    for (const c of conns) c.disconnect();
    await cleanup();
  });

  it('answers as the brute force does, asking the lease holders', async () => {
    for (const q of queries(40, 22)) {
      const { hits, missing } = await edge.nearest(q);
      expect(missing).toEqual([]);
      expectSameHits(hits, bruteForce(couriers, q), q);
    }
  });

  it('names a core that does not answer and a region without an owner, and still merges what came', async () => {
    const q = { lat: VLAT, lng: VLNG, k: 20, radius: 30_000 };
    await responders.get('core-2')!.stop(); // alive in Redis, silent on the bus
    const silent = await edge.nearest(q);
    expect(silent.missing).toEqual(['core core-2 did not answer in 500 ms']);
    const core1Only = couriers.filter((c) => owner(regionOf(c.lat, c.lng)) === 'core-1');
    expectSameHits(silent.hits, bruteForce(core1Only, q), q);
    for (const [r, core, epoch] of held) if (core === 'core-2') await leases.get(core)!.release(r, epoch);
    const unowned = await edge.nearest(q);
    expect(unowned.missing.length).toBeGreaterThan(0);
    expect(unowned.missing.every((m) => /^region \w+ has no owner$/.test(m))).toBe(true);
  });

  it('counts a region the cluster never had anything in as empty, not missing', async () => {
    const far = { lat: -33.87, lng: 151.21, k: 5, radius: 2_000 }; // Sydney: no courier, no ping, no region known
    expect(await edge.nearest(far)).toEqual({ hits: [], missing: [] });
  });
});
