/**
 * The fleet lists and a courier's track (PRODUCT §4, second table), cursor-paginated by keyset:
 *
 *   GET /v1/couriers  ?status&bbox&capability&limit&cursor ─► engine (memory) ─► ids after the cursor ─► page
 *   GET /v1/sites     ?kind&bbox&limit&cursor               ─► engine (memory) ─► ids after the cursor ─► page
 *   GET /v1/geofences ?limit&cursor                         ─► engine (memory) ─► ids after the cursor ─► page
 *   GET /v1/requests  ?status&kind&since&limit&cursor       ─► store, newest first, keyset (created_at, id)
 *                                                              (a requester: its own only) ─► live status overlaid
 *   GET /v1/couriers/{id}/history ?from&to                  ─► store (sampled location_history) ─► GeoJSON Feature
 *
 * Every page is `{ items, next? }`; `next` is an opaque cursor (list-cursor.ts) valid for the same filters only.
 */
import type { CourierStatus } from '../engine/courier-attributes.js';
import type { Store } from '../store/store.js';
import { ApiError } from './api-error.js';
import { storeDown } from './dispatch-pump.js';
import { courierView, entityId } from './entity-routes.js';
import { type FleetDeps, knownId, siteView } from './fleet-routes.js';
import type { AddRoute } from './http-routes.js';
import { ListCursors, listScope, pageAfter, parseBbox } from './list-cursor.js';
import { queryFields } from './location-routes.js';
import type { RequestBook } from './request-book.js';
import { validate } from './schemas.js';

/** What the lists read; each part owned by the caller. */
export interface FleetListDeps extends FleetDeps {
  book: RequestBook;
  store: Pick<Store, 'listRequests' | 'courierHistory'>;
  cursors: ListCursors;
  /** Whether a courier is registered, where the live index does not hold every one (a cluster's hub asks the store). */
  courierKnown?: (id: string) => Promise<boolean>;
}

/** Longest window of one history read: a week of 30 s samples is ~20,000 points, the most a map draws well. */
export const HISTORY_MAX_SPAN_MS = 7 * 86_400_000;
/** Most samples in one history answer (oldest first; `truncated` says there were more: ask from the last time on). */
export const HISTORY_MAX_POINTS = 10_000;
/** The window when the query names none: the last day. */
const HISTORY_DEFAULT_SPAN_MS = 86_400_000;

/** Registers the lists and the history read on `add`. */
export function registerFleetLists(add: AddRoute, deps: FleetListDeps): void {
  const { couriers, sites, fences, cursors } = deps;

  add('get', '/v1/couriers', {
    roles: ['admin', 'dispatcher'],
    run: ({ query }) => {
      const q = validate('couriersQuery', queryFields(query));
      const filter = { ...(q.status ? { status: q.status as CourierStatus } : {}), ...(q.capability ? { capability: q.capability } : {}) };
      const scope = listScope('couriers', { status: q.status, bbox: q.bbox, capability: q.capability });
      const candidates = q.bbox === undefined ? couriers.matching(filter) : couriers.within(parseBbox(q.bbox), filter);
      return { status: 200, body: idPage(cursors, scope, q, candidates, (id) => courierView(couriers, id)) };
    },
  });
  add('get', '/v1/sites', {
    roles: ['admin', 'dispatcher'],
    run: ({ query }) => {
      const q = validate('sitesQuery', queryFields(query));
      const scope = listScope('sites', { kind: q.kind, bbox: q.bbox });
      let candidates = q.bbox === undefined ? sites.ids() : sites.within(parseBbox(q.bbox));
      if (q.kind !== undefined) candidates = candidates.filter((id) => sites.get(id)?.kind === q.kind);
      return { status: 200, body: idPage(cursors, scope, q, candidates, (id) => siteView(sites.get(id)!)) };
    },
  });
  add('get', '/v1/geofences', {
    roles: ['admin'],
    run: ({ query }) => {
      const q = validate('pageQuery', queryFields(query));
      return { status: 200, body: idPage(cursors, 'geofences', q, fences.ids(), (id) => fences.get(id)!) };
    },
  });

  add('get', '/v1/requests', {
    roles: ['requester', 'dispatcher', 'admin'],
    run: async ({ query, principal }) => {
      const q = validate('requestsQuery', queryFields(query));
      const own = principal.role === 'requester' ? { requesterId: principal.sub, requesterRole: principal.role } : {};
      const scope = listScope('requests', { status: q.status, kind: q.kind, since: q.since, owner: own.requesterId });
      const after = q.cursor === undefined ? undefined : requestPosition(cursors.decode(scope, q.cursor));
      let rows;
      try {
        rows = await deps.store.listRequests({ ...own, status: q.status, kind: q.kind, since: q.since, after, limit: q.limit + 1 });
      } catch (err) {
        throw storeDown(err);
      }
      const more = rows.length > q.limit;
      if (more) rows.pop();
      const items = rows.map((r) => {
        // a live request's status is memory's (the stored one trails it by at most a commit)
        const live = deps.book.get(r.id) !== undefined ? deps.pump.summary(r.id)?.status : undefined;
        return { id: r.id, kind: r.kind, status: live ?? r.status, urgency: r.urgency, createdAt: r.createdAt, ...(r.reference !== undefined ? { reference: r.reference } : {}) };
      });
      const last = rows.at(-1);
      return { status: 200, body: { items, ...(more && last ? { next: cursors.encode(scope, { t: last.createdAt, i: last.id }) } : {}) } };
    },
  });

  add('get', '/v1/couriers/:id/history', {
    roles: ['admin', 'dispatcher'],
    run: async ({ params, query, now }) => {
      const raw = entityId(params[0]);
      const id = knownId(raw, deps.courierKnown === undefined ? (x) => couriers.has(x) : await deps.courierKnown(raw).then((k) => () => k), 'courier');
      const q = validate('historyQuery', queryFields(query));
      const to = q.to ?? now;
      const from = q.from ?? to - HISTORY_DEFAULT_SPAN_MS;
      if (from > to) throw new ApiError(400, 'E_VALIDATION', 'from must not be after to');
      if (to - from > HISTORY_MAX_SPAN_MS) throw new ApiError(400, 'E_RANGE_TOO_LONG', `at most ${HISTORY_MAX_SPAN_MS / 86_400_000} days per read: page through longer spans`);
      let points;
      try {
        points = await deps.store.courierHistory(id, from, to, HISTORY_MAX_POINTS + 1);
      } catch (err) {
        throw storeDown(err);
      }
      const truncated = points.length > HISTORY_MAX_POINTS;
      if (truncated) points.pop();
      return { status: 200, body: historyFeature(id, from, to, points, truncated) };
    },
  });
}

/**
 * A track as a GeoJSON Feature: a LineString of [lng, lat] with the sample times in `times` (same order); one
 * sample is a Point, none a null geometry (RFC 7946 needs two positions for a LineString).
 */
export function historyFeature(id: string, from: number, to: number, points: readonly { ts: number; lat: number; lng: number }[], truncated: boolean): Record<string, unknown> {
  const coordinates = points.map((p) => [p.lng, p.lat]);
  const geometry = points.length >= 2 ? { type: 'LineString', coordinates } : points.length === 1 ? { type: 'Point', coordinates: coordinates[0] } : null;
  return { type: 'Feature', geometry, properties: { courierId: id, from, to, times: points.map((p) => p.ts), ...(truncated ? { truncated: true } : {}) } };
}

/** One page over in-memory ids by keyset: the `limit` smallest after the cursor's id. */
function idPage(cursors: ListCursors, scope: string, q: { limit: number; cursor?: string }, ids: Iterable<string>, view: (id: string) => unknown): { items: unknown[]; next?: string } {
  const after = idAfter(cursors, scope, q.cursor);
  const page = pageAfter(ids, after, q.limit);
  const items = page.ids.map(view);
  return { items, ...(page.more ? { next: cursors.encode(scope, { a: page.ids[page.ids.length - 1] }) } : {}) };
}

/** The id a list page starts after, from its cursor (undefined: the first page). */
export function idAfter(cursors: ListCursors, scope: string, cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const position = cursors.decode<{ a?: unknown }>(scope, cursor);
  if (typeof position?.a !== 'string') throw new ApiError(400, 'E_BAD_CURSOR', 'cursor is not one this list handed out: start again without a cursor');
  return position.a;
}

function requestPosition(p: unknown): { createdAt: number; id: string } {
  const { t, i } = (p ?? {}) as { t?: unknown; i?: unknown };
  if (typeof t !== 'number' || !Number.isFinite(t) || typeof i !== 'string') throw new ApiError(400, 'E_BAD_CURSOR', 'cursor is not one this list handed out: start again without a cursor');
  return { createdAt: t, id: i };
}
