/**
 * Dispatchers' map views: a snapshot of a bbox, then deltas at the rate they asked for.
 *
 *   watch (dispatcher)  ─► couriers, live requests and fences in the bbox ─► { t:'snapshot' } ─► WatchSession
 *   courier moved       ─► courierChanged ─► every session notes its latest position (or that it is gone)
 *   fence crossed       ─► FenceFeed ─► drainFences ─► the sessions whose bbox holds the courier
 *   request changed     ─► requestChanged ─► every session notes the map entry
 *   flush tick          ─► each session due and under the backpressure limit ─► { t:'delta' }; a socket over the
 *                          limit for slowCloseMs is closed (1008), the others are unaffected
 */
import type { DispatchLoop } from '../dispatch/dispatch-loop.js';
import { isTerminal } from '../dispatch/request-vocabulary.js';
import type { CourierStatus } from '../engine/courier-attributes.js';
import type { CourierIndex, FenceEvent } from '../engine/courier-index.js';
import type { GeofenceIndex } from '../engine/geofence-index.js';
import { ApiError } from './api-error.js';
import type { ApiConfig } from './config.js';
import type { MoveFanOut } from './ingest.js';
import type { RequestBook } from './request-book.js';
import { watchRequestOf } from './request-views.js';
import { type Socket, type SocketState, type StreamSockets, safeEnd } from './stream-sockets.js';
import { type CourierTuple, type WatchBBox, type WatchKind, type WatchRequest, WatchSession } from './watch-session.js';

/** Couriers sent in one snapshot at most: a whole-city bbox of a 100k fleet would be megabytes; zoom in. */
export const MAX_SNAPSHOT_COURIERS = 50_000;

/** Collects fence crossings as the CourierIndex reports them (synchronously, inside move); drained by the watch fan-out. */
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

/** What watch fan-out works with; each part owned by the caller. */
export interface WatchFanoutDeps {
  ws: Readonly<ApiConfig['ws']>;
  couriers: CourierIndex;
  fences: GeofenceIndex;
  fenceFeed: FenceFeed;
  loop: DispatchLoop;
  book: RequestBook;
  sockets: Pick<StreamSockets, 'send'>;
}

/** The sockets with a watch, and what they are told: moves, fence crossings, request changes, deltas. */
export class WatchFanout implements MoveFanOut {
  private readonly deps: WatchFanoutDeps;
  private readonly watchers = new Set<Socket>();
  private readonly peeked: { lat: number; lng: number; status: CourierStatus } = { lat: 0, lng: 0, status: 'offline' };

  constructor(deps: WatchFanoutDeps) {
    this.deps = deps;
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

  /** A request changed: every session notes its map entry. */
  requestChanged(id: string): void {
    if (this.watchers.size > 0) {
      const r = watchRequestOf(this.deps, id);
      if (r !== undefined) for (const s of this.watchers) s.getUserData().watch?.noteRequest(r);
    }
  }

  /** A `watch` frame: replaces the socket's session and sends the snapshot it starts from. */
  watch(s: Socket, st: SocketState, m: { bbox: WatchBBox; kinds?: WatchKind[]; hz?: number }): void {
    const { ws } = this.deps;
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
        const r = watchRequestOf(this.deps, id);
        if (r !== undefined && (session.contains(r.pickup.lat, r.pickup.lng) || session.contains(r.dropoff.lat, r.dropoff.lng))) requests.push(r);
      }
    }
    const fences = session.kinds.has('fences') ? fencesIn(this.deps.fences, m.bbox) : [];
    session.seed(couriers, requests);
    st.watch = session;
    this.watchers.add(s);
    this.deps.sockets.send(s, { t: 'snapshot', bbox: m.bbox, hz, couriers, requests, fences, truncated: couriers.length >= MAX_SNAPSHOT_COURIERS });
  }

  /** A socket closed: it watches no more. */
  unwatch(s: Socket): void {
    this.watchers.delete(s);
  }

  /** Drains fence crossings, then sends due deltas into sockets with room; closes a socket over the limit too long. */
  flush(now: number): void {
    this.drainFences();
    flushWatches(this.watchers, now, this.deps.ws, this.deps.sockets);
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
}

/** The geofences whose boxes touch a watch box (a snapshot shows them). */
export function fencesIn(fences: GeofenceIndex, bbox: WatchBBox): { id: string; kind: string; geometry: unknown }[] {
  const out: { id: string; kind: string; geometry: unknown }[] = [];
  const [minLng, minLat, maxLng, maxLat] = bbox;
  const seen = new Set<number>();
  for (const n of fences.candidates({ minLng, minLat, maxLng, maxLat })) {
    if (seen.has(n)) continue;
    seen.add(n);
    const f = fences.get(fences.idOf(n));
    if (f !== undefined) out.push({ id: f.id, kind: f.kind, geometry: f.geometry });
  }
  return out;
}

/**
 * Sends each due watch its delta, into sockets with room only; a socket over the backpressure limit for
 * slowCloseMs is closed (1008), the others are unaffected. Shared by one process's fan-out and a cluster edge's.
 */
export function flushWatches(watchers: Iterable<Socket>, now: number, ws: Pick<ApiConfig['ws'], 'maxBackpressureBytes' | 'slowCloseMs'>, sockets: Pick<StreamSockets, 'send'>): void {
  const limit = ws.maxBackpressureBytes;
  for (const s of watchers) {
    const st = s.getUserData();
    const session = st.watch;
    if (session === undefined || !session.due(now)) continue;
    if (s.getBufferedAmount() > limit) {
      st.overSince ??= now;
      if (now - st.overSince >= ws.slowCloseMs) safeEnd(s, 1008, 'too slow: backpressure limit exceeded');
      continue;
    }
    st.overSince = undefined;
    const delta = session.takeDelta(now);
    if (delta !== undefined) sockets.send(s, { t: 'delta', ...delta });
  }
}
