/**
 * Requests and offers over HTTP: create (with Idempotency-Key), read, cancel, progress, accept, decline —
 * every write acknowledged only once the store holds it.
 *
 * The routes' shapes (REQUEST_ROUTES) and what each does (requestVerbs) are apart, because a cluster runs them
 * in two places: an edge registers the shapes (authentication, roles, body validation, limits) and forwards the
 * call to the core that owns the request's region, which runs the same verb over its own dispatch
 * (cluster/owner-commands.ts). One process registers both together here.
 */
import { ApiError } from './api-error.js';
import type { AddRoute, Method, Reply, RouteCall, RouteSpec } from './http-routes.js';
import { type IdempotencyKeys, bodyHash, checkKey } from './idempotency.js';
import { principalKey } from './request-book.js';
import { type RequestDeps, cancelRequest, createRequest, readRequest } from './request-handlers.js';
import { liveRequestView } from './request-views.js';
import { ID_PATTERN, type RequestCreateBody } from './schemas.js';

/** A route's shape without its handler. */
export type RouteShape = Omit<RouteSpec, 'run'> & { method: Method; pattern: string };

/** The request and offer routes: who may call them and what body they take. */
export const REQUEST_ROUTES = {
  create: { method: 'post', pattern: '/v1/requests', roles: ['requester', 'dispatcher'], body: 'requestCreate', idempotent: true },
  read: { method: 'get', pattern: '/v1/requests/:id', roles: ['requester', 'dispatcher', 'admin'] },
  cancel: { method: 'post', pattern: '/v1/requests/:id/cancel', roles: ['requester', 'dispatcher', 'admin'] },
  progress: { method: 'post', pattern: '/v1/requests/:id/progress', roles: ['driver'], body: 'progress' },
  accept: { method: 'post', pattern: '/v1/offers/:id/accept', roles: ['driver'] },
  decline: { method: 'post', pattern: '/v1/offers/:id/decline', roles: ['driver'] },
} as const satisfies Record<string, RouteShape>;

export type RequestVerb = keyof typeof REQUEST_ROUTES;

/** The verbs, each answering a call as its route does. */
export function requestVerbs(deps: RequestDeps & { idempotency: IdempotencyKeys }): Record<RequestVerb, (call: RouteCall) => Promise<Reply>> {
  const { pump, book } = deps;
  const answerOffer = async (verb: 'accept' | 'decline', { params, principal }: RouteCall): Promise<Reply> => {
    const offerId = params[0];
    if (!ID_PATTERN.test(offerId)) throw new ApiError(404, 'E_UNKNOWN_OFFER', 'no such offer');
    await (verb === 'accept' ? pump.accept(offerId, principal.sub) : pump.decline(offerId, principal.sub)).acknowledged;
    return { status: 200, body: { offerId, status: verb === 'accept' ? 'accepted' : 'declined' } };
  };
  return {
    create: async ({ body, principal, idempotencyKey, now }) => {
      const b = body as RequestCreateBody;
      if (idempotencyKey === undefined) return createRequest(deps, b, principal, now);
      const key = checkKey(idempotencyKey);
      // the defaults are part of what was asked: leaving urgency out and sending 'routine' are the same request
      const hash = bodyHash({ ...b, urgency: b.urgency ?? 'routine' });
      const owner = principalKey(principal.role, principal.sub);
      const reply = await deps.idempotency.run(owner, key, hash, () => createRequest(deps, b, principal, now, { key, bodyHash: hash, replacesBefore: deps.idempotency.expiredBefore() }));
      if (reply.headers === undefined) deps.idempotency.remember({ principal: owner, key, bodyHash: hash, status: reply.status, reply: reply.body, requestId: String(reply.body.id), createdAt: now });
      return reply;
    },
    read: async ({ params, principal }) => ({ status: 200, body: await readRequest(deps, requestId(params[0]), principal) }),
    cancel: async ({ params, principal }) => ({ status: 200, body: await cancelRequest(deps, requestId(params[0]), principal) }),
    progress: async ({ params, body, principal }) => {
      const r = book.get(requestId(params[0]));
      if (r === undefined) throw new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
      await pump.progress(r.id, principal.sub, (body as { status: 'picked_up' | 'delivered' }).status).acknowledged;
      return { status: 200, body: liveRequestView(deps, r, pump.summary(r.id), principal.role) };
    },
    accept: (call) => answerOffer('accept', call),
    decline: (call) => answerOffer('decline', call),
  };
}

/** Registers the request and offer routes on `add`. */
export function registerRequestRoutes(add: AddRoute, deps: RequestDeps & { idempotency: IdempotencyKeys }): void {
  const verbs = requestVerbs(deps);
  for (const verb of Object.keys(REQUEST_ROUTES) as RequestVerb[]) {
    const { method, pattern, ...shape } = REQUEST_ROUTES[verb];
    add(method, pattern, { ...shape, run: verbs[verb] });
  }
}

/** A request id from the path; anything that could not be one is simply not found. */
export function requestId(raw: string): string {
  if (!ID_PATTERN.test(raw)) throw new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
  return raw;
}
