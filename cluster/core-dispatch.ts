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
 * Every kind is dispatched: deliveries and rescues by their pickup's region, blood by its hospital's. Blood and
 * rescue draw on sites shared by many regions: the core's copy of them follows the cluster (shared-stock.ts) and
 * PostgreSQL refuses a reservation of units another core took first (409 E_STOCK_CONFLICT, the stock read again).
 */
import { pack } from 'msgpackr';
import { ApiError } from '../api/api-error.js';
import type { Reply } from '../api/http-routes.js';
import { ApiMetrics } from '../api/metrics.js';
import { requestId } from '../api/request-routes.js';
import { readStoredRequest } from '../api/request-handlers.js';
import type { TrackFrame } from '../api/request-views.js';
import { fencesIn } from '../api/watch-fanout.js';
import { type WatchBBox, type WatchRequest, bboxContains } from '../api/watch-session.js';
import type { GeofenceIndex } from '../engine/geofence-index.js';
import type { RequestCreateBody } from '../api/schemas.js';
import type { DispatchPolicy } from '../dispatch/dispatch-request.js';
import type { CourierIndex } from '../engine/courier-index.js';
import { type EngineIndexes, createEngineIndexes } from '../engine/engine-indexes.js';
import { restoreSpeeds } from '../store/recovery.js';
import { StaleEpoch, StockConflict } from '../store/store-errors.js';
import type { OpenDispatchState, Store } from '../store/store.js';
import type { Planner } from '../workers/dispatch-pool.js';
import { type Bus, type BusHandler, decodeMessage } from './bus.js';
import { CoreCouriers } from './core-couriers.js';
import { GroupCommits } from './group-commits.js';
import type { Hub } from './hub.js';
import { OpenCounts } from './open-counts.js';
import { type CommandVerb, CommandResponder, type ForwardedCall, regionOfCreate, regionOfId } from './owner-commands.js';
import { SharedStock, fillShared } from './shared-stock.js';
import { RegionDispatch, regionState } from './region-dispatch.js';

/** The channel a driver's frames travel on (the edge holding its socket subscribes). */
export function driverChannel(courierId: string): string {
  return `driver:${courierId}`;
}

/** The channel a tracked request's frames travel on (the edges holding its trackers subscribe). */
export function trackChannel(requestId: string): string {
  return `request:${requestId}`;
}

/** Edges repeat `track` this often for what their sockets track (owners forget after TRACK_TTL_MS, region-dispatch.ts). */
export const TRACK_REFRESH_MS = 10_000;
/** How often carried requests' courier positions are looked at for their trackers (each at most once a second). */
const TRACK_FLUSH_MS = 250;

/**
 * Edges say on this channel that a driver connected, so its owner repeats what it holds and an edge holding an
 * older socket of the same driver closes it (one live socket per driver across the cluster).
 */
export const DRIVER_HELLO = 'drivers:hello';

/** What a DRIVER_HELLO carries: the driver, the edge its socket is on, when it opened (ms). */
export interface DriverHello {
  courierId: string;
  edge: string;
  at: number;
}

export interface CoreDispatchOptions {
  name: string;
  bus: Bus;
  store: Store;
  couriers: CourierIndex;
  planner: Planner;
  /** The epoch this core holds a region under now (undefined: not held). */
  epochOf: (region: string) => number | undefined;
  /** The region of a courier this core holds as its own (its pings reach this core), or undefined. */
  regionOfCourier: (courierId: string) => string | undefined;
  /** The core's copy of the geofences (cluster/core-fences.ts keeps it). */
  fences: GeofenceIndex;
  /** A request changed (stored) in a region here: dispatchers' maps follow (cluster/move-feed.ts). */
  mapRequest: (r: WatchRequest) => void;
  /** Drops a deleted courier from this core (index, held set, unwritten positions). */
  forgetCourier: (courierId: string) => void;
  /** This core's part in the hub (cluster/hub.ts), which runs `hub` and `siteAt` commands while it holds the lease. */
  hub?: Hub;
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
  /** Requesters' open requests across the cluster (the bound every region of this core applies). */
  private readonly openCounts: OpenCounts;
  /** Sites, blood stock and donors as every core shares them (blood and rescue draw on them). */
  private readonly shared: SharedStock;
  /** The courier commands (shift, profile, batch, delete, read) and the couriers' messages between cores. */
  private readonly couriers: CoreCouriers;
  private readonly hello: BusHandler = (_c, payload) => this.driverConnected(payload);
  /** Regions gained and not loaded yet, with their epochs; the load running now. */
  private readonly gaining = new Map<string, number>();
  private loading: Promise<void> | undefined;
  private trackTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: CoreDispatchOptions) {
    // sites, donors and speeds are the core's own copies (loaded at start); couriers are the core's index
    this.engine = { ...createEngineIndexes(), couriers: options.couriers, fences: options.fences };
    this.commits = new GroupCommits(options.store);
    this.openCounts = new OpenCounts(options.store, options.openPerRequester);
    this.couriers = new CoreCouriers({
      ...options, couriers: options.couriers,
      regionDispatch: (region) => this.regions.get(region),
      regionDispatches: () => this.regions.values(),
    });
    this.shared = new SharedStock({ bus: options.bus, store: options.store, copy: () => this.engine, profiles: true, onError: options.onError });
    this.responder = new CommandResponder(options.bus, options.name, (region, verb, call) => this.run(region, verb, call), options.onError);
  }

  /** Loads the sites (pickups may name them) and learned speeds, then takes commands. */
  async start(): Promise<void> {
    const state = await this.options.store.loadState();
    fillShared(this.engine, state);
    this.engine = { ...this.engine, speeds: restoreSpeeds(state) };
    await this.shared.start();
    await this.responder.start();
    await this.options.bus.subscribe(DRIVER_HELLO, this.hello);
    await this.couriers.start();
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
    await this.couriers.stop();
    await Promise.all([...this.regions.values()].map((r) => r.stop()));
    this.regions.clear();
    await this.shared.stop();
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
        const stored = await this.options.store.loadOpenDispatch();
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

  private async startRegion(region: string, epoch: number, state: OpenDispatchState): Promise<void> {
    const assigned = state.assignments.map((a) => a.courierId).filter((id) => !this.engine.couriers.has(id));
    if (assigned.length > 0) await this.options.borrowCouriers(assigned);
    const seqBase = await this.options.store.nextSeqBlock();
    const dispatch = new RegionDispatch(region, epoch, seqBase, this.engine, this.options, this.commits, this.openCounts, this.metrics, {
      driver: (courierId, frame) => this.toDriver(courierId, frame),
      trackers: (requestId, frame) => this.toTrackers(requestId, frame),
      status: (courierId, status) => this.couriers.statusChanged(courierId, status),
      mapped: this.options.mapRequest,
      stock: (siteIds) => this.shared.announce(siteIds),
    });
    await dispatch.start(state, Date.now());
    // replaying blood legs stages their banks' shelves: read those banks' stock again as stored
    await this.shared.reload([...new Set(state.reservations.map((r) => r.siteId))]);
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
    if (verb === 'courierStatus') return this.couriers.shift(call);
    if (verb === 'courierProfile') return this.couriers.profile(call);
    if (verb === 'courierRead') return this.couriers.read(call);
    if (verb === 'courierBatch') return this.couriers.batch(call);
    if (verb === 'courierDelete') return this.couriers.delete(call);
    if (verb === 'mapRequests') return this.mapRequests(call);
    if (verb === 'hub' || verb === 'siteAt') {
      if (this.options.hub === undefined) throw new ApiError(503, 'E_REGION_UNAVAILABLE', 'this core does not serve the hub; retry');
      return verb === 'hub' ? this.options.hub.run(call) : { status: 200, body: this.options.hub.siteAt(String(call.params[0])) };
    }
    const dispatch = this.regions.get(region);
    if (dispatch === undefined) {
      // not held here, nor being loaded: a read or cancel of what ended is answered from PostgreSQL
      if ((verb === 'read' || verb === 'cancel') && this.options.epochOf(region) === undefined && !this.gaining.has(region)) return this.fromStore(verb, call);
      throw new ApiError(503, 'E_REGION_UNAVAILABLE', `region ${region} is moving between cores; nothing was done, retry in a few seconds`);
    }
    if (verb === 'create') {
      if (regionOfCreate(call.body as RequestCreateBody, (id) => this.engine.sites.get(id)) !== region) throw new ApiError(503, 'E_REGION_UNAVAILABLE', 'the request reached the wrong region owner; retry');
    } else if (regionOfId(String(call.params[0])) !== region) {
      const offer = verb === 'accept' || verb === 'decline';
      throw new ApiError(404, offer ? 'E_UNKNOWN_OFFER' : 'E_UNKNOWN_REQUEST', offer ? 'no such offer' : 'no such request');
    }
    if (verb === 'track') return dispatch.track(call);
    try {
      return await dispatch.verbs[verb]({ ...call, query: '', accept: undefined });
    } catch (err) {
      const short = stockConflict(err);
      if (short !== undefined) {
        // another core reserved or issued these units first: nothing was stored; the banks are read again for the
        // retry. A create is what asked for them; any other change refused with it (queued behind) is just dropped
        await this.shared.reload(short.sites).catch(this.options.onError);
        if (verb === 'create') throw new ApiError(409, 'E_STOCK_CONFLICT', `the blood units picked were reserved by another request meanwhile (${short.sites.join(', ')}); nothing was stored, retry`);
      }
      if (!isStale(err)) throw err;
      // another core holds the region under a larger epoch: this one stops serving it; the edge asks the new owner
      if (this.regions.get(region) === dispatch) this.lose(region);
      throw new ApiError(503, 'E_REGION_UNAVAILABLE', `this core no longer owns region ${region}; nothing was stored, retry`);
    }
  }

  /** The open requests of every region here picked up or dropped off in a map's box, and the fences in it (its snapshot). */
  private mapRequests(call: ForwardedCall): Reply {
    const bbox = (call.body as { bbox?: unknown } | undefined)?.bbox;
    if (!Array.isArray(bbox) || bbox.length !== 4 || !bbox.every((v) => typeof v === 'number' && Number.isFinite(v))) throw new ApiError(400, 'E_VALIDATION', 'bbox is [minLng, minLat, maxLng, maxLat]');
    const box: WatchBBox = [bbox[0], bbox[1], bbox[2], bbox[3]];
    const requests = [...this.regions.values()].flatMap((r) => r.mapRequests((lat, lng) => bboxContains(box, lat, lng)));
    // every core keeps every fence: any one answer has them all
    return { status: 200, body: { requests, fences: fencesIn(this.engine.fences, box) } };
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
    const courierId = decodeMessage(payload)?.courierId;
    if (typeof courierId !== 'string') return;
    for (const r of this.regions.values()) for (const frame of r.catchUp(courierId)) this.toDriver(courierId, frame);
  }
}


/** A commit PostgreSQL refused because the region's epoch moved on (or one queued behind such a commit). */
/** The first error of `err`'s cause chain (a journal's CommitFailure wraps the store's) that `is` picks. */
function causeOf<T>(err: unknown, is: (e: unknown) => e is T): T | undefined {
  for (let e = err as { cause?: unknown } | undefined, depth = 0; e !== undefined && e !== null && depth < 4; e = e.cause as typeof e, depth++) {
    if (is(e)) return e;
  }
  return undefined;
}

function stockConflict(err: unknown): StockConflict | undefined {
  return causeOf(err, (e): e is StockConflict => e instanceof StockConflict);
}

function isStale(err: unknown): boolean {
  return causeOf(err, (e): e is StaleEpoch => e instanceof StaleEpoch || (e as { name?: unknown }).name === 'StaleEpoch') !== undefined;
}
