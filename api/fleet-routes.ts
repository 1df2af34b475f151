/**
 * What a team runs a fleet with (PRODUCT §4, second table): bulk courier onboarding, reads of one courier, site,
 * donor, the geofences, and deletes — every write stored before it is acknowledged, like entity-routes.
 *
 *   PUT /v1/couriers [{id, vehicle, capabilities, capacity}] ─► each item checked (schema, then the index's own
 *        dry run) ─► bad ones rejected by index ─► the good ones: ONE store call (one statement) ─► engine ─► 200
 *   DELETE /v1/{couriers|sites|donors|geofences}/{id} ─► 404 unknown / 409 in use ─► store ─► memory ─► 204
 *                                                     └─ store refuses / unreachable ─► 409 / 503, memory untouched
 *
 * Lists and history: fleet-lists.ts.
 */
import { encodeAttr } from '../engine/courier-filter.js';
import { EngineError } from '../engine/errors.js';
import type { DispatchLoop } from '../dispatch/dispatch-loop.js';
import type { CourierRow } from '../store/store.js';
import { ApiError } from './api-error.js';
import { courierHold } from './driver-offers.js';
import { type EntityDeps, courierView, entityId } from './entity-routes.js';
import type { AddRoute } from './http-routes.js';
import type { PositionSinks } from './ingest.js';
import { COURIER_ITEMS_PER_TOKEN, type CourierBatchBody, checkCourierBatch } from './schemas.js';

/** What the fleet routes work on; each part owned by the caller. */
export interface FleetDeps extends EntityDeps {
  loop: DispatchLoop;
  /** The position write-behind: a deleted courier's unwritten pings are dropped with it. */
  positions: Pick<PositionSinks, 'forget'>;
}

/** A courier's live view (a cluster edge asks the core holding it). */
export const COURIER_READ_ROUTE = { method: 'get', pattern: '/v1/couriers/:id', roles: ['admin', 'dispatcher'] } as const;

/** Bulk courier onboarding and a courier's delete (a cluster edge forwards them to the cores). */
export const COURIER_BATCH_ROUTE = { method: 'put', pattern: '/v1/couriers', roles: ['admin', 'dispatcher'], body: 'courierBatch', bodyLimit: 'bulk', itemsPerToken: COURIER_ITEMS_PER_TOKEN } as const;
export const COURIER_DELETE_ROUTE = { method: 'del', pattern: '/v1/couriers/:id', roles: ['admin', 'dispatcher'] } as const;

/** Registers bulk upsert, reads and deletes on `add`. */
export function registerFleetRoutes(add: AddRoute, deps: FleetDeps): void {
  const { couriers, sites, donors, fences, writer, loop, pump } = deps;

  const { method: batchMethod, pattern: batchPattern, ...batch } = COURIER_BATCH_ROUTE;
  add(batchMethod, batchPattern, {
    ...batch,
    run: async ({ body }) => {
      const { good, rejected } = courierBatchRows(body as CourierBatchBody);
      if (good.length > 0) {
        await writer.write((store) => store.upsertCouriers(good), () => {
          for (const { id, ...profile } of good) {
            couriers.upsert(id, profile);
            deps.courierChanged(id);
          }
        }).acknowledged;
      }
      return { status: 200, body: { accepted: good.length, rejected } };
    },
  });

  add(COURIER_READ_ROUTE.method, COURIER_READ_ROUTE.pattern, {
    roles: COURIER_READ_ROUTE.roles,
    run: ({ params }) => {
      const id = knownId(params[0], (x) => couriers.has(x), 'courier');
      return { status: 200, body: { ...courierView(couriers, id), ...courierHold(loop, id) } };
    },
  });
  add('get', '/v1/sites/:id', {
    roles: ['admin', 'dispatcher'],
    run: ({ params, now }) => {
      const id = knownId(params[0], (x) => sites.has(x), 'site');
      // an expired lot is shown (it is still on the shelf) but with nothing available: dispatch never uses it
      const lots = sites.lots(id).map((l) => (l.expiresAt > now ? l : { ...l, available: 0, expired: true }));
      return { status: 200, body: { ...siteView(sites.get(id)!), lots } };
    },
  });
  add('get', '/v1/donors/:id', {
    roles: ['admin'], // positions and blood types are health data
    run: ({ params }) => ({ status: 200, body: donors.get(knownId(params[0], (x) => donors.has(x), 'donor')) }),
  });

  add(COURIER_DELETE_ROUTE.method, COURIER_DELETE_ROUTE.pattern, {
    roles: COURIER_DELETE_ROUTE.roles,
    run: async ({ params }) => {
      const id = knownId(params[0], (x) => couriers.has(x), 'courier');
      refuseWhileHeld(loop, id);
      await writer.write((store) => store.deleteCourier(id).then(() => undefined), () => {
        // an offer a dispatch batch made while the delete was being stored is revoked (its leg waits again)
        // before the courier leaves the index, so no one is left holding an offer to a courier that is gone
        if (loop.lifecycle.courier(id)?.offerId !== undefined) revoke(() => pump.setCourierStatus(id, 'offline').acknowledged);
        // before the index frees its slot: the write-behind's entries are keyed by it
        deps.positions.forget(id);
        couriers.remove(id);
        deps.courierChanged(id);
      }).acknowledged;
      return { status: 204 };
    },
  });
  add('del', '/v1/sites/:id', {
    roles: ['admin'],
    run: async ({ params }) => {
      const id = knownId(params[0], (x) => sites.has(x), 'site');
      if (sites.lots(id).some((l) => l.reserved > 0)) throw siteHeld(id);
      let outcome = { deleted: false, reserved: false };
      await writer.write(async (store) => {
        outcome = await store.deleteSite(id);
      }, () => {
        if (!outcome.reserved) sites.remove(id);
      }).acknowledged;
      if (outcome.reserved) throw siteHeld(id);
      return { status: 204 };
    },
  });
  add('del', '/v1/donors/:id', {
    roles: ['admin'],
    run: async ({ params }) => {
      const id = knownId(params[0], (x) => donors.has(x), 'donor');
      await writer.write((store) => store.deleteDonor(id).then(() => undefined), () => void donors.remove(id)).acknowledged;
      return { status: 204 };
    },
  });
  add('del', '/v1/geofences/:id', {
    roles: ['admin'],
    run: async ({ params }) => {
      const id = knownId(params[0], (x) => fences.get(x) !== undefined, 'geofence');
      await writer.write((store) => store.deleteGeofence(id), () => void fences.remove(id)).acknowledged;
      return { status: 204 };
    },
  });
}

/** A bulk courier upsert's items: the rows to store, and the rest rejected by index (schema, then the index's own dry run). */
export function courierBatchRows(body: CourierBatchBody): { good: CourierRow[]; rejected: { index: number; code: string; message: string }[] } {
  const checked = checkCourierBatch(body);
  const rejected = checked.rejected.map(({ index, code, message }) => ({ index, code, message }));
  const good: CourierRow[] = [];
  for (let i = 0; i < checked.items.length; i++) {
    const { id, vehicle, capabilities, capacity } = checked.items[i];
    try {
      encodeAttr({ vehicle, capabilities, capacity }, 'offline'); // what the index would refuse, refused here, before the store
      good.push({ id, vehicle, capabilities, capacity });
    } catch (err) {
      if (!(err instanceof EngineError)) throw err;
      rejected.push({ index: checked.indices[i], code: err.code, message: err.message });
    }
  }
  return { good, rejected: rejected.sort((a, b) => a.index - b.index) };
}

/** A site as lists and reads show it (unlimited capacity is left out: JSON has no Infinity). */
export function siteView(s: { id: string; kind: string; name: string; lat: number; lng: number; capacity: number; occupancy: number; open: boolean }): Record<string, unknown> {
  const { capacity, ...rest } = s;
  return Number.isFinite(capacity) ? { ...rest, capacity } : rest;
}

/** An id from the path that names a known thing, else 400 (malformed) or 404 E_NOT_FOUND. */
export function knownId(raw: string, known: (id: string) => boolean, what: string): string {
  const id = entityId(raw);
  if (!known(id)) throw new ApiError(404, 'E_NOT_FOUND', `no ${what} '${id}'`);
  return id;
}

function refuseWhileHeld(loop: DispatchLoop, id: string): void {
  const held = loop.lifecycle.courier(id);
  if (held?.requestId !== undefined) throw new ApiError(409, 'E_COURIER_BUSY', `courier '${id}' carries request '${held.requestId}': deliver, or cancel it, first`);
  if (held?.offerId !== undefined) throw new ApiError(409, 'E_COURIER_BUSY', `courier '${id}' holds live offer '${held.offerId}': wait for its answer or expiry, or set the courier offline first`);
}

// best effort: a refused revoke leaves the offer to expire (OFFER_TTL), as any offer whose courier vanished
function revoke(run: () => Promise<unknown>): void {
  try {
    run().catch(() => undefined);
  } catch {
    // the verb was refused at once (store down): the offer expires by itself
  }
}

function siteHeld(id: string): ApiError {
  return new ApiError(409, 'E_SITE_RESERVED', `site '${id}' holds units reserved for open requests: they must be issued or released first`);
}
