/**
 * `/v1/stream` on a cluster edge: the same sockets as one process (authentication, per-principal bounds, frame
 * size and rate limits, JSON / MessagePack, strikes — api/stream-sockets.ts), with frames sent on to the cluster:
 *
 *   loc  (driver)  ─► checked ─► PingFunnel ─► in the region's stream (an error frame if Redis did not take it)
 *   locs (gateway) ─► each item checked ─► PingFunnel ─► { t:'ack', accepted, rejected } once Redis holds them
 *   watch          ─► EdgeWatches (snapshot from the owners, deltas from their move feeds)
 *   accept / decline ─► the offer's region owner (OwnerCommands) ─► nothing more, or { t:'error', offerId }
 *   driver connects  ─► subscribes driver:{id} (offer / assigned / revoked frames from any core) ─► drivers:hello,
 *                       so the owner repeats the offer it holds and the leg it carries, and another edge holding an
 *                       older socket of the driver closes it (4000): one live socket per driver across the edges
 *   track ─► EdgeTracking (the owner checks and answers; then its frames on request:{id})
 *
 * Frame rate limits are this edge's own (a socket lives on one edge); the HTTP routes' buckets are shared.
 */
import type { WebSocketBehavior } from '@trufflesuite/uws-js-unofficial';
import { ApiError } from '../api/api-error.js';
import { type Authenticator, type Principal, requireRole } from '../api/auth.js';
import type { ApiConfig } from '../api/config.js';
import { type RejectedPing, pingRefusal, rejectionError } from '../api/ingest.js';
import type { Logger } from '../api/log.js';
import type { ApiMetrics } from '../api/metrics.js';
import type { TokenBuckets } from '../api/rate-limit.js';
import { principalKey } from '../api/request-book.js';
import { validate } from '../api/schemas.js';
import { type Socket, type SocketState, StreamSockets, safeEnd } from '../api/stream-sockets.js';
import type { WatchBBox, WatchKind } from '../api/watch-session.js';
import type { CourierHit } from '../engine/courier-index.js';
import { pack } from 'msgpackr';
import { type Bus, type BusHandler, decodeMessage } from './bus.js';
import { DRIVER_HELLO, type DriverHello, driverChannel } from './core-dispatch.js';
import { type OwnerCommands, regionOfId } from './owner-commands.js';
import { EdgeTracking } from './edge-tracking.js';
import { EdgeWatches } from './edge-watches.js';
import type { NearestScatter } from './nearest-scatter.js';
import type { PingFunnel } from './ping-funnel.js';

export interface EdgeStreamDeps {
  config: Readonly<ApiConfig>;
  auth: Authenticator;
  limits: { general: TokenBuckets; ingest: TokenBuckets; gateway: TokenBuckets };
  metrics: ApiMetrics;
  logger: Logger;
  clock: () => number;
  draining: () => boolean;
  funnel: PingFunnel;
  scatter: NearestScatter<CourierHit>;
  bus: Bus;
  commands: OwnerCommands;
}

export class EdgeStream {
  private readonly sockets: StreamSockets;
  private readonly watches: EdgeWatches;
  private readonly tracking: EdgeTracking;
  private timer: NodeJS.Timeout | undefined;
  /** Each gateway socket's last ack still to be sent: the next one waits for it. */
  private readonly acks = new WeakMap<Socket, Promise<void>>();
  /** Each driver's one live socket, and the handler of its channel. */
  private readonly drivers = new Map<string, { socket: Socket; handler: BusHandler; at: number }>();
  /** Another edge's hello: this edge's older socket of the same driver is closed (one live socket per driver). */
  private readonly hello: BusHandler = (_c, payload) => {
    const h = decodeMessage(payload) as Partial<DriverHello> | undefined;
    const held = typeof h?.courierId === 'string' ? this.drivers.get(h.courierId) : undefined;
    if (held !== undefined && h!.edge !== this.deps.config.cluster.nodeName && typeof h!.at === 'number' && held.at < h!.at) {
      safeEnd(held.socket, 4000, 'replaced by a newer connection');
    }
  };

  constructor(private readonly deps: EdgeStreamDeps) {
    const { config, auth, limits, metrics, logger, clock, draining } = deps;
    this.sockets = new StreamSockets({ config, auth, limits, metrics, logger, clock, draining, handle: (s, st, t, frame) => this.handle(s, st, t, frame) });
    this.tracking = new EdgeTracking({ bus: deps.bus, commands: deps.commands, sockets: this.sockets, clock, onError: (err) => logger.warn({ err }, 'edge request tracking') });
    this.watches = new EdgeWatches({ ws: config.ws, bus: deps.bus, scatter: deps.scatter, commands: deps.commands, sockets: this.sockets, onError: (err) => logger.warn({ err }, 'edge map watch') });
  }

  get size(): number {
    return this.sockets.size;
  }

  behavior(): WebSocketBehavior<SocketState> {
    return this.sockets.behavior(
      (s) => this.driverOpened(this.sockets.opened(s).principal, s),
      (s) => {
        if (!this.sockets.closed(s)) return;
        this.watches.unwatch(s);
        this.tracking.untrack(s, s.getUserData() as SocketState);
        this.driverClosed(s);
      },
    );
  }

  /** Starts the watch flush timer. */
  start(): void {
    this.timer ??= setInterval(() => this.watches.flush(this.deps.clock()), 25);
    this.timer.unref();
    this.tracking.start();
    this.deps.bus.subscribe(DRIVER_HELLO, this.hello).catch(this.warn);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.tracking.stop();
    this.deps.bus.unsubscribe(DRIVER_HELLO, this.hello).catch(this.warn);
  }

  closeAll(code: number, reason: string): void {
    this.sockets.closeAll(code, reason);
  }

  /** A driver's socket: it replaces the driver's older one on this edge and hears its channel from now on. */
  private driverOpened(p: Principal, s: Socket): void {
    if (p.role !== 'driver') return;
    const previous = this.drivers.get(p.sub);
    if (previous !== undefined) {
      safeEnd(previous.socket, 4000, 'replaced by a newer connection');
      this.drivers.delete(p.sub);
      this.deps.bus.unsubscribe(driverChannel(p.sub), previous.handler).catch(this.warn);
    }
    const handler: BusHandler = (_c, payload) => {
      const frame = decodeMessage(payload);
      if (frame !== undefined) this.sockets.send(s, frame);
    };
    const at = Date.now();
    this.drivers.set(p.sub, { socket: s, handler, at });
    // subscribed before the hello goes out, so what the owner repeats arrives
    this.deps.bus.subscribe(driverChannel(p.sub), handler)
      .then(() => this.deps.bus.publish(DRIVER_HELLO, pack({ courierId: p.sub, edge: this.deps.config.cluster.nodeName, at } satisfies DriverHello)))
      .catch(this.warn);
  }

  private driverClosed(s: Socket): void {
    const p = (s.getUserData() as SocketState).principal;
    const held = this.drivers.get(p.sub);
    if (p.role !== 'driver' || held?.socket !== s) return;
    this.drivers.delete(p.sub);
    this.deps.bus.unsubscribe(driverChannel(p.sub), held.handler).catch(this.warn);
  }

  private readonly warn = (err: unknown): void => this.deps.logger.warn({ err }, 'edge driver channel');

  private handle(s: Socket, st: SocketState, t: string, frame: unknown): void {
    const p = st.principal;
    const refuse = (err: unknown): void => {
      if (st.open) this.sockets.refuse(s, st, err);
    };
    switch (t) {
      case 'loc': {
        requireRole(p, 'driver');
        const m = validate<{ lat: number; lng: number; ts: number }>('wsLoc', frame);
        const now = this.deps.clock();
        const refused = pingRefusal(p.sub, m.lat, m.lng, m.ts, now, true);
        if (refused !== undefined) throw rejectionError(refused, m.ts, now);
        this.deps.funnel.add([p.sub], [m.lat], [m.lng], [m.ts]).catch(refuse);
        return;
      }
      case 'locs': {
        requireRole(p, 'admin');
        const items = validate<{ items: unknown[] }>('wsLocs', frame).items;
        // one token was paid on arrival; the rest of the batch pays per ping
        const verdict = items.length > 1 ? this.deps.limits.gateway.take(`ws:${principalKey(p.role, p.sub)}`, this.deps.clock(), items.length - 1) : { ok: true as const };
        if (!verdict.ok) throw new ApiError(429, 'E_RATE_LIMITED', `too many pings; retry after ${verdict.retryAfterSec} s`);
        const now = this.deps.clock();
        const good = { ids: [] as string[], lat: [] as number[], lng: [] as number[], ts: [] as number[] };
        const rejected: RejectedPing[] = [];
        items.forEach((item, index) => {
          const refused = Array.isArray(item) && item.length === 4 ? pingRefusal(item[0], item[1], item[2], item[3], now, true) : { code: 'E_VALIDATION' };
          if (refused !== undefined) {
            rejected.push({ index, code: refused.code });
            return;
          }
          const [id, lat, lng, ts] = item as [string, number, number, number];
          good.ids.push(id);
          good.lat.push(lat);
          good.lng.push(lng);
          good.ts.push(ts);
        });
        // acks in the order the frames came (an empty frame must not be acknowledged before the one before it)
        const stored = this.deps.funnel.add(good.ids, good.lat, good.lng, good.ts);
        const acked = (this.acks.get(s) ?? Promise.resolve())
          .then(() => stored)
          .then(() => this.sockets.send(s, { t: 'ack', accepted: good.ids.length, rejected }), refuse);
        this.acks.set(s, acked);
        return;
      }
      case 'watch': {
        requireRole(p, 'dispatcher', 'admin');
        const pay = (tokens: number): void => {
          const verdict = tokens > 0 ? this.deps.limits.general.take(`ws:${principalKey(p.role, p.sub)}`, this.deps.clock(), tokens) : undefined;
          if (verdict !== undefined && !verdict.ok) throw new ApiError(429, 'E_RATE_LIMITED', `watching a box this large costs ${tokens + 1} frames; retry after ${verdict.retryAfterSec} s`);
        };
        this.watches.watch(s, st, validate<{ bbox: WatchBBox; kinds?: WatchKind[]; hz?: number }>('wsWatch', frame), pay).catch(refuse);
        return;
      }
      case 'accept':
      case 'decline': {
        requireRole(p, 'driver');
        const offerId = validate<{ offerId: string }>(t === 'accept' ? 'wsAccept' : 'wsDecline', frame).offerId;
        const region = regionOfId(offerId);
        const answered = region === undefined
          ? Promise.reject(new ApiError(404, 'E_UNKNOWN_OFFER', 'no such offer'))
          : this.deps.commands.ask(region, t, { params: [offerId], body: undefined, idempotencyKey: undefined, now: this.deps.clock(), principal: p });
        answered.catch((err: unknown) => {
          if (st.open) this.sockets.refuse(s, st, err, { offerId });
        });
        return;
      }
      case 'track':
        requireRole(p, 'requester', 'dispatcher', 'admin');
        this.tracking.track(s, st, validate<{ requestId: string }>('wsTrack', frame).requestId);
        return;
      default:
        throw new ApiError(400, 'E_UNKNOWN_FRAME', `unknown frame type '${t.slice(0, 32)}' (loc, locs, accept, decline, watch, track)`);
    }
  }
}
