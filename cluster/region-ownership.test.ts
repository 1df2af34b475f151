/**
 * Region ownership across cores on the machine's Redis and PostgreSQL: an even split, failover within the lease
 * under larger epochs (and the dead core's commits refused), a clean hand-back, a core joining.
 */
import { gridDisk } from 'h3-js';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StaleEpoch } from '../store/store-errors.js';
import { type Store, openStore } from '../store/store.js';
import { dropTestSchema, testDatabaseUrl, testSchemaName } from '../store/test-database.js';
import { RegionLeases } from './region-lease.js';
import { MAX_TAKES_PER_ROUND, NameTaken, RegionOwnership, registerRegions } from './region-ownership.js';
import { connectTestRedis } from './test-redis.js';

const TTL = 400;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const REGIONS = ['841f001ffffffff', '841f003ffffffff', '841f005ffffffff', '841f007ffffffff', '841f009ffffffff', '841f00bffffffff'];

describe('region ownership on a real Redis and PostgreSQL', () => {
  const url = testDatabaseUrl();
  const schema = testSchemaName('gd_owner');
  let store: Store;
  let redis: Redis;
  let cleanup: () => Promise<void>;
  let base: string;
  let run = 0;
  beforeAll(async () => {
    store = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
    await store.migrate();
    ({ redis, prefix: base, cleanup } = await connectTestRedis());
  });
  afterAll(async () => {
    await cleanup();
    await store.close();
    await dropTestSchema(url, schema);
  });

  /** A cluster of its own per test (its own prefix and regions), with a log of what each core gained and lost. */
  async function cluster(regions: readonly string[]) {
    const prefix = `${base}${++run}:`;
    await registerRegions(redis, regions, prefix);
    const known = (await redis.zrange(`${prefix}regions`, 0, -1)).sort();
    const log: string[] = [];
    const core = (name: string): RegionOwnership =>
      new RegionOwnership(redis, new RegionLeases(redis, { owner: name, ttlMs: TTL, prefix }), store, {
        prefix,
        onGained: (r, e) => void log.push(`${name} +${r}@${e}`),
        onLost: (r, e) => void log.push(`${name} -${r}@${e}`),
      });
    return { known, log, core };
  }

  const owned = (o: RegionOwnership): string[] => [...o.regions().keys()].sort();

  it('splits the regions evenly between two cores, each claimed in PostgreSQL under its epoch', async () => {
    const { known, core } = await cluster(REGIONS);
    const [a, b] = [core('a'), core('b')];
    await a.tick(); // alone for a moment: takes a few regions a round (a round stays short)
    expect(owned(a)).toHaveLength(MAX_TAKES_PER_ROUND);
    await a.tick(); // and the rest in the next
    expect(owned(a)).toEqual(known);
    await b.tick(); // joins: share 3, nothing free yet
    await a.tick(); // sheds to its share
    await b.tick(); // takes the rest
    expect(owned(a)).toHaveLength(3);
    expect(owned(b)).toHaveLength(3);
    expect([...owned(a), ...owned(b)].sort()).toEqual(known);
    const stored = await store.regionEpochs(known);
    for (const o of [a, b]) for (const [r, e] of o.regions()) expect(stored.get(r)).toBe(e);
  });

  it('gives a dead core\'s regions to the survivor within the lease, under larger epochs; the dead core cannot commit', async () => {
    const { known, log, core } = await cluster(REGIONS);
    const [a, b] = [core('a'), core('b')];
    await a.tick();
    await b.tick();
    await a.tick();
    await b.tick();
    const dead = new Map(a.regions());
    expect(dead.size).toBe(3);
    // a is killed: it stops ticking; b keeps ticking every third of the lease
    const t0 = Date.now();
    while (owned(b).length < known.length && Date.now() - t0 < 5_000) {
      await sleep(TTL / 3);
      await b.tick();
    }
    expect(owned(b)).toEqual(known);
    expect(Date.now() - t0).toBeLessThan(TTL * 3);
    for (const [r, e] of dead) expect(b.regions().get(r)).toBeGreaterThan(e);
    const [region, epoch] = [...dead][0];
    const commit = store.commitTransitions([{ seq: 1, at: Date.now() }], [{ region, epoch }]);
    await expect(commit).rejects.toBeInstanceOf(StaleEpoch);
    // a comes back (unpaused): its renewals fail, it drops every region it thought it held
    await a.tick();
    for (const [r, e] of dead) expect(log).toContain(`a -${r}@${e}`);
    expect(owned(a)).toEqual([]);
  });

  it('hands everything back on stop, so the other core takes it on its next tick without waiting', async () => {
    const { known, core } = await cluster(REGIONS.slice(0, 4));
    const [a, b] = [core('a'), core('b')];
    await a.tick();
    await b.tick();
    await a.tick();
    await b.tick();
    await a.stop();
    await b.tick();
    expect(owned(b)).toEqual(known);
  });

  it('refuses a second process under a live core\'s name, and lets a new one in once the first has stopped', async () => {
    const { known, core } = await cluster(REGIONS.slice(0, 2));
    const [first, twin] = [core('a'), core('a')];
    await first.claimName();
    await first.tick();
    await expect(twin.claimName()).rejects.toBeInstanceOf(NameTaken);
    // a twin that ticks anyway (started without claiming) takes nothing and says why
    await expect(twin.tick()).rejects.toBeInstanceOf(NameTaken);
    expect(owned(twin)).toEqual([]);
    expect(owned(first)).toEqual(known);
    await first.stop();
    const next = core('a');
    await next.claimName();
    await next.tick();
    expect(owned(next)).toEqual(known);
    await next.stop();
  });

  it('lets go of a region it is told to forget (nothing in it): out of the known set, lease released', async () => {
    const { known, core } = await cluster(REGIONS.slice(0, 2));
    const a = core('a');
    await a.tick();
    const [empty, kept] = known;
    await a.forget(empty);
    expect(owned(a)).toEqual([kept]);
    expect(await redis.zscore(`${base}${run}:regions`, empty)).toBeNull();
    await a.tick();
    expect(owned(a)).toEqual([kept]); // not taken again: nobody registered it since
    await registerRegions(redis, [empty], `${base}${run}:`); // a ping there again
    await a.tick();
    expect(owned(a)).toEqual(known);
    await a.stop();
  });

  it('takes the most recently pinged regions first, so a dead core\'s busy regions come before ones pinged once', async () => {
    const { core } = await cluster([]);
    const prefix = `${base}${run}:`;
    const t = Date.now();
    // nineteen regions pinged long ago, two of them again just now
    const many = gridDisk(REGIONS[0], 2).sort();
    await registerRegions(redis, many, prefix, t - 60_000);
    await registerRegions(redis, [many[13], many[5]], prefix, t);
    const a = core('a');
    await a.tick();
    expect(owned(a)).toHaveLength(MAX_TAKES_PER_ROUND);
    expect(owned(a)).toEqual(expect.arrayContaining([many[5], many[13]]));
    await a.stop();
  });
});
