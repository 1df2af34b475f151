/**
 * The hub of a cluster (PRODUCT §7): the part of the API that belongs to no region — sites and their stock,
 * donors, geofences, the courier and request lists, couriers' tracks, webhooks (the registry, and deliveries from
 * the whole cluster's outbox) — served by the one core holding the `hub` lease, with the very
 * handlers of one process (entity-routes, fleet-routes, fleet-lists, location-routes' nearby sites and donors).
 *
 *   every core, each third of a lease: hold the hub? renew (lost ─► drop its copies) : try to take it
 *   taken ─► sites, stock and donors loaded from PostgreSQL ─► routes served
 *   edge: a hub route ─► OwnerCommands.askHub ─► core:{holder}:cmd {verb:'hub', route, call} ─► the handler
 *   a write ─► stored first (one at a time, as a journal would) ─► memory ─► answer
 *   a geofence written or deleted ─► `fences:changed` ─► every core's copy (crossings are found where pings land)
 *   every 2 s ─► `webhooks:want` (the event patterns webhooks subscribe to) ─► cores store fence crossings if wanted
 *   a delivery picked up at a site (pickupSiteId) ─► the edge asks the hub where the site is (siteAt) and
 *     forwards the create to that point's region
 *
 * One holder at a time serves reads and writes alike, so a client reads back what it wrote whichever edge it
 * asks. The writes are idempotent upserts and deletes keyed by the caller's id: a holder that lost the lease
 * while finishing one stores what a client asked for, so they are not fenced by the hub's epoch.
 */
import { ApiError } from '../api/api-error.js';
import { storeDown } from '../api/dispatch-pump.js';
import { type EntityWriter, registerEntityRoutes, storedCourierView } from '../api/entity-routes.js';
import { idAfter, registerFleetLists } from '../api/fleet-lists.js';
import { registerFleetRoutes } from '../api/fleet-routes.js';
import type { AddRoute, HttpDeps, Reply, RouteSpec } from '../api/http-routes.js';
import { type ListCursors, listScope, parseBbox } from '../api/list-cursor.js';
import { queryFields, registerLocationRoutes } from '../api/location-routes.js';
import { validate } from '../api/schemas.js';
import type { Logger } from '../api/log.js';
import { type DelivererOptions, WebhookDeliverer } from '../api/webhook-deliverer.js';
import { registerWebhookRoutes } from '../api/webhook-routes.js';
import type { RequestBook } from '../api/request-book.js';
import type { DispatchPolicy } from '../dispatch/dispatch-request.js';
import { type EngineIndexes, createEngineIndexes } from '../engine/engine-indexes.js';
import type { Commit } from '../store/dispatch-journal.js';
import { restoreSpeeds } from '../store/recovery.js';
import { HeldUnits } from '../store/store-errors.js';
import type { Store, StoredCourier } from '../store/store.js';
import { type ForwardedCall, HUB } from './owner-commands.js';
import { DONORS_CHANGED, SITES_CHANGED, SharedStock, fillShared, profileChange } from './shared-stock.js';
import type { RegionLeases } from './region-lease.js';
import type { Bus } from './bus.js';
import { pack } from 'msgpackr';

/** The nearby route: an edge answers kind=courier from the region owners and asks the hub for sites and donors. */
export const NEARBY_KEY = 'get /v1/nearby';

const FENCE_PUT = 'put /v1/geofences/:id';
const FENCE_DELETE = 'del /v1/geofences/:id';

/** A geofence written or deleted on the hub: `{ id, fence: { kind, geometry } | null }`; every core's copy follows. */
export const FENCES_CHANGED = 'fences:changed';

/**
 * The event types (patterns, as webhooks subscribe) some webhook wants, published by the hub's holder every
 * WANTS_EVERY_MS: cores keep fence crossings for the outbox only while one is wanted (as one process does).
 */
export const WEBHOOKS_WANT = 'webhooks:want';
const WANTS_EVERY_MS = 2_000;

/** The courier list: from the registry in PostgreSQL (no core holds every courier). */
const COURIER_LIST = 'get /v1/couriers';

/** The routes the hub serves, as `method pattern` (an edge forwards each to the hub's holder). */
export const HUB_ROUTES: ReadonlySet<string> = new Set([
  'put /v1/sites/:id', 'put /v1/sites/:id/inventory', 'get /v1/sites/:id', 'del /v1/sites/:id', 'get /v1/sites',
  'put /v1/donors/:id', 'get /v1/donors/:id', 'del /v1/donors/:id',
  'get /v1/requests', 'get /v1/couriers/:id/history', COURIER_LIST,
  'put /v1/webhooks/:id', 'del /v1/webhooks/:id', 'get /v1/webhooks/:id/deliveries',
  FENCE_PUT, FENCE_DELETE, 'get /v1/geofences',
  NEARBY_KEY, // sites and donors only

]);

/** The hub routes' shapes (roles, body, limits) as one process registers them, for an edge to register. */
export function hubRouteShapes(): Map<string, Omit<RouteSpec, 'run'>> {
  const shapes = new Map<string, Omit<RouteSpec, 'run'>>();
  for (const [key, spec] of hubHandlers({} as never)) {
    const { run: _run, ...shape } = spec;
    shapes.set(key, shape);
  }
  return shapes;
}

/** What the hub's handlers work on: one process's route dependencies, with the whole store. */
type HubDeps = HttpDeps & { store: Store };

/** The one-process handlers of the hub routes over `deps` (registration reads no dependency). */
function hubHandlers(deps: HubDeps): Map<string, RouteSpec> {
  const table = new Map<string, RouteSpec>();
  const record: AddRoute = (method, pattern, spec) => {
    const key = `${method} ${pattern}`;
    if (HUB_ROUTES.has(key)) table.set(key, spec);
  };
  for (const register of [registerEntityRoutes, registerFleetRoutes, registerFleetLists, registerLocationRoutes, registerWebhookRoutes]) register(record, deps);
  // couriers live on many cores: the list is a page of PostgreSQL's registry (positions as last written behind)
  table.set(COURIER_LIST, {
    roles: ['admin', 'dispatcher'],
    run: async ({ query }) => {
      const q = validate('couriersQuery', queryFields(query));
      const scope = listScope('couriers', { status: q.status, bbox: q.bbox, capability: q.capability });
      let rows: StoredCourier[];
      try {
        rows = await deps.store.listCouriers({
          after: idAfter(deps.cursors, scope, q.cursor), limit: q.limit + 1,
          ...(q.status ? { status: q.status } : {}), ...(q.capability ? { capability: q.capability } : {}), ...(q.bbox ? { bbox: parseBbox(q.bbox) } : {}),
        });
      } catch (err) {
        if (err instanceof ApiError) throw err;
        throw storeDown(err);
      }
      const more = rows.length > q.limit;
      if (more) rows.pop();
      const last = rows.at(-1);
      return { status: 200, body: { items: rows.map(storedCourierView), ...(more && last ? { next: deps.cursors.encode(scope, { a: last.id }) } : {}) } };
    },
  });
  return table;
}

export interface HubOptions {
  store: Store;
  bus: Bus;
  leases: RegionLeases;
  /** List cursors (keyed by the cluster's shared secret, so any holder reads another's). */
  cursors: ListCursors;
  policy: Readonly<DispatchPolicy>;
  stockLowUnits?: number;
  /** Webhook deliveries (run by the hub's holder over the whole cluster's outbox) and the registry's limits. */
  webhooks: Omit<DelivererOptions, 'logger'> & { max: number };
  logger: Logger;
  onError: (err: unknown) => void;
}

/** One core's part in the hub: tries for the lease, and serves the hub routes while it holds it. */
export class Hub {
  private epoch: number | undefined;
  private engine: EngineIndexes | undefined;
  private handlers: Map<string, RouteSpec> | undefined;
  private deliverer: WebhookDeliverer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private wantsTimer: NodeJS.Timeout | undefined;
  /** The hub's copy follows the stock the cores reserve, issue and release (reads show it as stored). */
  private readonly stock: SharedStock;
  private ticking: Promise<void> | undefined;

  constructor(private readonly options: HubOptions) {
    this.stock = new SharedStock({ bus: options.bus, store: options.store, copy: () => this.engine, profiles: false, onError: options.onError });
  }

  start(): void {
    const every = Math.max(50, Math.floor(this.options.leases.ttlMs / 3));
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
    this.wantsTimer = setInterval(() => this.announceWants(), WANTS_EVERY_MS);
    this.wantsTimer.unref();
    this.stock.start().catch(this.options.onError);
    void this.tick();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.wantsTimer);
    await this.stock.stop();
    await this.ticking;
    const epoch = this.epoch;
    this.drop();
    if (epoch !== undefined) await this.options.leases.release(HUB, epoch).catch(this.options.onError);
  }

  /** Keeps the lease (or takes it when free), loading the hub's copies when newly held. */
  tick(): Promise<void> {
    this.ticking ??= this.keep().catch(this.options.onError).finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async keep(): Promise<void> {
    const { leases, store } = this.options;
    if (this.epoch !== undefined) {
      if (!(await leases.renew(HUB, this.epoch))) this.drop();
      return;
    }
    const epoch = await leases.acquire(HUB);
    if (epoch === undefined) return;
    this.epoch = epoch;
    try {
      const state = await store.loadState();
      const engine = createEngineIndexes({ speeds: restoreSpeeds(state) });
      fillShared(engine, state);
      for (const f of state.geofences) engine.fences.put(f.id, { kind: f.kind, geometry: f.geometry as never });
      const deliverer = new WebhookDeliverer(store, { ...this.options.webhooks, logger: this.options.logger });
      await deliverer.start();
      if (this.epoch !== epoch) {
        await deliverer.stop(); // lost meanwhile
        return;
      }
      this.engine = engine;
      this.deliverer = deliverer;
      this.handlers = hubHandlers(this.deps(engine, deliverer));
    } catch (err) {
      // not loaded: hand the lease back so another core (or this one, next tick) tries again
      this.drop();
      await leases.release(HUB, epoch).catch(() => undefined);
      throw err;
    }
  }

  private drop(): void {
    this.epoch = undefined;
    this.engine = undefined;
    this.handlers = undefined;
    // a delivery in flight may finish and be sent again by the next holder: receivers de-dup on the event id
    this.deliverer?.stop().catch(this.options.onError);
    this.deliverer = undefined;
  }

  /** Runs a hub route's handler; 503 when this core does not hold the hub (the edge asks the holder again). */
  async run(call: ForwardedCall): Promise<Reply> {
    const spec = this.handlers?.get(call.route ?? '');
    if (this.handlers === undefined) throw new ApiError(503, 'E_REGION_UNAVAILABLE', 'the hub is moving between cores; nothing was done, retry in a few seconds');
    if (spec === undefined) throw new ApiError(404, 'E_NOT_FOUND', `the hub does not serve ${call.route}`);
    const reply = await spec.run({ ...call, query: call.query ?? '', accept: undefined });
    if (call.route === 'put /v1/webhooks/:id' || call.route === 'del /v1/webhooks/:id') this.announceWants();
    this.announceShared(call.route ?? '', String(call.params[0]));
    if ((call.route === FENCE_PUT || call.route === FENCE_DELETE) && this.engine !== undefined) {
      // stored and in the hub's copy: every core's copy follows (their couriers' crossings are found there)
      const id = String(call.params[0]);
      const fence = this.engine.fences.get(id);
      await this.options.bus.publish(FENCES_CHANGED, pack({ id, fence: fence === undefined ? null : { kind: fence.kind, geometry: fence.geometry } })).catch(this.options.onError);
    }
    return reply;
  }

  /** A site, its stock or a donor written or deleted here: every core's copy follows (cluster/shared-stock.ts). */
  private announceShared(route: string, id: string): void {
    const engine = this.engine;
    if (engine === undefined) return;
    const { bus, onError } = this.options;
    if (route === 'put /v1/sites/:id' || route === 'del /v1/sites/:id') bus.publish(SITES_CHANGED, profileChange(id, engine.sites.get(id))).catch(onError);
    if (route === 'put /v1/sites/:id/inventory') this.stock.announce([id]);
    if (route === 'put /v1/donors/:id' || route === 'del /v1/donors/:id') bus.publish(DONORS_CHANGED, profileChange(id, engine.donors.get(id))).catch(onError);
  }

  /** Says which event types the registered webhooks want (so cores keep fence crossings only while one does). */
  private announceWants(): void {
    const patterns = this.deliverer?.patterns();
    if (patterns !== undefined) this.options.bus.publish(WEBHOOKS_WANT, pack({ patterns })).catch(this.options.onError);
  }

  /** Where a site is, for a request picked up there (a requester may name a site it cannot read). */
  siteAt(id: string): { lat: number; lng: number } {
    if (this.engine === undefined) throw new ApiError(503, 'E_REGION_UNAVAILABLE', 'the hub is moving between cores; nothing was done, retry in a few seconds');
    const site = this.engine.sites.get(id);
    if (site === undefined) throw new ApiError(404, 'E_UNKNOWN_SITE', `pickup site '${id}' is not registered`);
    return { lat: site.lat, lng: site.lng };
  }

  private deps(engine: EngineIndexes, deliverer: WebhookDeliverer): HubDeps {
    const { store } = this.options;
    // what the hub's handlers read; the parts of HttpDeps its routes never touch (couriers' live index, the
    // dispatch pump, pings) are not here — hubHandlers only ever runs the HUB_ROUTES handlers
    const deps: Partial<HubDeps> = {
      sites: engine.sites, donors: engine.donors, fences: engine.fences, writer: new StoreFirstWriter(store), cursors: this.options.cursors,
      store, policy: this.options.policy, speeds: engine.speeds,
      stockLowUnits: this.options.stockLowUnits,
      webhooks: { log: store, sink: deliverer, allowPrivate: this.options.webhooks.allowPrivate, max: this.options.webhooks.max },
      courierKnown: async (id) => {
        try {
          return (await store.loadCouriers({ ids: [id] })).length > 0;
        } catch (err) {
          throw storeDown(err);
        }
      },
      // no request lives on the hub: a listed request's status is the stored one, which in a cluster is what its
      // region's owner committed before answering
      book: { get: () => undefined } as unknown as RequestBook,
    };
    return deps as HubDeps;
  }
}

/** Stores first, then changes memory — one write at a time, in the order asked (as a journal does). */
class StoreFirstWriter implements EntityWriter {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly store: Store) {}

  write(run: (store: Store) => Promise<void>, apply: () => void): Commit {
    const done = this.tail.then(async () => {
      try {
        await run(this.store);
      } catch (err) {
        // the store's own refusal of what it must not take (the hub's copy trailed the cores by a moment)
        if (err instanceof HeldUnits) throw new ApiError(409, err.code, err.message);
        throw storeDown(err);
      }
      apply();
    });
    this.tail = done.catch(() => undefined);
    return { acknowledged: done, stored: done };
  }
}
