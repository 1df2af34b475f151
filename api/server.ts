/**
 * One uWebSockets.js app serving PRODUCT §4: HTTP routes, the `/v1/stream` WebSocket and the dispatch timer.
 *
 *   createServer(config, deps) ─► App ─┬─ registerHttpRoutes (http-routes.ts)
 *                                      ├─ ws('/v1/stream', StreamHub.behavior())  (stream.ts)
 *                                      └─ DispatchPump (timer ─► DispatchLoop ─► planner) ─► journal ─► StreamHub.deliver
 *
 *   listen()  ─► port (0 = any free one)
 *   drain()   ─► /ready 503, upgrades refused, listen socket closed, in-flight batch finished,
 *                sockets closed with 1001
 *   close()   ─► drain(), then timers stopped
 *
 * Dependencies are explicit and owned by the caller (api/main.ts, the one composition root): nothing here is
 * a module singleton.
 */
import uWS from '@trufflesuite/uws-js-unofficial';
import type { DispatchLoop } from '../dispatch/dispatch-loop.js';
import type { CourierIndex } from '../engine/courier-index.js';
import type { DonorIndex } from '../engine/donor-index.js';
import type { GeofenceIndex } from '../engine/geofence-index.js';
import type { SiteIndex } from '../engine/site-index.js';
import type { Planner } from '../workers/dispatch-pool.js';
import { Authenticator } from './auth.js';
import type { ApiConfig } from './config.js';
import type { Store } from '../store/store.js';
import { DispatchPump, type TransitionJournal } from './dispatch-pump.js';
import type { EntityWriter } from './entity-routes.js';
import { registerHttpRoutes } from './http-routes.js';
import type { WebhookDeps } from './webhook-routes.js';
import { IdempotencyKeys } from './idempotency.js';
import { ListCursors } from './list-cursor.js';
import type { PositionSinks } from './ingest.js';
import type { Logger } from './log.js';
import type { ApiMetrics } from './metrics.js';
import { TokenBuckets } from './rate-limit.js';
import { RequestBook } from './request-book.js';
import { registerStaticFiles } from './static-files.js';
import { type FenceFeed, StreamHub } from './stream.js';

// How long a drain waits for handlers still awaiting the store or the worker pool.
const IN_FLIGHT_WAIT_MS = 10_000;
/** uSockets' LIBUS_LISTEN_EXCLUSIVE_PORT: no SO_REUSEPORT, so a port another process holds refuses the listen. */
const LISTEN_EXCLUSIVE_PORT = 1;

/** What the server works on; every part built by the caller. */
export interface ServerDeps {
  couriers: CourierIndex;
  sites: SiteIndex;
  donors: DonorIndex;
  fences: GeofenceIndex;
  /** Fence crossings as the CourierIndex reports them (its `onFenceEvent` must be `fenceFeed.push`). */
  fenceFeed: FenceFeed;
  loop: DispatchLoop;
  planner: Planner;
  metrics: ApiMetrics;
  logger: Logger;
  /** Time in ms since the epoch (default Date.now). */
  clock?: () => number;
  /** Commits every change before it is acknowledged: dispatch transitions and the admin writes (store/dispatch-journal.ts). */
  journal: TransitionJournal & EntityWriter;
  /** What reads need from the store: requests gone from memory, Idempotency-Keys, request lists, courier history. */
  store: Pick<Store, 'getRequest' | 'findIdempotency' | 'listIdempotencyKeys' | 'listRequests' | 'courierHistory'>;
  /** Accepted pings are written behind here. */
  positions: PositionSinks;
  /** The request book, e.g. refilled by recovery; default a fresh one. */
  book?: RequestBook;
  /** Why a dependency is down (store, Redis), or undefined when all are up; /ready answers 503 while set. */
  dependencyDown?: () => string | undefined;
  /** The webhook registry's delivery log and deliverer (api/webhook-routes.ts). */
  webhooks: WebhookDeps['webhooks'];
}

/** A running (or ready to run) server. */
export interface Server {
  /** Starts listening; resolves with the bound port. */
  listen(): Promise<number>;
  /** Stops everything: drain, then timers. */
  close(): Promise<void>;
  /** Graceful shutdown: not ready, no new connections, in-flight work finished, sockets closed with 1001. */
  drain(): Promise<void>;
  /** The request book and hub, for tests and the demo's introspection. */
  readonly hub: StreamHub;
  readonly pump: DispatchPump;
}

/** Builds the app over the given dependencies; nothing listens until `listen()`. */
export function createServer(config: Readonly<ApiConfig>, deps: ServerDeps): Server {
  const clock = deps.clock ?? Date.now;
  const auth = new Authenticator(config.jwt, config.apiKeys);
  const limits = {
    general: new TokenBuckets({ perSecond: config.rateLimit.perSecond, burst: config.rateLimit.burst }),
    ingest: new TokenBuckets({ perSecond: config.rateLimit.ingestPerSecond, burst: config.rateLimit.ingestBurst }),
    gateway: new TokenBuckets({ perSecond: config.rateLimit.gatewayIngestPerSecond, burst: config.rateLimit.gatewayIngestBurst }),
  };
  const book = deps.book ?? new RequestBook(deps.loop.parents);
  let draining = false;
  const inFlight = { count: 0 };
  let listenSocket: uWS.us_listen_socket | undefined;

  const pump = new DispatchPump({
    loop: deps.loop,
    planner: deps.planner,
    clock,
    tickMs: config.dispatch.tickMs,
    onOfferLatency: (ms) => deps.metrics.offerLatency.observe(ms / 1000),
    onPlanned: (ms, pending) => {
      deps.metrics.dispatchLatency.observe(ms / 1000);
      deps.metrics.queueDepth.set({ queue: 'pending' }, pending);
    },
    onPlanError: (err) => deps.logger.error({ err }, 'dispatch batch failed; its requests wait for the next batch'),
    journal: deps.journal,
    onForget: (ids) => {
      for (const id of ids) book.forget(id);
    },
  });
  const hub = new StreamHub({
    config, auth, clock, limits, book, pump,
    couriers: deps.couriers, fences: deps.fences, fenceFeed: deps.fenceFeed, loop: deps.loop, positions: deps.positions,
    metrics: deps.metrics, logger: deps.logger,
    draining: () => draining,
  });
  pump.addSink(hub);

  const idempotency = new IdempotencyKeys(deps.store, config.requests.idempotencyTtlMs, clock);
  // in the background: until it is loaded, every new key is read from the store as before
  idempotency.load().catch((err: unknown) => deps.logger.warn({ err }, 'loading the stored Idempotency-Keys failed; new keys are read from the store'));

  const app = uWS.App();
  app.ws('/v1/stream', hub.behavior());
  registerStaticFiles(app, undefined, config.mapStyleUrl === undefined ? {} : { mapStyleUrl: config.mapStyleUrl }); // the live map (dist/web) at `/`; exact routes, so they win over the API's 404
  registerHttpRoutes(app, {
    config, auth, clock, book, pump,
    limits: { ...limits, openPerRequester: config.requests.openPerRequester },
    couriers: deps.couriers, sites: deps.sites, donors: deps.donors, fences: deps.fences, loop: deps.loop,
    policy: deps.loop.policy, speeds: deps.loop.speeds, metrics: deps.metrics, logger: deps.logger,
    writer: deps.journal, store: deps.store, ingest: hub.ingest, webhooks: deps.webhooks, positions: deps.positions,
    stockLowUnits: config.webhooks.stockLowUnits,
    idempotency,
    // list cursors outlive a restart when tokens have a shared secret to derive their key from
    cursors: new ListCursors(config.jwt.secret),
    courierChanged: (id) => hub.courierChanged(id),
    notReady: () => (draining ? 'draining' : deps.dependencyDown?.()),
    inFlight,
  });

  let drained: Promise<void> | undefined;
  const drain = (): Promise<void> => {
    drained ??= (async () => {
      draining = true;
      if (config.drainGraceMs > 0) await new Promise((r) => setTimeout(r, config.drainGraceMs));
      if (listenSocket !== undefined) uWS.us_listen_socket_close(listenSocket);
      listenSocket = undefined;
      // answers already promised (store commits, worker plans) are finished, bounded so a hung
      // dependency cannot hold the shutdown forever
      for (const end = Date.now() + IN_FLIGHT_WAIT_MS; inFlight.count > 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
      await pump.stop();
      pump.publish();
      hub.flush();
      hub.closeAll(1001, 'server shutting down');
      hub.stop();
      deps.logger.info('drained');
    })();
    return drained;
  };

  return {
    hub,
    pump,
    listen: async () => {
      const token = await listenExclusive(app, config.host, config.port);
      listenSocket = token;
      pump.start();
      hub.start();
      const port = uWS.us_socket_local_port(token as unknown as uWS.us_socket);
      deps.logger.info({ port }, 'listening');
      return port;
    },
    drain,
    close: async () => {
      await drain();
    },
  };
}

/** Listens on host:port alone (no SO_REUSEPORT): a port another process holds refuses the listen with a clear error. */
export function listenExclusive(app: uWS.TemplatedApp, host: string, port: number): Promise<uWS.us_listen_socket> {
  return new Promise((resolve, reject) => {
    const listen = app.listen as unknown as (host: string, port: number, options: number, cb: (token: uWS.us_listen_socket | false) => void) => void;
    listen.call(app, host, port, LISTEN_EXCLUSIVE_PORT, (token) => {
      if (token) resolve(token);
      else reject(new Error(`cannot listen on ${host}:${port} (in use, or not allowed); set PORT to a free port or 0`));
    });
  });
}
