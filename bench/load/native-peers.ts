/**
 * The nearest-query baselines under their own C clients, as PRODUCT §6 asks ("native clients"), so the wrk
 * figure of GeoDispatch is compared like for like:
 *   Redis GEOSEARCH through `redis-benchmark` (one run per query point, the points cycled, pooled), and
 *   PostGIS KNN through `pgbench` (a script that picks a query point at random from a table of them).
 * Each returns undefined when its tool is not on PATH (`apt-get install redis-tools postgresql-client`).
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';

/** Queries a native client had answered, per second over the runs. */
export interface NativeQueries {
  client: 'redis-benchmark' | 'pgbench';
  queries: number;
  elapsedMs: number;
  perSecond: number;
}

/** Whether a command answers `--version`. */
export function toolAvailable(command: string): boolean {
  const r = spawnSync(command, ['--version'], { encoding: 'utf8' });
  return r.error === undefined && r.status === 0;
}

/** Requests per second from `redis-benchmark --csv` output (its first data row). */
export function parseRedisBenchmarkCsv(out: string): number {
  const row = out.split('\n').find((line) => /^"[^"]+","[\d.]+"/.test(line));
  if (row === undefined) throw new Error(`redis-benchmark printed no result row:\n${out.slice(0, 500)}`);
  return Number(row.split(',')[1].replaceAll('"', ''));
}

/** Transactions per second from pgbench's report (one query per transaction here). */
export function parsePgbenchTps(out: string): number {
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(out) ?? /tps = ([\d.]+)/.exec(out);
  if (m === null) throw new Error(`pgbench printed no tps line:\n${out.slice(0, 500)}`);
  return Number(m[1]);
}

/**
 * GEOSEARCH … BYRADIUS radius m COUNT k ASC from `points` query points (cycled, `perPoint` queries each) at
 * `concurrency` connections; the pooled rate is the queries over the sum of each run's own time.
 */
export async function redisNative(o: { url: string; key: string; lat: Float64Array; lng: Float64Array; points: number; perPoint: number; k: number; radiusM: number; concurrency: number }): Promise<NativeQueries | undefined> {
  if (!toolAvailable('redis-benchmark')) return undefined;
  const u = new URL(o.url);
  let queries = 0;
  let elapsedMs = 0;
  for (let j = 0; j < Math.min(o.points, o.lat.length); j++) {
    const args = ['-h', u.hostname, '-p', u.port || '6379', '-c', String(o.concurrency), '-n', String(o.perPoint), '--csv',
      'GEOSEARCH', o.key, 'FROMLONLAT', String(o.lng[j]), String(o.lat[j]), 'BYRADIUS', String(o.radiusM), 'm', 'COUNT', String(o.k), 'ASC'];
    if (u.password) args.unshift('-a', decodeURIComponent(u.password));
    const rps = parseRedisBenchmarkCsv(await run('redis-benchmark', args, 120));
    queries += o.perPoint;
    elapsedMs += (o.perPoint / rps) * 1000;
  }
  return { client: 'redis-benchmark', queries, elapsedMs, perSecond: elapsedMs > 0 ? (queries * 1000) / elapsedMs : 0 };
}

/**
 * `ORDER BY geom <-> point LIMIT k` on the peer's table, the point drawn at random from the first `points` query
 * points (held in a table beside it), for `durationS` at `concurrency` clients.
 */
export async function postgisNative(o: { url: string; pool: pg.Pool; table: string; lat: Float64Array; lng: Float64Array; points: number; k: number; concurrency: number; durationS: number }): Promise<NativeQueries | undefined> {
  if (!toolAvailable('pgbench')) return undefined;
  const n = Math.min(o.points, o.lat.length);
  const points = `${o.table}_q`;
  await o.pool.query(`CREATE UNLOGGED TABLE ${points} (i int PRIMARY KEY, geom geography(Point, 4326) NOT NULL)`);
  try {
    await o.pool.query(
      `INSERT INTO ${points} (i, geom) SELECT i - 1, ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS u(lng, lat, i)`,
      [Array.from(o.lng.subarray(0, n)), Array.from(o.lat.subarray(0, n))],
    );
    const dir = mkdtempSync(join(tmpdir(), 'gd-pgbench-'));
    try {
      const script = join(dir, 'knn.sql');
      writeFileSync(script, `\\set i random(0, ${n - 1})\nSELECT id FROM ${o.table} ORDER BY geom <-> (SELECT geom FROM ${points} WHERE i = :i) LIMIT ${o.k};\n`);
      const out = await run('pgbench', ['-n', '-M', 'prepared', '-c', String(o.concurrency), '-j', '1', '-T', String(Math.max(1, Math.round(o.durationS))), '-f', script, o.url], o.durationS + 60);
      const tps = parsePgbenchTps(out);
      const elapsedMs = Math.max(1, Math.round(o.durationS)) * 1000;
      return { client: 'pgbench', queries: Math.round((tps * elapsedMs) / 1000), elapsedMs, perSecond: tps };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await o.pool.query(`DROP TABLE IF EXISTS ${points}`);
  }
}

function run(command: string, args: string[], timeoutS: number): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(command, args, { encoding: 'utf8', timeout: timeoutS * 1000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`${command} failed: ${err.message}\n${stderr}`)) : resolve(stdout))),
  );
}
