/**
 * Dispatchers' map watches on a cluster edge: the snapshot from the owners of the regions the box touches, the
 * deltas from their move feeds (cluster/move-feed.ts), so a dispatcher on edge A sees couriers whose pings came
 * in through edge B.
 *
 *   watch(bbox) ─► regions touched (a box too large to list them ─► 400 E_BBOX_TOO_LARGE)
 *              ─► SUBSCRIBE moves:{region} (one subscription per region, whatever the number of watchers)
 *              ─► NearestScatter.within(bbox) (couriers) + every core's open requests in the box (mapRequests)
 *              ─► { t:'snapshot' } (`missing` names owners and cores that did not answer)
 *   moves:{r}  ─► each session watching r notes the moved couriers; a courier that left r (moved on, or now held
 *                 by another core) is removed only if r is the last region it was heard in; requests picked up
 *                 or dropped off in r that changed are noted as one process notes them
 *   flush tick ─► flushWatches (the same as one process: due, backpressure, slow sockets closed)
 */
import { ApiError } from '../api/api-error.js';
import type { ApiConfig } from '../api/config.js';
import { type Socket, type SocketState, type StreamSockets } from '../api/stream-sockets.js';
import { MAX_SNAPSHOT_COURIERS, flushWatches } from '../api/watch-fanout.js';
import { type CourierTuple, type WatchBBox, type WatchKind, type WatchRequest, WatchSession } from '../api/watch-session.js';
import type { CourierHit } from '../engine/courier-index.js';
import type { Bus, BusHandler } from './bus.js';
import { decodeMoves, movesChannel } from './move-feed.js';
import type { NearestScatter } from './nearest-scatter.js';
import type { OwnerCommands } from './owner-commands.js';
import { boxCircle, regionsTouched } from './regions.js';

/** Regions one watch may span (~350,000 km²: a map ~600 km across); a map zoomed out further is refused (zoom in). */
export const MAX_WATCH_REGIONS = 200;
/** How long a snapshot waits for the cores' open requests. */
const SNAPSHOT_ASK_MS = 2_000;
/** Regions a watch frame's one token pays for; a larger box pays a token per this many more (a subscription each). */
export const REGIONS_PER_TOKEN = 8;

export interface EdgeWatchDeps {
  ws: Readonly<ApiConfig['ws']>;
  bus: Bus;
  scatter: NearestScatter<CourierHit>;
  /** Asks the cores for the open requests in a snapshot's box. */
  commands: Pick<OwnerCommands, 'askAll'>;
  sockets: Pick<StreamSockets, 'send'>;
  onError: (err: unknown) => void;
}

export class EdgeWatches {
  /** Sockets watching each region, and the regions each socket watches. */
  private readonly byRegion = new Map<string, Set<Socket>>();
  private readonly regionsOf = new Map<Socket, readonly string[]>();
  /** Sessions fed by moves, including ones whose snapshot is still on its way. */
  private readonly sessions = new Map<Socket, WatchSession>();
  /** The region each courier was last heard moving in (so "left r" is not applied after "moved in r2"). */
  private readonly lastRegion = new Map<string, string>();
  /** Watch frames per socket: a newer watch abandons an older one still waiting for its snapshot. */
  private readonly generation = new WeakMap<Socket, number>();
  private readonly handler: BusHandler = (channel, payload) => this.heard(channel.slice('moves:'.length), payload);

  constructor(private readonly deps: EdgeWatchDeps) {}

  /** Sockets with a watch. */
  get size(): number {
    return this.sessions.size;
  }

  /** A `watch` frame: replaces the socket's watch; the snapshot follows once the owners answer. */
  async watch(s: Socket, st: SocketState, m: { bbox: WatchBBox; kinds?: WatchKind[]; hz?: number }, pay: (tokens: number) => void): Promise<void> {
    const { ws } = this.deps;
    const [, minLat, , maxLat] = m.bbox;
    if (minLat > maxLat) throw new ApiError(400, 'E_BAD_COORDINATE', 'bbox is [minLng, minLat, maxLng, maxLat]: minLat must not exceed maxLat');
    const circle = boxCircle(m.bbox);
    const regions = regionsTouched(circle.lat, circle.lng, circle.radius);
    if (regions === 'all' || regions.length > MAX_WATCH_REGIONS) {
      throw new ApiError(400, 'E_BBOX_TOO_LARGE', `a cluster edge watches boxes up to ~600 km across (${MAX_WATCH_REGIONS} regions, this one touches ${regions === 'all' ? 'more' : regions.length}); zoom in`);
    }
    // each region watched is a subscription and a share of the snapshot: a big box costs more than a small one
    pay(Math.ceil(regions.length / REGIONS_PER_TOKEN) - 1);
    const gen = (this.generation.get(s) ?? 0) + 1;
    this.generation.set(s, gen);
    st.watch = undefined;
    const hz = Math.min(m.hz ?? ws.watchHzDefault, ws.watchHzMax);
    const session = new WatchSession(m.bbox, { hz, kinds: m.kinds });
    // fed from now on, so no move between the snapshot and the first delta is missed
    this.sessions.set(s, session);
    const subscribing = this.setRegions(s, regions);
    const couriers: CourierTuple[] = [];
    const requests: WatchRequest[] = [];
    const fences: { id: string }[] = [];
    const fenceIds = new Set<string>();
    const missing: string[] = [];
    try {
      await Promise.all(subscribing);
      if (session.kinds.has('couriers')) {
        const answer = await this.deps.scatter.within(m.bbox, MAX_SNAPSHOT_COURIERS);
        missing.push(...answer.missing);
        for (const h of answer.hits) if (session.contains(h.lat, h.lng)) couriers.push([h.id, h.lat, h.lng, h.status]);
      }
      if (session.kinds.has('requests') || session.kinds.has('fences')) {
        const asked = await this.deps.commands.askAll('mapRequests', { params: [], body: { bbox: m.bbox }, idempotencyKey: undefined, now: Date.now(), principal: st.principal }, SNAPSHOT_ASK_MS);
        for (const reply of asked.replies) {
          const body = reply.body as { requests?: WatchRequest[]; fences?: { id: string }[] };
          if (session.kinds.has('requests')) requests.push(...(body.requests ?? []));
          // every core keeps every fence: the first answer's copy of each
          for (const f of session.kinds.has('fences') ? (body.fences ?? []) : []) {
            if (fenceIds.has(f.id)) continue;
            fenceIds.add(f.id);
            fences.push(f);
          }
        }
        missing.push(...asked.missing.map((core) => `core ${core}`));
      }
    } catch (err) {
      if (this.generation.get(s) === gen) this.unwatch(s);
      if (err instanceof ApiError) throw err;
      throw new ApiError(503, 'E_UNAVAILABLE', `the map cannot be watched while the cluster's Redis is unreachable (${err instanceof Error ? err.message : String(err)}); retry`);
    }
    // closed meanwhile, or a newer watch replaced this one
    if (!st.open || this.generation.get(s) !== gen) return;
    session.seed(couriers, requests);
    st.watch = session;
    const frame: Record<string, unknown> = { t: 'snapshot', bbox: m.bbox, hz, couriers, requests, fences, truncated: couriers.length >= MAX_SNAPSHOT_COURIERS };
    if (missing.length > 0) frame.missing = missing;
    this.deps.sockets.send(s, frame);
  }

  /** A socket closed: its regions lose a watcher; a region nobody watches is unsubscribed. */
  unwatch(s: Socket): void {
    s.getUserData().watch = undefined;
    this.sessions.delete(s);
    this.setRegions(s, []);
    this.regionsOf.delete(s);
  }

  /** Moves the socket to these regions: only the regions it gains or leaves are (un)subscribed. */
  private setRegions(s: Socket, regions: readonly string[]): Promise<void>[] {
    const before = new Set(this.regionsOf.get(s) ?? []);
    const after = new Set(regions);
    const subscribing: Promise<void>[] = [];
    for (const r of before) {
      if (after.has(r)) continue;
      const set = this.byRegion.get(r);
      if (set === undefined) continue;
      set.delete(s);
      if (set.size > 0) continue;
      this.byRegion.delete(r);
      this.deps.bus.unsubscribe(movesChannel(r), this.handler).catch(this.deps.onError);
      this.forgetRegion.add(r);
    }
    for (const r of after) {
      if (before.has(r)) continue;
      let set = this.byRegion.get(r);
      if (set === undefined) {
        this.byRegion.set(r, (set = new Set()));
        this.forgetRegion.delete(r);
        subscribing.push(this.deps.bus.subscribe(movesChannel(r), this.handler));
      }
      set.add(s);
    }
    this.regionsOf.set(s, regions);
    return subscribing;
  }

  /**
   * Regions nobody watches any more: their couriers' last-heard entries are dropped on the next flush, in one
   * pass over the map however many regions were left (not one pass per region, per re-watch).
   */
  private readonly forgetRegion = new Set<string>();

  /** Sends due deltas (the same rules as one process). */
  flush(now: number): void {
    if (this.forgetRegion.size > 0) {
      for (const [id, at] of this.lastRegion) if (this.forgetRegion.has(at)) this.lastRegion.delete(id);
      this.forgetRegion.clear();
    }
    flushWatches(this.sessions.keys(), now, this.deps.ws, this.deps.sockets);
  }

  private heard(region: string, payload: Buffer): void {
    const watchers = this.byRegion.get(region);
    if (watchers === undefined) return;
    const moves = decodeMoves(payload);
    if (moves === undefined) {
      this.deps.onError(new Error(`an undecodable moves message on region ${region} was ignored`));
      return;
    }
    for (const [id, lat, lng, status] of moves.moved) {
      this.lastRegion.set(id, region);
      for (const s of watchers) this.sessions.get(s)?.noteCourier(id, lat, lng, status);
    }
    for (const r of moves.requests) for (const s of watchers) this.sessions.get(s)?.noteRequest(r);
    for (const { fence, lat, lng } of moves.fences) for (const s of watchers) this.sessions.get(s)?.noteFence(fence, lat, lng);
    for (const id of moves.left) {
      const at = this.lastRegion.get(id);
      if (at !== undefined && at !== region) continue; // heard in another region since: that one is current
      this.lastRegion.delete(id);
      for (const s of watchers) this.sessions.get(s)?.noteGone(id);
    }
  }
}
