/**
 * The Redis GEO and PostGIS KNN baselines: load the same start positions, replay the same pings, answer the same
 * nearest queries. An unreachable peer is skipped with a note, never a failure.
 */
import { describeFailures } from './http-queries.js';
import type { LoopResult } from './http-client.js';
import type { LoadRun } from './load-config.js';
import { log } from './load-report.js';
import { type NativeQueries, postgisNative, redisNative } from './native-peers.js';
import { PingCursor } from './ping-frames.js';
import { closePostgis, connectPostgis, ingestPostgis, loadPostgis, queryPostgis, type PostgisPeer } from './postgis-peer.js';
import { closeRedis, connectRedis, ingestRedis, loadRedis, queryRedis, type RedisPeer } from './redis-peer.js';
import type { Workload } from './workload.js';

/** What one peer measured; either part is missing when it did not run. */
export interface PeerResults {
  ingest?: { pings: number; elapsedMs: number };
  /** Every courier's first position (Redis: its first GEOADD). */
  firstAdds?: { pings: number; elapsedMs: number };
  queries?: LoopResult;
  /** The same queries through the peer's own C client (with `--http-client wrk`, when the tool is on PATH). */
  native?: NativeQueries;
}

/** Query points a native peer cycles (Redis: one redis-benchmark run each). */
const NATIVE_POINTS = 8;

/** Redis GEOADD / GEOSEARCH on the workload; `gdPings` (pings sent in the WS msgpack phase) sizes the ingest. */
export async function runRedisPeer({ cfg, notes, cleanups }: LoadRun, w: Workload, gdPings: number | undefined): Promise<PeerResults | undefined> {
  const c = await connectRedis(cfg.redisUrl, cfg.runId);
  if ('skipped' in c) return skipPeer(notes, c.skipped);
  const peer: RedisPeer = c;
  cleanups.push(() => closeRedis(peer));
  const loadMs = await loadRedis(peer, w.ids, w.start.lat, w.start.lng, cfg.batch);
  log(`redis: ${w.ids.length} start positions loaded in ${(loadMs / 1000).toFixed(1)} s under ${peer.key}`);
  // the same pings in the same order and batch size as the WS msgpack phase (at least one pool's worth)
  const pings = Math.min(cfg.maxPings, Math.max(gdPings ?? 0, w.pings.index.length));
  const ingest = await ingestRedis(peer, new PingCursor(w.pings, w.ids), cfg.batch, { maxCount: pings, durationMs: cfg.durationS * 1000 });
  const queries = await queryRedis(peer, w.queries, cfg.k, cfg.radiusM, cfg.httpConcurrency, { maxCount: cfg.maxQueries, durationMs: cfg.durationS * 1000 });
  if (queries.failed > 0) notes.push(`Redis GEOSEARCH failures: ${describeFailures(queries)}`);
  let native: NativeQueries | undefined;
  if (cfg.httpClient === 'wrk') {
    // about the phase's duration in all: sized from the Node client's rate, which the C client beats
    const guess = queries.ok > 0 ? (queries.ok * 1000) / queries.elapsedMs : 10_000;
    const perPoint = Math.max(1000, Math.ceil((3 * guess * cfg.durationS) / NATIVE_POINTS));
    native = await redisNative({ url: cfg.redisUrl, key: peer.key, lat: w.queries.lat, lng: w.queries.lng, points: NATIVE_POINTS, perPoint, k: cfg.k, radiusM: cfg.radiusM, concurrency: cfg.httpConcurrency }).catch((e: Error) => {
      notes.push(`redis-benchmark peer failed: ${e.message.split('\n')[0]}`);
      return undefined;
    });
    if (native === undefined) notes.push('Redis GEOSEARCH under a C client skipped (redis-benchmark not on PATH: apt-get install redis-tools); the ratio uses the Node client');
    else log(`redis (redis-benchmark): ${Math.round(native.perSecond)} GEOSEARCH/s over ${NATIVE_POINTS} points`);
  }
  return { ingest, firstAdds: { pings: w.ids.length, elapsedMs: loadMs }, queries, native };
}

/** PostGIS upsert / KNN on the workload. */
export async function runPostgisPeer({ cfg, notes, cleanups }: LoadRun, w: Workload): Promise<PeerResults | undefined> {
  const c = await connectPostgis(cfg.pgUrl, cfg.runId, cfg.pgConcurrency);
  if ('skipped' in c) return skipPeer(notes, c.skipped);
  const peer: PostgisPeer = c;
  cleanups.push(() => closePostgis(peer));
  const loadMs = await loadPostgis(peer, w.ids, w.start.lat, w.start.lng);
  log(`postgis ${peer.version}: ${w.ids.length} points loaded + GiST in ${(loadMs / 1000).toFixed(1)} s into ${peer.table}`);
  // writers beyond a few only queue on row locks and WAL; 4 is the best case for the peer on 2 cores
  const ingest = await ingestPostgis(peer, new PingCursor(w.pings, w.ids), cfg.batch, Math.min(4, cfg.pgConcurrency), { maxCount: w.pings.index.length, durationMs: cfg.durationS * 1000 });
  if (ingest.failed > 0) notes.push(`PostGIS upsert failures: ${ingest.firstFailure}`);
  const queries = await queryPostgis(peer, w.queries, cfg.k, cfg.pgConcurrency, { maxCount: cfg.maxQueries, durationMs: cfg.durationS * 1000 });
  if (queries.failed > 0) notes.push(`PostGIS KNN failures: ${describeFailures(queries)}`);
  let native: NativeQueries | undefined;
  if (cfg.httpClient === 'wrk') {
    native = await postgisNative({ url: cfg.pgUrl, pool: peer.pool, table: peer.table, lat: w.queries.lat, lng: w.queries.lng, points: 2000, k: cfg.k, concurrency: cfg.pgConcurrency, durationS: cfg.durationS }).catch((e: Error) => {
      notes.push(`pgbench peer failed: ${e.message.split('\n')[0]}`);
      return undefined;
    });
    if (native === undefined) notes.push('PostGIS KNN under a C client skipped (pgbench not on PATH: apt-get install postgresql-client); the ratio uses the Node client');
    else log(`postgis (pgbench): ${Math.round(native.perSecond)} KNN queries/s`);
  }
  return { ingest, queries, native };
}

function skipPeer(notes: string[], why: string): undefined {
  log(`note: ${why}`);
  notes.push(why);
  return undefined;
}
