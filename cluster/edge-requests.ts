/**
 * Requests and offers on a cluster edge: the same routes as one process (REQUEST_ROUTES: roles, bodies, limits),
 * each call forwarded to the owner of its region and answered with what the owner answered.
 *
 *   POST /v1/requests ─► region of the pickup (delivery, rescue) or dropoff (blood) ─┐  (a site named ─► the hub says where)
 *   GET / cancel / progress /v1/requests/{r.<h3>.…}     ─► region in the id ────┼─► OwnerCommands.ask ─► the owner's reply
 *   accept / decline /v1/offers/{o.<h3>.…}              ─► region in the id ────┘
 *   PUT /v1/couriers/{id}/status (on / off shift)       ─► every live core; the one the courier's pings reach runs it
 *   PUT /v1/couriers/{id} (register or change a profile) ─► any live core stores it; the holder reads it again
 *   GET /v1/couriers/{id}                               ─► every live core; the holder's live view, else as stored
 *
 * While a region has no owner (a core died and its lease has not lapsed) the edge waits up to REGION_WAIT_MS for
 * one, asking again when the owner says it is still loading the region; past that, 503 with nothing done. A
 * region the cluster does not know (never used, or forgotten once nothing was open there) has nothing live: a
 * read or cancel is answered by any core from PostgreSQL, an offer or progress is 404 at once.
 */
import { ApiError } from '../api/api-error.js';
import type { AddRoute, Method, Reply, RouteCall } from '../api/http-routes.js';
import { requireSelf } from '../api/auth.js';
import { COURIER_PROFILE_ROUTE, COURIER_STATUS_ROUTE, entityId } from '../api/entity-routes.js';
import { COURIER_BATCH_ROUTE, COURIER_DELETE_ROUTE, COURIER_READ_ROUTE } from '../api/fleet-routes.js';
import { REQUEST_ROUTES, type RequestVerb } from '../api/request-routes.js';
import { NOT_HELD_HERE } from './core-couriers.js';
import type { RequestCreateBody } from '../api/schemas.js';
import { HUB_ROUTES, NEARBY_KEY, hubRouteShapes } from './hub.js';
import { type CommandVerb, type ForwardedCall, HUB, type OwnerCommands, regionOfCreate, regionOfId } from './owner-commands.js';

/**
 * How long a call waits, in all, for a region's owner to be there and answer: past it the client hears 503 (a
 * failover takes about one lease; clients time out at 5 s or more).
 */
const REGION_WAIT_MS = 4_500;
/** The most one ask waits for its owner's answer (a commit takes milliseconds; a dead owner never answers). */
const ASK_TIMEOUT_MS = 3_000;
const RETRY_EVERY_MS = 250;

/** The `method pattern` of each forwarded route (so the 501 fallback leaves them alone). */
export const FORWARDED_ROUTES: readonly string[] = [
  ...[...Object.values(REQUEST_ROUTES), COURIER_STATUS_ROUTE, COURIER_PROFILE_ROUTE, COURIER_READ_ROUTE, COURIER_BATCH_ROUTE, COURIER_DELETE_ROUTE].map((r) => `${r.method} ${r.pattern}`),
  ...HUB_ROUTES,
];

/** Registers the hub's routes (sites, stock, donors, the request list, couriers' tracks), forwarded to its holder. */
export function registerForwardedHub(add: AddRoute, commands: OwnerCommands): void {
  for (const [key, shape] of hubRouteShapes()) {
    if (key === NEARBY_KEY) continue; // edge-routes.ts answers couriers itself and asks the hub (askHub) for the rest
    const [method, pattern] = key.split(' ') as [Method, string];
    add(method, pattern, { ...shape, run: (call) => askHub(commands, key, call) });
  }
}

/** A hub route's call, run by the hub's holder. */
export function askHub(commands: OwnerCommands, route: string, call: RouteCall): Promise<Reply> {
  const { params, body, idempotencyKey, now, principal, query } = call;
  return askWaiting(commands, HUB, 'hub', { params, body, idempotencyKey, now, principal, query, route });
}

/**
 * Couriers onboarded in bulk (stored by any live core, reloaded by the ones holding them), and a courier deleted
 * (by the core holding it, which refuses while it carries or is offered work; else from PostgreSQL by any core).
 */
export function registerForwardedFleet(add: AddRoute, commands: OwnerCommands): void {
  const { method, pattern, ...batch } = COURIER_BATCH_ROUTE;
  add(method, pattern, {
    ...batch,
    run: async ({ body, principal, now }) => commands.askCore(await someCore(commands), '', 'courierBatch', { params: [], body, idempotencyKey: undefined, now, principal }, ASK_TIMEOUT_MS),
  });
  const del = COURIER_DELETE_ROUTE;
  add(del.method, del.pattern, {
    roles: del.roles,
    run: async ({ params, principal, now }) => {
      return holderOrStore(commands, 'courierDelete', { params: [entityId(params[0])], body: undefined, idempotencyKey: undefined, now, principal });
    },
  });
}

/** A courier command answered by the core holding the courier, else (nobody holds it) by any core from PostgreSQL. */
async function holderOrStore(commands: OwnerCommands, verb: 'courierRead' | 'courierDelete', call: ForwardedCall): Promise<Reply> {
  const { reply, cores } = await commands.askHolder(verb, call, NOT_HELD_HERE, ASK_TIMEOUT_MS);
  return reply ?? commands.askCore(cores[0], '', verb, { ...call, body: { stored: true } }, ASK_TIMEOUT_MS);
}

async function someCore(commands: OwnerCommands): Promise<string> {
  const core = await commands.anyCore();
  if (core === undefined) throw new ApiError(503, 'E_REGION_UNAVAILABLE', 'no core is running; nothing was done, retry in a few seconds');
  return core;
}

/** Registers the request and offer routes, forwarded to their regions' owners. */
export function registerForwardedRequests(add: AddRoute, commands: OwnerCommands, register: (region: string) => Promise<void>): void {
  for (const verb of Object.keys(REQUEST_ROUTES) as RequestVerb[]) {
    const { method, pattern, ...shape } = REQUEST_ROUTES[verb];
    add(method, pattern, { ...shape, run: (call) => forward(commands, register, verb, call) });
  }
}

/**
 * A courier on or off shift: asked of every live core at once; the core its pings reach runs it (committed) and
 * answers. No core holding it → 409: the cluster places a courier by its pings, so it pings first.
 */
export function registerForwardedShift(add: AddRoute, commands: OwnerCommands): void {
  const { method, pattern, roles, body } = COURIER_STATUS_ROUTE;
  add(method, pattern, {
    roles, body,
    run: async ({ params, body: status, principal, now }) => {
      const id = entityId(params[0]);
      requireSelf(principal, id);
      const { reply } = await commands.askHolder('courierStatus', { params: [id], body: status, idempotencyKey: undefined, now, principal }, NOT_HELD_HERE, ASK_TIMEOUT_MS);
      if (reply !== undefined) return reply;
      throw new ApiError(409, 'E_COURIER_NOT_LIVE', `courier '${id}' has not pinged into the cluster lately: send its position, then its status`);
    },
  });
}

/** A courier's view: live from the core holding it (every live core asked), else as stored (any core), else 404. */
export function registerForwardedCourierRead(add: AddRoute, commands: OwnerCommands): void {
  const { method, pattern, roles } = COURIER_READ_ROUTE;
  add(method, pattern, {
    roles,
    run: async ({ params, principal, now }) => {
      return holderOrStore(commands, 'courierRead', { params: [entityId(params[0])], body: undefined, idempotencyKey: undefined, now, principal });
    },
  });
}

/** A courier registered or changed: stored by any live core, which tells the core holding it to read it again. */
export function registerForwardedProfile(add: AddRoute, commands: OwnerCommands): void {
  const { method, pattern, roles, body } = COURIER_PROFILE_ROUTE;
  add(method, pattern, {
    roles, body,
    run: async ({ params, body: profile, principal, now }) => {
      const id = entityId(params[0]);
      return commands.askCore(await someCore(commands), '', 'courierProfile', { params: [id], body: profile, idempotencyKey: undefined, now, principal }, ASK_TIMEOUT_MS);
    },
  });
}

async function forward(commands: OwnerCommands, register: (region: string) => Promise<void>, verb: RequestVerb, call: RouteCall): Promise<Reply> {
  const region = verb === 'create' ? await createRegion(commands, call) : regionOfId(call.params[0] ?? '');
  if (region === undefined) throw notFound(verb);
  if (verb === 'create') await register(region); // a region nobody pinged yet gets an owner too
  const forwarded = { params: call.params, body: call.body, idempotencyKey: call.idempotencyKey, now: call.now, principal: call.principal };
  return askWaiting(commands, region, verb, forwarded, verb === 'create' ? undefined : async () => {
    // the cluster holds nothing open there (cores keep regions with open requests): what is left is in
    // PostgreSQL, which any core reads; offers and progress have nothing to act on
    if (verb !== 'read' && verb !== 'cancel') throw notFound(verb);
    const core = await commands.anyCore();
    if (core === undefined) throw new ApiError(503, 'E_REGION_UNAVAILABLE', 'no core is running; retry in a few seconds');
    return commands.askCore(core, region, verb, forwarded, ASK_TIMEOUT_MS);
  });
}

/** The region a new request goes to; a site named instead of a point is looked up on the hub (404 E_UNKNOWN_SITE). */
async function createRegion(commands: OwnerCommands, call: RouteCall): Promise<string> {
  const b = call.body as RequestCreateBody;
  const named = b.kind === 'blood' ? (b.dropoff === undefined ? b.hospitalSiteId : undefined) : b.kind === 'delivery' && b.pickup === undefined ? b.pickupSiteId : undefined;
  let at: { lat: number; lng: number } | undefined;
  if (named !== undefined) {
    const reply = await askWaiting(commands, HUB, 'siteAt', { params: [named], body: undefined, idempotencyKey: undefined, now: call.now, principal: call.principal });
    at = reply.body as { lat: number; lng: number };
  }
  const region = regionOfCreate(b, () => at);
  if (region === undefined) throw new ApiError(400, 'E_VALIDATION', 'a request needs a point to be dispatched from (pickup, or dropoff for blood) or a site naming one');
  return region;
}

/**
 * Asks the owner of `region` (or the hub's holder), waiting up to REGION_WAIT_MS while it has none or says it is
 * still loading it; `unknown` answers for a region the cluster does not know (without it, such a region is waited
 * for like one changing hands).
 */
export async function askWaiting(commands: OwnerCommands, region: string, verb: CommandVerb, call: ForwardedCall, unknown?: () => Promise<Reply>): Promise<Reply> {
  const until = Date.now() + REGION_WAIT_MS;
  for (;;) {
    const owner = await commands.ownerOf(region);
    if (owner === null && unknown !== undefined) return unknown();
    if (typeof owner === 'string') {
      try {
        return await commands.askCore(owner, region, verb, call, Math.max(500, Math.min(ASK_TIMEOUT_MS, until - Date.now())));
      } catch (err) {
        // nothing was done: the owner is still loading the region, or just lost it — worth asking again shortly
        if (!(err instanceof ApiError && err.code === 'E_REGION_UNAVAILABLE') || Date.now() + RETRY_EVERY_MS > until) throw err;
      }
    } else if (Date.now() + RETRY_EVERY_MS > until) {
      const what = region === HUB ? 'the hub (sites, stock, donors, lists)' : `region ${region}`;
      throw new ApiError(503, 'E_REGION_UNAVAILABLE', `${what} has no owner right now (a core is taking it over); nothing was done, retry in a few seconds`);
    }
    await new Promise((r) => setTimeout(r, RETRY_EVERY_MS));
  }
}

function notFound(verb: RequestVerb): ApiError {
  return verb === 'accept' || verb === 'decline' ? new ApiError(404, 'E_UNKNOWN_OFFER', 'no such offer') : new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
}

