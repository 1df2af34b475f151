/**
 * Requests over HTTP: a POST /v1/requests body becomes a dispatch-loop submission (server-made id, sites
 * resolved to points), is committed before it is answered, and is shown back to its owner and dispatchers
 * with its legs, sources, courier and ETA — from memory while it is live, from the store afterwards.
 *
 *   POST ─► bound (open requests per owner) ─► submit ─► book.record ─► commit ─┬ stored ─► 201 + view + plan
 *                                                                              └ refused ─► memory as before, book forgets, 503/409
 *   GET  ─► book (live) ─► liveRequestView ; else store.getRequest ─► storedRequestView ; owner or dispatcher only
 *   cancel ─► requester: only until pickup (409 after) ; dispatcher / admin: any time before the end
 */
import { randomBytes } from 'node:crypto';
import type { RequestSubmission, SubmitPlan } from '../dispatch/dispatch-loop.js';
import type { SiteIndex } from '../engine/site-index.js';
import type { Store } from '../store/store.js';
import { ApiError } from './api-error.js';
import type { Principal } from './auth.js';
import type { DispatchPump } from './dispatch-pump.js';
import { storeDown } from './dispatch-pump.js';
import type { CreateReply, IdempotencyKeys } from './idempotency.js';
import type { ApiMetrics } from './metrics.js';
import { type BookedRequest, type RequestBook, principalKey } from './request-book.js';
import { type RequestView, type RequestViewSources, liveRequestView, planFor, storedRequestView } from './request-views.js';
import type { RequestCreateBody } from './schemas.js';

/** What request handling works with; each part owned by the caller. */
export interface RequestDeps extends RequestViewSources {
  sites: SiteIndex;
  pump: DispatchPump;
  idempotency: IdempotencyKeys;
  store: Pick<Store, 'getRequest'>;
  metrics: ApiMetrics;
  limits: { openPerRequester: number };
  /** Makes a new request's id (default newRequestId; a cluster core names its region in it). */
  newId?: () => string;
  /** A principal's open requests counted elsewhere (a cluster core: as stored, across every core); default the book's. */
  openCounts?: { admit(role: string, sub: string): Promise<boolean>; done(role: string, sub: string, created: boolean): void };
}

/** A fresh request id: 96 random bits, so ids are unique across restarts and leak nothing about volume. */
export function newRequestId(): string {
  return `r_${randomBytes(12).toString('base64url')}`;
}

/** Submits a request and answers 201 with its view and plan once the store holds it. */
export async function createRequest(deps: RequestDeps, b: RequestCreateBody, principal: Principal, now: number, key?: { key: string; bodyHash: string; replacesBefore: number }): Promise<CreateReply> {
  const counts = deps.openCounts;
  if (counts === undefined) {
    const isOpen = (id: string): boolean => {
      const s = deps.pump.summary(id)?.status;
      return s !== undefined && s !== 'delivered' && s !== 'cancelled' && s !== 'failed';
    };
    if (deps.book.atLimit(principal.role, principal.sub, deps.limits.openPerRequester, isOpen)) throw tooManyOpen(deps);
    return createAdmitted(deps, b, principal, now, key);
  }
  // counted elsewhere (a cluster core): admitted and counted at once, so racing creates count against each other
  if (!(await counts.admit(principal.role, principal.sub).catch((err: unknown) => Promise.reject(storeDown(err))))) throw tooManyOpen(deps);
  let created = false;
  try {
    const reply = await createAdmitted(deps, b, principal, now, key);
    created = true;
    return reply;
  } finally {
    counts.done(principal.role, principal.sub, created);
  }
}

function tooManyOpen(deps: RequestDeps): ApiError {
  return new ApiError(429, 'E_TOO_MANY_OPEN_REQUESTS', `at most ${deps.limits.openPerRequester} open requests per principal; wait for some to end or cancel them`);
}

async function createAdmitted(deps: RequestDeps, b: RequestCreateBody, principal: Principal, now: number, key?: { key: string; bodyHash: string; replacesBefore: number }): Promise<CreateReply> {
  if (b.deadline !== undefined && b.deadline <= now) throw new ApiError(422, 'E_DEADLINE_PASSED', 'the deadline is already past');
  const id = deps.newId?.() ?? newRequestId();
  const submission = submissionOf(deps.sites, b, id, principal, now);
  let booked: BookedRequest | undefined;
  let reply: RequestView | undefined;
  const { commit } = deps.pump.submit(submission, (plan) => {
    const { pickup, dropoff } = whereOf(submission, plan);
    const body = planBody(plan);
    booked = {
      id, kind: b.kind, owner: principal.sub, ownerRole: principal.role, urgency: submission.urgency, createdAt: now, legs: plan.legs, pickup, dropoff, plan: body,
      ...(b.reference !== undefined ? { reference: b.reference } : {}),
    };
    reply = { ...liveRequestView(deps, booked, deps.pump.summary(id), principal.role), plan: planFor(principal.role, body) };
    return {
      pickup, dropoff, plan: body, requesterRole: principal.role,
      ...(b.reference !== undefined ? { reference: b.reference } : {}),
      ...(key !== undefined ? { idempotency: { principal: principalKey(principal.role, principal.sub), key: key.key, bodyHash: key.bodyHash, status: 201, reply: reply as unknown as Record<string, unknown>, replacesBefore: key.replacesBefore } } : {}),
    };
  });
  deps.book.record(booked!);
  commit.stored.catch(() => deps.book.forget(id)); // taken back out of memory: the book forgets it too
  await commit.acknowledged;
  deps.metrics.requestsCreated.inc({ kind: b.kind, urgency: submission.urgency });
  const sources = booked!.plan?.sources as { count: number }[] | undefined;
  if (sources) deps.metrics.bloodUnitsReserved.inc(sources.reduce((n, s) => n + s.count, 0));
  return { status: 201, body: reply as unknown as Record<string, unknown> };
}

/** The request as `p` may see it: live from memory, or from the store; another requester's looks missing. */
export async function readRequest(deps: RequestDeps, id: string, p: Principal): Promise<RequestView> {
  const live = deps.book.get(id);
  if (live !== undefined) return liveRequestView(deps, ownedOrMissing(live.owner, live.ownerRole, p) && live, deps.pump.summary(id), p.role);
  return readStoredRequest(deps.store, id, p);
}

/** The request as stored, as `p` may see it (another requester's looks missing). */
export async function readStoredRequest(store: Pick<Store, 'getRequest'>, id: string, p: Principal): Promise<RequestView> {
  let stored;
  try {
    stored = await store.getRequest(id);
  } catch (err) {
    throw storeDown(err);
  }
  if (stored === undefined) throw missing();
  ownedOrMissing(stored.request.requesterId, stored.request.requesterRole, p);
  return storedRequestView(stored, p.role);
}

/** The live request if the caller may act on it; another requester's request looks missing (ids are not probeable). */
export function ownedRequest(book: RequestBook, id: string, p: Principal): BookedRequest {
  const r = book.get(id);
  if (r === undefined) throw missing();
  ownedOrMissing(r.owner, r.ownerRole, p);
  return r;
}

/** Cancels a request: its owner until pickup, a dispatcher or admin until it ends. */
export async function cancelRequest(deps: RequestDeps, id: string, p: Principal): Promise<RequestView> {
  if (deps.book.get(id) === undefined) {
    // gone from memory: it ended (the store still shows it to its owner) or never was
    const ended = await readRequest(deps, id, p);
    throw new ApiError(409, 'E_CONFLICT', `not possible now: the request is ${ended.status}`);
  }
  const r = ownedRequest(deps.book, id, p);
  const summary = deps.pump.summary(id);
  if (p.role === 'requester' && summary !== undefined && summary.legs.some((l) => l.status === 'picked_up' || l.status === 'delivered')) {
    throw new ApiError(409, 'E_ALREADY_PICKED_UP', 'the load is already with the courier: only a dispatcher can cancel it now');
  }
  await deps.pump.cancel(id, p.sub).acknowledged;
  return liveRequestView(deps, r, deps.pump.summary(id), p.role);
}

function ownedOrMissing(owner: string | undefined, ownerRole: string | undefined, p: Principal): true {
  // rows from before roles were stored carry none: the sub alone decides for them
  if (p.role === 'requester' && (owner !== p.sub || (ownerRole !== undefined && ownerRole !== p.role))) throw missing();
  return true;
}

function missing(): ApiError {
  return new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
}

function submissionOf(sites: SiteIndex, b: RequestCreateBody, id: string, principal: Principal, now: number): RequestSubmission {
  const base = { id, urgency: b.urgency ?? 'routine', createdAt: now, requesterId: principal.sub, ...(b.deadline !== undefined ? { deadline: b.deadline } : {}) };
  if (b.kind === 'delivery') {
    const pickup = point(sites, b.pickup, b.pickupSiteId, 'pickup')!;
    return { ...base, kind: 'delivery', pickup, dropoff: b.dropoff, ...opt({ readyAt: b.readyAt, coldChain: b.coldChain, load: b.load }) };
  }
  if (b.kind === 'rescue') return { ...base, kind: 'rescue', pickup: b.pickup, ...opt({ dropoff: b.dropoff, readyAt: b.readyAt, pickupBy: b.pickupBy, coldChain: b.coldChain, load: b.load }) };
  const named = b.hospitalSiteId === undefined ? undefined : sites.get(b.hospitalSiteId);
  if (named !== undefined && named.kind !== 'hospital') {
    throw new ApiError(422, 'E_NOT_A_HOSPITAL', `site '${b.hospitalSiteId}' is a ${named.kind}, not a hospital: blood goes to a hospital (or give a dropoff point)`);
  }
  const hospital = point(sites, b.dropoff, b.hospitalSiteId, 'hospital')!;
  return { ...base, kind: 'blood', dropoff: hospital, blood: { product: b.product, bloodType: b.bloodType, units: b.units } };
}

/** Where the map draws a request: the first bank for blood (else the hospital), the chosen recipient for a rescue. */
function whereOf(s: RequestSubmission, p: SubmitPlan): { pickup: { lat: number; lng: number }; dropoff: { lat: number; lng: number } } {
  const first = p.sources?.[0];
  const pickup = s.kind === 'blood' ? (first ? { lat: first.lat, lng: first.lng } : s.dropoff) : s.pickup;
  const dropoff = s.dropoff ?? (p.recipient ? { lat: p.recipient.lat, lng: p.recipient.lng } : undefined);
  return { pickup, dropoff: dropoff ?? pickup };
}

function planBody(plan: SubmitPlan): Record<string, unknown> {
  const out: Record<string, unknown> = { legs: plan.legs, dueAt: plan.dueAt };
  if (plan.recipient) out.recipient = plan.recipient;
  if (plan.sources) out.sources = plan.sources;
  if (plan.shortfall) out.shortfall = plan.shortfall;
  if (plan.callout) out.callout = plan.callout;
  return out;
}

function point(sites: SiteIndex, p: { lat: number; lng: number } | undefined, siteId: string | undefined, what: string): { lat: number; lng: number } | undefined {
  if (p !== undefined) return { lat: p.lat, lng: p.lng };
  if (siteId === undefined) return undefined;
  const site = sites.get(siteId);
  if (site === undefined) throw new ApiError(404, 'E_UNKNOWN_SITE', `${what} site '${siteId}' is not registered`);
  return { lat: site.lat, lng: site.lng };
}

function opt<T extends Record<string, unknown>>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const k in o) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
