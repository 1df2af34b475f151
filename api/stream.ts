/**
 * WebSocket `GET /v1/stream`: one endpoint, the role from the token.
 *
 *   upgrade ─► authenticate (?access_token= / Authorization / X-API-Key) ─ 401/403/503 ─► HTTP reply, no socket
 *          └► sockets of this principal at its bound? ─► 429 E_TOO_MANY_SOCKETS ; else res.upgrade(SocketState)
 *   message ─► rate limit and size limit (before anything is decoded: a flood costs a counter, not a parse)
 *          ─► decode (JSON text / MessagePack binary; remembers which) ─► validate by `t`
 *             ├ loc (driver)         ─► PositionIngest.one (ingest.ts: the path every ping takes)
 *             ├ locs (admin gateway) ─► PositionIngest.batch ─► { t:'ack', accepted, rejected:[{index, code}] }
 *             ├ accept / decline     ─► DispatchPump ─► committed, or { t:'error' } (store refused: nothing changed)
 *             ├ watch (dispatcher)   ─► { t:'snapshot' } ─► WatchSession (deltas at hz)
 *             └ track (requester)    ─► { t:'request' } now and on each change
 *   bad frame ─► { t:'error', code, message }, socket stays open; FLOOD_STRIKES refused or garbage frames in a
 *                row close it (1008)
 *
 *   stored dispatch events ─► deliver ─► offer / assigned / revoked to the driver's socket,
 *                                        request to trackers, request changes into watch sessions
 *   flush timer ─► each watch due and under the backpressure limit ─► { t:'delta' }; a socket over the limit
 *                  for slowCloseMs is closed (1008), the others are unaffected
 *
 * Every server frame carries `t` and a per-connection increasing `seq`.
 */
import uWS from '@trufflesuite/uws-js-unofficial';
import type { HttpResponse, WebSocket, WebSocketBehavior } from '@trufflesuite/uws-js-unofficial';
import { Packr } from 'msgpackr';
import type { DispatchEvent, DispatchLoop } from '../dispatch/dispatch-loop.js';
import { isTerminal } from '../dispatch/request-vocabulary.js';
import type { CourierStatus } from '../engine/courier-attributes.js';
import type { CourierIndex, FenceEvent } from '../engine/courier-index.js';
import type { GeofenceIndex } from '../engine/geofence-index.js';
import { ApiError, toErrorReply, wsErrorFrame } from './api-error.js';
import { type Authenticator, type Principal, requireRole } from './auth.js';
import type { ApiConfig } from './config.js';
import type { DispatchPump, EventSink } from './dispatch-pump.js';
import { decodeBody, isAborted, markAborted, sendReply } from './http-body.js';
import { BODY_TOKEN_BYTES } from './http-routes.js';
import { PositionIngest, type PositionSinks } from './ingest.js';
import type { Logger } from './log.js';
import type { ApiMetrics } from './metrics.js';
import type { TokenBuckets } from './rate-limit.js';
import { type RequestBook, principalKey } from './request-book.js';
import { type TrackFrame, trackFrameOf, watchRequestOf } from './request-views.js';
import { validate } from './schemas.js';
import { type CourierTuple, type WatchBBox, type WatchKind, type WatchRequest, WatchSession } from './watch-session.js';

/** Refused or garbage frames in a row before a socket is closed (1008): a buggy client gets a few chances, a hostile one not many. */
export const FLOOD_STRIKES = 20;
/** Codes of frames that count towards closing a socket: floods and garbage, not outcomes such as E_STALE. */
const STRIKE_CODES = new Set(['E_RATE_LIMITED', 'E_FRAME_TOO_LARGE', 'E_BAD_JSON', 'E_VALIDATION', 'E_UNKNOWN_FRAME', 'E_FORBIDDEN']);
/** Couriers sent in one snapshot at most: a whole-city bbox of a 100k fleet would be megabytes; zoom in. */
export const MAX_SNAPSHOT_COURIERS = 50_000;
/** Tracked requests per socket. */
const MAX_TRACKS = 256;

/** Collects fence crossings as the CourierIndex reports them (synchronously, inside move); drained by the hub. */
export class FenceFeed {
  private events: FenceEvent[] = [];
  /** Pass as CourierIndex's `onFenceEvent`. */
  readonly push = (e: FenceEvent): void => {
    // bounded: a courier index without a hub draining it must not grow forever
    if (this.events.length < 100_000) this.events.push(e);
  };
  /** Events since the last drain. */
  drain(): FenceEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }
}

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

/** Per-connection state (uWS user data). */
interface SocketState {
  principal: Principal;
  seq: number;
  binary: boolean;
  open: boolean;
  strikes: number;
  watch: WatchSession | undefined;
  overSince: number | undefined;
  /** Tracked request id → ts of the courier position last sent. */
  tracks: Map<string, number>;
}

type Socket = WebSocket<SocketState>;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** Every open socket, by role: drivers by courier id, dispatchers with a watch, requesters by tracked request. */
export class StreamHub implements EventSink {
  /** The one path every ping takes (HTTP routes use it too); its moves fan out through this hub. */
  readonly ingest: PositionIngest;
  private readonly deps: StreamDeps;
  private readonly sockets = new Set<Socket>();
  /** Open sockets per principal (role:sub), for the per-principal bound. */
  private readonly perPrincipal = new Map<string, number>();
  private readonly drivers = new Map<string, Socket>();
  private readonly watchers = new Set<Socket>();
  private readonly trackers = new Map<string, Set<Socket>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly peeked: { lat: number; lng: number; status: CourierStatus } = { lat: 0, lng: 0, status: 'offline' };

  constructor(deps: StreamDeps) {
    this.deps = deps;
    this.ingest = new PositionIngest({ couriers: deps.couriers, positions: deps.positions, fanOut: this, metrics: deps.metrics, clock: deps.clock });
  }

  /** Open sockets. */
  get size(): number {
    return this.sockets.size;
  }

  /** The uWS behaviour of `/v1/stream`. */
  behavior(): WebSocketBehavior<SocketState> {
    const { ws } = this.deps.config;
    return {
      maxPayloadLength: ws.maxPayloadBytes,
      // uWS drops sends beyond this; watch deltas stop well before it (they check the limit), offers rarely reach it
      maxBackpressure: ws.maxBackpressureBytes * 2,
      idleTimeout: ws.idleTimeoutSec,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => this.upgrade(res, req, context),
      open: (s) => this.opened(s),
      message: (s, message, isBinary) => this.message(s, message, isBinary),
      close: (s) => this.closed(s),
    };
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
    for (const s of [...this.sockets]) {
      try {
        s.end(code, reason);
      } catch {
        // already closed
      }
    }
  }

  /** A courier moved or changed status: watch sessions see its latest position. */
  courierChanged(id: string): void {
    if (this.watchers.size === 0) return;
    // runs on every ping while dispatchers watch: read into one reused object, allocate nothing
    const c = this.peeked;
    if (this.deps.couriers.peek(id, c)) for (const s of this.watchers) s.getUserData().watch?.noteCourier(id, c.lat, c.lng, c.status);
    else if (!this.deps.couriers.has(id)) for (const s of this.watchers) s.getUserData().watch?.noteGone(id);
  }

  /** Routes fence crossings reported since the last call to the watches whose bbox holds the courier. */
  drainFences(): void {
    const events = this.deps.fenceFeed.drain();
    if (events.length === 0 || this.watchers.size === 0) return;
    for (const e of events) {
      const c = this.deps.couriers.get(e.courierId);
      if (c === undefined) continue;
      const f = { type: e.type, courierId: e.courierId, fenceId: e.fenceId, ts: e.ts };
      for (const s of this.watchers) s.getUserData().watch?.noteFence(f, c.lat, c.lng);
    }
  }

  /** Changes the store refused were taken back: watchers re-read the couriers they touched. */
  rolledBack(events: readonly DispatchEvent[]): void {
    for (const e of events) if (e.type === 'courier.status') this.courierChanged(e.courierId);
  }

  /** The EventSink of the DispatchPump (stored events only): offers to drivers, request changes to trackers and watches. */
  deliver(events: readonly DispatchEvent[]): void {
    const changed = new Set<string>();
    for (const e of events) {
      switch (e.type) {
        case 'offer.created': {
          this.toDriver(e.courierId, offerFrame({ id: e.offerId, requestId: e.requestId, details: e.details, expiresAt: e.expiresAt }));
          this.deps.metrics.offersTotal.inc({ outcome: 'sent' });
          break;
        }
        case 'request.assigned':
          this.toDriver(e.courierId, { t: 'assigned', offerId: e.offerId, requestId: this.parentId(e.requestId), legId: e.requestId });
          break;
        case 'offer.expired':
        case 'offer.revoked':
          this.toDriver(e.courierId, { t: 'revoked', offerId: e.offerId, requestId: this.parentId(e.requestId), legId: e.requestId, reason: e.type === 'offer.expired' ? 'expired' : 'revoked' });
          break;
        case 'request.cancelled':
          if (e.courierId !== undefined) this.toDriver(e.courierId, { t: 'revoked', requestId: this.parentId(e.requestId), legId: e.requestId, reason: 'cancelled' });
          break;
        case 'courier.status':
          this.courierChanged(e.courierId);
          break;
      }
      if (e.type === 'offer.accepted' || e.type === 'offer.declined' || e.type === 'offer.expired' || e.type === 'offer.revoked') {
        this.deps.metrics.offersTotal.inc({ outcome: e.type.slice('offer.'.length) });
      }
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

  private requestChanged(id: string): void {
    const subs = this.trackers.get(id);
    if (subs !== undefined) {
      const frame = this.trackFrame(id);
      if (frame !== undefined) for (const s of subs) this.send(s, frame);
    }
    if (this.watchers.size > 0) {
      const r = this.watchRequest(id);
      if (r !== undefined) for (const s of this.watchers) s.getUserData().watch?.noteRequest(r);
    }
  }

  private parentId(legId: string): string {
    return this.deps.book.parentOf(legId)?.id ?? legId;
  }

  private toDriver(courierId: string, frame: Record<string, unknown>): void {
    const s = this.drivers.get(courierId);
    if (s !== undefined) this.send(s, frame);
  }

  private upgrade(res: HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
    res.onAborted(() => markAborted(res));
    // everything from req is copied now: it is invalid after this function returns
    const key = req.getHeader('sec-websocket-key');
    const protocol = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const authorization = req.getHeader('authorization') || undefined;
    const apiKey = req.getHeader('x-api-key') || undefined;
    const accessToken = new URLSearchParams(req.getQuery() ?? '').get('access_token') ?? undefined;
    const accept = req.getHeader('accept') || undefined;
    try {
      if (this.deps.draining()) throw new ApiError(503, 'E_DRAINING', 'server is shutting down; reconnect to another instance');
      if (this.sockets.size >= this.deps.config.ws.maxSockets) throw new ApiError(503, 'E_TOO_MANY_SOCKETS', 'too many open sockets on this instance');
      const principal = this.deps.auth.authenticate({ authorization, apiKey, accessToken }, this.deps.clock());
      const bound = principal.role === 'dispatcher' || principal.role === 'admin' ? this.deps.config.ws.socketsPerDispatcher : this.deps.config.ws.socketsPerPrincipal;
      if ((this.perPrincipal.get(principalKey(principal.role, principal.sub)) ?? 0) >= bound) {
        throw new ApiError(429, 'E_TOO_MANY_SOCKETS', `at most ${bound} open sockets per ${principal.role}; close one first`);
      }
      const state: SocketState = { principal, seq: 0, binary: false, open: true, strikes: 0, watch: undefined, overSince: undefined, tracks: new Map() };
      if (isAborted(res)) return;
      res.cork(() => res.upgrade(state, key, protocol, extensions, context));
    } catch (err) {
      const { status, code, message } = toErrorReply(err);
      if (status >= 500 && !(err instanceof ApiError)) this.deps.logger.error({ err }, 'upgrade failed');
      sendReply(res, status, { error: { code, message } }, accept);
    }
  }

  private opened(s: Socket): void {
    const st = s.getUserData();
    this.sockets.add(s);
    const key = principalKey(st.principal.role, st.principal.sub);
    this.perPrincipal.set(key, (this.perPrincipal.get(key) ?? 0) + 1);
    this.deps.metrics.openSockets.inc({ role: st.principal.role });
    if (st.principal.role === 'driver') {
      const previous = this.drivers.get(st.principal.sub);
      this.drivers.set(st.principal.sub, s);
      // one live socket per driver: a reconnecting phone replaces its stale connection
      if (previous !== undefined && previous !== s) this.safeEnd(previous, 4000, 'replaced by a newer connection');
      this.catchUp(s, st.principal.sub);
    }
    this.deps.logger.debug({ role: st.principal.role }, 'stream opened');
  }

  /** A driver (re)connecting hears the offer it holds and the leg it carries: frames sent while it was away are not lost. */
  private catchUp(s: Socket, courierId: string): void {
    const lifecycle = this.deps.loop.lifecycle;
    const offer = lifecycle.liveOfferOf(courierId);
    if (offer !== undefined) this.send(s, offerFrame(offer));
    const carried = lifecycle.courier(courierId)?.requestId;
    const assignment = carried === undefined ? undefined : lifecycle.assignmentOf(carried);
    if (assignment !== undefined) this.send(s, { t: 'assigned', offerId: assignment.offerId, requestId: this.parentId(carried!), legId: carried });
  }

  private closed(s: Socket): void {
    const st = s.getUserData();
    st.open = false;
    if (!this.sockets.delete(s)) return;
    const key = principalKey(st.principal.role, st.principal.sub);
    const n = (this.perPrincipal.get(key) ?? 1) - 1;
    if (n > 0) this.perPrincipal.set(key, n);
    else this.perPrincipal.delete(key);
    this.deps.metrics.openSockets.dec({ role: st.principal.role });
    if (this.drivers.get(st.principal.sub) === s) this.drivers.delete(st.principal.sub);
    this.watchers.delete(s);
    for (const id of st.tracks.keys()) {
      const subs = this.trackers.get(id);
      subs?.delete(s);
      if (subs?.size === 0) this.trackers.delete(id);
    }
  }

  private message(s: Socket, message: ArrayBuffer, isBinary: boolean): void {
    const st = s.getUserData();
    st.binary = isBinary;
    try {
      this.admit(st, message.byteLength);
      // decoded before the callback returns: uWS neuters `message` afterwards
      const frame = decodeBody(Buffer.from(message), isBinary ? 'application/msgpack' : 'application/json');
      const t = typeof frame === 'object' && frame !== null && !Array.isArray(frame) ? (frame as { t?: unknown }).t : undefined;
      if (typeof t !== 'string') throw new ApiError(400, 'E_VALIDATION', 'a frame is an object with a string `t`');
      this.handle(s, st, t, frame);
      st.strikes = 0;
    } catch (err) {
      this.refuse(s, st, err);
    }
  }

  /** Answers a refused frame with an error frame; floods and garbage count towards closing the socket. */
  private refuse(s: Socket, st: SocketState, err: unknown, extra?: Record<string, unknown>): void {
    const reply = toErrorReply(err);
    if (reply.status >= 500 && reply.code === 'E_INTERNAL') this.deps.logger.error({ err }, 'stream frame failed');
    this.send(s, { ...wsErrorFrame(err), ...extra });
    if (STRIKE_CODES.has(reply.code) && ++st.strikes >= FLOOD_STRIKES) this.safeEnd(s, 1008, 'too many refused frames');
  }

  /** Rate and size limits, checked before a frame is decoded: drivers pay from the ingest bucket, gateways from theirs. */
  private admit(st: SocketState, bytes: number): void {
    const { limits, clock, config } = this.deps;
    const p = st.principal;
    if (p.role !== 'admin' && bytes > config.ws.maxFrameBytes) {
      throw new ApiError(413, 'E_FRAME_TOO_LARGE', `frames are at most ${config.ws.maxFrameBytes} bytes`);
    }
    const bucket = p.role === 'driver' ? limits.ingest : p.role === 'admin' ? limits.gateway : limits.general;
    // a frame pays for its size as an HTTP body does, so nobody spends a whole budget on parsing (gateways pay per ping below)
    const cost = p.role === 'admin' ? 1 : Math.max(1, Math.ceil(bytes / BODY_TOKEN_BYTES));
    const verdict = bucket.take(`ws:${principalKey(p.role, p.sub)}`, clock(), cost);
    if (!verdict.ok) throw new ApiError(429, 'E_RATE_LIMITED', `too many frames; retry after ${verdict.retryAfterSec} s`);
  }

  private handle(s: Socket, st: SocketState, t: string, frame: unknown): void {
    const p = st.principal;
    switch (t) {
      case 'loc': {
        requireRole(p, 'driver');
        const m = validate<{ lat: number; lng: number; ts: number }>('wsLoc', frame);
        this.ingest.one(p.sub, m.lat, m.lng, m.ts);
        return;
      }
      case 'locs': {
        requireRole(p, 'admin');
        const items = validate<{ items: unknown[] }>('wsLocs', frame).items;
        // one token was paid on arrival; the rest of the batch pays per ping
        const verdict = items.length > 1 ? this.deps.limits.gateway.take(`ws:${principalKey(p.role, p.sub)}`, this.deps.clock(), items.length - 1) : { ok: true as const };
        if (!verdict.ok) throw new ApiError(429, 'E_RATE_LIMITED', `too many pings; retry after ${verdict.retryAfterSec} s`);
        this.send(s, { t: 'ack', ...this.ingest.batch(items) });
        return;
      }
      case 'accept':
      case 'decline': {
        requireRole(p, 'driver');
        const m = validate<{ offerId: string }>(t === 'accept' ? 'wsAccept' : 'wsDecline', frame);
        const commit = t === 'accept' ? this.deps.pump.accept(m.offerId, p.sub) : this.deps.pump.decline(m.offerId, p.sub);
        commit.acknowledged.catch((err: unknown) => {
          if (st.open) this.refuse(s, st, err, { offerId: m.offerId });
        });
        return;
      }
      case 'watch':
        requireRole(p, 'dispatcher', 'admin');
        this.watch(s, st, validate<{ bbox: WatchBBox; kinds?: WatchKind[]; hz?: number }>('wsWatch', frame));
        return;
      case 'track':
        requireRole(p, 'requester', 'dispatcher', 'admin');
        this.track(s, st, validate<{ requestId: string }>('wsTrack', frame).requestId);
        return;
      default:
        throw new ApiError(400, 'E_UNKNOWN_FRAME', `unknown frame type '${t.slice(0, 32)}' (loc, locs, accept, decline, watch, track)`);
    }
  }

  private watch(s: Socket, st: SocketState, m: { bbox: WatchBBox; kinds?: WatchKind[]; hz?: number }): void {
    const { ws } = this.deps.config;
    const [minLng, minLat, maxLng, maxLat] = m.bbox;
    if (minLat > maxLat) throw new ApiError(400, 'E_BAD_COORDINATE', 'bbox is [minLng, minLat, maxLng, maxLat]: minLat must not exceed maxLat');
    const hz = Math.min(m.hz ?? ws.watchHzDefault, ws.watchHzMax);
    const session = new WatchSession(m.bbox, { hz, kinds: m.kinds });
    const couriers: CourierTuple[] = [];
    if (session.kinds.has('couriers')) {
      const ids = this.deps.couriers.within([minLng, minLat, maxLng, maxLat]);
      for (const id of ids) {
        if (couriers.length >= MAX_SNAPSHOT_COURIERS) break;
        const c = this.deps.couriers.get(id);
        if (c !== undefined) couriers.push([id, c.lat, c.lng, c.status]);
      }
    }
    const requests: WatchRequest[] = [];
    if (session.kinds.has('requests')) {
      for (const id of this.liveRequestIds()) {
        const r = this.watchRequest(id);
        if (r !== undefined && (session.contains(r.pickup.lat, r.pickup.lng) || session.contains(r.dropoff.lat, r.dropoff.lng))) requests.push(r);
      }
    }
    const fences = session.kinds.has('fences') ? this.fencesIn(m.bbox) : [];
    session.seed(couriers, requests);
    st.watch = session;
    this.watchers.add(s);
    this.send(s, { t: 'snapshot', bbox: m.bbox, hz, couriers, requests, fences, truncated: couriers.length >= MAX_SNAPSHOT_COURIERS });
  }

  private track(s: Socket, st: SocketState, requestId: string): void {
    const booked = this.deps.book.get(requestId);
    // another requester's request is indistinguishable from a missing one: ids must not be probeable
    if (booked === undefined || (st.principal.role === 'requester' && (booked.owner !== st.principal.sub || booked.ownerRole !== 'requester'))) {
      throw new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
    }
    if (!st.tracks.has(requestId) && st.tracks.size >= MAX_TRACKS) throw new ApiError(400, 'E_TOO_MANY_TRACKS', `at most ${MAX_TRACKS} tracked requests per socket`);
    st.tracks.set(requestId, NaN);
    let subs = this.trackers.get(requestId);
    if (subs === undefined) this.trackers.set(requestId, (subs = new Set()));
    subs.add(s);
    const frame = this.trackFrame(requestId);
    if (frame !== undefined) this.send(s, frame);
  }

  private *liveRequestIds(): Iterable<string> {
    const seen = new Set<string>();
    for (const r of this.deps.loop.lifecycle.allRequests()) {
      if (isTerminal(r.status)) continue;
      const parent = this.deps.book.parentOf(r.id);
      if (parent === undefined || seen.has(parent.id)) continue;
      seen.add(parent.id);
      yield parent.id;
    }
  }

  private fencesIn(bbox: WatchBBox): { id: string; kind: string; geometry: unknown }[] {
    const out: { id: string; kind: string; geometry: unknown }[] = [];
    const [minLng, minLat, maxLng, maxLat] = bbox;
    const seen = new Set<number>();
    for (const n of this.deps.fences.candidates({ minLng, minLat, maxLng, maxLat })) {
      if (seen.has(n)) continue;
      seen.add(n);
      const f = this.deps.fences.get(this.deps.fences.idOf(n));
      if (f !== undefined) out.push({ id: f.id, kind: f.kind, geometry: f.geometry });
    }
    return out;
  }

  /** Sends due watch deltas (only into sockets with room) and moved courier positions to trackers. */
  flush(): void {
    const now = this.deps.clock();
    this.drainFences();
    const limit = this.deps.config.ws.maxBackpressureBytes;
    const slowCloseMs = this.deps.config.ws.slowCloseMs;
    for (const s of this.watchers) {
      const st = s.getUserData();
      const session = st.watch;
      if (session === undefined || !session.due(now)) continue;
      if (s.getBufferedAmount() > limit) {
        st.overSince ??= now;
        if (now - st.overSince >= slowCloseMs) this.safeEnd(s, 1008, 'too slow: backpressure limit exceeded');
        continue;
      }
      st.overSince = undefined;
      const delta = session.takeDelta(now);
      if (delta !== undefined) this.send(s, { t: 'delta', ...delta });
    }
    for (const [id, subs] of this.trackers) this.flushTrack(id, subs);
  }

  private flushTrack(id: string, subs: Set<Socket>): void {
    const frame = this.trackFrame(id);
    if (frame?.courier === undefined) return;
    const summary = this.deps.loop.status(id);
    const courierId = summary?.legs.find((l) => l.status === 'assigned' || l.status === 'picked_up')?.courierId;
    const ts = courierId === undefined ? NaN : (this.deps.couriers.get(courierId)?.ts ?? NaN);
    for (const s of subs) {
      const st = s.getUserData();
      const last = st.tracks.get(id);
      // positions go out at most once a second per request, and only when the courier pinged since
      if (Number.isNaN(ts) || ts === last || (last !== undefined && !Number.isNaN(last) && ts - last < 1000)) continue;
      st.tracks.set(id, ts);
      this.send(s, frame);
    }
  }

  private send(s: Socket, frame: Record<string, unknown>): void {
    const st = s.getUserData();
    if (!st.open) return;
    frame.seq = ++st.seq;
    try {
      if (st.binary) s.send(packr.pack(frame), true);
      else s.send(JSON.stringify(frame), false);
    } catch (err) {
      this.deps.logger.debug({ err }, 'send on a closing socket');
    }
  }

  private safeEnd(s: Socket, code: number, reason: string): void {
    if (!s.getUserData().open) return;
    try {
      s.end(code, reason);
    } catch {
      // closed meanwhile
    }
  }
}

/** The `{ t:'offer' }` frame of an offer: the parent request, the leg, where and when, and when it expires. */
function offerFrame(o: { id: string; requestId: string; details: Readonly<Record<string, unknown>> | undefined; expiresAt: number }): Record<string, unknown> {
  const d = o.details ?? {};
  const requestId = typeof d.parentId === 'string' ? d.parentId : o.requestId;
  return { t: 'offer', offerId: o.id, requestId, legId: o.requestId, kind: d.kind, pickup: d.pickup, dropoff: d.dropoff, eta: d.eta, expiresAt: o.expiresAt };
}
