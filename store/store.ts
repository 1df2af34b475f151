/**
 * The persistence seam: one small interface, two implementations (real PostgreSQL + PostGIS through `pg`,
 * embedded PGlite + PostGIS in WASM), chosen by configuration.
 *
 *   openStore({ databaseUrl?, dataDir })
 *       │ databaseUrl set ──► PgStore     (pg.Pool)  ─┐
 *       │ otherwise      ──► PGliteStore (dataDir)  ─┤── SqlStore: the same SQL text on both (store/sql.ts)
 *       ▼                                           │
 *   migrate() (store/migrations.ts) ◄───────────────┘  run once here, recorded in schema_migrations
 *
 * Times are milliseconds since the epoch everywhere in these types (timestamptz in the tables).
 * store/ knows SQL and nothing of HTTP; it imports engine and dispatch TYPES only.
 */
import type { BloodProduct, BloodType } from '../engine/blood-types.js';
import type { CourierProfile, CourierStatus } from '../engine/courier-attributes.js';
import type { SiteProfile } from '../engine/site-index.js';
import type { DonorProfile } from '../engine/donor-index.js';
import type { OfferStatus, RequestKind, RequestStatus, Urgency } from '../dispatch/request-lifecycle.js';
import type { LooseEvent, WebhookStore } from './webhook-store.js';
import type { RegionFence } from './region-fences.js';

/** A site as `SiteIndex.upsert` takes it, plus its id. Omitted capacity (or Infinity) = unlimited; omitted occupancy keeps the stored one (0 when new); omitted open = true. */
export type SiteRow = SiteProfile & { id: string };

/** One inventory lot (one row per site, product, type and expiry). `count` includes reserved units, as in `SiteIndex.setInventory`. */
export interface LotRow {
  product: BloodProduct;
  bloodType: BloodType;
  expiresAt: number;
  count: number;
  /** Units held for requests; on upsert ignored (kept from the stored lot, capped at the new count). */
  reserved?: number;
}

/** A donor as `DonorIndex.upsert` takes it, plus its id. */
export type DonorRow = DonorProfile & { id: string };

/** A courier profile as `CourierIndex.upsert` takes it, plus its id. Omitted status keeps the stored one ('offline' when new). */
export type CourierRow = CourierProfile & { id: string };

/** A courier as loaded: profile, status and last known position (absent before its first stored ping). */
export type StoredCourier = CourierRow & {
  status: CourierStatus;
  lat?: number;
  lng?: number;
  lastPingAt?: number;
};

/** A geofence; geometry is GeoJSON (a Feature is unwrapped). */
export interface GeofenceRow {
  id: string;
  kind: string;
  geometry: GeoJsonPolygonal | { type: 'Feature'; geometry: GeoJsonPolygonal; properties?: unknown };
}

/** Polygon or MultiPolygon in RFC 7946 form. */
export type GeoJsonPolygonal = { type: 'Polygon'; coordinates: number[][][] } | { type: 'MultiPolygon'; coordinates: number[][][][] };

/** A request (a parent or one leg, `parentId` naming its parent); `payload` is the submission, opaque to the store. */
export interface RequestRow {
  id: string;
  kind: RequestKind;
  urgency: Urgency;
  status: RequestStatus;
  createdAt: number;
  updatedAt: number;
  requesterId?: string;
  /** The principal's role when it created the request: requester | dispatcher | admin (absent on rows older than schema 2). */
  requesterRole?: string;
  /** The `Idempotency-Key` it was created under; informational (idempotency lives in IdempotencyRow). */
  idempotencyKey?: string;
  /** The client's own reference, at most 128 characters. */
  reference?: string;
  parentId?: string;
  payload?: Record<string, unknown>;
}

/** The first answer to a create under an Idempotency-Key, kept 24 h; `principal` is `'<role>:<sub>'`, one row per (principal, key). */
export interface IdempotencyRow {
  principal: string;
  key: string;
  requestId: string;
  bodyHash: string;
  status: number;
  reply: Record<string, unknown>;
  createdAt: number;
  /**
   * On commit only: a stored row of the same (principal, key) created before this (ms) has expired (its TTL is
   * over) and is replaced; a newer one still refuses the transition.
   */
  replacesBefore?: number;
}

/** One offer of one request (leg) to one courier. */
export interface OfferRow {
  id: string;
  requestId: string;
  courierId: string;
  status: OfferStatus;
  createdAt: number;
  expiresAt: number;
  details?: Record<string, unknown>;
}

/** The courier carrying a request (leg); live while `endedAt` is absent. At most one live per request (a unique index). */
export interface AssignmentRow {
  requestId: string;
  courierId: string;
  offerId?: string;
  createdAt: number;
  endedAt?: number;
  /** The accepted offer's details (a stack's route, en route), when the store has them: recovery restores them. */
  offerDetails?: Record<string, unknown>;
}

/** Units of one lot held for a request (leg): a `ReservationRef` plus the request it belongs to. */
export interface ReservationRow {
  requestId: string;
  siteId: string;
  product: string;
  bloodType: string;
  expiresAt: number;
  count: number;
}

/** One stored event; `payload` is the rest of the event body. */
export interface EventRow {
  /** The lifecycle seq; absent for an event that is no lifecycle transition (donor.callout, stock.low): the outbox numbers every event anyway. */
  seq?: number;
  at: number;
  type: string;
  requestId?: string;
  courierId?: string;
  payload?: Record<string, unknown>;
}

/**
 * Everything one acknowledged state change writes, applied in ONE transaction in the order the fields are
 * listed (ends before starts, so a re-assignment fits in one transition). Applied at most once per `seq`.
 */
export interface Transition {
  /** Idempotency key: a transition with a seq already committed is a no-op. Use the last event's seq. */
  seq: number;
  at: number;
  /** Created requests (full rows); an existing id is a primary-key violation that rolls everything back, never an overwrite. */
  requests?: RequestRow[];
  /** Idempotency keys of the created requests; a (principal, key) already stored rolls everything back. */
  idempotency?: IdempotencyRow[];
  /** Status changes of existing requests (cancelled, delivered, failed, pending, offered …). */
  requestStatus?: { id: string; status: RequestStatus }[];
  /** Created offers (full rows). */
  offers?: OfferRow[];
  /** Offers closed: accepted, declined, expired, revoked. */
  offerStatus?: { id: string; status: OfferStatus }[];
  /** Live assignments of these requests end at `at`. */
  assignmentsEnded?: { requestId: string }[];
  /** New live assignments; a second live one for a request violates the unique index and rolls everything back. */
  assignmentsStarted?: AssignmentRow[];
  /** Units held: a reservation row each, and the lot's reserved count goes up. */
  reservationsMade?: ReservationRow[];
  /** Units handed back (cancel / failure before pickup): the lot's reserved count goes down. */
  reservationsReleased?: ReservationRow[];
  /** Units picked up: off the shelf (count and reserved go down). */
  reservationsIssued?: ReservationRow[];
  courierStatus?: { id: string; status: CourierStatus }[];
  events?: EventRow[];
}

/** A learned cell speed (engine/cell-speeds.ts). */
export interface CellSpeedRow {
  cell: string;
  mps: number;
  samples: number;
}

/** Everything recovery needs to rebuild the engine and dispatch state. */
/** One page of the courier registry: ids after `after`, at most `limit`, matching the filters given. */
export interface CourierPage {
  after?: string;
  limit: number;
  status?: string;
  capability?: string;
  /** [minLng, minLat, maxLng, maxLat]; minLng > maxLng crosses the antimeridian. Positionless couriers are outside. */
  bbox?: readonly [number, number, number, number];
}

export interface StoredState {
  schemaVersion: number;
  sites: (SiteRow & { capacity: number; occupancy: number; open: boolean })[];
  /** Lots with count > 0 by site id, first-expiring first, reserved counts included. */
  inventory: Map<string, (LotRow & { reserved: number })[]>;
  donors: (DonorRow & { lastDonation: Partial<Record<BloodProduct, number>> })[];
  couriers: StoredCourier[];
  geofences: GeofenceRow[];
  /** Requests neither delivered, cancelled nor failed. */
  requests: RequestRow[];
  /** Offers with status 'live' (recovery expires and re-dispatches them). */
  offers: OfferRow[];
  /** Assignments not ended. */
  assignments: AssignmentRow[];
  /** Reservations neither released nor issued. */
  reservations: ReservationRow[];
  /** Who declined an offer of an open request: never offered it again. */
  declines: { requestId: string; courierId: string }[];
  /** Highest committed event / transition seq (0 when none): continue numbering above it. */
  lastEventSeq: number;
  cellSpeeds: CellSpeedRow[];
}

/** The open dispatch rows of StoredState alone: what a cluster core replays for a region it takes. */
export type OpenDispatchState = Pick<StoredState, 'requests' | 'offers' | 'assignments' | 'reservations' | 'declines'>;

/**
 * Everything stored about one parent request: its row, its legs (none for a delivery or rescue, which is its own
 * single leg), and every assignment, reservation and offer of it and its legs, closed ones included.
 */
export interface StoredRequest {
  request: RequestRow;
  /** Rows whose parentId is the request's id, other than itself, oldest first. */
  legs: RequestRow[];
  /** Oldest first; ended ones carry endedAt. */
  assignments: AssignmentRow[];
  /** In the order made; closed ones carry releasedAt or issuedAt. */
  reservations: (ReservationRow & { releasedAt?: number; issuedAt?: number })[];
  /** Oldest first, whatever their status. */
  offers: OfferRow[];
}

/** A parent request as `GET /v1/requests` lists it (no payload). */
export type ListedRequest = Pick<RequestRow, 'id' | 'kind' | 'urgency' | 'status' | 'createdAt' | 'updatedAt' | 'reference' | 'requesterId' | 'requesterRole'>;

/** Which parent requests `listRequests` pages through; every field narrows, `after` is the previous page's last row. */
export interface RequestListQuery {
  /** Only this requester's (with `requesterRole`: rows from before roles were stored match any role). */
  requesterId?: string;
  requesterRole?: string;
  status?: string;
  kind?: string;
  /** Created at or after (ms). */
  since?: number;
  after?: { createdAt: number; id: string };
  limit: number;
}

/** One stored history sample of a courier (ms, degrees). */
export interface HistoryPoint {
  ts: number;
  lat: number;
  lng: number;
}

/** Positions of many couriers; parallel arrays, `ts` in ms. A ping older than the stored one is ignored (unless the stored one is over 60 s in the future). */
export interface PositionBatch {
  ids: string[];
  lat: Float64Array;
  lng: Float64Array;
  ts: Float64Array;
  status?: string[];
}

/** The persistence seam the write-behind buffer and recovery build on (webhooks: store/webhook-store.ts). */
export interface Store extends WebhookStore {
  readonly kind: 'pg' | 'pglite';
  /** Applies pending migrations; returns the schema version. Also run by openStore. */
  migrate(): Promise<number>;
  /** False when the database is unreachable or the store closed; never throws. */
  ping(): Promise<boolean>;
  upsertSites(sites: SiteRow[]): Promise<void>;
  /** Replaces the site's lots: unlisted lots go, listed ones keep their reserved units (capped at count); `events` (stock.low) are stored in the same transaction. */
  upsertInventory(siteId: string, lots: LotRow[], events?: LooseEvent[]): Promise<void>;
  upsertDonors(donors: DonorRow[]): Promise<void>;
  upsertCouriers(couriers: CourierRow[]): Promise<void>;
  putGeofence(row: GeofenceRow): Promise<void>;
  deleteGeofence(id: string): Promise<void>;
  /** Deletes a courier and its stored history; false when there was no row. Later position writes skip it (no row). */
  deleteCourier(id: string): Promise<boolean>;
  /** What holds a courier in the store: its open assignment's request, else a live offer; undefined when free. */
  courierCommitment(id: string): Promise<{ requestId: string; offerId?: string } | undefined>;
  /** Deletes a site and its lots unless a lot holds reserved units; `reserved` says that kept it. */
  deleteSite(id: string): Promise<{ deleted: boolean; reserved: boolean }>;
  /** Deletes a donor; false when there was no row. */
  deleteDonor(id: string): Promise<boolean>;
  /** One page of parent requests, newest first (keyset on created_at, id). */
  listRequests(query: RequestListQuery): Promise<ListedRequest[]>;
  /** A courier's stored history samples with from ≤ at ≤ to (ms), oldest first, at most `limit`. */
  courierHistory(id: string, from: number, to: number, limit: number): Promise<HistoryPoint[]>;
  /** Latest positions, one statement per batch; unknown courier ids are skipped, older pings ignored. */
  writePositions(batch: PositionBatch): Promise<void>;
  /** Appends location history rows, one statement per batch. */
  appendHistory(batch: { ids: string[]; lat: Float64Array; lng: Float64Array; ts: Float64Array }): Promise<void>;
  /** Deletes history rows with `at < olderThan` (ms); returns how many. */
  purgeHistory(olderThan: number): Promise<number>;
  /** Commits one transition atomically, at most once per seq. */
  commitTransition(t: Transition): Promise<void>;
  /**
   * Commits transitions in order in one database transaction (all or none), each at most once per seq. With
   * `fences` (a cluster core), only while each region's stored epoch is the one given; else StaleEpoch.
   */
  commitTransitions(ts: readonly Transition[], fences?: readonly RegionFence[]): Promise<void>;
  /** Records that `epoch` holds `region` unless a larger epoch already does (a core taking a region's lease). */
  claimRegion(region: string, epoch: number): Promise<{ claimed: boolean; epoch: number }>;
  /** The stored epoch of each region that has one: the floor a new lease's epoch must exceed. */
  regionEpochs(regions: readonly string[]): Promise<Map<string, number>>;
  /** A fresh block of event seqs (a cluster core's region dispatch numbers its events above the value returned). */
  nextSeqBlock(): Promise<number>;
  /** A requester's open parent requests as stored, counted up to `upTo` (a cluster's bound across cores; rows without a role count for any role). */
  countOpenRequests(requesterId: string, requesterRole: string, upTo: number): Promise<number>;
  /** Reads everything recovery needs, in one consistent snapshot. */
  loadState(): Promise<StoredState>;
  /** The open requests with their live offers, assignments, held reservations and declines, in one snapshot (a cluster core taking regions). */
  loadOpenDispatch(): Promise<OpenDispatchState>;
  /**
   * Couriers with a stored position inside a lat/lng box, or with the ids given (a cluster core loading a region
   * it gained, or a courier pinging into its regions for the first time); positionless rows only by id.
   */
  loadCouriers(where: { box: { minLat: number; maxLat: number; minLng: number; maxLng: number } } | { ids: readonly string[] }): Promise<StoredCourier[]>;
  /** The lots of these sites, reserved counts included (a cluster core reading stock another core changed). */
  loadStock(siteIds: readonly string[]): Promise<Map<string, (LotRow & { reserved: number })[]>>;
  /** Every geofence (a cluster core's copy, without the rest of loadState). */
  loadGeofences(): Promise<GeofenceRow[]>;
  /** A page of the courier registry by id, filtered as GET /v1/couriers filters (a cluster lists from here). */
  listCouriers(page: CourierPage): Promise<StoredCourier[]>;
  /** The idempotency row of (principal, key) when it was created at or after notBefore (ms), else undefined. */
  findIdempotency(principal: string, key: string, notBefore: number): Promise<IdempotencyRow | undefined>;
  /**
   * (principal, key) of the idempotency rows created at or after notBefore (ms), in key order, `limit` at a time
   * after the page ending at `after`: the API's filter of keys that may be stored is loaded from these at start.
   */
  listIdempotencyKeys(notBefore: number, after: { principal: string; key: string } | undefined, limit: number): Promise<{ principal: string; key: string }[]>;
  /** Deletes idempotency rows created before olderThan (ms); returns how many. */
  purgeIdempotency(olderThan: number): Promise<number>;
  /** Everything stored about a parent request, in one snapshot; undefined for an unknown id or a leg's id. */
  getRequest(id: string): Promise<StoredRequest | undefined>;
  saveCellSpeeds(rows: CellSpeedRow[]): Promise<void>;
  /**
   * Reclaims the space of changed rows and refreshes the planner's statistics where the database does not do it
   * by itself (the embedded store: PostgreSQL runs autovacuum); returns the tables it went over.
   */
  maintain(): Promise<string[]>;
  /** Ids of the k nearest rows (PostGIS KNN on the geography column); couriers without a position are skipped. */
  nearest(table: 'couriers' | 'sites' | 'donors', lat: number, lng: number, k: number): Promise<string[]>;
  /** Closes the database (twice is fine); every later call but ping() rejects with StoreClosed (storeFailureKind 'unavailable'). */
  close(): Promise<void>;
}

/** What openStore needs: `databaseUrl` (DATABASE_URL) selects PostgreSQL, else PGlite keeps its files in `dataDir` (DATA_DIR). */
export interface StoreConfig {
  databaseUrl?: string;
  dataDir: string;
  /** PostgreSQL only: the schema to use (created if missing), e.g. a per-run test schema; default the server's search_path. */
  schema?: string;
  /** PGlite only: shared_buffers (default 32MB). */
  pgliteSharedBuffers?: string;
}

/** Opens the configured store and runs its migrations. */
export async function openStore(config: StoreConfig): Promise<Store> {
  let store: Store;
  if (config.databaseUrl) {
    const { PgStore } = await import('./pg-store.js');
    store = new PgStore({ databaseUrl: config.databaseUrl, schema: config.schema });
  } else {
    if (typeof config.dataDir !== 'string' || config.dataDir === '') throw new Error("openStore needs dataDir (e.g. './data', or 'memory://' for a throwaway store) when no databaseUrl is set");
    const { PGliteStore } = await import('./pglite-store.js');
    store = await PGliteStore.open(config.dataDir, config.pgliteSharedBuffers);
  }
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}
