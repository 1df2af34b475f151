/**
 * Redis GEO baseline on the same pings and queries: GEOADD batches (one command per WS-sized batch, several in
 * flight on one pipelined connection) and GEOSEARCH FROMLONLAT … BYRADIUS … COUNT k ASC at the HTTP concurrency.
 * Everything lives under one key per run, deleted at the end.
 */
import { Redis } from 'ioredis';
import { runClosedLoop, type LoopBounds, type LoopResult } from './http-client.js';
import type { PingCursor, PingItem } from './ping-frames.js';

/** A connected Redis peer for one run. */
export interface RedisPeer {
  redis: Redis;
  key: string;
}

// Batches in flight at once on the connection: enough to hide the loopback round trip, as a gateway would
const GEOADD_PIPELINE_DEPTH = 16;

/** Connects (2 s timeout, no retries); returns a note instead of throwing when Redis is not there. */
export async function connectRedis(url: string, runId: string): Promise<RedisPeer | { skipped: string }> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 1, retryStrategy: () => null, enableOfflineQueue: false });
  redis.on('error', () => {}); // reported through the failed connect below
  try {
    await redis.connect();
    await redis.ping();
  } catch (e) {
    redis.disconnect();
    return { skipped: `Redis at ${url} unreachable (${(e as Error).message}); Redis peer skipped` };
  }
  return { redis, key: `gd:load:${runId}:couriers` };
}

/**
 * Loads the couriers' start positions, each member's first GEOADD, in `batch`-member commands all pipelined:
 * the baseline of the first-ping phase (the server gets the same positions as its couriers' first pings).
 */
export async function loadRedis(peer: RedisPeer, ids: readonly string[], lat: Float64Array, lng: Float64Array, batch = 5000): Promise<number> {
  const t0 = performance.now();
  const pipe = peer.redis.pipeline();
  for (let i = 0; i < ids.length; i += batch) {
    const args: (string | number)[] = [peer.key];
    for (let j = i; j < Math.min(ids.length, i + batch); j++) args.push(lng[j], lat[j], ids[j]);
    pipe.call('GEOADD', args);
  }
  await pipe.exec();
  return performance.now() - t0;
}

/** Applies `bounds.maxCount` batches of the ping stream as GEOADD; returns pings applied and the elapsed time. */
export async function ingestRedis(peer: RedisPeer, cursor: PingCursor, batch: number, bounds: LoopBounds): Promise<{ pings: number; elapsedMs: number; failed: number }> {
  const items: PingItem[][] = Array.from({ length: GEOADD_PIPELINE_DEPTH }, () => []);
  let lane = 0;
  const r = await runClosedLoop(
    async () => {
      const mine = items[lane++ % GEOADD_PIPELINE_DEPTH];
      cursor.take(batch, mine);
      const args: (string | number)[] = new Array(1 + 3 * batch);
      args[0] = peer.key;
      for (let j = 0; j < batch; j++) {
        const it = mine[j];
        args[1 + 3 * j] = it[2];
        args[2 + 3 * j] = it[1];
        args[3 + 3 * j] = it[0];
      }
      await peer.redis.call('GEOADD', args);
    },
    GEOADD_PIPELINE_DEPTH,
    { maxCount: Math.ceil(bounds.maxCount / batch), durationMs: bounds.durationMs },
  );
  return { pings: r.ok * batch, elapsedMs: r.elapsedMs, failed: r.failed };
}

/** Runs the nearest queries as GEOSEARCH … COUNT k ASC with `concurrency` in flight. */
export function queryRedis(peer: RedisPeer, q: { lat: Float64Array; lng: Float64Array }, k: number, radiusM: number, concurrency: number, bounds: LoopBounds): Promise<LoopResult> {
  const n = q.lat.length;
  return runClosedLoop(
    async (i) => {
      const j = i % n;
      await peer.redis.call('GEOSEARCH', [peer.key, 'FROMLONLAT', q.lng[j], q.lat[j], 'BYRADIUS', radiusM, 'm', 'COUNT', k, 'ASC']);
    },
    concurrency,
    bounds,
  );
}

/** Deletes the run's key and disconnects. */
export async function closeRedis(peer: RedisPeer): Promise<void> {
  try {
    await peer.redis.del(peer.key);
  } finally {
    peer.redis.disconnect();
  }
}
