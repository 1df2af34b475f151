/**
 * The HTTP surface of PRODUCT §4 on a uWS app: parse, call the engine or the pump, encode.
 *
 *   uWS route ─► copy method, params, query, headers out of `req` (invalid after return)
 *            ─► authenticate + role (401/403) ─► rate limit (429 + Retry-After)
 *            ─► body? readBody (413 at the cap) ─► decodeBody (JSON | MessagePack) ─► validate (400)
 *            ─► handler ─► sendReply (by Accept) ; any throw ─► toErrorReply ─► { error: { code, message } }
 *
 * Every handler runs inside one try/catch; a response answered later has its onAborted registered first
 * (readBody, or watchAborted for bodiless routes).
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from '@trufflesuite/uws-js-unofficial';
import type { CourierProfile } from '../engine/courier-attributes.js';
import type { CourierIndex } from '../engine/courier-index.js';
import type { DonorIndex, DonorProfile } from '../engine/donor-index.js';
import type { FenceInput, GeofenceIndex } from '../engine/geofence-index.js';
import type { InventoryLot, SiteIndex, SiteProfile } from '../engine/site-index.js';
import type { BloodProduct } from '../engine/blood-types.js';
import type { DispatchPolicy } from '../dispatch/dispatch-request.js';
import { ApiError, toErrorReply } from './api-error.js';
import { type Authenticator, type Principal, type Role, requireRole, requireSelf } from './auth.js';
import type { ApiConfig } from './config.js';
import { type DispatchPump, storeDown } from './dispatch-pump.js';
import { decodeBody, isAborted, readBody, sendReply, watchAborted } from './http-body.js';
import type { Logger } from './log.js';
import type { ApiMetrics } from './metrics.js';
import type { TokenBuckets } from './rate-limit.js';
import type { RequestBook } from './request-book.js';
import { type ValidatorName, type DonorBody, type LocationBatchBody, type RequestCreateBody, buildOpenApi, checkLocationBatch, validate } from './schemas.js';
import { createRequest, ownedRequest, requestView } from './request-handlers.js';
import type { StreamHub } from './stream.js';

/** What the routes work with; each part owned by the caller. */
export interface HttpDeps {
  config: Readonly<ApiConfig>;
  auth: Authenticator;
  couriers: CourierIndex;
  sites: SiteIndex;
  donors: DonorIndex;
  fences: GeofenceIndex;
  pump: DispatchPump;
  policy: Readonly<DispatchPolicy>;
  book: RequestBook;
  hub: StreamHub;
  limits: { general: TokenBuckets; ingest: TokenBuckets; gateway: TokenBuckets };
  metrics: ApiMetrics;
  logger: Logger;
  clock: () => number;
  /** Undefined when ready; otherwise why not (draining, a dependency down). */
  notReady: () => string | undefined;
  /** Counts handlers still awaiting work (the store, the worker pool), so a drain can wait for them. */
  inFlight: { count: number };
}

/** A handler's answer. */
export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Send `body` (a string) as is with this content type, whatever Accept says (Prometheus text). */
  rawType?: string;
}

/** Everything a handler may know about its request (copied out of uWS synchronously). */
interface Call {
  params: string[];
  query: URLSearchParams;
  accept: string | undefined;
  idempotencyKey: string | undefined;
  principal: Principal;
  body: unknown;
  now: number;
}

interface RouteSpec {
  /** Roles allowed; 'public' skips authentication. */
  roles: readonly Role[] | 'public';
  /** Schema of the body; routes without one read none. */
  body?: ValidatorName;
  /** Which bucket pays: general (default), ingest (one ping), gateway (a batch). */
  bucket?: 'general' | 'ingest' | 'gateway';
  run: (call: Call) => Reply | Promise<Reply>;
}

type Method = 'get' | 'put' | 'post';

/** Registers every route of PRODUCT §4 (HTTP part) and the 404 fallback on `app`. */
export function registerHttpRoutes(app: TemplatedApp, deps: HttpDeps): void {
  const add = (method: Method, pattern: string, spec: RouteSpec): void => {
    app[method](pattern, (res, req) => handle(deps, pattern, spec, res, req));
  };
  const { couriers, sites, donors, fences, pump, book, hub, metrics } = deps;

  add('get', '/health', { roles: 'public', run: () => ({ status: 200, body: { status: 'ok' } }) });
  add('get', '/ready', {
    roles: 'public',
    run: () => {
      const why = deps.notReady();
      return why === undefined ? { status: 200, body: { status: 'ready' } } : { status: 503, body: { status: 'not-ready', reason: why } };
    },
  });
  add('get', '/metrics', {
    roles: 'public',
    run: async () => ({ status: 200, body: await metrics.render(), rawType: metrics.contentType }),
  });
  const openapi = buildOpenApi();
  add('get', '/openapi.json', { roles: 'public', run: () => ({ status: 200, body: openapi }) });

  add('put', '/v1/couriers/:id', {
    roles: ['admin', 'dispatcher'],
    body: 'courierProfile',
    run: ({ params, body }) => {
      const id = courierId(params[0]);
      couriers.upsert(id, body as CourierProfile);
      hub.courierChanged(id);
      return { status: 200, body: courierView(couriers, id) };
    },
  });
  add('post', '/v1/couriers/:id/location', {
    roles: ['driver', 'admin'],
    body: 'location',
    bucket: 'ingest',
    run: ({ params, body, principal }) => {
      const id = courierId(params[0]);
      requireSelf(principal, id, 'admin');
      const ping = body as { lat: number; lng: number; ts: number };
      try {
        couriers.move(id, ping.lat, ping.lng, ping.ts);
      } catch (err) {
        metrics.pingsRejected.inc();
        throw err;
      }
      metrics.pingsAccepted.inc();
      hub.courierChanged(id);
      hub.drainFences();
      return { status: 204 };
    },
  });
  add('post', '/v1/locations', {
    roles: ['admin'],
    body: 'locationBatch',
    bucket: 'gateway',
    run: ({ body }) => {
      const checked = checkLocationBatch(body as LocationBatchBody);
      const rejected: { index: number; code: string }[] = checked.rejected.map((r) => ({ index: r.index, code: r.code }));
      let accepted = 0;
      checked.items.forEach((p, i) => {
        try {
          couriers.move(p.id, p.lat, p.lng, p.ts);
          accepted++;
          hub.courierChanged(p.id);
        } catch (err) {
          rejected.push({ index: checked.indices[i], code: toErrorReply(err).code });
        }
      });
      rejected.sort((a, b) => a.index - b.index);
      metrics.pingsAccepted.inc(accepted);
      if (rejected.length > 0) metrics.pingsRejected.inc(rejected.length);
      hub.drainFences();
      return { status: 200, body: { accepted, rejected } };
    },
  });
  add('put', '/v1/couriers/:id/status', {
    roles: ['driver', 'dispatcher', 'admin'],
    body: 'courierStatus',
    run: async ({ params, body, principal }) => {
      const id = courierId(params[0]);
      requireSelf(principal, id);
      if (!couriers.has(id)) throw new ApiError(404, 'E_UNKNOWN_COURIER', `courier '${id}' is not registered`);
      pump.setCourierStatus(id, (body as { status: 'available' | 'offline' }).status);
      await committed(pump);
      return { status: 200, body: courierView(couriers, id) };
    },
  });

  add('put', '/v1/sites/:id', {
    roles: ['admin'],
    body: 'site',
    run: ({ params, body }) => {
      const id = entityId(params[0]);
      sites.upsert(id, body as SiteProfile);
      return { status: 200, body: sites.get(id) };
    },
  });
  add('put', '/v1/sites/:id/inventory', {
    roles: ['admin'],
    body: 'inventory',
    run: ({ params, body }) => {
      const id = entityId(params[0]);
      if (!sites.has(id)) throw new ApiError(404, 'E_UNKNOWN_SITE', `site '${id}' is not registered: PUT /v1/sites/${id} first`);
      sites.setInventory(id, (body as { units: InventoryLot[] }).units);
      return { status: 200, body: { id, lots: sites.lots(id) } };
    },
  });
  add('put', '/v1/donors/:id', {
    roles: ['admin'],
    body: 'donor',
    run: ({ params, body }) => {
      const id = entityId(params[0]);
      donors.upsert(id, donorProfile(body as DonorBody));
      return { status: 200, body: donors.get(id) };
    },
  });
  add('put', '/v1/geofences/:id', {
    roles: ['admin'],
    body: 'geofence',
    run: ({ params, body }) => {
      const id = entityId(params[0]);
      fences.put(id, body as FenceInput);
      return { status: 200, body: { id, kind: (body as FenceInput).kind } };
    },
  });

  add('get', '/v1/nearby', { roles: ['driver', 'dispatcher', 'requester', 'admin'], run: ({ query, now }) => ({ status: 200, body: nearby(deps, query, now) }) });

  // creations still awaiting the store, by requester and Idempotency-Key (bounded by requests in flight)
  const creating = new Map<string, Promise<Reply>>();
  add('post', '/v1/requests', {
    roles: ['requester', 'dispatcher'],
    body: 'requestCreate',
    run: async ({ body, principal, idempotencyKey, now }) => {
      if (idempotencyKey === undefined) return createRequest(deps, body as RequestCreateBody, principal, now);
      if (idempotencyKey.length > 128) throw new ApiError(400, 'E_VALIDATION', 'Idempotency-Key is at most 128 characters');
      const earlier = book.replay(principal.sub, idempotencyKey);
      if (earlier !== undefined) return { status: earlier.status, body: earlier.body, headers: { 'idempotent-replayed': 'true' } };
      // a retry that arrives while the first attempt still awaits the store shares its answer
      const slot = `${principal.sub}\u0000${idempotencyKey}`;
      const running = creating.get(slot);
      if (running !== undefined) return { ...(await running), headers: { 'idempotent-replayed': 'true' } };
      const attempt = createRequest(deps, body as RequestCreateBody, principal, now, idempotencyKey);
      creating.set(slot, attempt);
      try {
        const reply = await attempt;
        // a 5xx (store down) is not the request's answer: a later retry must get to try again
        if (reply.status < 500) book.remember(principal.sub, idempotencyKey, { status: reply.status, body: reply.body });
        return reply;
      } finally {
        creating.delete(slot);
      }
    },
  });
  add('get', '/v1/requests/:id', {
    roles: ['requester', 'dispatcher', 'admin'],
    run: ({ params, principal }) => ({ status: 200, body: requestView(deps, ownedRequest(book, params[0], principal)) }),
  });
  add('post', '/v1/requests/:id/cancel', {
    roles: ['requester', 'dispatcher', 'admin'],
    run: async ({ params, principal }) => {
      const r = ownedRequest(book, params[0], principal);
      pump.cancel(r.id, principal.sub);
      await committed(pump);
      return { status: 200, body: requestView(deps, r) };
    },
  });
  add('post', '/v1/requests/:id/progress', {
    roles: ['driver'],
    body: 'progress',
    run: async ({ params, body, principal }) => {
      const r = book.get(params[0]);
      if (r === undefined) throw new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
      pump.progress(r.id, principal.sub, (body as { status: 'picked_up' | 'delivered' }).status);
      await committed(pump);
      return { status: 200, body: requestView(deps, r) };
    },
  });
  for (const verb of ['accept', 'decline'] as const) {
    add('post', `/v1/offers/:id/${verb}`, {
      roles: ['driver'],
      run: async ({ params, principal }) => {
        const offerId = params[0];
        if (verb === 'accept') pump.accept(offerId, principal.sub);
        else pump.decline(offerId, principal.sub);
        await committed(pump);
        return { status: 200, body: { offerId, status: verb === 'accept' ? 'accepted' : 'declined' } };
      },
    });
  }

  app.any('/*', (res, req) => {
    const accept = req.getHeader('accept') || undefined;
    sendReply(res, 404, { error: { code: 'E_NOT_FOUND', message: `no route ${req.getMethod().toUpperCase()} ${req.getUrl()}` } }, accept);
  });
}

function handle(deps: HttpDeps, pattern: string, spec: RouteSpec, res: HttpResponse, req: HttpRequest): void {
  const started = performance.now();
  const method = req.getMethod().toUpperCase();
  const accept = req.getHeader('accept') || undefined;
  const reply = (r: Reply): void => {
    if (r.rawType !== undefined) sendRaw(res, r.status, String(r.body), r.rawType);
    else sendReply(res, r.status, r.body, accept, r.headers);
    deps.metrics.httpRequests.inc({ route: `${method} ${pattern}`, status: String(r.status) });
    deps.metrics.httpDuration.observe({ route: `${method} ${pattern}` }, (performance.now() - started) / 1000);
  };
  const fail = (err: unknown): void => {
    const { status, code, message } = toErrorReply(err);
    if (status >= 500) deps.logger.error({ err, route: pattern }, 'request failed');
    const headers = err instanceof RateLimited ? { 'retry-after': String(err.retryAfterSec) } : undefined;
    reply({ status, body: { error: { code, message } }, headers });
  };
  try {
    const params: string[] = [];
    for (let i = 0; i < countParams(pattern); i++) params.push(decodeParam(req.getParameter(i) ?? ''));
    const query = new URLSearchParams(req.getQuery() ?? '');
    const contentType = req.getHeader('content-type') || undefined;
    const idempotencyKey = req.getHeader('idempotency-key') || undefined;
    const authorization = req.getHeader('authorization') || undefined;
    const apiKey = req.getHeader('x-api-key') || undefined;
    const now = deps.clock();
    const principal: Principal = spec.roles === 'public' ? { sub: '', role: 'admin', via: 'jwt' } : deps.auth.authenticate({ authorization, apiKey }, now);
    if (spec.roles !== 'public') {
      requireRole(principal, ...spec.roles);
      const bucket = deps.limits[spec.bucket ?? 'general'];
      const verdict = bucket.take(principal.sub, now);
      if (!verdict.ok) throw new RateLimited(verdict.retryAfterSec);
    }
    const run = (body: unknown): void => {
      try {
        const out = spec.run({ params, query, accept, idempotencyKey, principal, body, now: deps.clock() });
        if (out instanceof Promise) {
          deps.inFlight.count++;
          out.then(reply, fail).finally(() => deps.inFlight.count--);
        } else reply(out);
      } catch (err) {
        fail(err);
      }
    };
    if (spec.body === undefined) {
      watchAborted(res);
      run(undefined);
      return;
    }
    const schema = spec.body;
    readBody(
      res,
      deps.config.bodyLimitBytes,
      (buf) => {
        try {
          run(validate(schema, decodeBody(buf, contentType)));
        } catch (err) {
          fail(err);
        }
      },
      fail,
    );
  } catch (err) {
    fail(err);
  }
}

function sendRaw(res: HttpResponse, status: number, text: string, contentType: string): void {
  if (isAborted(res)) return;
  res.cork(() => res.writeStatus(`${status} ${status === 200 ? 'OK' : 'Status'}`).writeHeader('content-type', contentType).end(text));
}

/** 429 with the seconds to wait (sent as Retry-After). */
class RateLimited extends ApiError {
  constructor(readonly retryAfterSec: number) {
    super(429, 'E_RATE_LIMITED', `rate limit exceeded; retry after ${retryAfterSec} s`);
  }
}

function decodeParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new ApiError(400, 'E_VALIDATION', 'malformed percent-encoding in the path');
  }
}

function countParams(pattern: string): number {
  return pattern.split('/').filter((s) => s.startsWith(':')).length;
}

const ID = /^[A-Za-z0-9_.:-]{1,128}$/;

function entityId(raw: string): string {
  if (!ID.test(raw)) throw new ApiError(400, 'E_VALIDATION', 'ids are 1..128 chars of A-Z a-z 0-9 _ . : -');
  return raw;
}

function courierId(raw: string): string {
  return entityId(raw);
}

function courierView(couriers: CourierIndex, id: string): Record<string, unknown> {
  const c = couriers.get(id);
  if (c === undefined) throw new ApiError(404, 'E_UNKNOWN_COURIER', `courier '${id}' is not registered`);
  const positioned = !Number.isNaN(c.lat);
  return { id, vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity, status: c.status, ...(positioned ? { lat: c.lat, lng: c.lng, ts: c.ts } : {}) };
}

function donorProfile(b: DonorBody): DonorProfile {
  const lastDonation: Partial<Record<BloodProduct, number>> = { ...(b.lastDonation ?? {}) };
  if (b.lastDonationAt !== undefined) lastDonation.whole_blood = b.lastDonationAt;
  return { bloodType: b.bloodType, lat: b.lat, lng: b.lng, available: b.available, lastDonation };
}

function nearby(deps: HttpDeps, q: URLSearchParams, now: number): { results: Record<string, unknown>[] } {
  const raw: Record<string, unknown> = {};
  for (const [key, value] of q) {
    if (key === 'access_token') continue;
    raw[key] = value;
  }
  const p = validate('nearbyQuery', raw);
  const k = p.k ?? 10;
  if (p.kind === 'courier') {
    const hits = deps.couriers.nearby(p.lat, p.lng, { k, radius: p.radius, capability: p.capability, ...(p.status ? { status: p.status } : {}) });
    return {
      results: hits.map((h) => ({
        id: h.id, kind: 'courier', lat: h.lat, lng: h.lng, distance: Math.round(h.distance), status: h.status, vehicle: h.vehicle,
        eta: Math.round((h.distance * deps.policy.circuity) / deps.policy.vehicleSpeed[h.vehicle]),
      })),
    };
  }
  if (p.kind === 'donor') {
    const hits = deps.donors.nearby(p.lat, p.lng, { k, radius: p.radius, asOf: now, ...(p.bloodType ? { recipient: p.bloodType, product: p.product ?? 'whole_blood' } : {}) });
    return { results: hits.map((h) => ({ id: h.id, kind: 'donor', lat: h.lat, lng: h.lng, distance: Math.round(h.distance), bloodType: h.bloodType })) };
  }
  const stock = p.product !== undefined && p.bloodType !== undefined ? { product: p.product, recipient: p.bloodType, units: p.units ?? 1, asOf: now } : undefined;
  const hits = deps.sites.nearby(p.lat, p.lng, { k, radius: p.radius, ...(p.siteKind ? { kind: p.siteKind } : {}), ...(stock ? { stock } : {}) });
  return {
    results: hits.map((h) => ({ id: h.id, kind: 'site', siteKind: h.kind, name: h.name, lat: h.lat, lng: h.lng, distance: Math.round(h.distance), ...(h.units !== undefined ? { units: h.units } : {}) })),
  };
}

/** Waits for the store to hold what the verb changed (assignment-changing transitions are committed before they are acknowledged). */
async function committed(pump: DispatchPump): Promise<void> {
  try {
    await pump.committed();
  } catch (err) {
    throw storeDown(err);
  }
}
