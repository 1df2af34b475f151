/**
 * The composition root of a cluster edge (GD_ROLE=edge; `api/main.ts` hands over to it): the public API and
 * `/v1/stream` on PORT, with pings sent on to the region streams, nearest queries and map snapshots scattered to
 * the owners, map deltas fanned in from the owners' move feeds, and HTTP rate limits shared with every edge.
 *
 *   loadConfig ─► Redis (commands: streams, leases, buckets; no offline queue: a write while Redis is away
 *                 fails at once and is answered 503, never acknowledged) + RedisBus (a subscriber connection)
 *             ─► NearestScatter (reply channel edge:{name}:nearest), OwnerCommands (edge:{name}:cmd) ─► uWS app:
 *                  /v1/stream (EdgeStream) · the map page · /health /ready /metrics · edge routes · 501 / 404
 *             ─► listen(PORT)
 *   SIGTERM / SIGINT ─► drain: /ready 503, listen socket closed, in-flight answers finished, sockets closed 1001
 */
import uWS from '@trufflesuite/uws-js-unofficial';
import { Redis } from 'ioredis';
import { ApiError } from '../api/api-error.js';
import { Authenticator } from '../api/auth.js';
import type { ApiConfig } from '../api/config.js';
import { routeAdder, registerNotFound, registerServiceRoutes } from '../api/http-routes.js';
import type { Logger } from '../api/log.js';
import { ApiMetrics } from '../api/metrics.js';
import { type RateLimiter, TokenBuckets, type Verdict } from '../api/rate-limit.js';
import { listenExclusive } from '../api/server.js';
import { registerStaticFiles } from '../api/static-files.js';
import { DEFAULT_POLICY } from '../dispatch/dispatch-request.js';
import type { CourierHit } from '../engine/courier-index.js';
import { EdgeStream } from './edge-stream.js';
import { EDGE_ROUTES, registerEdgeRoutes, registerNotOnEdge } from './edge-routes.js';
import { NearestScatter } from './nearest-scatter.js';
import { PingFunnel } from './ping-funnel.js';
import { PingPublisher } from './ping-streams.js';
import { RedisBus } from './redis-bus.js';
import { RegionLeases } from './region-lease.js';
import { leaseDirectory, registerRegions } from './region-ownership.js';
import { OwnerCommands } from './owner-commands.js';
import { FORWARDED_ROUTES, askHub, registerForwardedCourierRead, registerForwardedFleet, registerForwardedHub, registerForwardedProfile, registerForwardedRequests, registerForwardedShift } from './edge-requests.js';
import { NEARBY_KEY } from './hub.js';
import { SharedTokenBuckets } from './shared-buckets.js';

/** How long a drain waits for answers still awaiting Redis or the cores. */
const IN_FLIGHT_WAIT_MS = 5_000;
/** How long a Redis command may take before the call it serves is answered 503. */
const REDIS_COMMAND_TIMEOUT_MS = 2_000;
/** How long an edge waits for the cores' answers to a nearest query or a map snapshot. */
const SCATTER_TIMEOUT_MS = 500;

/** A running edge. */
export interface EdgeInstance {
  port: number;
  stream: EdgeStream;
  funnel: PingFunnel;
  /** Drains, then closes the Redis connections. */
  stop(): Promise<void>;
}

/** Starts an edge (role edge: REDIS_URL and a shared token key are set, loadConfig checks). */
export async function startEdge(config: Readonly<ApiConfig>, logger: Logger): Promise<EdgeInstance> {
  if (config.redisUrl === undefined) throw new Error('an edge needs REDIS_URL');
  const name = config.cluster.nodeName;
  const prefix = config.cluster.prefix;
  const clock = Date.now;
  // a line that hangs (no reset, no answer) fails each command after REDIS_COMMAND_TIMEOUT_MS: a 503, not a hung client
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 2_000, enableOfflineQueue: false, commandTimeout: REDIS_COMMAND_TIMEOUT_MS });
  const onError = (err: unknown): void => logger.warn({ err }, 'edge: Redis');
  redis.on('error', onError);
  await ready(redis, 30_000);
  const bus = new RedisBus(redis, { prefix, onError });
  const directory = leaseDirectory(redis, new RegionLeases(redis, { owner: name, prefix }), prefix);
  const scatter = new NearestScatter<CourierHit>(bus, name, directory, SCATTER_TIMEOUT_MS);
  await scatter.start();
  const commands = new OwnerCommands(bus, name, directory);
  await commands.start();
  const funnel = new PingFunnel(new PingPublisher(redis, prefix));
  const metrics = new ApiMetrics();
  const auth = new Authenticator(config.jwt, config.apiKeys);
  const rl = config.rateLimit;
  // HTTP calls draw on buckets every edge shares; a socket's frames on this edge's own (a socket lives on one edge)
  const shared = (kind: string, perSecond: number, burst: number): RateLimiter => orUnavailable(new SharedTokenBuckets(redis, { perSecond, burst, prefix: `${prefix}${kind}:` }));
  const limits = { general: shared('general', rl.perSecond, rl.burst), ingest: shared('ingest', rl.ingestPerSecond, rl.ingestBurst), gateway: shared('gateway', rl.gatewayIngestPerSecond, rl.gatewayIngestBurst) };
  const frameLimits = {
    general: new TokenBuckets({ perSecond: rl.perSecond, burst: rl.burst }),
    ingest: new TokenBuckets({ perSecond: rl.ingestPerSecond, burst: rl.ingestBurst }),
    gateway: new TokenBuckets({ perSecond: rl.gatewayIngestPerSecond, burst: rl.gatewayIngestBurst }),
  };
  let draining = false;
  const inFlight = { count: 0 };
  // a line can look open and answer nothing (a black hole): a PING every second says whether Redis answers
  let unanswered: string | undefined;
  const probe = setInterval(() => {
    redis.ping().then(
      () => (unanswered = undefined),
      (err: unknown) => (unanswered = `the cluster's Redis does not answer (${err instanceof Error ? err.message : String(err)})`),
    );
  }, 1_000);
  probe.unref();
  const notReady = (): string | undefined => {
    if (draining) return 'draining';
    if (redis.status !== 'ready') return `the cluster's Redis is ${redis.status}`;
    if (!bus.listening()) return 'the subscription to the cores\' answers is reconnecting';
    return unanswered;
  };
  const stream = new EdgeStream({ config, auth, limits: frameLimits, metrics, logger, clock, draining: () => draining, funnel, scatter, bus, commands });

  const app = uWS.App();
  app.ws('/v1/stream', stream.behavior());
  registerStaticFiles(app, undefined, config.mapStyleUrl === undefined ? {} : { mapStyleUrl: config.mapStyleUrl });
  const add = routeAdder(app, { config, auth, limits, metrics, logger, clock, notReady, inFlight });
  registerServiceRoutes(add, { notReady, metrics });
  registerEdgeRoutes(add, { funnel, scatter, policy: DEFAULT_POLICY, clock, hub: (call) => askHub(commands, NEARBY_KEY, call) });
  registerForwardedRequests(add, commands, (region) => registerRegions(redis, [region], prefix));
  registerForwardedShift(add, commands);
  registerForwardedProfile(add, commands);
  registerForwardedCourierRead(add, commands);
  registerForwardedFleet(add, commands);
  registerForwardedHub(add, commands);
  registerNotOnEdge(app, new Set([...EDGE_ROUTES, ...FORWARDED_ROUTES]));
  registerNotFound(app);

  let listenSocket: uWS.us_listen_socket | undefined = await listenExclusive(app, config.host, config.port);
  const port = uWS.us_socket_local_port(listenSocket as unknown as uWS.us_socket);
  stream.start();
  logger.info({ node: name, port }, 'edge listening');

  let stopped: Promise<void> | undefined;
  return {
    port,
    stream,
    funnel,
    stop: () =>
      (stopped ??= (async () => {
        draining = true;
        clearInterval(probe);
        if (config.drainGraceMs > 0) await new Promise((r) => setTimeout(r, config.drainGraceMs));
        if (listenSocket !== undefined) uWS.us_listen_socket_close(listenSocket);
        listenSocket = undefined;
        for (const end = Date.now() + IN_FLIGHT_WAIT_MS; (inFlight.count > 0 || funnel.waiting > 0) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
        stream.closeAll(1001, 'server shutting down');
        stream.stop();
        await scatter.stop().catch(() => undefined);
        await commands.stop().catch(() => undefined);
        await bus.close();
        redis.disconnect();
        logger.info('edge drained');
      })()),
  };
}

/** Resolves once the connection is ready; an edge that cannot reach Redis at start says so and exits. */
function ready(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the cluster's Redis did not answer within ${ms / 1000} s (REDIS_URL)`)), ms);
    redis.once('ready', () => (clearTimeout(timer), resolve()));
  });
}

/** A shared limiter whose Redis is away answers 503 (retry), not 500. */
function orUnavailable(limiter: SharedTokenBuckets): RateLimiter {
  return {
    take: (key: string, now: number, cost?: number): Promise<Verdict> =>
      limiter.take(key, now, cost).catch((err: unknown) => {
        throw new ApiError(503, 'E_UNAVAILABLE', `the cluster's Redis is unreachable (${err instanceof Error ? err.message : String(err)}): nothing was done; retry`);
      }),
  };
}
