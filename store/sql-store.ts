/**
 * The Store over any SqlDriver: every method is the same SQL (store/sql.ts) on PostgreSQL and PGlite, so the
 * two implementations differ only in how they connect (pg-store.ts, pglite-store.ts).
 */
import type { BloodProduct } from '../engine/blood-types.js';
import { runMigrations } from './migrations.js';
import * as fq from './fleet-sql.js';
import * as q from './sql.js';
import type { SqlDriver, SqlSession } from './sql.js';
import { checkFences, claimRegion, countOpenRequests, nextSeqBlock, regionEpochs, type RegionFence } from './region-fences.js';
import { HeldUnits, StockConflict, StoreClosed } from './store-errors.js';
import { isPartlyApplied, transitionRuns } from './transition-runs.js';
import { APPEND_EVENTS, OUTBOX_LOCK, WebhookSql } from './webhook-sql.js';
import type { DeliveryRecord, DeliveryRow, EventFilter, LooseEvent, OutboxEvent, WebhookRow } from './webhook-store.js';
import type {
  AssignmentRow,
  CellSpeedRow,
  CourierRow,
  DonorRow,
  GeofenceRow,
  HistoryPoint,
  IdempotencyRow,
  ListedRequest,
  LotRow,
  OfferRow,
  OpenDispatchState,
  PositionBatch,
  RequestListQuery,
  RequestRow,
  ReservationRow,
  SiteRow,
  Store,
  StoredCourier,
  CourierPage,
  StoredRequest,
  StoredState,
  Transition,
} from './store.js';

/** A Store running the shared SQL on the driver it is given; subclasses only connect. */
export abstract class SqlStore implements Store {
  abstract readonly kind: 'pg' | 'pglite';
  private closed = false;
  /** The driver, refusing every call with StoreClosed once close() has begun. */
  protected readonly db: SqlDriver;

  constructor(driver: SqlDriver) {
    this.db = whileOpen(driver, () => this.closed);
    this.webhooks = new WebhookSql(this.db);
  }

  // ── webhooks (store/webhook-sql.ts) ──
  private readonly webhooks: WebhookSql;
  putWebhook(row: { id: string; url: string; events: string[]; secret: string; at: number }): Promise<WebhookRow> { return this.webhooks.putWebhook(row); }
  deleteWebhook(id: string): Promise<boolean> { return this.webhooks.deleteWebhook(id); }
  listWebhooks(): Promise<WebhookRow[]> { return this.webhooks.listWebhooks(); }
  readOutbox(after: number, filter: EventFilter, limit: number): Promise<{ events: OutboxEvent[]; scannedTo: number }> { return this.webhooks.readOutbox(after, filter, limit); }
  recordDeliveries(webhookId: string, records: DeliveryRecord[], cursor?: number): Promise<void> { return this.webhooks.recordDeliveries(webhookId, records, cursor); }
  listDeliveries(webhookId: string, before: number | undefined, limit: number): Promise<DeliveryRow[] | undefined> { return this.webhooks.listDeliveries(webhookId, before, limit); }
  purgeDeliveries(olderThan: number): Promise<number> { return this.webhooks.purgeDeliveries(olderThan); }
  appendEvents(events: LooseEvent[]): Promise<void> { return this.webhooks.appendEvents(events); }

  migrate(): Promise<number> {
    return runMigrations(this.db);
  }

  /** The migrations recorded in schema_migrations, oldest first. */
  appliedMigrations(): Promise<{ version: number; name: string }[]> {
    return this.db.query('SELECT version, name FROM schema_migrations ORDER BY version');
  }

  async ping(): Promise<boolean> {
    if (this.closed) return false;
    try {
      await this.db.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }

  async upsertSites(sites: SiteRow[]): Promise<void> {
    if (sites.length === 0) return;
    const rows = lastById(sites).map((s) => ({ ...s, capacity: Number.isFinite(s.capacity) ? s.capacity : null }));
    await this.db.transaction(async (tx) => {
      await tx.query(q.UPSERT_SITES, [q.jsonRows(rows)]);
      if (rows.some((s) => s.occupancy !== undefined)) await tx.query(q.SET_SITE_OCCUPANCY, [q.jsonRows(rows)]);
    });
  }

  async upsertInventory(siteId: string, lots: LotRow[], events: LooseEvent[] = []): Promise<void> {
    await this.db.transaction(async (tx) => {
      // units open reservations hold must stay on the shelf they were reserved from (else they are given twice)
      await tx.query(q.LOCK_SITE_LOTS, [siteId]);
      const held = await tx.query<{ product: string; bloodType: string; expiresAt: number; held: number }>(q.HELD_BY_LOT, [siteId]);
      const after = new Map<string, number>();
      for (const l of lots) after.set(lotKey({ ...l, siteId }), (after.get(lotKey({ ...l, siteId })) ?? 0) + l.count);
      const short = held.filter((h) => (after.get(lotKey({ ...h, siteId })) ?? 0) < h.held);
      if (short.length > 0) throw new HeldUnits(siteId, short.map((h) => `${h.product} ${h.bloodType} expiring ${new Date(h.expiresAt).toISOString()} (${h.held} reserved)`));
      await tx.query(q.REPLACE_INVENTORY, [siteId, q.jsonRows(lots)]);
      if (events.length === 0) return;
      await tx.query(OUTBOX_LOCK);
      await tx.query(APPEND_EVENTS, [JSON.stringify(events)]);
    });
  }

  async upsertDonors(donors: DonorRow[]): Promise<void> {
    if (donors.length === 0) return;
    await this.db.query(q.UPSERT_DONORS, [q.jsonRows(lastById(donors))]);
  }

  async upsertCouriers(couriers: CourierRow[]): Promise<void> {
    if (couriers.length === 0) return;
    const rows = lastById(couriers);
    await this.db.transaction(async (tx) => {
      await tx.query(q.UPSERT_COURIERS, [q.jsonRows(rows)]);
      if (rows.some((c) => c.status !== undefined)) await tx.query(q.SET_COURIER_STATUS, [q.jsonRows(rows)]);
    });
  }

  async putGeofence(row: GeofenceRow): Promise<void> {
    const geometry = row.geometry.type === 'Feature' ? row.geometry.geometry : row.geometry;
    await this.db.query(q.PUT_GEOFENCE, [row.id, row.kind, JSON.stringify(geometry)]);
  }

  async deleteGeofence(id: string): Promise<void> {
    await this.db.query(q.DELETE_GEOFENCE, [id]);
  }

  async courierCommitment(id: string): Promise<{ requestId: string; offerId?: string } | undefined> {
    const [row] = await this.db.query<{ requestId: string; offerId: string | null }>(fq.COURIER_COMMITMENT, [id]);
    return row === undefined ? undefined : { requestId: row.requestId, ...(row.offerId === null ? {} : { offerId: row.offerId }) };
  }

  async deleteCourier(id: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const gone = await tx.query(fq.DELETE_COURIER, [id]);
      await tx.query(fq.DELETE_COURIER_HISTORY, [id]);
      return gone.length > 0;
    });
  }

  async deleteSite(id: string): Promise<{ deleted: boolean; reserved: boolean }> {
    const [row] = await this.db.query<{ deleted: number; reserved: boolean }>(fq.DELETE_SITE, [id]);
    return { deleted: (row?.deleted ?? 0) > 0, reserved: row?.reserved === true };
  }

  async deleteDonor(id: string): Promise<boolean> {
    return (await this.db.query(fq.DELETE_DONOR, [id])).length > 0;
  }

  async listRequests(query: RequestListQuery): Promise<ListedRequest[]> {
    if (!Number.isInteger(query.limit) || query.limit < 1) throw new Error(`listRequests(limit) takes a positive integer, got ${String(query.limit)}`);
    const text = (v: number | undefined): string | null => (v === undefined ? null : String(v));
    const rows = await this.db.query<Nullable<ListedRequest>>(fq.LIST_REQUESTS, [
      query.requesterId ?? null, query.requesterRole ?? null, query.status ?? null, query.kind ?? null, text(query.since),
      text(query.after?.createdAt), query.after?.id ?? null, query.limit,
    ]);
    return rows.map(dropNulls) as ListedRequest[];
  }

  async courierHistory(id: string, from: number, to: number, limit: number): Promise<HistoryPoint[]> {
    if (!Number.isFinite(from) || !Number.isFinite(to)) throw new Error(`courierHistory(from, to) take ms since the epoch, got ${String(from)}, ${String(to)}`);
    return this.db.query<HistoryPoint>(fq.COURIER_HISTORY, [id, String(from), String(to), limit]);
  }

  async writePositions(batch: PositionBatch): Promise<void> {
    const n = checkBatch(batch);
    if (n === 0) return;
    const status = batch.status ? q.textArray(batch.status, n) : null;
    await this.db.query(q.WRITE_POSITIONS, [q.textArray(batch.ids, n), q.floatArray(batch.lat, n), q.floatArray(batch.lng, n), q.floatArray(batch.ts, n), status]);
  }

  async appendHistory(batch: { ids: string[]; lat: Float64Array; lng: Float64Array; ts: Float64Array }): Promise<void> {
    const n = checkBatch(batch);
    if (n === 0) return;
    await this.db.query(q.APPEND_HISTORY, [q.textArray(batch.ids, n), q.floatArray(batch.lat, n), q.floatArray(batch.lng, n), q.floatArray(batch.ts, n)]);
  }

  async purgeHistory(olderThan: number): Promise<number> {
    if (!Number.isFinite(olderThan)) throw new Error(`purgeHistory(olderThan) takes ms since the epoch, got ${String(olderThan)}`);
    const rows = await this.db.query<{ n: number }>(q.PURGE_HISTORY, [olderThan]);
    return rows[0]?.n ?? 0;
  }

  async commitTransition(t: Transition): Promise<void> {
    await this.commitTransitions([t]);
  }

  async commitTransitions(ts: readonly Transition[], fences: readonly RegionFence[] = []): Promise<void> {
    for (const t of ts) {
      if (!Number.isSafeInteger(t.seq) || t.seq <= 0) throw new Error(`a transition needs a positive integer seq (its last event's), got ${String(t.seq)}`);
      if (!Number.isFinite(t.at)) throw new Error(`a transition needs 'at' in ms since the epoch, got ${String(t.at)}`);
    }
    if (ts.length === 0) return;
    const runs = transitionRuns(ts);
    // one process has one writer of events (its journal); a cluster's cores (fenced commits) and hub have several
    const withEvents = fences.length > 0 && ts.some((t) => (t.events?.length ?? 0) > 0);
    const commit = (batch: string): Promise<void> =>
      this.db.transaction(async (tx) => {
        if (fences.length > 0) {
          await checkFences(tx, fences);
          await checkStock(tx, ts);
        }
        if (withEvents) await tx.query(OUTBOX_LOCK);
        await tx.query(q.COMMIT_TRANSITIONS, [batch]);
      });
    try {
      await commit(JSON.stringify(runs));
    } catch (err) {
      // a retried group holding stored and new transitions in one run: each alone, so stored ones are skipped
      if (!isPartlyApplied(err) || runs.length === ts.length) throw err;
      await commit(JSON.stringify(transitionRuns(ts, true)));
    }
  }

  async loadCouriers(where: { box: { minLat: number; maxLat: number; minLng: number; maxLng: number } } | { ids: readonly string[] }): Promise<StoredCourier[]> {
    const rows =
      'ids' in where
        ? await this.db.query<Nullable<StoredCourier>>(q.LOAD_COURIERS_BY_ID, [where.ids])
        : await this.db.query<Nullable<StoredCourier>>(q.LOAD_COURIERS_IN_BOX, [where.box.minLat, where.box.maxLat, where.box.minLng, where.box.maxLng]);
    return rows.map(dropNulls) as StoredCourier[];
  }

  async listCouriers(page: CourierPage): Promise<StoredCourier[]> {
    const b = page.bbox;
    const rows = await this.db.query<Nullable<StoredCourier>>(q.LIST_COURIERS, [page.after ?? '', page.status ?? null, page.capability ?? null, b?.[0] ?? null, b?.[1] ?? null, b?.[2] ?? null, b?.[3] ?? null, page.limit]);
    return rows.map(dropNulls) as StoredCourier[];
  }

  async claimRegion(region: string, epoch: number): Promise<{ claimed: boolean; epoch: number }> {
    return claimRegion(this.db, region, epoch);
  }

  async regionEpochs(regions: readonly string[]): Promise<Map<string, number>> {
    return regionEpochs(this.db, regions);
  }

  async nextSeqBlock(): Promise<number> {
    return nextSeqBlock(this.db);
  }

  async countOpenRequests(requesterId: string, requesterRole: string, upTo: number): Promise<number> {
    return countOpenRequests(this.db, requesterId, requesterRole, upTo);
  }

  /** PostgreSQL's autovacuum keeps its tables; the embedded store overrides this (no autovacuum there). */
  async maintain(): Promise<string[]> {
    return [];
  }

  async loadStock(siteIds: readonly string[]): Promise<Map<string, (LotRow & { reserved: number })[]>> {
    if (siteIds.length === 0) return new Map();
    return groupLots(await this.db.query<LotRow & { siteId: string; reserved: number }>(q.LOAD_SITE_INVENTORY, [siteIds]));
  }

  loadGeofences(): Promise<GeofenceRow[]> {
    return this.db.query<GeofenceRow>(q.LOAD_GEOFENCES);
  }

  async loadState(): Promise<StoredState> {
    return this.db.transaction(async (tx) => {
      // one snapshot for every table (a no-op on PGlite's single connection)
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      const version = await tx.query<{ v: number }>(q.LOAD_SCHEMA_VERSION);
      const sites = await tx.query<SiteDbRow>(q.LOAD_SITES);
      const lots = await tx.query<LotRow & { siteId: string; reserved: number }>(q.LOAD_INVENTORY);
      const donors = await tx.query<DonorRow & { lastDonation: Partial<Record<BloodProduct, number>> }>(q.LOAD_DONORS);
      const couriers = await tx.query<Nullable<StoredCourier>>(q.LOAD_COURIERS);
      const geofences = await tx.query<GeofenceRow>(q.LOAD_GEOFENCES);
      const requests = await tx.query<Nullable<RequestRow>>(q.LOAD_OPEN_REQUESTS);
      const offers = await tx.query<Nullable<OfferRow>>(q.LOAD_LIVE_OFFERS);
      const assignments = await tx.query<Nullable<AssignmentRow>>(q.LOAD_LIVE_ASSIGNMENTS);
      const reservations = await tx.query<ReservationRow>(q.LOAD_HELD_RESERVATIONS);
      const declines = await tx.query<{ requestId: string; courierId: string }>(q.LOAD_OPEN_DECLINES);
      const seq = await tx.query<{ seq: number }>(q.LOAD_LAST_SEQ);
      const cellSpeeds = await tx.query<CellSpeedRow>(q.LOAD_CELL_SPEEDS);
      return {
        schemaVersion: version[0]?.v ?? 0,
        sites: sites.map((s) => ({ ...s, capacity: s.capacity ?? Infinity })),
        inventory: groupLots(lots),
        donors,
        couriers: couriers.map(dropNulls) as StoredCourier[],
        geofences,
        requests: requests.map(dropNulls) as RequestRow[],
        offers: offers.map(dropNulls) as OfferRow[],
        assignments: assignments.map(dropNulls) as AssignmentRow[],
        reservations,
        declines,
        lastEventSeq: seq[0]?.seq ?? 0,
        cellSpeeds,
      };
    });
  }

  async loadOpenDispatch(): Promise<OpenDispatchState> {
    return this.db.transaction(async (tx) => {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      const requests = await tx.query<Nullable<RequestRow>>(q.LOAD_OPEN_REQUESTS);
      const offers = await tx.query<Nullable<OfferRow>>(q.LOAD_LIVE_OFFERS);
      const assignments = await tx.query<Nullable<AssignmentRow>>(q.LOAD_LIVE_ASSIGNMENTS);
      const reservations = await tx.query<ReservationRow>(q.LOAD_HELD_RESERVATIONS);
      const declines = await tx.query<{ requestId: string; courierId: string }>(q.LOAD_OPEN_DECLINES);
      return {
        requests: requests.map(dropNulls) as RequestRow[],
        offers: offers.map(dropNulls) as OfferRow[],
        assignments: assignments.map(dropNulls) as AssignmentRow[],
        reservations,
        declines,
      };
    });
  }

  async findIdempotency(principal: string, key: string, notBefore: number): Promise<IdempotencyRow | undefined> {
    if (!Number.isFinite(notBefore)) throw new Error(`findIdempotency(notBefore) takes ms since the epoch, got ${String(notBefore)}`);
    const rows = await this.db.query<IdempotencyRow>(q.FIND_IDEMPOTENCY, [principal, key, notBefore]);
    return rows[0];
  }

  async listIdempotencyKeys(notBefore: number, after: { principal: string; key: string } | undefined, limit: number): Promise<{ principal: string; key: string }[]> {
    if (!Number.isFinite(notBefore)) throw new Error(`listIdempotencyKeys(notBefore) takes ms since the epoch, got ${String(notBefore)}`);
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`listIdempotencyKeys(limit) takes a positive integer, got ${String(limit)}`);
    return this.db.query(q.LIST_IDEMPOTENCY_KEYS, [notBefore, after?.principal ?? '', after?.key ?? '', limit]);
  }

  async purgeIdempotency(olderThan: number): Promise<number> {
    if (!Number.isFinite(olderThan)) throw new Error(`purgeIdempotency(olderThan) takes ms since the epoch, got ${String(olderThan)}`);
    const rows = await this.db.query<{ n: number }>(q.PURGE_IDEMPOTENCY, [olderThan]);
    return rows[0]?.n ?? 0;
  }

  async getRequest(id: string): Promise<StoredRequest | undefined> {
    return this.db.transaction(async (tx) => {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const [row] = await tx.query<Nullable<RequestRow>>(q.GET_REQUEST, [id]);
      if (!row || (row.parentId !== null && row.parentId !== id)) return undefined;
      const legs = (await tx.query<Nullable<RequestRow>>(q.GET_LEGS, [id])).map(dropNulls) as RequestRow[];
      const ids = q.textArray([id, ...legs.map((l) => l.id)]);
      const assignments = await tx.query<Nullable<AssignmentRow>>(q.GET_ASSIGNMENTS, [ids]);
      const reservations = await tx.query<Nullable<StoredRequest['reservations'][number]>>(q.GET_RESERVATIONS, [ids]);
      const offers = await tx.query<Nullable<OfferRow>>(q.GET_OFFERS, [ids]);
      return {
        request: dropNulls(row) as RequestRow,
        legs,
        assignments: assignments.map(dropNulls) as AssignmentRow[],
        reservations: reservations.map(dropNulls) as StoredRequest['reservations'],
        offers: offers.map(dropNulls) as OfferRow[],
      };
    });
  }

  async saveCellSpeeds(rows: CellSpeedRow[]): Promise<void> {
    if (rows.length === 0) return;
    const last = [...new Map(rows.map((r) => [r.cell, r])).values()];
    await this.db.query(q.SAVE_CELL_SPEEDS, [
      q.textArray(last.map((r) => r.cell)),
      q.floatArray(last.map((r) => r.mps)),
      q.floatArray(last.map((r) => Math.round(r.samples))),
    ]);
  }

  async nearest(table: 'couriers' | 'sites' | 'donors', lat: number, lng: number, k: number): Promise<string[]> {
    const rows = await this.db.query<{ id: string }>(q.nearestSql(table), [lat, lng, k]);
    return rows.map((r) => r.id);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.close();
  }
}

type SiteDbRow = Omit<SiteRow, 'capacity'> & { capacity: number | null; occupancy: number; open: boolean };
type Nullable<T> = { [K in keyof T]: T[K] | null };

/** The driver while isClosed() is false; afterwards every call but close() rejects with StoreClosed. */
function whileOpen(driver: SqlDriver, isClosed: () => boolean): SqlDriver {
  const open = (): void => {
    if (isClosed()) throw new StoreClosed();
  };
  return {
    async query<R>(text: string, params?: unknown[]): Promise<R[]> {
      open();
      return driver.query<R>(text, params);
    },
    async exec(script: string): Promise<void> {
      open();
      return driver.exec(script);
    },
    async transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T> {
      open();
      return driver.transaction(fn);
    },
    close: () => driver.close(),
  };
}

/** The batch length, after checking the parallel arrays agree. */
function checkBatch(batch: { ids: string[]; lat: Float64Array; lng: Float64Array; ts: Float64Array; status?: string[] }): number {
  const n = batch.ids.length;
  if (batch.lat.length < n || batch.lng.length < n || batch.ts.length < n || (batch.status && batch.status.length < n)) {
    throw new Error(`position batch arrays are shorter than ids (${n}): pass lat, lng, ts (and status) of the same length`);
  }
  return n;
}

/** Keeps the last row per id: one INSERT … ON CONFLICT may not touch a row twice. */
function lastById<T extends { id: string }>(rows: readonly T[]): T[] {
  if (rows.length < 2) return [...rows];
  return [...new Map(rows.map((r) => [r.id, r])).values()];
}

function groupLots(lots: (LotRow & { siteId: string; reserved: number })[]): Map<string, (LotRow & { reserved: number })[]> {
  const out = new Map<string, (LotRow & { reserved: number })[]>();
  for (const { siteId, ...lot } of lots) {
    const list = out.get(siteId);
    if (list) list.push(lot);
    else out.set(siteId, [lot]);
  }
  return out;
}

/** SQL NULLs become absent optional fields. */
function dropNulls<T extends object>(row: T): T {
  for (const key of Object.keys(row) as (keyof T)[]) if (row[key] === null) delete row[key];
  return row;
}

/**
 * A cluster commit's blood stock, checked where every core's reservations meet: the lots its transitions touch are
 * locked (one order, so commits never wait on each other in a circle) and each must still have free the units its
 * new reservations take; else StockConflict and nothing is stored. One process never needs
 * this (its memory is the only writer of reservations). Transitions already applied (a retried group) are left out.
 */
async function checkStock(tx: SqlSession, ts: readonly Transition[]): Promise<void> {
  // every commit touching lots locks them here, before the outbox lock: one waiting for that lock then holds no lot
  // the lock's holder is about to write (a cancel's release, say), so the two never wait on each other
  if (!ts.some((t) => (t.reservationsMade?.length ?? 0) + (t.reservationsReleased?.length ?? 0) + (t.reservationsIssued?.length ?? 0) > 0)) return;
  const applied = new Set((await tx.query<{ seq: number }>('SELECT seq::float8 AS seq FROM applied_transitions WHERE seq = ANY($1::bigint[])', [ts.map((t) => t.seq)])).map((r) => r.seq));
  const net = new Map<string, { lot: Omit<ReservationRow, 'requestId' | 'count'>; n: number }>();
  const add = (rows: readonly ReservationRow[] | undefined, sign: number): void => {
    for (const r of rows ?? []) {
      const key = lotKey(r);
      const e = net.get(key) ?? { lot: { siteId: r.siteId, product: r.product, bloodType: r.bloodType, expiresAt: r.expiresAt }, n: 0 };
      e.n += sign * r.count;
      net.set(key, e);
    }
  };
  for (const t of ts) {
    if (applied.has(t.seq)) continue;
    add(t.reservationsMade, 1);
    // units handed back in the same commit do not count as free: the commit applies reservations before releases,
    // and the reserved counter would be capped, then lowered (drifting below the reservations held)
    add(t.reservationsReleased, 0);
    add(t.reservationsIssued, 0); // locked too: its lot changes in this commit
  }
  if (net.size === 0) return;
  const lots = await tx.query<{ siteId: string; product: string; bloodType: string; expiresAt: number; count: number; reserved: number }>(q.LOCK_LOTS, [JSON.stringify([...net.values()].map((e) => e.lot))]);
  const free = new Map(lots.map((l) => [lotKey(l), l.count - l.reserved]));
  const short = new Set<string>();
  for (const [key, e] of net) if (e.n > 0 && (free.get(key) ?? 0) < e.n) short.add(e.lot.siteId);
  if (short.size > 0) throw new StockConflict([...short]);
}

function lotKey(l: { siteId: string; product: string; bloodType: string; expiresAt: number }): string {
  return `${l.siteId}\u0000${l.product}\u0000${l.bloodType}\u0000${l.expiresAt}`;
}
