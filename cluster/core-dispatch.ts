/**
 * Dispatch on a cluster core (PRODUCT §7): one dispatch per region the core holds, each a DispatchLoop over the
 * core's own courier index with a journal fenced by the region's epoch, fed by the request commands edges forward
 * (owner-commands.ts), its offers published to the drivers' channels.
 *
 *   every region's journal ─► GroupCommits (one PostgreSQL transaction for what the regions hand over together)
 *   gained r (epoch e) ─► seq block (store) ─► r's open deliveries from PostgreSQL ─► replayed into a new loop
 *                        (assignments restored; offers live when the last holder died expired and their legs
 *                        pending, committed under e) ─► pump started ─► commands for r served
 *   lost r ─► commands for r refused (503), pump stopped, loop dropped; its commits after the loss are refused
 *             by PostgreSQL (StaleEpoch) and taken back out of memory
 *   command (region, verb, call) ─► that region's verbs (api/request-routes.ts requestVerbs, as one process)
 *   stored events ─► driver:{courierId} (offer, assigned, revoked) ─► the edge holding the driver's socket
 *   drivers:hello {courierId} (a driver connected to an edge) ─► its live offer and carried leg sent again
 *   track (an edge's requester socket; repeated while it tracks) ─► { t:'request' } now, then on request:{id} on
 *     each stored change and, while a courier carries it, its position at most once a second
 *
 * What a cluster core dispatches: deliveries with a pickup point (the edge routes by it). Blood and rescue draw on
 * shared stock and recipients' room (sites that serve many regions), which needs an owner of its own: those
 * requests are served by GD_ROLE=all.
 */
import { pack, unpack } from 'msgpackr';
import { ApiError } from '../api/api-error.js';
import { catchUpFrames, driverFrame } from '../api/driver-offers.js';
import { DispatchPump } from '../api/dispatch-pump.js';
import type { Reply } from '../api/http-routes.js';
import { IdempotencyKeys } from '../api/idempotency.js';
import { ApiMetrics } from '../api/metrics.js';
import { RequestBook } from '../api/request-book.js';
import { requestId, requestVerbs } from '../api/request-routes.js';
import { readStoredRequest } from '../api/request-handlers.js';
import { type TrackFrame, trackFrameOf } from '../api/request-views.js';
import type { RequestCreateBody } from '../api/schemas.js';
import { DispatchLoop } from '../dispatch/dispatch-loop.js';
import type { DispatchPolicy } from '../dispatch/dispatch-request.js';
import type { CourierIndex } from '../engine/courier-index.js';
import { type EngineIndexes, createEngineIndexes } from '../engine/engine-indexes.js';
import { DispatchJournal } from '../store/dispatch-journal.js';
import { expiryTransition, replayRequests, restoreSpeeds } from '../store/recovery.js';
import { StaleEpoch } from '../store/store-errors.js';
import type { StoredState, Store } from '../store/store.js';
import type { Planner } from '../workers/dispatch-pool.js';
import type { Bus, BusHandler } from './bus.js';
import { GroupCommits } from './group-commits.js';
import { type CommandVerb, CommandResponder, type ForwardedCall, regionOfId, regionOfferPrefix, regionRequestId } from './owner-commands.js';
import { regionOf } from './regions.js';

/** The channel a driver's frames travel on (the edge holding its socket subscribes). */
export function driverChannel(courierId: string): string {
  return `driver:${courierId}`;
}

/** The channel a tracked request's frames travel on (the edges holding its trackers subscribe). */
export function trackChannel(requestId: string): string {
  return `request:${requestId}`;
}

/** A request is tracked this long after an edge last said so (edges repeat `track` every TRACK_REFRESH_MS). */
export const TRACK_TTL_MS = 30_000;
export const TRACK_REFRESH_MS = 10_000;
/** How often carried requests' courier positions are looked at for their trackers (each at most once a second). */
const TRACK_FLUSH_MS = 250;

/** Edges say on this channel that a driver connected (payload: its courier id), so its owner repeats what it holds. */
export const DRIVER_HELLO = 'drivers:hello';

export interface CoreDispatchOptions {
  name: string;
  bus: Bus;
  store: Store;
  couriers: CourierIndex;
  planner: Planner;
  /** The epoch this core holds a region under now (undefined: not held). */
  epochOf: (region: string) => number | undefined;
  /** Loads couriers this core does not hold into its index (a restored assignment's courier in another region). */
  borrowCouriers: (ids: readonly string[]) => Promise<void>;
  policy: DispatchPolicy;
  offerTtlMs: number;
  tickMs: number;
  openPerRequester: number;
  idempotencyTtlMs: number;
  onError: (err: unknown) => void;
}

/** One core's dispatch across the regions it holds. */
export class CoreDispatch {
  private readonly regions = new Map<string, RegionDispatch>();
  private engine: EngineIndexes;
  private readonly responder: CommandResponder;
  private readonly metrics = new ApiMetrics();
  /** The regions' commits, grouped into shared transactions. */
  private readonly commits: GroupCommits;
  private readonly hello: BusHandler = (_c, payload) => this.driverConnected(payload);
  /** Regions gained and not loaded yet, with their epochs; the load running now. */
  private readonly gaining = new Map<string, number>();
  private loading: Promise<void> | undefined;
  private trackTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: CoreDispatchOptions) {
    // sites, donors and speeds are the core's own copies (loaded at start); couriers are the core's index
    this.engine = { ...createEngineIndexes(), couriers: options.couriers };
    this.commits = new GroupCommits(options.store);
    this.responder = new CommandResponder(options.bus, options.name, (region, verb, call) => this.run(region, verb, call), options.onError);
  }

  /** Loads the sites (pickups may name them) and learned speeds, then takes commands. */
  async start(): Promise<void> {
    const state = await this.options.store.loadState();
    for (const s of state.sites) this.engine.sites.upsert(s.id, { kind: s.kind, name: s.name, lat: s.lat, lng: s.lng, capacity: s.capacity, occupancy: s.occupancy, open: s.open });
    this.engine = { ...this.engine, speeds: restoreSpeeds(state) };
    await this.responder.start();
    await this.options.bus.subscribe(DRIVER_HELLO, this.hello);
    this.trackTimer = setInterval(() => {
      const now = Date.now();
      for (const r of this.regions.values()) r.flushTracks(now);
    }, TRACK_FLUSH_MS);
    this.trackTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.trackTimer);
    this.gaining.clear();
    await this.settled();
    await this.responder.stop().catch(this.options.onError);
    await this.options.bus.unsubscribe(DRIVER_HELLO, this.hello).catch(this.options.onError);
    await Promise.all([...this.regions.values()].map((r) => r.stop()));
    this.regions.clear();
  }

  /** Regions with requests open in them (alive however few couriers ping there; ended ones are read from PostgreSQL). */
  busyRegions(): string[] {
    return [...this.regions.values()].filter((r) => r.hasOpen()).map((r) => r.region);
  }

  /** Held regions with dispatch running, and the open requests in each. */
  report(): { dispatchRegions: number; openRequests: number } {
    let open = 0;
    for (const r of this.regions.values()) open += r.book.size;
    return { dispatchRegions: this.regions.size, openRequests: open };
  }

  /**
   * A region is this core's under `epoch`: its open deliveries come back from PostgreSQL and dispatch starts, in
   * the background (pings flow meanwhile; commands answer 503 until it is ready). Regions gained together share
   * one read of the store.
   */
  gain(region: string, epoch: number): void {
    this.gaining.set(region, epoch);
    this.loading ??= this.loadGained().finally(() => (this.loading = undefined));
  }

  /** Resolves once no gained region is still loading. */
  async settled(): Promise<void> {
    while (this.loading !== undefined) await this.loading;
  }

  private async loadGained(): Promise<void> {
    while (this.gaining.size > 0) {
      const batch = [...this.gaining];
      this.gaining.clear();
      try {
        const stored = await this.options.store.loadState();
        for (const [region, epoch] of batch) {
          if (this.options.epochOf(region) !== epoch) continue; // lost (or taken again) meanwhile
          await this.startRegion(region, epoch, regionState(stored, region));
        }
      } catch (err) {
        this.options.onError(err);
        for (const [region, epoch] of batch) if (!this.gaining.has(region) && this.options.epochOf(region) === epoch && !this.regions.has(region)) this.gaining.set(region, epoch);
        await new Promise((r) => setTimeout(r, 1_000).unref());
      }
    }
  }

  private async startRegion(region: string, epoch: number, state: StoredState): Promise<void> {
    const assigned = state.assignments.map((a) => a.courierId).filter((id) => !this.engine.couriers.has(id));
    if (assigned.length > 0) await this.options.borrowCouriers(assigned);
    const seqBase = await this.options.store.nextSeqBlock();
    const dispatch = new RegionDispatch(region, epoch, seqBase, this.engine, this.options, this.commits, this.metrics, {
      driver: (courierId, frame) => this.toDriver(courierId, frame),
      trackers: (requestId, frame) => this.toTrackers(requestId, frame),
    });
    await dispatch.start(state, Date.now());
    if (this.options.epochOf(region) !== epoch) {
      await dispatch.stop();
      return;
    }
    this.regions.get(region)?.stop().catch(this.options.onError);
    this.regions.set(region, dispatch);
  }

  /** The region is no longer this core's: its commands are refused from now, its loop stops. */
  lose(region: string): void {
    this.gaining.delete(region);
    const dispatch = this.regions.get(region);
    if (dispatch === undefined) return;
    this.regions.delete(region);
    dispatch.stop().catch(this.options.onError);
  }

  /** Runs a forwarded command over the region's dispatch. */
  private async run(region: string, verb: CommandVerb, call: ForwardedCall): Promise<Reply> {
    const dispatch = this.regions.get(region);
    if (dispatch === undefined) {
      // not held here, nor being loaded: a read or cancel of what ended is answered from PostgreSQL
      if ((verb === 'read' || verb === 'cancel') && this.options.epochOf(region) === undefined && !this.gaining.has(region)) return this.fromStore(verb, call);
      throw new ApiError(503, 'E_REGION_UNAVAILABLE', `region ${region} is moving between cores; nothing was done, retry in a few seconds`);
    }
    if (verb === 'create') {
      const b = call.body as RequestCreateBody;
      if (b?.kind !== 'delivery' || b.pickup === undefined) throw new ApiError(501, 'E_NOT_ON_EDGE', 'a cluster dispatches deliveries with a pickup point; blood and rescue requests are served by GD_ROLE=all');
      if (regionOf(b.pickup.lat, b.pickup.lng) !== region) throw new ApiError(503, 'E_REGION_UNAVAILABLE', 'the request reached the wrong region owner; retry');
    } else if (regionOfId(String(call.params[0])) !== region) {
      const offer = verb === 'accept' || verb === 'decline';
      throw new ApiError(404, offer ? 'E_UNKNOWN_OFFER' : 'E_UNKNOWN_REQUEST', offer ? 'no such offer' : 'no such request');
    }
    if (verb === 'track') return dispatch.track(call);
    try {
      return await dispatch.verbs[verb]({ ...call, query: '', accept: undefined });
    } catch (err) {
      if (!isStale(err)) throw err;
      // another core holds the region under a larger epoch: this one stops serving it; the edge asks the new owner
      if (this.regions.get(region) === dispatch) this.lose(region);
      throw new ApiError(503, 'E_REGION_UNAVAILABLE', `this core no longer owns region ${region}; nothing was stored, retry`);
    }
  }

  /** A request of a region no core holds: read as stored; a cancel of one that ended is a conflict (of an open one, retry). */
  private async fromStore(verb: 'read' | 'cancel', call: ForwardedCall): Promise<Reply> {
    const view = await readStoredRequest(this.options.store, requestId(String(call.params[0])), call.principal);
    if (verb === 'read') return { status: 200, body: view };
    if (view.status === 'delivered' || view.status === 'cancelled' || view.status === 'failed') throw new ApiError(409, 'E_CONFLICT', `not possible now: the request is ${view.status}`);
    throw new ApiError(503, 'E_REGION_UNAVAILABLE', 'the request is open and its region is moving between cores; nothing was done, retry');
  }

  private toDriver(courierId: string, frame: Record<string, unknown>): void {
    this.options.bus.publish(driverChannel(courierId), pack(frame)).catch(this.options.onError);
  }

  private toTrackers(requestId: string, frame: TrackFrame): void {
    this.options.bus.publish(trackChannel(requestId), pack(frame)).catch(this.options.onError);
  }

  private driverConnected(payload: Buffer): void {
    let courierId: unknown;
    try {
      courierId = unpack(payload);
    } catch {
      return;
    }
    if (typeof courierId !== 'string') return;
    for (const r of this.regions.values()) for (const frame of r.catchUp(courierId)) this.toDriver(courierId, frame);
  }
}

/** One held region's dispatch: loop, fenced journal, pump, request book and the verbs over them. */
class RegionDispatch {
  readonly book: RequestBook;
  readonly verbs: ReturnType<typeof requestVerbs>;
  private readonly loop: DispatchLoop;
  private readonly journal: DispatchJournal;
  private readonly pump: DispatchPump;
  /** Requests an edge tracks (until when), and the courier ping last sent to their trackers. */
  private readonly tracked = new Map<string, { until: number; sentTs: number }>();
  private readonly toDriver: (courierId: string, frame: Record<string, unknown>) => void;

  constructor(
    readonly region: string,
    epoch: number,
    private readonly seqBase: number,
    private readonly engine: EngineIndexes,
    private readonly options: CoreDispatchOptions,
    commits: GroupCommits,
    metrics: ApiMetrics,
    private readonly send: { driver: (courierId: string, frame: Record<string, unknown>) => void; trackers: (requestId: string, frame: TrackFrame) => void },
  ) {
    this.toDriver = send.driver;
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
        for (const e of events) {
          const out = driverFrame(e, (leg) => this.parentId(leg));
          if (out !== undefined) this.toDriver(out.courierId, out.frame);
          if ('requestId' in e && typeof e.requestId === 'string') changed.add(this.parentId(e.requestId));
        }
        for (const id of changed) if (this.tracked.has(id)) this.sendTrack(id);
      },
      rolledBack: () => undefined,
    });
    const idempotency = new IdempotencyKeys(options.store, options.idempotencyTtlMs, Date.now); // never load()ed: other cores write keys too
    this.verbs = requestVerbs({
      book: this.book, loop: this.loop, couriers, sites, pump: this.pump, idempotency, store: options.store, metrics,
      limits: { openPerRequester: options.openPerRequester },
      newId: () => regionRequestId(region),
      // one bound per requester across the cluster, not per region: counted as stored
      openRequests: (role, sub) => options.store.countOpenRequests(sub, role),
    });
  }

  /** Replays the region's stored open requests, commits the expiry of offers live at the last holder's end, starts dispatching. */
  async start(state: StoredState, now: number): Promise<void> {
    const dropped: { id: string; reason: string }[] = [];
    const { requests } = replayRequests(state, this.engine, this.loop, now, dropped);
    this.loop.drainEvents(); // what the store holds already
    const expiry = expiryTransition(state, this.loop, dropped, this.seqBase, now);
    if (expiry !== undefined) await this.journal.commit(expiry).acknowledged;
    for (const o of state.offers) {
      // the last holder's offers are void: their couriers are free again here (unless a loop of this core holds them)
      if (this.engine.couriers.get(o.courierId)?.status !== 'busy' && this.loop.lifecycle.courier(o.courierId)?.requestId === undefined) this.engine.couriers.setStatus(o.courierId, 'available');
      this.toDriver(o.courierId, { t: 'revoked', offerId: o.id, requestId: this.parentId(o.requestId), legId: o.requestId, reason: 'expired' });
    }
    for (const r of requests) {
      this.book.record({
        id: r.id, kind: r.kind, owner: r.owner, ownerRole: r.ownerRole, urgency: r.urgency, createdAt: r.createdAt, pickup: r.pickup, dropoff: r.dropoff, legs: r.legs,
        ...(r.reference !== undefined ? { reference: r.reference } : {}),
        ...(r.plan !== undefined ? { plan: r.plan } : {}),
      });
    }
    if (dropped.length > 0) this.options.onError(new Error(`region ${this.region}: ${dropped.length} stored requests could not be rebuilt and were failed (${dropped.slice(0, 3).map((d) => `${d.id}: ${d.reason}`).join('; ')})`));
    this.pump.start();
  }

  /** Stops dispatching; offers this loop made are void (their couriers free here again). */
  async stop(): Promise<void> {
    await this.pump.stop();
    await Promise.race([this.journal.settled(), new Promise((r) => setTimeout(r, 5_000).unref())]);
    for (const o of this.loop.lifecycle.liveOffers()) if (this.engine.couriers.has(o.courierId)) this.engine.couriers.setStatus(o.courierId, 'available');
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

  catchUp(courierId: string): Record<string, unknown>[] {
    return catchUpFrames(this.loop, courierId, (leg) => this.parentId(leg));
  }

  private parentId(legId: string): string {
    return this.book.parentOf(legId)?.id ?? legId;
  }
}

/** A commit PostgreSQL refused because the region's epoch moved on (or one queued behind such a commit). */
function isStale(err: unknown): boolean {
  for (let e = err as { name?: string; cause?: unknown } | undefined, depth = 0; e !== undefined && e !== null && depth < 4; e = e.cause as typeof e, depth++) {
    if (e instanceof StaleEpoch || e.name === 'StaleEpoch') return true;
  }
  return false;
}

/** The rows of `state` that belong to the region's open deliveries (the id names the region, else the pickup does). */
export function regionState(state: StoredState, region: string): StoredState {
  const inRegion = (r: StoredState['requests'][number]): boolean => {
    if (r.kind !== 'delivery') return false;
    const named = regionOfId(r.id);
    if (named !== undefined) return named === region;
    const pickup = (r.payload as { pickup?: { lat: number; lng: number } } | undefined)?.pickup;
    return pickup !== undefined && regionOf(pickup.lat, pickup.lng) === region;
  };
  const parents = new Set(state.requests.filter((r) => (r.parentId === undefined || r.parentId === r.id) && inRegion(r)).map((r) => r.id));
  const requests = state.requests.filter((r) => parents.has(r.parentId ?? r.id));
  const legs = new Set(requests.map((r) => r.id));
  return {
    ...state,
    requests,
    offers: state.offers.filter((o) => legs.has(o.requestId)),
    assignments: state.assignments.filter((a) => legs.has(a.requestId)),
    reservations: state.reservations.filter((r) => legs.has(r.requestId)),
    declines: state.declines.filter((d) => legs.has(d.requestId)),
  };
}
