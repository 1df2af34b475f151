/**
 * Where couriers are: pings in over HTTP (one, or a fleet gateway's batch) through the one ingest path, and
 * `GET /v1/nearby` out — donors only to dispatchers and admins (their positions and blood types are health data).
 */
import type { CellSpeeds } from '../engine/cell-speeds.js';
import type { CourierHit, CourierIndex } from '../engine/courier-index.js';
import type { DonorIndex } from '../engine/donor-index.js';
import type { SiteIndex } from '../engine/site-index.js';
import type { DispatchPolicy } from '../dispatch/dispatch-request.js';
import { driveSpeed, travelSeconds } from '../dispatch/travel-time.js';
import { ApiError } from './api-error.js';
import { requireSelf } from './auth.js';
import type { AddRoute } from './http-routes.js';
import type { PositionIngest } from './ingest.js';
import { entityId } from './entity-routes.js';
import { JsonBytes } from './http-body.js';
import { courierResultsJson } from './nearby-json.js';
import { type LocationBatchBody, type LocationBody, type NearbyQuery, checkLocationBatch, validate } from './schemas.js';

/** What the location routes read and write; each part owned by the caller. */
export interface LocationDeps {
  couriers: CourierIndex;
  sites: SiteIndex;
  donors: DonorIndex;
  ingest: PositionIngest;
  policy: Readonly<DispatchPolicy>;
  /** Learned cell speeds, so a courier's `eta` is timed as dispatch times it (the dispatch loop's). */
  speeds?: CellSpeeds;
}

/** Who may send pings and what they pay, wherever the routes are served (one process, or a cluster edge). */
export const PING_ROUTE = { roles: ['driver', 'admin'], body: 'location', bucket: 'ingest' } as const;
export const PING_BATCH_ROUTE = { roles: ['admin'], body: 'locationBatch', bodyLimit: 'bulk', bucket: 'gateway' } as const;
export const NEARBY_ROUTE = { roles: ['driver', 'dispatcher', 'requester', 'admin'] } as const;

/** Registers ping ingest and nearby queries on `add`. */
export function registerLocationRoutes(add: AddRoute, deps: LocationDeps): void {
  add('post', '/v1/couriers/:id/location', {
    ...PING_ROUTE,
    run: ({ params, body, principal }) => {
      const id = entityId(params[0]);
      requireSelf(principal, id, 'admin');
      const ping = body as LocationBody;
      deps.ingest.one(id, ping.lat, ping.lng, ping.ts);
      return { status: 204 };
    },
  });
  add('post', '/v1/locations', {
    ...PING_BATCH_ROUTE,
    run: ({ body }) => {
      const list = Array.isArray(body) ? body : (body as { items: unknown[] }).items;
      const checked = checkLocationBatch(body as LocationBatchBody);
      const tuples: unknown[] = new Array(list.length);
      checked.items.forEach((p, i) => {
        tuples[checked.indices[i]] = [p.id, p.lat, p.lng, p.ts];
      });
      return { status: 200, body: deps.ingest.batch(tuples, checked.rejected) };
    },
  });
  add('get', '/v1/nearby', {
    ...NEARBY_ROUTE,
    run: ({ query, now, principal }) => ({ status: 200, body: nearby(deps, query, now, principal.role) }),
  });
}

function nearby(deps: LocationDeps, query: string, now: number, role: string): { results: Record<string, unknown>[] } | JsonBytes {
  const p = nearbyQuery(query);
  const k = p.k ?? 10;
  if (p.kind === 'courier') {
    const hits = deps.couriers.nearby(p.lat, p.lng, { k, radius: p.radius, capability: p.capability, speeds: deps.speeds, ...(p.status ? { status: p.status } : {}) });
    return new JsonBytes(courierResultsJson(hits, (h) => courierEta(deps, h)));
  }
  if (p.kind === 'donor') {
    if (role !== 'dispatcher' && role !== 'admin') throw new ApiError(403, 'E_FORBIDDEN', 'donor positions and blood types are health data: dispatchers and admins only');
    const hits = deps.donors.nearby(p.lat, p.lng, { k, radius: p.radius, asOf: now, ...(p.bloodType ? { recipient: p.bloodType, product: p.product ?? 'whole_blood' } : {}) });
    return { results: hits.map((h) => ({ id: h.id, kind: 'donor', lat: h.lat, lng: h.lng, distance: Math.round(h.distance), bloodType: h.bloodType })) };
  }
  const stock = p.product !== undefined && p.bloodType !== undefined ? { product: p.product, recipient: p.bloodType, units: p.units ?? 1, asOf: now } : undefined;
  const hits = deps.sites.nearby(p.lat, p.lng, { k, radius: p.radius, ...(p.siteKind ? { kind: p.siteKind } : {}), ...(stock ? { stock } : {}) });
  return {
    results: hits.map((h) => ({ id: h.id, kind: 'site', siteKind: h.kind, name: h.name, lat: h.lat, lng: h.lng, distance: Math.round(h.distance), ...(h.units !== undefined ? { units: h.units } : {}) })),
  };
}

// a plain decimal, as the common query writes lat, lng and radius; a positive integer, as it writes k
const PLAIN_DECIMAL = /^-?(?:0|[1-9]\d{0,7})(?:\.\d{1,15})?$/;
const PLAIN_COUNT = /^[1-9]\d{0,3}$/;

/**
 * The fields of a nearest query, as validate('nearbyQuery') gives them. The common query — courier kind,
 * plain numbers for lat, lng, k and radius, within range — is read directly (the validator's coercing walk was
 * a tenth of a nearest query's route); anything else goes through the validator, which also writes the error.
 * location-routes.test.ts checks both agree.
 */
export function nearbyQuery(query: string): NearbyQuery {
  const plain = plainNearbyQuery(query);
  if (plain !== undefined) return plain;
  const fields = queryFields(query);
  // the validator coerces as Number() does: ' ' would be 0, '0x10' 16 and 'Infinity' pass every bound
  for (const name of NUMERIC_FIELDS) {
    const v = fields[name];
    // only what Number() reads (the validator's own message covers the rest)
    if (v !== undefined && v !== '' && !Number.isNaN(Number(v)) && (!DECIMAL.test(v) || !Number.isFinite(Number(v)))) throw new ApiError(400, 'E_VALIDATION', `${name} must be a decimal number, got '${v.slice(0, 32)}'`);
  }
  return validate('nearbyQuery', fields);
}

const NUMERIC_FIELDS = ['lat', 'lng', 'k', 'radius', 'units'] as const;
const DECIMAL = /^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d{1,3})?\s*$/;

// the common query read straight from the string (no field object, whose keys V8 would hash); undefined for
// anything it does not read, which the validator then reads
function plainNearbyQuery(query: string): NearbyQuery | undefined {
  if (query.includes('%') || query.includes('+')) return undefined;
  let lat: string | undefined;
  let lng: string | undefined;
  let k: string | undefined;
  let radius: string | undefined;
  for (let from = 0; from < query.length; ) {
    let amp = query.indexOf('&', from);
    if (amp < 0) amp = query.length;
    const eq = query.indexOf('=', from);
    if (amp > from) {
      if (eq < 0 || eq > amp) return undefined;
      const key = query.slice(from, eq);
      const value = query.slice(eq + 1, amp);
      if (key === 'lat') lat = value;
      else if (key === 'lng') lng = value;
      else if (key === 'k') k = value;
      else if (key === 'radius') radius = value;
      else if (key === 'kind') {
        if (value !== 'courier') return undefined;
      } else if (key !== 'access_token') return undefined;
    }
    from = amp + 1;
  }
  if (lat === undefined || lng === undefined || !PLAIN_DECIMAL.test(lat) || !PLAIN_DECIMAL.test(lng)) return undefined;
  if ((k !== undefined && !PLAIN_COUNT.test(k)) || (radius !== undefined && !PLAIN_DECIMAL.test(radius))) return undefined;
  const out: NearbyQuery = { lat: Number(lat), lng: Number(lng), kind: 'courier', k: k === undefined ? 10 : Number(k) };
  if (radius !== undefined) out.radius = Number(radius);
  const ok = out.lat >= -90 && out.lat <= 90 && out.lng >= -180 && out.lng <= 180 && out.k <= 1000 && (out.radius === undefined || (out.radius >= 0 && out.radius <= 20_037_509));
  return ok ? out : undefined;
}

/**
 * A query string's fields (the last of a repeated name wins), without `access_token`: split by hand when
 * nothing is encoded (the common case, and a few µs of a nearest query), by URLSearchParams otherwise.
 */
export function queryFields(query: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (query.includes('%') || query.includes('+')) {
    for (const [key, value] of new URLSearchParams(query)) if (key !== 'access_token') out[key] = value;
    return out;
  }
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    if (key !== 'access_token') out[key] = eq < 0 ? '' : part.slice(eq + 1);
  }
  return out;
}

// Seconds for a courier to drive to the query point, at the learned speed its dispatch snapshot reads (its
// bucket's speed cell, cached: a query must not pay an H3 call per courier), else its vehicle's.
export function courierEta(deps: Pick<LocationDeps, 'policy'>, h: CourierHit): number {
  const speed = driveSpeed(h.speed ?? NaN, deps.policy.vehicleSpeed[h.vehicle]);
  return travelSeconds(h.distance, deps.policy.circuity, speed); // h.distance: the great-circle metres to `to`
}
