/**
 * Figures out: one JSON line per figure on stdout (bench-report), with the Redis / PostGIS baseline and ratio
 * where there is one, then the PRODUCT §6 targets on stderr. Progress lines go to stderr through `log`.
 */
import { costRatio, rateRatio, report, type Figure } from '../bench-report.js';
import type { GeoDispatchResults } from './geodispatch-run.js';
import type { LoopResult } from './http-client.js';
import type { Config } from './load-config.js';
import type { PeerResults } from './peer-runs.js';
import type { IngestResult } from './ws-pingers.js';

/** Reports every figure of the run; `gd` is undefined with --peers-only. */
export function reportAll(cfg: Config, gd: GeoDispatchResults | undefined, redis: PeerResults | undefined, pgis: PeerResults | undefined): void {
  log('\nfigures (JSON lines on stdout):');
  const redisIngest = redis?.ingest ? perSecond(redis.ingest.pings, redis.ingest.elapsedMs) : undefined;
  const redisQps = redis?.queries ? perSecond(redis.queries.ok, redis.queries.elapsedMs) : undefined;
  const pgQps = pgis?.queries ? perSecond(pgis.queries.ok, pgis.queries.elapsedMs) : undefined;
  const redisWrkPeer = redis?.native?.perSecond ?? redisQps;
  const pgWrkPeer = pgis?.native?.perSecond ?? pgQps;

  if (redis?.ingest) report({ bench: 'load.redis.geoadd', n: redis.ingest.pings, value: redisIngest!, unit: 'pings/s', batch: cfg.batch });
  if (redis?.queries) reportQueries(cfg, 'load.redis.geosearch', redis.queries);
  if (pgis?.ingest) report({ bench: 'load.pg.upsert', n: pgis.ingest.pings, value: perSecond(pgis.ingest.pings, pgis.ingest.elapsedMs), unit: 'pings/s', batch: cfg.batch, concurrency: Math.min(4, cfg.pgConcurrency) });
  if (pgis?.queries) reportQueries(cfg, 'load.pg.knn', pgis.queries, cfg.pgConcurrency);
  for (const [name, peer] of [['load.redis.geosearch.native', redis?.native], ['load.pg.knn.native', pgis?.native]] as const) {
    if (peer) report({ bench: name, n: peer.queries, value: peer.perSecond, unit: 'queries/s', client: peer.client, k: cfg.k });
  }
  if (gd === undefined) return;

  const redisFirst = redis?.firstAdds ? perSecond(redis.firstAdds.pings, redis.firstAdds.elapsedMs) : undefined;
  if (gd.firstPings) {
    const r = gd.firstPings;
    const byServer = r.accepted !== undefined && r.acceptedMs !== undefined;
    const f: Figure = { bench: 'load.ws.first-ping.msgpack', n: r.sentPings, value: firstPingRate(r), unit: 'pings/s', basis: r.ackedMs !== undefined ? 'acked' : byServer ? 'server-accepted' : 'client-sent', accepted: r.accepted ?? r.ackAccepted, connections: r.connections, batch: cfg.batch };
    report(withBaseline(f, 'redis-first-geoadd', redisFirst, rateRatio));
  }
  for (const [mode, r] of gd.ingest) {
    const sentRate = perSecond(r.sentPings, r.elapsedMs);
    const byServer = r.accepted !== undefined && r.acceptedMs !== undefined;
    const value = ingestRate(r);
    const f: Figure = {
      bench: `load.ws.ingest.${mode}`, n: r.sentPings, value, unit: 'pings/s', basis: byServer ? 'server-accepted' : r.ackAccepted > 0 ? 'acked' : 'client-sent',
      sentPerSec: Math.round(sentRate), accepted: r.accepted ?? r.ackAccepted, connections: r.connections, batch: mode === 'json-single' ? 1 : cfg.batch,
      targetRate: Number.isFinite(cfg.rate) ? cfg.rate : 'max', behind: r.behind, mbPerSec: Number((r.bytes / 1e3 / r.elapsedMs).toFixed(1)),
      serverFrames: Object.fromEntries(r.received), errors: Object.fromEntries(r.errorCodes),
    };
    report(withBaseline(f, 'redis-geoadd', redisIngest, rateRatio));
    if (r.ackLatency.count > 0) reportLatency(`load.ws.ack.${mode}`, r.ackLatency.summary(), undefined);
  }
  if (gd.nearby) {
    const qps = perSecond(gd.nearby.ok, gd.nearby.elapsedMs);
    const extra = { concurrency: cfg.httpConcurrency, k: cfg.k, radius: cfg.radiusM, failed: gd.nearby.failed };
    report(withBaseline({ bench: 'load.http.nearby', n: gd.nearby.ok, value: qps, unit: 'queries/s', ...extra }, 'redis-geosearch', redisQps, rateRatio));
    report(withBaseline({ bench: 'load.http.nearby.vs-pg', n: gd.nearby.ok, value: qps, unit: 'queries/s', ...extra }, 'postgis-knn', pgQps, rateRatio));
    reportLatency('load.http.nearby', gd.nearby.latency.summary(), redis?.queries?.latency.summary(), 'redis-geosearch');
  }
  if (gd.wrk) {
    const { nearby, health, connections } = gd.wrk;
    const extra = { client: 'wrk', connections, k: cfg.k, radius: cfg.radiusM, failed: nearby.failed };
    // the peers under their own C clients when those ran (redis-benchmark, pgbench), else their Node clients
    report(withBaseline({ bench: 'load.http.nearby', n: nearby.ok, value: nearby.perSecond, unit: 'queries/s', ...extra, peerClient: redis?.native?.client ?? 'node' }, 'redis-geosearch', redisWrkPeer, rateRatio));
    report(withBaseline({ bench: 'load.http.nearby.vs-pg', n: nearby.ok, value: nearby.perSecond, unit: 'queries/s', ...extra, peerClient: pgis?.native?.client ?? 'node' }, 'postgis-knn', pgWrkPeer, rateRatio));
    report(withBaseline({ bench: 'load.http.nearby.vs-health', n: nearby.ok, value: nearby.perSecond, unit: 'queries/s', ...extra }, 'health-same-server', health.perSecond, rateRatio));
    report({ bench: 'load.http.health', n: health.ok, value: health.perSecond, unit: 'requests/s', client: 'wrk', connections, failed: health.failed });
    for (const p of ['p50', 'p90', 'p99'] as const) {
      if (Number.isFinite(nearby.latencyMs[p])) report({ bench: `load.http.nearby.${p}`, n: nearby.ok, value: nearby.latencyMs[p], unit: 'ms', client: 'wrk' });
    }
  }
  if (gd.requests) {
    report({ bench: 'load.http.requests', n: gd.requests.ok, value: perSecond(gd.requests.ok, gd.requests.elapsedMs), unit: 'requests/s', targetRate: cfg.requestRate, failed: gd.requests.failed, behind: gd.requests.behind });
    reportLatency('load.http.requests', gd.requests.latency.summary(), undefined);
  }
  summarizeTargets(gd, redisFirst, gd.wrk ? redisWrkPeer : redisQps, gd.wrk ? pgWrkPeer : pgQps, gd.wrk ? { redis: redis?.native?.client ?? 'node client', pg: pgis?.native?.client ?? 'node client' } : undefined);
}

/**
 * The first-ping phase is short (a second or less): the server's acks time it to the millisecond, where the
 * metrics counter, polled every 150 ms, would not. Else as ingestRate.
 */
export function firstPingRate(r: IngestResult & { accepted?: number; acceptedMs?: number }): number {
  return r.ackedMs !== undefined && r.ackAccepted > 0 ? perSecond(r.ackAccepted, r.ackedMs) : ingestRate(r);
}

/** Server-accepted pings/s (metrics counter), else acked pings/s, else what the client sent per second. */
export function ingestRate(r: IngestResult & { accepted?: number; acceptedMs?: number }): number {
  if (r.accepted !== undefined && r.acceptedMs !== undefined) return perSecond(r.accepted, Math.max(r.acceptedMs, r.elapsedMs));
  if (r.ackAccepted > 0) return perSecond(r.ackAccepted, r.elapsedMs);
  return perSecond(r.sentPings, r.elapsedMs);
}

/** Progress and notes, on stderr (stdout carries only the JSON figures). */
export function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

function reportQueries(cfg: Config, bench: string, r: LoopResult, concurrency = cfg.httpConcurrency): void {
  report({ bench, n: r.ok, value: perSecond(r.ok, r.elapsedMs), unit: 'queries/s', concurrency, k: cfg.k, failed: r.failed });
  reportLatency(bench, r.latency.summary(), undefined);
}

function reportLatency(bench: string, s: ReturnType<LoopResult['latency']['summary']>, base: typeof s | undefined, baseName?: string): void {
  for (const p of ['p50', 'p95', 'p99', 'max'] as const) {
    if (!Number.isFinite(s[p])) continue;
    report(withBaseline({ bench: `${bench}.${p}`, n: s.count, value: s[p], unit: 'ms' }, baseName ?? '', base?.[p], costRatio));
  }
}

function withBaseline(f: Figure, name: string, value: number | undefined, ratio: (v: number, b: number) => number): Figure {
  if (value === undefined || !Number.isFinite(value) || value <= 0 || name === '') return f;
  return { ...f, baseline: name, baselineValue: value, ratio: ratio(f.value, value) };
}

function summarizeTargets(gd: GeoDispatchResults, redisFirst: number | undefined, redisQps: number | undefined, pgQps: number | undefined, peerClients?: { redis: string; pg: string }): void {
  const lines: string[] = [];
  const mp = gd.ingest.get('msgpack');
  if (mp) {
    const v = ingestRate(mp);
    lines.push(`WS ingest (MessagePack batches) ≥ 500,000 pings/s: ${Math.round(v).toLocaleString('en')} → ${v >= 500_000 ? 'met' : 'not met'}`);
  }
  if (gd.firstPings && redisFirst) {
    const v = firstPingRate(gd.firstPings);
    lines.push(`first ping of a new courier ≥ 1× Redis GEOADD pipelined: ×${(v / redisFirst).toFixed(2)} (${Math.round(v).toLocaleString('en')} against ${Math.round(redisFirst).toLocaleString('en')} /s) → ${v >= redisFirst ? 'met' : 'not met'}`);
  }
  if (gd.wrk && gd.wrk.health.perSecond > 0) {
    const share = gd.wrk.nearby.perSecond / gd.wrk.health.perSecond;
    lines.push(`HTTP nearest k=10 ≥ 50 % of /health (wrk, same server, same run): ${(share * 100).toFixed(1)} % → ${share >= 0.5 ? 'met' : 'not met'}`);
  }
  const qps = gd.wrk ? gd.wrk.nearby.perSecond : gd.nearby && gd.nearby.ok > 0 ? perSecond(gd.nearby.ok, gd.nearby.elapsedMs) : 0;
  if (qps > 0) {
    const via = (client: string | undefined): string => (client === undefined ? '' : ` (peer through ${client})`);
    if (redisQps) lines.push(`HTTP nearest ≥ 10× Redis GEOSEARCH${via(peerClients?.redis)}: ×${(qps / redisQps).toFixed(2)} → ${qps >= 10 * redisQps ? 'met' : 'not met'}`);
    if (pgQps) lines.push(`HTTP nearest ≥ 20× PostGIS KNN${via(peerClients?.pg)}: ×${(qps / pgQps).toFixed(2)} → ${qps >= 20 * pgQps ? 'met' : 'not met'}`);
  }
  if (lines.length) log(`\ntargets (PRODUCT §6):\n  ${lines.join('\n  ')}`);
}

function perSecond(count: number, ms: number): number {
  return ms > 0 ? (count * 1000) / ms : 0;
}
