/**
 * WebSocket `GET /v1/stream`: one endpoint, the role from the token. The hub wires the parts, each in its file:
 *
 *   upgrade ─► authenticate (?access_token= / Authorization / X-API-Key) ─ 401/403/503 ─► HTTP reply, no socket   (stream-sockets.ts)
 *          └► sockets of this principal at its bound? ─► 429 E_TOO_MANY_SOCKETS ; else res.upgrade(SocketState)
 *   open ─► registered ─► a driver's socket replaces its older one and hears its live offer / carried leg  (driver-offers.ts)
 *   message ─► rate limit and size limit (before anything is decoded: a flood costs a counter, not a parse)   (stream-sockets.ts)
 *          ─► decode (JSON text / MessagePack binary; remembers which) ─► handle: role and schema by `t`
 *             ├ loc (driver)         ─► PositionIngest.one (ingest.ts: the path every ping takes)         (driver-offers.ts)
 *             ├ locs (admin gateway) ─► PositionIngest.batch ─► { t:'ack', accepted, rejected:[{index, code}] }
 *             ├ accept / decline     ─► DispatchPump ─► committed, or { t:'error' } (store refused: nothing changed)
 *             ├ watch (dispatcher)   ─► { t:'snapshot' } ─► WatchSession (deltas at hz)                   (watch-fanout.ts)
 *             └ track (requester)    ─► { t:'request' } now and on each change                            (request-tracking.ts)
 *   bad frame ─► { t:'error', code, message }, socket stays open; FLOOD_STRIKES refused or garbage frames in a
 *                row close it (1008)
 *   close ─► forgotten by the registry, the drivers, the watches and the trackers
 *
 *   pings (PositionIngest) ─► courierChanged / drainFences ─► watch sessions                              (watch-fanout.ts)
 *   stored dispatch events ─► deliver ─► offer / assigned / revoked to the driver's socket,                (driver-offers.ts)
 *                                        request to trackers, request changes into watch sessions
 *   flush timer ─► each watch due and under the backpressure limit ─► { t:'delta' }; a socket over the limit
 *                  for slowCloseMs is closed (1008), the others are unaffected; moved couriers to trackers
 *
 * Every server frame carries `t` and a per-connection increasing `seq`.
 */
import type { WebSocketBehavior } from '@trufflesuite/uws-js-unofficial';
import type { DispatchEvent, DispatchLoop } from '../dispatch/dispatch-loop.js';
import type { CourierIndex } from '../engine/courier-index.js';
import type { GeofenceIndex } from '../engine/geofence-index.js';
import { ApiError } from './api-error.js';
import { type Authenticator, requireRole } from './auth.js';
import type { ApiConfig } from './config.js';
import { DriverOffers } from './driver-offers.js';
import type { DispatchPump, EventSink } from './dispatch-pump.js';
import { PositionIngest, type PositionSinks } from './ingest.js';
import type { Logger } from './log.js';
import type { ApiMetrics } from './metrics.js';
import type { TokenBuckets } from './rate-limit.js';
import type { RequestBook } from './request-book.js';
import { RequestTracking } from './request-tracking.js';
import { type TrackFrame, trackFrameOf, watchRequestOf } from './request-views.js';
import { validate } from './schemas.js';
import { type Socket, type SocketState, StreamSockets } from './stream-sockets.js';
import { type FenceFeed, WatchFanout } from './watch-fanout.js';
import type { WatchBBox, WatchKind, WatchRequest } from './watch-session.js';

export { FLOOD_STRIKES } from './stream-sockets.js';
export { FenceFeed, MAX_SNAPSHOT_COURIERS } from './watch-fanout.js';

/** What the hub works with; each part owned by the caller. */
export interface StreamDeps {
  config: Readonly<ApiConfig>;
  auth: Authenticator;
  couriers: CourierIndex;
  fences: GeofenceIndex;
  fenceFeed: FenceFeed;
  loop: DispatchLoop;
  pump: DispatchPump;
  book: RequestBook;
  /** Where accepted positions are written behind. */
  positions: PositionSinks;
  limits: { general: TokenBuckets; ingest: TokenBuckets; gateway: TokenBuckets };
  metrics: ApiMetrics;
  logger: Logger;
  clock: () => number;
  /** True while the server drains: upgrades are refused. */
  draining: () => boolean;
}

/** Every open socket, by role: drivers by courier id, dispatchers with a watch, requesters by tracked request. */
export class StreamHub implements EventSink {
  /** The one path every ping takes (HTTP routes use it too); its moves fan out through the watches. */
  readonly ingest: PositionIngest;
  private readonly deps: StreamDeps;
  private readonly sockets: StreamSockets;
  private readonly offers: DriverOffers;
  private readonly watches: WatchFanout;
  private readonly tracking: RequestTracking;
  private timer: NodeJS.Timeout | undefined;

  constructor(deps: StreamDeps) {
    this.deps = deps;
    const { config, auth, limits, metrics, logger, clock, draining, couriers, fences, fenceFeed, loop, book, pump, positions } = deps;
    this.sockets = new StreamSockets({ config, auth, limits, metrics, logger, clock, draining, handle: (s, st, t, frame) => this.handle(s, st, t, frame) });
    this.watches = new WatchFanout({ ws: config.ws, couriers, fences, fenceFeed, loop, book, sockets: this.sockets });
    this.tracking = new RequestTracking({ book, loop, couriers, sockets: this.sockets });
    this.ingest = new PositionIngest({ couriers, positions, fanOut: this.watches, metrics, clock });
    this.offers = new DriverOffers({ ingest: this.ingest, pump, loop, book, gateway: limits.gateway, metrics, clock, sockets: this.sockets });
  }

  /** Open sockets. */
  get size(): number {
    return this.sockets.size;
  }

  /** The uWS behaviour of `/v1/stream`. */
  behavior(): WebSocketBehavior<SocketState> {
    return this.sockets.behavior((s) => this.opened(s), (s) => this.closed(s));
  }

  /** Starts the flush timer (watch deltas, track positions). */
  start(): void {
    if (this.timer !== undefined) return;
    // 25 ms: the finest step needed for the highest watch rate (WS_WATCH_HZ_MAX ≤ 40 keeps exact spacing)
    this.timer = setInterval(() => this.flush(), 25);
    this.timer.unref();
  }

  /** Stops the flush timer. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Closes every socket with `code` (1001 going away on shutdown). */
  closeAll(code: number, reason: string): void {
    this.sockets.closeAll(code, reason);
  }

  /** A courier moved or changed status: watch sessions see its latest position. */
  courierChanged(id: string): void {
    this.watches.courierChanged(id);
  }

  /** Changes the store refused were taken back: watchers re-read the couriers they touched. */
  rolledBack(events: readonly DispatchEvent[]): void {
    for (const e of events) if (e.type === 'courier.status') this.courierChanged(e.courierId);
  }

  /** The EventSink of the DispatchPump (stored events only): offers to drivers, request changes to trackers and watches. */
  deliver(events: readonly DispatchEvent[]): void {
    const changed = new Set<string>();
    for (const e of events) {
      this.offers.hear(e);
      if (e.type === 'courier.status') this.courierChanged(e.courierId);
      if (e.type.startsWith('request.') || e.type === 'blood.status') {
        const parent = this.deps.book.parentOf((e as { requestId: string }).requestId);
        if (parent !== undefined) changed.add(parent.id);
      }
    }
    for (const id of changed) this.requestChanged(id);
  }

  /** A request's state for the map, or undefined when the API does not know it. */
  watchRequest(id: string): WatchRequest | undefined {
    return watchRequestOf(this.deps, id);
  }

  /** The `{ t:'request' }` body a requester sees (also the GET reply's live part). */
  trackFrame(id: string): TrackFrame | undefined {
    return trackFrameOf(this.deps, id);
  }

  /** Sends due watch deltas (only into sockets with room) and moved courier positions to trackers. */
  flush(): void {
    const now = this.deps.clock();
    this.watches.flush(now);
    this.tracking.flush();
  }

  private requestChanged(id: string): void {
    this.tracking.requestChanged(id);
    this.watches.requestChanged(id);
  }

  private opened(s: Socket): void {
    const st = this.sockets.opened(s);
    if (st.principal.role === 'driver') this.offers.connected(s, st.principal.sub);
    this.deps.logger.debug({ role: st.principal.role }, 'stream opened');
  }

  private closed(s: Socket): void {
    if (!this.sockets.closed(s)) return;
    const st = s.getUserData();
    this.offers.disconnected(s, st.principal.sub);
    this.watches.unwatch(s);
    this.tracking.untrack(s, st);
  }

  private handle(s: Socket, st: SocketState, t: string, frame: unknown): void {
    const p = st.principal;
    switch (t) {
      case 'loc': {
        requireRole(p, 'driver');
        this.offers.loc(p.sub, validate<{ lat: number; lng: number; ts: number }>('wsLoc', frame));
        return;
      }
      case 'locs': {
        requireRole(p, 'admin');
        this.offers.locs(s, p, validate<{ items: unknown[] }>('wsLocs', frame).items);
        return;
      }
      case 'accept':
      case 'decline': {
        requireRole(p, 'driver');
        this.offers.answer(s, st, t, validate<{ offerId: string }>(t === 'accept' ? 'wsAccept' : 'wsDecline', frame).offerId);
        return;
      }
      case 'watch':
        requireRole(p, 'dispatcher', 'admin');
        this.watches.watch(s, st, validate<{ bbox: WatchBBox; kinds?: WatchKind[]; hz?: number }>('wsWatch', frame));
        return;
      case 'track':
        requireRole(p, 'requester', 'dispatcher', 'admin');
        this.tracking.track(s, st, validate<{ requestId: string }>('wsTrack', frame).requestId);
        return;
      default:
        throw new ApiError(400, 'E_UNKNOWN_FRAME', `unknown frame type '${t.slice(0, 32)}' (loc, locs, accept, decline, watch, track)`);
    }
  }
}
