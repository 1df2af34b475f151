/**
 * GeoDispatch load generator (PRODUCT.md §4, §6): real WebSocket and HTTP clients against a running server, with
 * Redis GEO and PostGIS KNN as baselines on the same points and queries, in the same run.
 *
 *   args ─► config (load-config.ts: flags → one typed Config, USAGE)
 *        ─► workload (workload.ts: seeded couriers, ping pool, query points, requests)
 *        ─► geodispatch-run.ts                                                       [skipped with --peers-only]
 *             server: --url (GET /health) | --spawn (dist/api/main.js, dev tokens)
 *             setup: PUT /v1/couriers/{id} ×N, POST /v1/locations
 *             timed: WS ingest per mode (msgpack batches, JSON batches, JSON driver pings)
 *                    GET /v1/nearby closed loop · POST /v1/requests open loop
 *        ─► peer-runs.ts: Redis GEOADD / GEOSEARCH · PostGIS upsert / KNN   (skipped with a note when unreachable)
 *        ─► load-report.ts: one JSON line per figure (bench-report) with ratio GeoDispatch / peer
 *        ─► cleanup, last registered first (key, table, HTTP client, server)
 *
 *   node dist/bench/load/load-generator.js --couriers 100000 --rate 500000 --duration 20 --spawn
 *   node dist/bench/load/load-generator.js --url http://127.0.0.1:8080 --token <admin JWT> --quick
 *   node dist/bench/load/load-generator.js --peers-only --quick
 */
import { readConfig, type LoadRun } from './load-config.js';
import { runGeoDispatch } from './geodispatch-run.js';
import { log, reportAll } from './load-report.js';
import { runPostgisPeer, runRedisPeer } from './peer-runs.js';
import { ServerUnreachableError } from './server-target.js';
import { buildWorkload } from './workload.js';

const cfg = readConfig(process.argv.slice(2));
const run: LoadRun = { cfg, notes: [], cleanups: [] };
const { notes, cleanups } = run;

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    process.stderr.write(`\nload generator failed: ${e instanceof Error ? e.message : String(e)}\n`);
    await cleanUp();
    process.exit(e instanceof ServerUnreachableError ? 2 : 1);
  },
);

async function main(): Promise<number> {
  // the run stops itself: a watchdog cleans up and exits if anything hangs past the budget
  const watchdog = setTimeout(() => {
    process.stderr.write(`\nload generator: --max-seconds ${cfg.maxSeconds} exceeded; cleaning up and exiting\n`);
    void cleanUp().finally(() => process.exit(3));
  }, cfg.maxSeconds * 1000);
  watchdog.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanUp().finally(() => process.exit(130)));

  log(`load: ${cfg.couriers} couriers, rate ${cfg.rate} pings/s, ${cfg.durationS} s per phase, ${cfg.connections} WS connections, batch ${cfg.batch}, HTTP concurrency ${cfg.httpConcurrency}, run ${cfg.runId}${cfg.quick ? ', quick' : ''}`);
  const t0 = performance.now();
  const w = buildWorkload({ seed: cfg.seed, couriers: cfg.couriers, cities: cfg.cities, pingPool: cfg.pingPool, pingRate: cfg.rate, queries: cfg.queries, requests: cfg.requests });
  log(`workload built in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${w.pings.index.length} pooled pings, ${w.queries.lat.length} query points, ${w.requests.length} requests`);

  const gd = cfg.peersOnly ? undefined : await runGeoDispatch(run, w);
  const redis = cfg.redis ? await runRedisPeer(run, w, gd?.ingest.get('msgpack')?.sentPings) : undefined;
  const pgis = cfg.postgis ? await runPostgisPeer(run, w) : undefined;

  reportAll(cfg, gd, redis, pgis);
  await cleanUp();
  for (const n of notes) log(`note: ${n}`);
  log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return 0;
}

async function cleanUp(): Promise<void> {
  // last registered first: peers before the HTTP client before the server
  while (cleanups.length > 0) {
    const c = cleanups.pop()!;
    await c().catch((e: Error) => log(`cleanup: ${e.message}`));
  }
}
