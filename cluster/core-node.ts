/**
 * A cluster core (PRODUCT §7, GD_ROLE=core): owns regions and, for them, the courier index; takes pings from the
 * regions' streams and answers nearest queries for them. Dispatch per region is not here yet (issue 13).
 *
 *   RegionOwnership tick ─ gained r ─► load r's couriers from PostgreSQL (box of r, kept if regionOf ∈ r)
 *                        │             ─► PingConsumer.addRegion(r) (takes over what the last owner left unacked)
 *                        └ lost r ───► removeRegion(r), drop r's couriers from the index
 *   PingConsumer ─► apply: known courier → index.move + write-behind (PostgreSQL, ≤ flush interval lost)
 *                          first sight   → profile from PostgreSQL, then move; tell the other cores (bus
 *                                          `couriers:moved`) so whoever held it in its old region drops it
 *   couriers:moved from another core ─► the copy with the older ping is dropped (a newer one is announced back)
 *   NearestResponder (core:{name}:nearest) ─► index.nearby over the regions held
 *   CoreDispatch (with `dispatch` options) ─► a dispatch per held region over this index (core-dispatch.ts)
 */
import type { Redis } from 'ioredis';
import { pack, unpack } from 'msgpackr';
import { cellToBoundary } from 'h3-js';
import type { CourierStatus } from '../engine/courier-attributes.js';
import { CourierIndex, type CourierHit, type FenceEvent } from '../engine/courier-index.js';
import { GeofenceIndex } from '../engine/geofence-index.js';
import type { CourierFilter } from '../engine/courier-filter.js';
import type { StoredCourier, Store } from '../store/store.js';
import { PositionWriteBehind } from '../store/write-behind.js';
import type { Bus } from './bus.js';
import { CoreDispatch, type CoreDispatchOptions } from './core-dispatch.js';
import { CoreFences } from './core-fences.js';
import { Hub, type HubOptions } from './hub.js';
import { MovePublisher } from './move-feed.js';
import { type NearestQuery, NearestResponder } from './nearest-scatter.js';
import { type PingBatch, PingConsumer } from './ping-streams.js';
import { RegionLeases } from './region-lease.js';
import { RegionOwnership, registerRegions } from './region-ownership.js';
import { regionOf } from './regions.js';

/** A ping more than this ahead of the core's clock is refused, as the gateway does (api/ingest.ts). */
const MAX_FUTURE_MS = 60_000;
/** Pings of first-seen couriers waiting for their profiles: 50 frames; beyond it they are dropped (soft state). */
const MAX_FIRST_SIGHT_QUEUED = 50_000;
/** A courier id PostgreSQL did not have is not asked for again for this long (its profile may be created later). */
const MISSING_TTL_MS = 10_000;
/** Ids remembered as missing at most: ~10 MB however many bogus ids a broken gateway sends. */
const MAX_MISSING_REMEMBERED = 100_000;

/** How often a core marks its occupied regions alive and looks for empty ones. */
const SWEEP_MS = 2_000;
/** A held region with nothing in it is forgotten after this long (a region's couriers may all be off shift for a minute). */
const IDLE_REGION_MS = 60_000;
/** How often applied moves go to the edges' map watches (a watch's highest rate is 40 Hz; maps ask 1–10). */
const MOVES_INTERVAL_MS = 50;

/** The bus channel on which a core says it now holds a courier (first ping seen in its regions). */
export const COURIER_MOVED = 'couriers:moved';

export interface CoreNodeOptions {
  name: string;
  /** Commands (leases, ownership, acks, publishing). */
  redis: Redis;
  /** A connection of its own for the blocking stream reads. */
  reader: Redis;
  bus: Bus;
  store: Store;
  prefix?: string;
  leaseTtlMs?: number;
  /** A held region with no courier in it and no ping applied for this long is forgotten (default 60 s). */
  idleRegionMs?: number;
  onError?: (err: unknown) => void;
  /** Dispatch for the held regions (requests forwarded by edges); without it the core serves pings and nearest only. */
  dispatch?: Pick<CoreDispatchOptions, 'planner' | 'policy' | 'offerTtlMs' | 'tickMs' | 'openPerRequester' | 'idempotencyTtlMs'>;
  /** With dispatch: this core may hold the hub (sites, stock, donors, lists; cluster/hub.ts). */
  hub?: Pick<HubOptions, 'cursors' | 'stockLowUnits' | 'webhooks' | 'logger'>;
}

/** What a core reports on /metrics. */
export interface CoreStats {
  regions: number;
  couriers: number;
  pingsApplied: number;
  /** Pings of couriers PostgreSQL does not have (deleted, or never created). */
  pingsUnknown: number;
  /** Pings of first-seen couriers dropped because the profile lookups were full (soft state; the next ping retries). */
  pingsQueueFull: number;
  /** Pings read from a region just handed on (its new owner reads them too). */
  pingsNotOwned: number;
  /** Pings refused: stale, more than a minute ahead, bad coordinates, or outside the stream's region. */
  pingsRefused: number;
  handedOff: number;
  /** Regions with dispatch running, and the open requests in them. */
  dispatchRegions: number;
  openRequests: number;
  /** Stream entries that could not be applied (undecodable), dropped and acknowledged. */
  entriesDropped: number;
}

/** One core: start() joins the cluster, stop() hands its regions back. */
export class CoreNode {
  /** The core's copy of the geofences (with dispatch and the hub: cluster/core-fences.ts keeps it). */
  private readonly fenceIndex = new GeofenceIndex();
  /** Crossings go to `fences` once set; reported only while a move is applied. */
  private onCrossing: (e: FenceEvent) => void = () => undefined;
  readonly index = new CourierIndex({ fences: this.fenceIndex, onFenceEvent: (e) => this.onCrossing(e) });
  readonly ownership: RegionOwnership;
  readonly dispatch: CoreDispatch | undefined;
  /** This core's part in the hub (undefined without dispatch). */
  readonly hub: Hub | undefined;
  /** Geofence crossings of the couriers held here (with the hub). */
  private readonly fences: CoreFences | undefined;
  private readonly consumer: PingConsumer;
  private readonly responder: NearestResponder<CourierHit>;
  private readonly positions: PositionWriteBehind;
  /** Moves to the edges' map watches, coalesced per region. */
  private readonly moves: MovePublisher;
  private readonly peeked: { lat: number; lng: number; status: CourierStatus } = { lat: 0, lng: 0, status: 'offline' };
  /** The region each held courier is in, by its last position. */
  private readonly regionOfCourier = new Map<string, string>();
  private readonly onError: (err: unknown) => void;
  private readonly stats = { pingsApplied: 0, pingsUnknown: 0, pingsQueueFull: 0, pingsNotOwned: 0, pingsRefused: 0, handedOff: 0 };
  /** Pings of couriers first seen, waiting for their profiles; applied in arrival order. */
  private firstSight: Promise<void> = Promise.resolve();
  private firstSightQueued = 0;
  private readonly movedHandler = (_c: string, payload: Buffer): void => this.onCourierMoved(payload);
  /** When each held region was gained, and when a ping was last applied in it (for forgetting empty ones). */
  private readonly gainedAt = new Map<string, number>();
  private readonly lastApplied = new Map<string, number>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly options: CoreNodeOptions) {
    const prefix = options.prefix ?? 'gd:';
    this.onError = options.onError ?? (() => undefined);
    const leases = new RegionLeases(options.redis, { owner: options.name, ttlMs: options.leaseTtlMs, prefix });
    this.consumer = new PingConsumer(options.reader, (region, batch) => this.apply(region, batch), {
      prefix,
      consumer: options.name,
      onDropped: (region, entry, why) => this.onError(new Error(`ping stream entry ${entry} of region ${region} dropped: ${why}`)),
    });
    this.ownership = new RegionOwnership(options.redis, leases, options.store, {
      prefix,
      onGained: (region, epoch) => this.gain(region, epoch),
      onLost: (region) => this.lose(region),
    });
    this.hub = options.dispatch === undefined || options.hub === undefined ? undefined : new Hub({
      ...options.hub, store: options.store, bus: options.bus, leases, policy: options.dispatch.policy, onError: this.onError,
    });
    this.dispatch = options.dispatch === undefined ? undefined : new CoreDispatch({
      ...options.dispatch, name: options.name, bus: options.bus, store: options.store, couriers: this.index, onError: this.onError,
      hub: this.hub,
      fences: this.fenceIndex,
      mapRequest: (r) => this.moves.request(r),
      forgetCourier: (id) => {
        this.positions.forget(id);
        this.drop(id);
      },
      epochOf: (region) => this.ownership.regions().get(region),
      regionOfCourier: (id) => this.regionOfCourier.get(id),
      borrowCouriers: (ids) => this.borrow(ids),
    });
    this.responder = new NearestResponder(options.bus, options.name, (q) => this.nearest(q), this.onError);
    this.positions = new PositionWriteBehind(options.store);
    this.moves = new MovePublisher(options.bus, MOVES_INTERVAL_MS, this.onError);
    if (this.hub !== undefined && options.hub !== undefined) {
      this.fences = new CoreFences({ bus: options.bus, store: options.store, fences: this.fenceIndex, moves: this.moves, logger: options.hub.logger, onError: this.onError });
      this.onCrossing = this.fences.crossed;
    }
  }

  async start(): Promise<void> {
    await this.ownership.claimName();
    await this.seedKnownRegions();
    await this.options.bus.subscribe(COURIER_MOVED, this.movedHandler);
    await this.responder.start();
    await this.dispatch?.start();
    await this.fences?.start(await this.options.store.loadGeofences());
    this.positions.start();
    this.moves.start();
    await this.ownership.tick();
    this.ownership.start(this.onError);
    this.hub?.start();
    this.consumer.start(this.onError);
    const idle = this.options.idleRegionMs ?? IDLE_REGION_MS;
    this.sweeper = setInterval(() => this.sweepRegions(idle).catch(this.onError), Math.max(50, Math.min(SWEEP_MS, Math.floor(idle / 4))));
    this.sweeper.unref();
  }

  /**
   * The held regions with couriers in them are marked alive (scored now in the known set, so after a crash the
   * survivors take them before regions a sender pinged once); regions with nothing in them — no courier, no ping
   * applied since `idle` ago (a sender that pinged random points, or a fleet that left) — are forgotten, so the
   * known set does not grow for ever; the next ping there registers the region again.
   */
  private async sweepRegions(idle: number): Promise<void> {
    const now = Date.now();
    const occupied = new Set(this.regionOfCourier.values());
    for (const r of this.dispatch?.busyRegions() ?? []) occupied.add(r);
    const alive: string[] = [];
    for (const region of [...this.ownership.regions().keys()]) {
      if (occupied.has(region)) {
        alive.push(region);
        continue;
      }
      const since = Math.max(this.gainedAt.get(region) ?? now, this.lastApplied.get(region) ?? 0);
      if (now - since >= idle) await this.ownership.forget(region);
    }
    await registerRegions(this.options.redis, alive, this.options.prefix ?? 'gd:', now);
  }

  /** Hands every region back and writes the positions still buffered. */
  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    await this.ownership.stop();
    await this.hub?.stop();
    await this.dispatch?.stop();
    await this.fences?.stop();
    await this.consumer.stop();
    await this.responder.stop();
    await this.options.bus.unsubscribe(COURIER_MOVED, this.movedHandler);
    await this.firstSight;
    await this.moves.stop();
    await this.positions.close();
  }

  /**
   * A cluster whose Redis knows no region yet (first start, or a Redis that restarted empty) learns them from
   * the stored positions, so couriers that have not pinged since are still owned and found.
   */
  private async seedKnownRegions(): Promise<void> {
    const prefix = this.options.prefix ?? 'gd:';
    if ((await this.options.redis.zcard(`${prefix}regions`)) > 0) return;
    const rows = await this.options.store.loadCouriers({ box: { minLat: -90, maxLat: 90, minLng: -180, maxLng: 180 } });
    // each region scored by its latest stored ping, as an edge would have scored it
    const latest = new Map<string, number>();
    for (const c of rows) {
      if (c.lat === undefined || c.lng === undefined) continue;
      const r = regionOf(c.lat, c.lng);
      latest.set(r, Math.max(latest.get(r) ?? 0, Math.min(c.lastPingAt ?? 0, Date.now())));
    }
    for (const [r, at] of latest) await registerRegions(this.options.redis, [r], prefix, at);
  }

  report(): CoreStats {
    return { regions: this.ownership.regions().size, couriers: this.regionOfCourier.size, ...this.stats, ...(this.dispatch?.report() ?? { dispatchRegions: 0, openRequests: 0 }), entriesDropped: this.consumer.dropped };
  }

  private nearest(q: NearestQuery): CourierHit[] {
    const filter = q.filter as CourierFilter | undefined;
    if (q.bbox === undefined) return this.index.nearby(q.lat, q.lng, { ...filter, k: q.k, radius: q.radius });
    // a map snapshot: the couriers inside the box, by id so every core's share and the merge agree on which k
    const ids = this.index.within(q.bbox, filter).sort().slice(0, q.k);
    const out: CourierHit[] = [];
    for (const id of ids) {
      const c = this.index.get(id);
      if (c !== undefined) out.push({ id, lat: c.lat, lng: c.lng, distance: 0, status: c.status, vehicle: c.vehicle });
    }
    return out;
  }

  /** Loads a gained region's couriers (their stored positions), then starts reading its pings. */
  private async gain(region: string, epoch: number): Promise<void> {
    this.gainedAt.set(region, Date.now());
    const rows = await this.options.store.loadCouriers({ box: boxOf(region) });
    const loaded = rows.filter((c) => c.lat !== undefined && c.lng !== undefined && regionOf(c.lat, c.lng) === region);
    for (const c of loaded) this.hold(c, region);
    // a stored position may be stale (the courier moved on, into a region another core holds): say what was
    // loaded, and a core holding a newer ping of the same courier answers, so this copy is dropped
    await this.announce(loaded.map((c) => c.id), loaded.map((c) => c.lastPingAt ?? 0));
    await this.consumer.addRegion(region);
    this.dispatch?.gain(region, epoch);
  }

  /**
   * Couriers a restored assignment names that this core does not hold (they drove into another core's region):
   * loaded into the index for the leg's sake, not held as this core's (their pings go to the other core).
   */
  private async borrow(ids: readonly string[]): Promise<void> {
    for (const c of await this.options.store.loadCouriers({ ids })) {
      if (this.index.has(c.id)) continue;
      this.index.upsert(c.id, { vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity, status: c.status });
      if (c.lat !== undefined && c.lng !== undefined) this.index.move(c.id, c.lat, c.lng, Math.min(c.lastPingAt ?? 0, Date.now()));
      this.fences?.discard();
    }
  }

  private lose(region: string): void {
    this.dispatch?.lose(region);
    this.gainedAt.delete(region);
    this.lastApplied.delete(region);
    this.consumer.removeRegion(region);
    for (const [id, r] of this.regionOfCourier) if (r === region) this.drop(id);
  }

  private apply(region: string, batch: PingBatch): void {
    if (!this.ownership.regions().has(region)) {
      // read just before the region was handed on: its new owner reads these entries too (unacked → claimed)
      this.stats.pingsNotOwned += batch.ids.length;
      return;
    }
    const unknown: number[] = [];
    for (let i = 0; i < batch.ids.length; i++) {
      const id = batch.ids[i];
      if (!this.regionOfCourier.has(id)) {
        unknown.push(i);
        continue;
      }
      this.move(id, region, batch.lat[i], batch.lng[i], batch.ts[i]);
    }
    if (unknown.length > 0) {
      // a bounded queue: pings of unknown couriers arriving faster than PostgreSQL answers are dropped, counted
      if (this.firstSightQueued + unknown.length > MAX_FIRST_SIGHT_QUEUED) {
        this.stats.pingsQueueFull += unknown.length;
        return;
      }
      this.firstSightQueued += unknown.length;
      const n = unknown.length;
      const ids = unknown.map((i) => batch.ids[i]);
      const points = unknown.map((i) => [batch.lat[i], batch.lng[i], batch.ts[i]]);
      this.firstSight = this.firstSight
        .then(() => this.welcome(region, ids, points))
        .catch(this.onError)
        .finally(() => (this.firstSightQueued -= n));
    }
  }

  /** Couriers pinging into this core's regions for the first time: profile from PostgreSQL, move, tell the others. */
  private async welcome(region: string, ids: string[], points: number[][]): Promise<void> {
    const now = Date.now();
    const ask = [...new Set(ids.filter((id) => !this.isKnownMissing(id, now)))];
    const rows = new Map(ask.length === 0 ? [] : (await this.options.store.loadCouriers({ ids: ask })).map((c) => [c.id, c]));
    for (const id of ask) if (!rows.has(id)) this.rememberMissing(id, now);
    for (let j = 0; j < ids.length; j++) {
      const row = rows.get(ids[j]);
      if (row === undefined || !this.ownership.regions().has(region)) {
        if (row === undefined) this.stats.pingsUnknown++;
        else this.stats.pingsNotOwned++;
        continue;
      }
      const [lat, lng, ts] = points[j];
      if (!this.regionOfCourier.has(ids[j])) this.hold({ ...row, lat: undefined, lng: undefined }, region);
      this.move(ids[j], region, lat, lng, ts);
      await this.announce([ids[j]], [ts]);
    }
  }

  /** Ids PostgreSQL did not have lately: their pings are dropped without asking again (bounded, oldest out first). */
  private readonly missing = new Map<string, number>();

  private isKnownMissing(id: string, now: number): boolean {
    const at = this.missing.get(id);
    if (at === undefined) return false;
    if (now - at < MISSING_TTL_MS) return true;
    this.missing.delete(id);
    return false;
  }

  private rememberMissing(id: string, now: number): void {
    this.missing.delete(id);
    this.missing.set(id, now);
    if (this.missing.size > MAX_MISSING_REMEMBERED) this.missing.delete(this.missing.keys().next().value as string);
  }

  /** Tells the other cores this one holds these couriers as of these pings. */
  private async announce(ids: string[], ts: number[]): Promise<void> {
    if (ids.length > 0) await this.options.bus.publish(COURIER_MOVED, pack({ core: this.options.name, ids, ts }));
  }

  private move(id: string, region: string, lat: number, lng: number, ts: number): void {
    // the edge refuses these; a stream entry that carries them anyway must not freeze or misplace a courier
    if (!(ts <= Date.now() + MAX_FUTURE_MS) || !(Math.abs(lat) <= 90 && Math.abs(lng) <= 180) || regionOf(lat, lng) !== region) {
      this.stats.pingsRefused++;
      return;
    }
    try {
      // a stale ping (older than the one held) changes nothing: not the index, not the region, not the store
      if (this.index.move(id, lat, lng, ts) === 'stale') {
        this.stats.pingsRefused++;
        return;
      }
    } catch {
      this.fences?.discard();
      this.stats.pingsRefused++;
      return;
    }
    const before = this.regionOfCourier.get(id);
    if (before !== undefined && before !== region) this.moves.gone(before, id);
    this.regionOfCourier.set(id, region);
    this.lastApplied.set(region, Date.now());
    this.positions.record(id, lat, lng, ts);
    if (this.index.peek(id, this.peeked)) this.moves.note(region, id, lat, lng, this.peeked.status);
    this.fences?.landed(region, lat, lng);
    this.stats.pingsApplied++;
  }

  private hold(c: StoredCourier, region: string): void {
    this.index.upsert(c.id, { vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity, status: c.status });
    // a stored time ahead of now (an older build's bogus ping) would make every real ping look stale
    if (c.lat !== undefined && c.lng !== undefined) this.index.move(c.id, c.lat, c.lng, Math.min(c.lastPingAt ?? 0, Date.now()));
    this.fences?.discard(); // placed from the store, not moved: no crossing to tell
    this.regionOfCourier.set(c.id, region);
  }

  private drop(id: string): void {
    this.index.remove(id);
    this.regionOfCourier.delete(id);
  }

  /**
   * Another core holds couriers this one holds too: the copy with the older ping is the stale one. Drop ours
   * when theirs is at least as new; answer with ours when ours is newer, so theirs is dropped (both converge).
   */
  private onCourierMoved(payload: Buffer): void {
    const { core, ids, ts } = unpack(payload) as { core: unknown; ids: unknown; ts: unknown };
    if (typeof core !== 'string' || !Array.isArray(ids) || !Array.isArray(ts) || ids.length !== ts.length) {
      this.onError(new Error(`a ${COURIER_MOVED} message without core, ids and ts of one length was ignored`));
      return;
    }
    if (core === this.options.name) return;
    const newer: [string[], number[]] = [[], []];
    for (let i = 0; i < ids.length; i++) {
      if (typeof ids[i] !== 'string' || typeof ts[i] !== 'number' || !this.regionOfCourier.has(ids[i])) continue;
      const mine = this.index.get(ids[i])?.ts ?? Number.NaN;
      // a tie (the same stored ping) goes to the smaller core name, on both sides
      if (mine > ts[i] || (mine === ts[i] && this.options.name < core)) {
        newer[0].push(ids[i]);
        newer[1].push(mine);
      } else {
        this.moves.gone(this.regionOfCourier.get(ids[i]) as string, ids[i]);
        this.drop(ids[i]);
        this.stats.handedOff++;
      }
    }
    this.announce(...newer).catch(this.onError);
  }
}

/** A region's lat/lng bounding box (the whole longitude range when it spans the antimeridian). */
function boxOf(region: string): { minLat: number; maxLat: number; minLng: number; maxLng: number } {
  const b = cellToBoundary(region);
  const lats = b.map((p) => p[0]);
  const lngs = b.map((p) => p[1]);
  const wraps = Math.max(...lngs) - Math.min(...lngs) > 180;
  return { minLat: Math.min(...lats), maxLat: Math.max(...lats), minLng: wraps ? -180 : Math.min(...lngs), maxLng: wraps ? 180 : Math.max(...lngs) };
}
