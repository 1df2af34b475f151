/**
 * PostGIS baseline on the same points and queries: a per-run table (id text primary key, geom geography) with
 * a GiST index, loaded with unnest batches, kept current with the same pings as upserts, and queried with the
 * KNN operator (`ORDER BY geom <-> point LIMIT k`) at the HTTP concurrency. The table is dropped at the end.
 */
import pg from 'pg';
import { runClosedLoop, type LoopBounds, type LoopResult } from './http-client.js';
import type { PingCursor, PingItem } from './ping-frames.js';

/** A connected PostGIS peer for one run. */
export interface PostgisPeer {
  pool: pg.Pool;
  table: string;
  version: string;
}

const LOAD_BATCH = 10_000;

/** Connects (3 s timeout), makes sure PostGIS is there; returns a note instead of throwing when it is not. */
export async function connectPostgis(url: string, runId: string, poolSize: number): Promise<PostgisPeer | { skipped: string }> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 3000 });
  pool.on('error', () => {}); // idle-client errors end the peer's queries, which report them
  try {
    await pool.query('CREATE EXTENSION IF NOT EXISTS postgis').catch(() => undefined); // needs rights; checked next
    const r = await pool.query<{ v: string }>('SELECT postgis_lib_version() AS v');
    if (!/^[a-z0-9_]+$/.test(runId)) throw new Error(`runId must be [a-z0-9_]+, got ${runId}`);
    return { pool, table: `gd_load_${runId}`, version: r.rows[0].v };
  } catch (e) {
    await pool.end().catch(() => undefined);
    return { skipped: `PostGIS at ${url.replace(/\/\/[^@]*@/, '//…@')} unavailable (${(e as Error).message}); PostGIS peer skipped` };
  }
}

/** Creates the table, loads the start positions and builds the GiST index; returns the elapsed ms. */
export async function loadPostgis(peer: PostgisPeer, ids: readonly string[], lat: Float64Array, lng: Float64Array): Promise<number> {
  const t0 = performance.now();
  await peer.pool.query(`CREATE UNLOGGED TABLE ${peer.table} (id text PRIMARY KEY, geom geography(Point, 4326) NOT NULL)`);
  for (let i = 0; i < ids.length; i += LOAD_BATCH) {
    const end = Math.min(ids.length, i + LOAD_BATCH);
    await peer.pool.query(
      `INSERT INTO ${peer.table} (id, geom) SELECT id, ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography FROM unnest($1::text[], $2::float8[], $3::float8[]) AS u(id, lng, lat)`,
      [ids.slice(i, end), Array.from(lng.subarray(i, end)), Array.from(lat.subarray(i, end))],
    );
  }
  await peer.pool.query(`CREATE INDEX ${peer.table}_geom ON ${peer.table} USING gist (geom)`);
  await peer.pool.query(`ANALYZE ${peer.table}`);
  return performance.now() - t0;
}

/** Applies the ping stream as batched upserts (last ping per courier in a batch wins, as it would on the server). */
export async function ingestPostgis(peer: PostgisPeer, cursor: PingCursor, batch: number, concurrency: number, bounds: LoopBounds): Promise<{ pings: number; elapsedMs: number; failed: number; firstFailure?: string }> {
  const r = await runClosedLoop(
    async () => {
      const items: PingItem[] = cursor.take(batch, []);
      const last = new Map<string, PingItem>();
      for (const it of items) last.set(it[0], it); // ON CONFLICT cannot touch one row twice in a statement
      // one lock order for every statement: concurrent upserts of overlapping ids would deadlock otherwise
      const rows = [...last.values()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      await peer.pool.query(
        `INSERT INTO ${peer.table} (id, geom) SELECT id, ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography FROM unnest($1::text[], $2::float8[], $3::float8[]) AS u(id, lng, lat) ` +
          'ON CONFLICT (id) DO UPDATE SET geom = EXCLUDED.geom',
        [rows.map((x) => x[0]), rows.map((x) => x[2]), rows.map((x) => x[1])],
      );
    },
    concurrency,
    { maxCount: Math.ceil(bounds.maxCount / batch), durationMs: bounds.durationMs },
  );
  return { pings: r.ok * batch, elapsedMs: r.elapsedMs, failed: r.failed, firstFailure: r.firstFailure };
}

/** Runs the nearest queries as KNN `<->` with LIMIT k and `concurrency` in flight (one prepared statement). */
export function queryPostgis(peer: PostgisPeer, q: { lat: Float64Array; lng: Float64Array }, k: number, concurrency: number, bounds: LoopBounds): Promise<LoopResult> {
  const n = q.lat.length;
  const text = `SELECT id FROM ${peer.table} ORDER BY geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography LIMIT ${k}`;
  return runClosedLoop(
    async (i) => {
      const j = i % n;
      await peer.pool.query({ name: `${peer.table}_knn`, text, values: [q.lng[j], q.lat[j]] });
    },
    concurrency,
    bounds,
  );
}

/** Drops the run's tables and closes the pool. */
export async function closePostgis(peer: PostgisPeer): Promise<void> {
  try {
    // with the query points pgbench draws from (native-peers.ts), should a run have stopped inside it
    await peer.pool.query(`DROP TABLE IF EXISTS ${peer.table}, ${peer.table}_q`);
  } finally {
    await peer.pool.end();
  }
}
