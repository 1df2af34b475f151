/**
 * The HTTP routes a cluster edge serves itself (PRODUCT §7), through the same route adder as one process
 * (authentication, shared rate limits, body limits, metrics):
 *
 *   POST /v1/couriers/{id}/location ─► checked as one process checks it ─► PingFunnel ─► 204 once Redis holds it
 *   POST /v1/locations (gateway)    ─► each item checked ─► the good ones funnelled ─► { accepted, rejected }
 *   GET  /v1/nearby (couriers)      ─► NearestScatter over the owners the circle touches ─► merged top k;
 *                                      a region without an answering owner ─► 503 E_REGION_UNAVAILABLE (never a guess)
 *   GET  /v1/nearby (sites, donors) ─► the hub (cluster/hub.ts)
 *   requests, offers, couriers, the hub's routes ─► forwarded to cores (edge-requests.ts)
 *   a route of one process an edge does not serve ─► 501 E_NOT_ON_EDGE (none today: edge-routes.test.ts checks)
 *
 * An edge holds no index: it cannot say a courier is unknown or a ping stale (its owner decides and counts).
 */
import type { TemplatedApp } from '@trufflesuite/uws-js-unofficial';
import { ApiError } from '../api/api-error.js';
import { requireSelf } from '../api/auth.js';
import { entityId, registerEntityRoutes } from '../api/entity-routes.js';
import { registerFleetLists } from '../api/fleet-lists.js';
import { registerFleetRoutes } from '../api/fleet-routes.js';
import { registerRequestRoutes } from '../api/request-routes.js';
import { registerWebhookRoutes } from '../api/webhook-routes.js';
import { JsonBytes, sendReply } from '../api/http-body.js';
import type { AddRoute, Reply, RouteCall } from '../api/http-routes.js';
import { type RejectedPing, pingRefusal, rejectionError } from '../api/ingest.js';
import { NEARBY_ROUTE, PING_BATCH_ROUTE, PING_ROUTE, courierEta, nearbyQuery, registerLocationRoutes } from '../api/location-routes.js';
import { courierResultsJson } from '../api/nearby-json.js';
import { type LocationBatchBody, type LocationBody, checkLocationBatch } from '../api/schemas.js';
import type { DispatchPolicy } from '../dispatch/dispatch-request.js';
import type { CourierHit } from '../engine/courier-index.js';
import { BadNearestQuery, type NearestScatter } from './nearest-scatter.js';
import type { PingFunnel } from './ping-funnel.js';

export interface EdgeRouteDeps {
  funnel: PingFunnel;
  scatter: NearestScatter<CourierHit>;
  policy: Readonly<DispatchPolicy>;
  clock: () => number;
  /** Runs a nearby query for sites or donors on the hub (cluster/hub.ts). */
  hub: (call: RouteCall) => Promise<Reply>;
}

/** The routes registerEdgeRoutes serves, as `method pattern`. */
export const EDGE_ROUTES: ReadonlySet<string> = new Set(['post /v1/couriers/:id/location', 'post /v1/locations', 'get /v1/nearby']);

/** Registers the pings and nearest routes an edge serves. */
export function registerEdgeRoutes(add: AddRoute, deps: EdgeRouteDeps): void {
  add('post', '/v1/couriers/:id/location', {
    ...PING_ROUTE,
    run: async ({ params, body, principal }) => {
      const id = entityId(params[0]);
      requireSelf(principal, id, 'admin');
      const ping = body as LocationBody;
      const now = deps.clock();
      const refused = pingRefusal(id, ping.lat, ping.lng, ping.ts, now, true);
      if (refused !== undefined) throw rejectionError(refused, ping.ts, now);
      await deps.funnel.add([id], [ping.lat], [ping.lng], [ping.ts]);
      return { status: 204 };
    },
  });
  add('post', '/v1/locations', {
    ...PING_BATCH_ROUTE,
    run: async ({ body }) => {
      const checked = checkLocationBatch(body as LocationBatchBody);
      const rejected: RejectedPing[] = checked.rejected.map((r) => ({ index: r.index, code: r.code }));
      const good: PingColumns = { ids: [], lat: [], lng: [], ts: [] };
      const now = deps.clock();
      checked.items.forEach((p, i) => {
        const refused = pingRefusal(p.id, p.lat, p.lng, p.ts, now, true);
        if (refused === undefined) addPing(good, p.id, p.lat, p.lng, p.ts);
        else rejected.push({ index: checked.indices[i], code: refused.code });
      });
      await deps.funnel.add(good.ids, good.lat, good.lng, good.ts);
      return { status: 200, body: { accepted: good.ids.length, rejected: rejected.sort((a, b) => a.index - b.index) } };
    },
  });
  add('get', '/v1/nearby', {
    ...NEARBY_ROUTE,
    run: async (call) => {
      const { query, principal } = call;
      const p = nearbyQuery(query);
      // donors are health data: the same answer as one process gives a driver or requester, before anything else
      if (p.kind === 'donor' && principal.role !== 'dispatcher' && principal.role !== 'admin') {
        throw new ApiError(403, 'E_FORBIDDEN', 'donor positions and blood types are health data: dispatchers and admins only');
      }
      if (p.kind !== 'courier') return deps.hub(call); // sites and donors: the hub's
      const filter = { ...(p.capability ? { capability: p.capability } : {}), ...(p.status ? { status: p.status } : {}) };
      let answer: Awaited<ReturnType<NearestScatter<CourierHit>['nearest']>>;
      try {
        answer = await deps.scatter.nearest({ lat: p.lat, lng: p.lng, k: p.k ?? 10, radius: p.radius ?? MAX_RADIUS_M, filter });
      } catch (err) {
        if (err instanceof BadNearestQuery) throw new ApiError(400, 'E_VALIDATION', err.message);
        throw new ApiError(503, 'E_UNAVAILABLE', `nearest cannot be asked while the cluster's Redis is unreachable (${err instanceof Error ? err.message : String(err)}); retry`);
      }
      if (answer.missing.length > 0) {
        throw new ApiError(503, 'E_REGION_UNAVAILABLE', `part of the area has no answering owner right now (${answer.missing.slice(0, 3).join('; ')}); retry in a few seconds`);
      }
      return { status: 200, body: new JsonBytes(courierResultsJson(answer.hits, (h) => courierEta(deps, h))) };
    },
  });
}

/**
 * Every other route of the API (as one process registers them): a clear 501 naming what an edge serves, instead of
 * a 404 that would read as a typo. Paths the API does not have stay 404.
 */
export function registerNotOnEdge(app: TemplatedApp, served: ReadonlySet<string>): void {
  for (const [method, pattern] of apiRoutes()) {
    if (served.has(`${method} ${pattern}`)) continue;
    app[method as 'get'](pattern, (res, req) => {
      const accept = req.getHeader('accept') || undefined;
      const route = `${req.getMethod().toUpperCase()} ${req.getUrl()}`;
      sendReply(res, 501, { error: { code: 'E_NOT_ON_EDGE', message: `${route} is not served by a cluster edge; use GD_ROLE=all for it` } }, accept);
    });
  }
}

/** Every `/v1` route of one process, as `[method, pattern]`. */
export function apiRoutes(): [string, string][] {
  const patterns: [string, string][] = [];
  const record: AddRoute = (method, pattern) => void patterns.push([method, pattern]);
  // registration only records each route; no handler runs, so no dependency is needed
  const none = {} as never;
  for (const register of [registerEntityRoutes, registerLocationRoutes, registerRequestRoutes, registerFleetRoutes, registerFleetLists, registerWebhookRoutes]) register(record, none);
  return patterns;
}

/** The API's largest radius (api/schemas.ts nearbyQuery): a query without one searches the whole globe. */
const MAX_RADIUS_M = 20_037_509;

interface PingColumns {
  ids: string[];
  lat: number[];
  lng: number[];
  ts: number[];
}

function addPing(c: PingColumns, id: string, lat: number, lng: number, ts: number): void {
  c.ids.push(id);
  c.lat.push(lat);
  c.lng.push(lng);
  c.ts.push(ts);
}
