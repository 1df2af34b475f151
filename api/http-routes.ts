/**
 * The HTTP surface of PRODUCT §4 on a uWS app: parse, call the engine or the pump, encode.
 *
 *   uWS route ─► copy method, params, query, headers out of `req` (invalid after return)
 *            ─► authenticate + role (401/403) ─► rate limit (429 + Retry-After)
 *            ─► body? readBody (413 at the route's cap, readable) ─► decodeBody (JSON | MessagePack) ─► validate (400)
 *            ─► handler ─► sendReply (by Accept) ; any throw ─► toErrorReply ─► { error: { code, message } }
 *
 * The routes themselves live by noun: entity-routes (admin writes), location-routes (pings, nearby),
 * request-routes (requests, offers), fleet-routes (bulk upsert, reads, deletes), fleet-lists (lists, history).
 * Every handler runs inside one try/catch; a response answered later has its onAborted registered first
 * (readBody, or watchAborted for bodiless routes).
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from '@trufflesuite/uws-js-unofficial';
import { ApiError, toErrorReply } from './api-error.js';
import { type Authenticator, type Principal, type Role, requireRole } from './auth.js';
import type { ApiConfig } from './config.js';
import { type EntityDeps, registerEntityRoutes } from './entity-routes.js';
import { type FleetListDeps, registerFleetLists } from './fleet-lists.js';
import { registerFleetRoutes } from './fleet-routes.js';
import { decodeBody, isAborted, readBody, sendReply, watchAborted } from './http-body.js';
import { type LocationDeps, registerLocationRoutes } from './location-routes.js';
import type { Logger } from './log.js';
import type { ApiMetrics } from './metrics.js';
import type { RateLimiter, Verdict } from './rate-limit.js';
import { principalKey } from './request-book.js';
import type { RequestDeps } from './request-handlers.js';
import { registerRequestRoutes } from './request-routes.js';
import { type ValidatorName, buildOpenApi, validate } from './schemas.js';
import { type WebhookDeps, registerWebhookRoutes } from './webhook-routes.js';

/** What every route needs around its handler: authentication, rate limits, metrics, readiness. */
export interface RouteDeps {
  config: Readonly<ApiConfig>;
  auth: Authenticator;
  /** In-process buckets (GD_ROLE=all), or buckets every edge of a cluster shares through Redis. */
  limits: { general: RateLimiter; ingest: RateLimiter; gateway: RateLimiter };
  metrics: ApiMetrics;
  logger: Logger;
  clock: () => number;
  /** Undefined when ready; otherwise why not (draining, a dependency down). */
  notReady: () => string | undefined;
  /** Counts handlers still awaiting work (the store, the worker pool), so a drain can wait for them. */
  inFlight: { count: number };
}

/** What the routes of one process work with; each part owned by the caller. */
export interface HttpDeps extends RouteDeps, EntityDeps, LocationDeps, RequestDeps, WebhookDeps, Omit<FleetListDeps, 'store'> {
  store: RequestDeps['store'] & FleetListDeps['store'];
  limits: RouteDeps['limits'] & { openPerRequester: number };
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
export interface RouteCall {
  params: string[];
  /** The raw query string (no '?'); the one route that reads it parses it (location-routes queryFields). */
  query: string;
  accept: string | undefined;
  idempotencyKey: string | undefined;
  principal: Principal;
  body: unknown;
  now: number;
}

export interface RouteSpec {
  /** Roles allowed; 'public' skips authentication. */
  roles: readonly Role[] | 'public';
  /** Schema of the body; routes without one read none. */
  body?: ValidatorName;
  /** Which bucket pays: general (default), ingest (one ping), gateway (a batch). */
  bucket?: 'general' | 'ingest' | 'gateway';
  /** 'bulk' takes the bulk body limit (10,000 items) instead of the default 64 KiB. */
  bodyLimit?: 'bulk';
  /** A 'bulk' route pays one rate-limit token per this many items (default 1: one per item). */
  itemsPerToken?: number;
  /** The route reads Idempotency-Key: an empty or blank one is told from none (idempotencyKeyOf). */
  idempotent?: true;
  run: (call: RouteCall) => Reply | Promise<Reply>;
}

export type Method = 'get' | 'put' | 'post' | 'del';

/** Adds one route. */
export type AddRoute = (method: Method, pattern: string, spec: RouteSpec) => void;

/** Registers every route of PRODUCT §4 (HTTP part) and the 404 fallback on `app`. */
export function registerHttpRoutes(app: TemplatedApp, deps: HttpDeps): void {
  const add = routeAdder(app, deps);
  registerServiceRoutes(add, deps);
  registerEntityRoutes(add, deps);
  registerLocationRoutes(add, deps);
  registerRequestRoutes(add, deps);
  registerFleetRoutes(add, deps);
  registerFleetLists(add, deps);
  registerWebhookRoutes(add, deps);
  registerNotFound(app);
}

/** The `add` a set of routes registers through: each route authenticated, limited, metered and answered as one. */
export function routeAdder(app: TemplatedApp, deps: RouteDeps): AddRoute {
  return (method, pattern, spec) => {
    const route = new RouteMeters(deps.metrics, `${method === 'del' ? 'DELETE' : method.toUpperCase()} ${pattern}`, pattern);
    app[method](pattern, (res, req) => handle(deps, route, spec, res, req));
  };
}

/** /health, /ready, /metrics and /openapi.json: the public routes every role that serves HTTP has. */
export function registerServiceRoutes(add: AddRoute, deps: Pick<RouteDeps, 'notReady' | 'metrics'>): void {
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
    run: async () => ({ status: 200, body: await deps.metrics.render(), rawType: deps.metrics.contentType }),
  });
  const openapi = buildOpenApi();
  add('get', '/openapi.json', { roles: 'public', run: () => ({ status: 200, body: openapi }) });
}

/** The 404 for every path no route matched; registered last. */
export function registerNotFound(app: TemplatedApp): void {
  app.any('/*', (res, req) => {
    const accept = req.getHeader('accept') || undefined;
    sendReply(res, 404, { error: { code: 'E_NOT_FOUND', message: `no route ${req.getMethod().toUpperCase()} ${req.getUrl()}` } }, accept);
  });
}

/** One route's label, path parameter count and metric series, made once at registration (not per request). */
class RouteMeters {
  readonly params: number;
  private readonly duration: { observe(seconds: number): void };
  private readonly byStatus = new Map<number, { inc(): void }>();

  constructor(
    private readonly metrics: ApiMetrics,
    private readonly label: string,
    readonly pattern: string,
  ) {
    this.params = pattern.split('/').filter((s) => s.startsWith(':')).length;
    this.duration = metrics.httpDuration.labels(label);
  }

  /** Counts one answer with its status and time taken. */
  answered(status: number, seconds: number): void {
    let counter = this.byStatus.get(status);
    if (counter === undefined) this.byStatus.set(status, (counter = this.metrics.httpRequests.labels(this.label, String(status))));
    counter.inc();
    this.duration.observe(seconds);
  }
}

/**
 * The Idempotency-Key header: undefined when absent, '' when sent empty (or blank: uWS trims values), which the
 * route refuses as it does any key outside 1..128 visible ASCII. uWS answers '' for an absent header too, so on
 * a route that reads the key an empty answer is told apart by looking for the header's name (never on the
 * others: location pings are POSTs with bodies too).
 */
function idempotencyKeyOf(req: HttpRequest, spec: RouteSpec): string | undefined {
  const value = req.getHeader('idempotency-key');
  if (value !== '' || spec.idempotent !== true) return value || undefined;
  let sent = false;
  req.forEach((name) => {
    if (name === 'idempotency-key') sent = true;
  });
  return sent ? '' : undefined;
}

function handle(deps: RouteDeps, route: RouteMeters, spec: RouteSpec, res: HttpResponse, req: HttpRequest): void {
  const started = performance.now();
  const accept = req.getHeader('accept') || undefined;
  const reply = (r: Reply): void => {
    if (r.rawType !== undefined) sendRaw(res, r.status, String(r.body), r.rawType);
    else sendReply(res, r.status, r.body, accept, r.headers);
    route.answered(r.status, (performance.now() - started) / 1000);
  };
  const fail = (err: unknown): void => {
    const { status, code, message } = toErrorReply(err);
    // an ApiError is an answer the server chose (503 while a dependency is away, 501 not served here): counted by
    // status in the metrics, not an error a client could fill the log with
    if (status >= 500 && !(err instanceof ApiError)) deps.logger.error({ err, route: route.pattern }, 'request failed');
    const headers = err instanceof RateLimited ? { 'retry-after': String(err.retryAfterSec) } : undefined;
    reply({ status, body: { error: { code, message } }, headers });
  };
  try {
    const params: string[] = [];
    for (let i = 0; i < route.params; i++) params.push(decodeParam(req.getParameter(i) ?? ''));
    const query = req.getQuery() ?? '';
    const contentType = req.getHeader('content-type') || undefined;
    const idempotencyKey = idempotencyKeyOf(req, spec);
    const authorization = req.getHeader('authorization') || undefined;
    const apiKey = req.getHeader('x-api-key') || undefined;
    const now = deps.clock();
    const principal: Principal = spec.roles === 'public' ? { sub: '', role: 'admin', via: 'jwt' } : deps.auth.authenticate({ authorization, apiKey }, now);
    const bucket = deps.limits[spec.bucket ?? 'general'];
    const bucketKey = principalKey(principal.role, principal.sub);
    if (spec.roles !== 'public') requireRole(principal, ...spec.roles);
    // in-process buckets answer at once (the common path stays synchronous); shared ones once Redis has
    const admitted = spec.roles === 'public' ? undefined : admit(bucket.take(bucketKey, now));
    // a refusal may come while the body is still arriving: handled below, never an unhandled rejection
    admitted?.catch(() => undefined);
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
    // runs `next` once `gate` has admitted the call (now, or when the shared bucket answers); a throw is the reply
    const after = (gate: Promise<void> | undefined, next: () => void): void => {
      if (gate !== undefined) gate.then(next).catch(fail);
      else
        try {
          next();
        } catch (err) {
          fail(err);
        }
    };
    if (spec.body === undefined) {
      watchAborted(res);
      after(admitted, () => run(undefined));
      return;
    }
    const schema = spec.body;
    const limit = spec.bodyLimit === 'bulk' ? deps.config.bulkBodyLimitBytes : deps.config.bodyLimitBytes;
    // the first token paid for the request: a body pays for its size before it is parsed, a batch for its items
    const pay = (tokens: number): Promise<void> | undefined => (tokens > 0 ? admit(bucket.take(bucketKey, deps.clock(), tokens)) : undefined);
    // the body is read at once (uWS wants onData now); it waits for the first token if that is not there yet
    const onBody = (buf: Buffer): void =>
      after(admitted, () =>
        after(spec.bodyLimit === 'bulk' ? undefined : pay(Math.ceil(buf.length / BODY_TOKEN_BYTES) - 1), () => {
          const body = decodeBody(buf, contentType);
          after(spec.bodyLimit === 'bulk' ? pay(Math.ceil(itemsOf(body) / (spec.itemsPerToken ?? 1)) - 1) : undefined, () => run(validate(schema, body)));
        }),
      );
    readBody(res, limit, onBody, fail);
  } catch (err) {
    fail(err);
  }
}

/** Throws RateLimited for a refusal; a pending verdict becomes a promise that rejects the same way. */
function admit(verdict: Verdict | Promise<Verdict>): Promise<void> | undefined {
  if (verdict instanceof Promise) return verdict.then(admit);
  if (!verdict.ok) throw new RateLimited(verdict.retryAfterSec);
  return undefined;
}

/** Bytes of body one rate-limit token pays for: a 64 KiB body costs 16 requests' worth, so a principal cannot spend its whole budget on parsing. */
export const BODY_TOKEN_BYTES = 4096;

/** Items of a batch body (`[…]` or `{ items: […] }`), at least 1. */
function itemsOf(body: unknown): number {
  const list = Array.isArray(body) ? body : (body as { items?: unknown } | null)?.items;
  return Array.isArray(list) ? Math.max(1, list.length) : 1;
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
