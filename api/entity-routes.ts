/**
 * The admin writes of PRODUCT §4 — courier profiles and statuses, sites, stock, donors, geofences — each
 * stored before it is acknowledged.
 *
 *   PUT body (validated) ─► dry run on a scratch index (so applying it later cannot fail)
 *        ─► journal.write(store call, apply to memory) ─► stored ─► memory changed ─► 200
 *                                                    └─ refused / unreachable ─► 409 / 503, memory untouched
 *   PUT /v1/couriers/{id}/status ─► DispatchPump (a lifecycle transition, committed like every other)
 */
import type { BloodProduct } from '../engine/blood-types.js';
import type { CourierProfile } from '../engine/courier-attributes.js';
import { encodeAttr } from '../engine/courier-filter.js';
import type { CourierIndex } from '../engine/courier-index.js';
import { DonorIndex, type DonorProfile } from '../engine/donor-index.js';
import { type FenceInput, GeofenceIndex } from '../engine/geofence-index.js';
import { type InventoryLot, SiteIndex, type SiteProfile, type StockLot } from '../engine/site-index.js';
import { availableByType, stockLowEvents } from '../dispatch/stock-low.js';
import type { Commit } from '../store/dispatch-journal.js';
import type { Store, StoredCourier } from '../store/store.js';
import { ApiError } from './api-error.js';
import { requireSelf } from './auth.js';
import type { DispatchPump } from './dispatch-pump.js';
import type { AddRoute } from './http-routes.js';
import { type DonorBody, ID_PATTERN } from './schemas.js';

/** Store-first writes: `run` stores, then `apply` changes memory (store/dispatch-journal.ts). */
export interface EntityWriter {
  write(run: (store: Store) => Promise<void>, apply: () => void): Commit;
}

/** What the entity routes change; each part owned by the caller. */
export interface EntityDeps {
  couriers: CourierIndex;
  sites: SiteIndex;
  donors: DonorIndex;
  fences: GeofenceIndex;
  pump: DispatchPump;
  writer: EntityWriter;
  /** A courier's profile or status changed: watchers see it. */
  courierChanged(id: string): void;
  /** STOCK_LOW_UNITS: an inventory PUT that takes a product and type below it stores a stock.low event. */
  stockLowUnits?: number;
}

/** Registers the admin writes on `add`. */
export function registerEntityRoutes(add: AddRoute, deps: EntityDeps): void {
  const { couriers, sites, donors, fences, pump, writer } = deps;

  add(COURIER_PROFILE_ROUTE.method, COURIER_PROFILE_ROUTE.pattern, {
    roles: COURIER_PROFILE_ROUTE.roles,
    body: COURIER_PROFILE_ROUTE.body,
    run: async ({ params, body }) => {
      const id = entityId(params[0]);
      const profile = body as CourierProfile;
      encodeAttr(profile, 'offline'); // throws E_BAD_PROFILE here, before the store, if the index would refuse it
      await writer.write((store) => store.upsertCouriers([{ id, ...profile }]), () => {
        couriers.upsert(id, profile);
        deps.courierChanged(id);
      }).acknowledged;
      return { status: 200, body: courierView(couriers, id) };
    },
  });
  add(COURIER_STATUS_ROUTE.method, COURIER_STATUS_ROUTE.pattern, {
    roles: COURIER_STATUS_ROUTE.roles,
    body: COURIER_STATUS_ROUTE.body,
    run: async ({ params, body, principal }) => {
      const id = entityId(params[0]);
      requireSelf(principal, id);
      if (!couriers.has(id)) throw new ApiError(404, 'E_UNKNOWN_COURIER', `courier '${id}' is not registered`);
      await pump.setCourierStatus(id, (body as { status: 'available' | 'offline' }).status).acknowledged;
      return { status: 200, body: courierView(couriers, id) };
    },
  });

  add('put', '/v1/sites/:id', {
    roles: ['admin'],
    body: 'site',
    run: async ({ params, body }) => {
      const id = entityId(params[0]);
      const profile = body as SiteProfile;
      new SiteIndex().upsert(id, profile);
      await writer.write((store) => store.upsertSites([{ id, ...profile }]), () => sites.upsert(id, profile)).acknowledged;
      return { status: 200, body: sites.get(id) };
    },
  });
  add('put', '/v1/sites/:id/inventory', {
    roles: ['admin'],
    body: 'inventory',
    run: async ({ params, body }) => {
      const id = entityId(params[0]);
      if (!sites.has(id)) throw new ApiError(404, 'E_UNKNOWN_SITE', `site '${id}' is not registered: PUT /v1/sites/${id} first`);
      const lots = (body as { units: InventoryLot[] }).units;
      // units reserved for open requests stay on their lot until issued or released (else they would be given twice);
      // the store checks the same against the reservations it holds
      const short = sites.lots(id).filter((l) => l.reserved > 0 && lots.filter((n) => n.product === l.product && n.bloodType === l.bloodType && n.expiresAt === l.expiresAt).reduce((k, n) => k + n.count, 0) < l.reserved);
      if (short.length > 0) {
        throw new ApiError(409, 'E_SITE_RESERVED', `site '${id}' holds reserved units in ${short.map((l) => `${l.product} ${l.bloodType} expiring ${new Date(l.expiresAt).toISOString()} (${l.reserved})`).join(', ')}: keep each such lot with at least its reserved units until they are issued or released`);
      }
      const scratch = new SiteIndex();
      scratch.upsert(id, sites.get(id)!);
      scratch.setInventory(id, lots);
      // stock.low for each product and type this PUT takes below the level, stored with the inventory
      const low = deps.stockLowUnits === undefined ? [] : stockLowEvents(id, availableByType(sites.lots(id)), availableByType(availableAfter(sites.lots(id), lots)), deps.stockLowUnits, Date.now());
      await writer.write((store) => store.upsertInventory(id, lots.map((l) => ({ ...l })), low), () => sites.setInventory(id, lots)).acknowledged;
      return { status: 200, body: { id, lots: sites.lots(id) } };
    },
  });
  add('put', '/v1/donors/:id', {
    roles: ['admin'],
    body: 'donor',
    run: async ({ params, body }) => {
      const id = entityId(params[0]);
      const profile = donorProfile(body as DonorBody);
      new DonorIndex().upsert(id, profile);
      await writer.write((store) => store.upsertDonors([{ id, ...profile }]), () => donors.upsert(id, profile)).acknowledged;
      return { status: 200, body: donors.get(id) };
    },
  });
  add('put', '/v1/geofences/:id', {
    roles: ['admin'],
    body: 'geofence',
    run: async ({ params, body }) => {
      const id = entityId(params[0]);
      const fence = body as FenceInput;
      new GeofenceIndex().put(id, fence);
      await writer.write((store) => store.putGeofence({ id, kind: fence.kind, geometry: fence.geometry as never }), () => fences.put(id, fence)).acknowledged;
      return { status: 200, body: { id, kind: fence.kind } };
    },
  });
}

/** An admin-chosen id from the path, or 400. */
export function entityId(raw: string): string {
  if (!ID_PATTERN.test(raw)) throw new ApiError(400, 'E_VALIDATION', 'ids are 1..64 characters of A-Z a-z 0-9 . _ : -');
  return raw;
}

/** A courier's profile, status and last position. */
/** A courier's profile registered or changed (a cluster edge forwards it). */
export const COURIER_PROFILE_ROUTE = { method: 'put', pattern: '/v1/couriers/:id', roles: ['admin', 'dispatcher'], body: 'courierProfile' } as const;

/** A courier going on or off shift: the driver itself, or a dispatcher or admin (a cluster edge forwards it). */
export const COURIER_STATUS_ROUTE = { method: 'put', pattern: '/v1/couriers/:id/status', roles: ['driver', 'dispatcher', 'admin'], body: 'courierStatus' } as const;

export function courierView(couriers: CourierIndex, id: string): Record<string, unknown> {
  const c = couriers.get(id);
  if (c === undefined) throw new ApiError(404, 'E_UNKNOWN_COURIER', `courier '${id}' is not registered`);
  const positioned = !Number.isNaN(c.lat);
  return { id, vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity, status: c.status, ...(positioned ? { lat: c.lat, lng: c.lng, ts: c.ts } : {}) };
}

/** A courier as PostgreSQL has it (a cluster reads couriers no core holds from there), shaped as courierView. */
export function storedCourierView(c: StoredCourier): Record<string, unknown> {
  const positioned = c.lat !== undefined && c.lng !== undefined;
  return { id: c.id, vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity, status: c.status ?? 'offline', ...(positioned ? { lat: c.lat, lng: c.lng, ts: c.lastPingAt } : {}) };
}

/** Available units of each new lot: its count less the reserved units it keeps (capped at the count, as the store does). */
function availableAfter(before: StockLot[], lots: InventoryLot[]): { product: string; bloodType: string; available: number }[] {
  const held = new Map(before.map((l) => [`${l.product}/${l.bloodType}/${l.expiresAt}`, l.reserved]));
  return lots.map((l) => ({ product: l.product, bloodType: l.bloodType, available: l.count - Math.min(l.count, held.get(`${l.product}/${l.bloodType}/${l.expiresAt}`) ?? 0) }));
}

function donorProfile(b: DonorBody): DonorProfile {
  const lastDonation: Partial<Record<BloodProduct, number>> = { ...(b.lastDonation ?? {}) };
  if (b.lastDonationAt !== undefined) lastDonation.whole_blood = b.lastDonationAt;
  return { bloodType: b.bloodType, lat: b.lat, lng: b.lng, available: b.available, lastDonation };
}
