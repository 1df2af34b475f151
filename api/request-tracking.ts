/**
 * Requesters (and dispatchers) following one request each: its status now, on each change, and the carrying
 * courier's position as it moves.
 *
 *   track           ─► owner check (another's request looks missing) ─► { t:'request' } now
 *   request changed ─► requestChanged ─► { t:'request' } to every tracker of it
 *   flush tick      ─► the courier pinged since the last frame, a second or more ago? ─► { t:'request' }
 */
import type { DispatchLoop } from '../dispatch/dispatch-loop.js';
import type { CourierIndex } from '../engine/courier-index.js';
import { ApiError } from './api-error.js';
import type { RequestBook } from './request-book.js';
import { trackFrameOf } from './request-views.js';
import type { Socket, SocketState, StreamSockets } from './stream-sockets.js';

/** What tracking works with; each part owned by the caller. */
export interface RequestTrackingDeps {
  book: RequestBook;
  loop: DispatchLoop;
  couriers: CourierIndex;
  sockets: Pick<StreamSockets, 'send'>;
}

/** Trackers by request id, and the track frames they are sent. */
export class RequestTracking {
  private readonly deps: RequestTrackingDeps;
  private readonly trackers = new Map<string, Set<Socket>>();

  constructor(deps: RequestTrackingDeps) {
    this.deps = deps;
  }

  /** A `track` frame: subscribes the socket and sends the request's frame now. */
  track(s: Socket, st: SocketState, requestId: string): void {
    const booked = this.deps.book.get(requestId);
    // another requester's request is indistinguishable from a missing one: ids must not be probeable
    if (booked === undefined || (st.principal.role === 'requester' && (booked.owner !== st.principal.sub || booked.ownerRole !== 'requester'))) {
      throw new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
    }
    const tracks = (st.tracks ??= new Map());
    if (!tracks.has(requestId) && tracks.size >= MAX_TRACKS) throw new ApiError(400, 'E_TOO_MANY_TRACKS', `at most ${MAX_TRACKS} tracked requests per socket`);
    tracks.set(requestId, NaN);
    let subs = this.trackers.get(requestId);
    if (subs === undefined) this.trackers.set(requestId, (subs = new Set()));
    subs.add(s);
    const frame = trackFrameOf(this.deps, requestId);
    if (frame !== undefined) this.deps.sockets.send(s, frame);
  }

  /** A socket closed: it leaves every request it tracked. */
  untrack(s: Socket, st: SocketState): void {
    if (st.tracks === undefined) return;
    for (const id of st.tracks.keys()) {
      const subs = this.trackers.get(id);
      subs?.delete(s);
      if (subs?.size === 0) this.trackers.delete(id);
    }
  }

  /** A request changed: its trackers get its frame. */
  requestChanged(id: string): void {
    const subs = this.trackers.get(id);
    if (subs !== undefined) {
      const frame = trackFrameOf(this.deps, id);
      if (frame !== undefined) for (const s of subs) this.deps.sockets.send(s, frame);
    }
  }

  /** Sends moved courier positions to trackers. */
  flush(): void {
    for (const [id, subs] of this.trackers) this.flushTrack(id, subs);
  }

  private flushTrack(id: string, subs: Set<Socket>): void {
    const frame = trackFrameOf(this.deps, id);
    if (frame?.courier === undefined) return;
    const summary = this.deps.loop.status(id);
    const courierId = summary?.legs.find((l) => l.status === 'assigned' || l.status === 'picked_up')?.courierId;
    const ts = courierId === undefined ? NaN : (this.deps.couriers.get(courierId)?.ts ?? NaN);
    for (const s of subs) {
      const tracks = s.getUserData().tracks;
      if (tracks === undefined) continue;
      const last = tracks.get(id);
      // positions go out at most once a second per request, and only when the courier pinged since
      if (Number.isNaN(ts) || ts === last || (last !== undefined && !Number.isNaN(last) && ts - last < 1000)) continue;
      tracks.set(id, ts);
      this.deps.sockets.send(s, frame);
    }
  }
}

/** Tracked requests per socket. */
export const MAX_TRACKS = 256;
