/**
 * One region's dispatch on a cluster core (core-dispatch.ts holds one per region it owns): a DispatchLoop over the
 * core's courier index, a journal whose commits carry the region's fence and number events in the region's seq
 * block, a pump, a request book and the request verbs of one process over them; the requests it tracks for edges.
 *
 *   start(state) ─► replayRequests (the region's open deliveries) ─► expiryTransition committed (offers live when
 *                   the last holder died; their drivers hear revoked) ─► book ─► pump started
 *   stored events ─► driver frames (send.driver) ; tracked requests' frames (send.trackers)
 *   stop() ─► pump stopped, commits settled (bounded), its live offers' couriers free again in the index
 */
import { ApiError } from '../api/api-error.js';
import { catchUpFrames, courierHold, driverFrame } from '../api/driver-offers.js';
import { DispatchPump, storeDown } from '../api/dispatch-pump.js';
import { courierView } from '../api/entity-routes.js';
import type { Reply } from '../api/http-routes.js';
import { IdempotencyKeys } from '../api/idempotency.js';
import type { ApiMetrics } from '../api/metrics.js';
import { RequestBook, bookedFrom } from '../api/request-book.js';
import { requestVerbs } from '../api/request-routes.js';
import { type TrackFrame, trackFrameOf, watchRequestOf } from '../api/request-views.js';
import type { WatchRequest } from '../api/watch-session.js';
import { DispatchLoop } from '../dispatch/dispatch-loop.js';
import { isTerminal } from '../dispatch/request-vocabulary.js';
import type { CourierStatus } from '../engine/courier-attributes.js';
import type { CourierIndex } from '../engine/courier-index.js';
import type { EngineIndexes } from '../engine/engine-indexes.js';
import { DispatchJournal } from '../store/dispatch-journal.js';
import { bankOf, expiryTransition, replayRequests } from '../store/recovery.js';
import type { OpenDispatchState } from '../store/store.js';
import type { CoreDispatchOptions } from './core-dispatch.js';
import type { GroupCommits } from './group-commits.js';
import type { OpenCounts } from './open-counts.js';
import { type ForwardedCall, regionOfId, regionOfferPrefix, regionRequestId } from './owner-commands.js';
import { regionOf } from './regions.js';

/** A request is tracked this long after an edge last said so (edges repeat `track` every TRACK_REFRESH_MS). */
export const TRACK_TTL_MS = 30_000;

/** One held region's dispatch: loop, fenced journal, pump, request book and the verbs over them. */
export class RegionDispatch {
  readonly book: RequestBook;
  readonly verbs: ReturnType<typeof requestVerbs>;
  private readonly loop: DispatchLoop;
  private readonly journal: DispatchJournal;
  private readonly pump: DispatchPump;
  /** Requests an edge tracks (until when), and the courier ping last sent to their trackers. */
  private readonly tracked = new Map<string, { until: number; sentTs: number }>();

  constructor(
    readonly region: string,
    epoch: number,
    private readonly seqBase: number,
    private readonly engine: EngineIndexes,
    private readonly options: CoreDispatchOptions,
    commits: GroupCommits,
    private readonly openCounts: OpenCounts,
    metrics: ApiMetrics,
    private readonly send: {
      driver: (courierId: string, frame: Record<string, unknown>) => void;
      trackers: (requestId: string, frame: TrackFrame) => void;
      /** A courier's status changed here (stored): other cores holding the courier follow. */
      status: (courierId: string, status: CourierStatus) => void;
      /** A request changed (stored): dispatchers' maps watching its pickup or dropoff follow. */
      mapped: (r: WatchRequest) => void;
      /** Blood stock changed in PostgreSQL at these banks (units reserved, issued or released): other copies read it again. */
      stock: (siteIds: string[]) => void;
    },
  ) {
    const { couriers, sites, donors, speeds } = engine;
    this.loop = new DispatchLoop({ couriers, sites, donors, speeds, policy: options.policy, offerTtlMs: options.offerTtlMs, offerIdPrefix: regionOfferPrefix(region) });
    this.journal = new DispatchJournal(commits, this.loop, seqBase, {
      fences: [{ region, epoch }],
      onHealthChange: (healthy, err) => healthy || options.onError(err ?? new Error(`region ${region}: commits failing`)),
    });
    this.book = new RequestBook(this.loop.parents);
    this.pump = new DispatchPump({
      loop: this.loop,
      planner: options.planner,
      journal: this.journal,
      clock: Date.now,
      tickMs: options.tickMs,
      onPlanError: options.onError,
      onForget: (ids) => ids.forEach((id) => this.book.forget(id)),
    });
    this.pump.addSink({
      deliver: (events) => {
        const changed = new Set<string>();
        const banks = new Set<string>();
        for (const e of events) {
          if (STOCK_EVENTS.has(e.type) && 'requestId' in e) {
            const bank = bankOf(e.requestId);
            if (bank !== undefined) banks.add(bank);
          }
          const out = driverFrame(e, (leg) => this.parentId(leg));
          if (out !== undefined) this.send.driver(out.courierId, out.frame);
          if ('requestId' in e && typeof e.requestId === 'string') changed.add(this.parentId(e.requestId));
          if (e.type === 'courier.status') send.status(e.courierId, e.status);
          if (e.type === 'request.delivered' || e.type === 'request.cancelled' || e.type === 'request.failed') this.requestEnded(e.requestId);
        }
        if (banks.size > 0) send.stock([...banks]);
        for (const id of changed) {
          if (this.tracked.has(id)) this.sendTrack(id);
          const mapped = watchRequestOf(this.sources, id);
          if (mapped !== undefined) send.mapped(mapped);
        }
      },
      rolledBack: () => undefined,
    });
    const idempotency = new IdempotencyKeys(options.store, options.idempotencyTtlMs, Date.now); // never load()ed: other cores write keys too
    this.verbs = requestVerbs({
      book: this.book, loop: this.loop, couriers, sites, pump: this.pump, idempotency, store: options.store, metrics,
      limits: { openPerRequester: options.openPerRequester },
      newId: () => regionRequestId(region),
      // one bound per requester across the cluster, not per region: counted as stored
      openCounts,
    });
  }

  /** Replays the region's stored open requests, commits the expiry of offers live at the last holder's end, starts dispatching. */
  async start(state: OpenDispatchState, now: number): Promise<void> {
    const dropped: { id: string; reason: string }[] = [];
    const { requests } = replayRequests(state, this.engine, this.loop, now, dropped);
    this.loop.drainEvents(); // what the store holds already
    const expiry = expiryTransition(state, this.loop, dropped, this.seqBase, now);
    if (expiry !== undefined) await this.journal.commit(expiry).acknowledged;
    for (const o of state.offers) {
      // the last holder's offers are void: their couriers are free again here (unless a loop of this core holds them)
      if (this.engine.couriers.get(o.courierId)?.status !== 'busy' && this.loop.lifecycle.courier(o.courierId)?.requestId === undefined) this.engine.couriers.setStatus(o.courierId, 'available');
      this.send.driver(o.courierId, { t: 'revoked', offerId: o.id, requestId: this.parentId(o.requestId), legId: o.requestId, reason: 'expired' });
    }
    for (const r of requests) this.book.record(bookedFrom(r));
    if (dropped.length > 0) this.options.onError(new Error(`region ${this.region}: ${dropped.length} stored requests could not be rebuilt and were failed (${dropped.slice(0, 3).map((d) => `${d.id}: ${d.reason}`).join('; ')})`));
    this.pump.start();
  }

  /** Stops dispatching; offers this loop made are void (their couriers free here again). */
  async stop(): Promise<void> {
    await this.pump.stop();
    await Promise.race([this.journal.settled(), new Promise((r) => setTimeout(r, 5_000).unref())]);
    for (const o of this.loop.lifecycle.liveOffers()) if (this.engine.couriers.has(o.courierId)) this.engine.couriers.setStatus(o.courierId, 'available');
  }

  /** A delivery ended here: its requester's open count drops at once (not a second later, at the next read). */
  private requestEnded(legId: string): void {
    const r = this.book.get(legId);
    if (r !== undefined && r.id === legId) this.openCounts.ended(r.ownerRole, r.owner);
  }

  /** A courier of this region goes on or off shift (refused while it carries a leg, as in one process). */
  async setCourierStatus(courierId: string, status: 'available' | 'offline'): Promise<Reply> {
    await this.pump.setCourierStatus(courierId, status).acknowledged;
    const c = this.engine.couriers.get(courierId);
    if (c === undefined) throw new ApiError(404, 'E_UNKNOWN_COURIER', `courier '${courierId}' is not registered`);
    // this core's copy may trail a change another core made (the courier just moved here), so the lifecycle can
    // have seen nothing to change: unless a region here holds it on an offer or leg, the asked status is the
    // courier's, and what the answer says is what PostgreSQL keeps
    if (!this.holdsCourier(courierId) && c.status !== status) this.engine.couriers.setStatus(courierId, status);
    const now = this.engine.couriers.get(courierId)!;
    try {
      await this.options.store.upsertCouriers([{ id: courierId, vehicle: now.vehicle, capabilities: now.capabilities, capacity: now.capacity, status: now.status }]);
    } catch (err) {
      throw storeDown(err);
    }
    return { status: 200, body: courierView(this.engine.couriers, courierId) };
  }

  /** The offer or leg this region's dispatch holds the courier on, as the courier view shows them. */
  courierHold(courierId: string): ReturnType<typeof courierHold> {
    return courierHold(this.loop, courierId);
  }

  /** Whether this region's dispatch has the courier on an offer or a leg (its status is this region's to say). */
  holdsCourier(courierId: string): boolean {
    return this.loop.lifecycle.liveOfferOf(courierId) !== undefined || this.loop.lifecycle.courier(courierId)?.requestId !== undefined;
  }

  /** Whether a request of this region is still open (delivered, cancelled and failed ones do not keep a region). */
  hasOpen(): boolean {
    for (const id of this.book.ids()) {
      const status = this.loop.status(id)?.status;
      if (status !== undefined && status !== 'delivered' && status !== 'cancelled' && status !== 'failed') return true;
    }
    return false;
  }

  /** An edge's requester tracks a request: its frame now (another requester's request looks missing), and changes for TRACK_TTL_MS. */
  track(call: ForwardedCall): Reply {
    const id = String(call.params[0]);
    const booked = this.book.get(id);
    const p = call.principal;
    if (booked === undefined || (p.role === 'requester' && (booked.owner !== p.sub || booked.ownerRole !== 'requester'))) throw new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
    this.tracked.set(id, { until: Date.now() + TRACK_TTL_MS, sentTs: this.tracked.get(id)?.sentTs ?? Number.NaN });
    return { status: 200, body: trackFrameOf(this.sources, id) };
  }

  /** Tracked requests whose courier pinged since their last frame (a second or more ago) get a frame; lapsed ones are dropped. */
  flushTracks(now: number): void {
    for (const [id, t] of this.tracked) {
      if (t.until < now || this.book.get(id) === undefined) {
        this.tracked.delete(id);
        continue;
      }
      const courierId = this.loop.status(id)?.legs.find((l) => l.status === 'assigned' || l.status === 'picked_up')?.courierId;
      const ts = courierId === undefined ? Number.NaN : (this.engine.couriers.get(courierId)?.ts ?? Number.NaN);
      if (Number.isNaN(ts) || ts === t.sentTs || (!Number.isNaN(t.sentTs) && ts - t.sentTs < 1_000)) continue;
      t.sentTs = ts;
      this.sendTrack(id);
    }
  }

  private sendTrack(id: string): void {
    const frame = trackFrameOf(this.sources, id);
    if (frame !== undefined) this.send.trackers(id, frame);
  }

  private get sources(): { book: RequestBook; loop: DispatchLoop; couriers: CourierIndex } {
    return { book: this.book, loop: this.loop, couriers: this.engine.couriers };
  }

  /** The open requests of this region picked up or dropped off inside `inside` (a map's snapshot). */
  mapRequests(inside: (lat: number, lng: number) => boolean): WatchRequest[] {
    const out: WatchRequest[] = [];
    for (const id of this.book.ids()) {
      const r = watchRequestOf(this.sources, id);
      if (r !== undefined && !isTerminal(r.status) && (inside(r.pickup.lat, r.pickup.lng) || inside(r.dropoff.lat, r.dropoff.lng))) out.push(r);
    }
    return out;
  }

  catchUp(courierId: string): Record<string, unknown>[] {
    return catchUpFrames(this.loop, courierId, (leg) => this.parentId(leg));
  }

  private parentId(legId: string): string {
    return this.book.parentOf(legId)?.id ?? legId;
  }
}

/** Leg events that move blood stock: reserved (created), issued (picked up), released (ended before pickup). */
const STOCK_EVENTS: ReadonlySet<string> = new Set(['request.created', 'request.picked_up', 'reservation.released']);

/** The rows of `state` that belong to the region's open deliveries (the id names the region, else the pickup does). */
export function regionState(state: OpenDispatchState, region: string): OpenDispatchState {
  const inRegion = (r: OpenDispatchState['requests'][number]): boolean => {
    const named = regionOfId(r.id);
    if (named !== undefined) return named === region;
    // made by one process before the cluster: a delivery's or rescue's pickup, a blood request's dropoff
    const p = r.payload as { pickup?: { lat: number; lng: number }; dropoff?: { lat: number; lng: number } } | undefined;
    const at = r.kind === 'blood' ? p?.dropoff : p?.pickup;
    return at !== undefined && regionOf(at.lat, at.lng) === region;
  };
  const parents = new Set(state.requests.filter((r) => (r.parentId === undefined || r.parentId === r.id) && inRegion(r)).map((r) => r.id));
  const requests = state.requests.filter((r) => parents.has(r.parentId ?? r.id));
  const legs = new Set(requests.map((r) => r.id));
  return {
    requests,
    offers: state.offers.filter((o) => legs.has(o.requestId)),
    assignments: state.assignments.filter((a) => legs.has(a.requestId)),
    reservations: state.reservations.filter((r) => legs.has(r.requestId)),
    declines: state.declines.filter((d) => legs.has(d.requestId)),
  };
}
