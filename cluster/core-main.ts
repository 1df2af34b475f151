/**
 * The composition root of a cluster core (GD_ROLE=core; `api/main.ts` hands over to it): the slice of the
 * configuration a core needs, built into a CoreNode, with /health, /ready and /metrics on PORT.
 *
 *   loadConfig ─► openStore(DATABASE_URL) + migrate ─► Redis: commands, stream reader, bus (publish + subscribe)
 *             ─► DispatchPool (worker threads) ─► CoreNode.start (first ownership tick; a dispatch per region) ─► listen(PORT): /health 200, /ready 200 once regions
 *                are known, /metrics (regions, couriers, pings)
 *   SIGTERM / SIGINT ─► stop(): regions handed back, buffered positions written ─► exit
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { type ApiConfig, dispatchPolicy } from '../api/config.js';
import { ListCursors } from '../api/list-cursor.js';
import type { Logger } from '../api/log.js';
import { openStore } from '../store/store.js';
import { DispatchPool } from '../workers/dispatch-pool.js';
import { CoreNode } from './core-node.js';
import { RedisBus } from './redis-bus.js';

/** A running core. */
export interface CoreInstance {
  node: CoreNode;
  port: number;
  stop(): Promise<void>;
}

/** Starts a core from the configuration (role core: REDIS_URL and DATABASE_URL are set, loadConfig checks). */
export async function startCore(config: Readonly<ApiConfig>, logger: Logger): Promise<CoreInstance> {
  if (config.redisUrl === undefined || config.databaseUrl === undefined) throw new Error('a core needs REDIS_URL and DATABASE_URL');
  const store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, ...(config.databaseSchema ? { schema: config.databaseSchema } : {}) });
  await store.migrate();
  const redisOptions = { maxRetriesPerRequest: 2, connectTimeout: 2_000 };
  const redis = new Redis(config.redisUrl, redisOptions);
  const reader = new Redis(config.redisUrl, redisOptions);
  const onError = (err: unknown): void => logger.warn({ err }, 'core: a background step failed (retried)');
  for (const r of [redis, reader]) r.on('error', onError);
  const bus = new RedisBus(redis, { prefix: config.cluster.prefix, onError });
  const pool = new DispatchPool();
  const dispatch = {
    planner: pool.planner,
    policy: dispatchPolicy(config),
    offerTtlMs: config.offerTtlMs,
    tickMs: config.dispatch.tickMs,
    openPerRequester: config.requests.openPerRequester,
    idempotencyTtlMs: config.requests.idempotencyTtlMs,
  };
  const hub = { cursors: new ListCursors(config.jwt.secret), stockLowUnits: config.webhooks.stockLowUnits, webhooks: config.webhooks, logger };
  const node = new CoreNode({ name: config.cluster.nodeName, redis, reader, bus, store, prefix: config.cluster.prefix, leaseTtlMs: config.cluster.leaseTtlMs, onError, dispatch, hub });
  await node.start();
  const server = await listen(config, node);
  const port = (server.address() as AddressInfo).port;
  logger.info({ node: config.cluster.nodeName, port, regions: node.report().regions }, 'core started');
  let stopped: Promise<void> | undefined;
  return {
    node,
    port,
    stop: () =>
      (stopped ??= (async () => {
        await new Promise<void>((r) => server.close(() => r()));
        await node.stop();
        await pool.close();
        await bus.close();
        redis.disconnect();
        reader.disconnect();
        await store.close();
      })()),
  };
}

/** /health (the process answers), /ready (it holds or may take regions), /metrics (Prometheus text). */
function listen(config: Readonly<ApiConfig>, node: CoreNode): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'E_METHOD', message: 'a core answers GET /health, /ready and /metrics only' }));
    } else if (path === '/health' || path === '/ready') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, role: 'core', node: config.cluster.nodeName, ...node.report() }));
    } else if (path === '/metrics') {
      const s = node.report();
      const lines = [
        ['geodispatch_core_regions', 'regions this core owns', s.regions],
        ['geodispatch_core_couriers', 'couriers held in this core\'s index', s.couriers],
        ['geodispatch_core_pings_applied_total', 'pings applied from region streams', s.pingsApplied],
        ['geodispatch_core_pings_unknown_total', 'pings of couriers with no stored profile (deleted or never created), dropped', s.pingsUnknown],
        ['geodispatch_core_pings_queue_full_total', 'pings of first-seen couriers dropped while profile lookups were full', s.pingsQueueFull],
        ['geodispatch_core_pings_not_owned_total', 'pings read from a region just handed on (its new owner applies them)', s.pingsNotOwned],
        ['geodispatch_core_pings_refused_total', 'pings refused: stale, too far ahead, bad coordinates, or outside the stream\'s region', s.pingsRefused],
        ['geodispatch_core_couriers_handed_off_total', 'couriers dropped because another core holds a newer ping', s.handedOff],
        ['geodispatch_core_dispatch_regions', 'held regions with dispatch running', s.dispatchRegions],
        ['geodispatch_core_open_requests', 'open requests in this core\'s regions', s.openRequests],
        ['geodispatch_core_stream_entries_dropped_total', 'ping stream entries that could not be applied (dropped, acknowledged)', s.entriesDropped],
      ].map(([name, help, v]) => `# HELP ${name} ${help}\n# TYPE ${name} ${String(name).endsWith('_total') ? 'counter' : 'gauge'}\n${name} ${v}`);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'E_NOT_FOUND', message: `a core serves /health, /ready and /metrics; the API is on the edges (or GD_ROLE=all)` }));
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve(server));
  });
}
