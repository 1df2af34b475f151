/**
 * One core in process on the machine's Redis and PostgreSQL, fed raw stream entries as a broken or hostile edge
 * could write them: pings that are stale, far in the future, off the globe or outside their stream's region are
 * refused and counted, and change nothing (not the index, not the courier's region, not the store); a good ping
 * after them is applied. Moves reach the region's move feed.
 */
import type { Redis } from 'ioredis';
import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../api/test-server.js';
import { type Store, openStore } from '../store/store.js';
import { dropTestSchema, testDatabaseUrl, testSchemaName } from '../store/test-database.js';
import { LocalBus } from './bus.js';
import { CoreNode } from './core-node.js';
import { decodeMoves, movesChannel } from './move-feed.js';
import { pingStreamKey } from './ping-streams.js';
import { registerRegions } from './region-ownership.js';
import { regionOf } from './regions.js';
import { connectTestRedis } from './test-redis.js';

const LONDON: [number, number] = [51.5074, -0.1278];
const OXFORD: [number, number] = [51.752, -1.2577];

describe('a core refusing pings it must not apply', () => {
  const url = testDatabaseUrl();
  const schema = testSchemaName('gd_core_node');
  let store: Store;
  let redis: Redis;
  let reader: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  let core: CoreNode;
  const bus = new LocalBus();
  const london = regionOf(...LONDON);
  const t0 = Date.now() - 30_000;

  beforeAll(async () => {
    ({ redis, prefix, cleanup } = await connectTestRedis());
    reader = redis.duplicate();
    store = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
    await store.migrate();
    await store.upsertCouriers([{ id: 'k1', vehicle: 'car', capabilities: [], capacity: 1, status: 'available' }]);
    await store.writePositions({ ids: ['k1'], lat: Float64Array.of(LONDON[0]), lng: Float64Array.of(LONDON[1]), ts: Float64Array.of(t0) });
    await registerRegions(redis, [london], prefix);
    core = new CoreNode({ name: 'core-t', redis, reader, bus, store, prefix, leaseTtlMs: 1_000, idleRegionMs: 400 });
    await core.start();
  });

  afterAll(async () => {
    await core.stop();
    reader.disconnect();
    await cleanup();
    await store.close();
    await dropTestSchema(url, schema);
  });

  const entry = (lat: number, lng: number, ts: number): Promise<unknown> => redis.xadd(pingStreamKey(prefix, london), '*', 'p', pack([['k1'], [lat], [lng], [ts]]));

  it('refuses stale, far-future, off-globe and wrong-region pings, changing nothing, then applies a good one', async () => {
    await eventually(() => (core.index.get('k1')?.ts === t0 ? true : undefined), 'k1 loaded from the store', 5_000);
    const moves: string[][] = [];
    await bus.subscribe(movesChannel(london), (_c, payload) => moves.push(decodeMoves(payload)!.moved.map((m) => `${m[0]}@${m[1]}`)));
    await entry(LONDON[0] + 0.001, LONDON[1], t0 - 1); // older than what is held
    await entry(LONDON[0] + 0.002, LONDON[1], Date.now() + 3_600_000); // an hour ahead
    await entry(95, LONDON[1], t0 + 1); // off the globe
    await entry(OXFORD[0], OXFORD[1], t0 + 2); // in another region than its stream's
    await eventually(() => (core.report().pingsRefused === 4 ? true : undefined), 'four pings refused', 5_000);
    expect(core.index.get('k1')).toMatchObject({ lat: LONDON[0], lng: LONDON[1], ts: t0 });
    expect(core.report().pingsApplied).toBe(0);
    const good = LONDON[0] + 0.003;
    await entry(good, LONDON[1], t0 + 3);
    await eventually(() => (core.index.get('k1')?.lat === good ? true : undefined), 'the good ping applied', 5_000);
    expect(core.report()).toMatchObject({ pingsApplied: 1, pingsRefused: 4 });
    await eventually(() => (moves.flat().includes(`k1@${good}`) ? true : undefined), 'the move on the region\'s feed', 2_000);
    expect(moves.flat().some((m) => !m.endsWith(`@${good}`))).toBe(false);
  });

  it('forgets a region with nothing in it (a ping to a random point registered it), and keeps the ones with couriers', async () => {
    const oxford = regionOf(...OXFORD);
    await registerRegions(redis, [oxford], prefix);
    await eventually(() => (core.ownership.regions().has(oxford) ? true : undefined), 'the empty region taken', 5_000);
    await eventually(async () => (!core.ownership.regions().has(oxford) && (await redis.zscore(`${prefix}regions`, oxford)) === null ? true : undefined), 'the empty region forgotten', 5_000);
    expect(core.ownership.regions().has(london)).toBe(true);
    expect(await redis.zscore(`${prefix}regions`, london)).not.toBeNull();
  });
});
