/**
 * Requests and offers over HTTP: create (with Idempotency-Key), read, cancel, progress, accept, decline —
 * every write acknowledged only once the store holds it.
 */
import { ApiError } from './api-error.js';
import type { AddRoute } from './http-routes.js';
import { type IdempotencyKeys, bodyHash, checkKey } from './idempotency.js';
import { principalKey } from './request-book.js';
import { type RequestDeps, cancelRequest, createRequest, readRequest } from './request-handlers.js';
import { liveRequestView } from './request-views.js';
import { ID_PATTERN, type RequestCreateBody } from './schemas.js';

/** Registers the request and offer routes on `add`. */
export function registerRequestRoutes(add: AddRoute, deps: RequestDeps & { idempotency: IdempotencyKeys }): void {
  const { pump, book } = deps;

  add('post', '/v1/requests', {
    roles: ['requester', 'dispatcher'],
    body: 'requestCreate',
    idempotent: true,
    run: async ({ body, principal, idempotencyKey, now }) => {
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
  });
  add('get', '/v1/requests/:id', {
    roles: ['requester', 'dispatcher', 'admin'],
    run: async ({ params, principal }) => ({ status: 200, body: await readRequest(deps, requestId(params[0]), principal) }),
  });
  add('post', '/v1/requests/:id/cancel', {
    roles: ['requester', 'dispatcher', 'admin'],
    run: async ({ params, principal }) => ({ status: 200, body: await cancelRequest(deps, requestId(params[0]), principal) }),
  });
  add('post', '/v1/requests/:id/progress', {
    roles: ['driver'],
    body: 'progress',
    run: async ({ params, body, principal }) => {
      const r = book.get(requestId(params[0]));
      if (r === undefined) throw new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
      await pump.progress(r.id, principal.sub, (body as { status: 'picked_up' | 'delivered' }).status).acknowledged;
      return { status: 200, body: liveRequestView(deps, r, pump.summary(r.id), principal.role) };
    },
  });
  for (const verb of ['accept', 'decline'] as const) {
    add('post', `/v1/offers/:id/${verb}`, {
      roles: ['driver'],
      run: async ({ params, principal }) => {
        const offerId = params[0];
        if (!ID_PATTERN.test(offerId)) throw new ApiError(404, 'E_UNKNOWN_OFFER', 'no such offer');
        await (verb === 'accept' ? pump.accept(offerId, principal.sub) : pump.decline(offerId, principal.sub)).acknowledged;
        return { status: 200, body: { offerId, status: verb === 'accept' ? 'accepted' : 'declined' } };
      },
    });
  }
}

/** A request id from the path; anything that could not be one is simply not found. */
function requestId(raw: string): string {
  if (!ID_PATTERN.test(raw)) throw new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
  return raw;
}
