/**
 * Requests over HTTP: a POST /v1/requests body becomes a dispatch-loop submission (sites resolved to
 * points, optional fields dropped), is committed before it is answered, and is shown back to its owner
 * and dispatchers with its live legs, courier and ETA.
 */
import type { RequestSubmission, SubmitPlan } from '../dispatch/dispatch-loop.js';
import type { SiteIndex } from '../engine/site-index.js';
import { ApiError } from './api-error.js';
import type { Principal } from './auth.js';
import { storeDown } from './dispatch-pump.js';
import type { HttpDeps, Reply } from './http-routes.js';
import type { BookedRequest, RequestBook } from './request-book.js';
import type { RequestCreateBody } from './schemas.js';

/** Submits a request and answers 201 with its plan once the store holds it (503 if it cannot). */
export async function createRequest(deps: HttpDeps, b: RequestCreateBody, principal: Principal, now: number, idempotencyKey?: string): Promise<Reply> {
  const id = b.id ?? deps.book.nextId();
  const base = { id, urgency: b.urgency ?? 'routine', createdAt: now, requesterId: principal.sub, ...(b.deadline !== undefined ? { deadline: b.deadline } : {}) };
  let submission: RequestSubmission;
  if (b.kind === 'delivery') {
    const pickup = point(deps.sites, b.pickup, b.pickupSiteId, 'pickup')!;
    submission = { ...base, kind: 'delivery', pickup, dropoff: b.dropoff, ...opt({ readyAt: b.readyAt, coldChain: b.coldChain, load: b.load }) };
  } else if (b.kind === 'rescue') {
    submission = { ...base, kind: 'rescue', pickup: b.pickup, ...opt({ dropoff: b.dropoff, readyAt: b.readyAt, pickupBy: b.pickupBy, coldChain: b.coldChain, load: b.load }) };
  } else {
    const hospital = point(deps.sites, b.dropoff, b.hospitalSiteId, 'hospital')!;
    submission = { ...base, kind: 'blood', dropoff: hospital, blood: { product: b.product, bloodType: b.bloodType, units: b.units } };
  }
  const where = (p: SubmitPlan): { pickup: { lat: number; lng: number }; dropoff: { lat: number; lng: number } } => {
    const first = p.sources?.[0];
    const pickup = submission.kind === 'blood' ? (first ? { lat: first.lat, lng: first.lng } : submission.dropoff) : submission.pickup;
    const dropoff = submission.dropoff ?? (p.recipient ? { lat: p.recipient.lat, lng: p.recipient.lng } : undefined);
    return { pickup, dropoff: dropoff ?? pickup };
  };
  const plan = deps.pump.submit(submission, (p) => ({ ...where(p), plan: planBody(p), ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) }));
  try {
    await deps.pump.committed();
  } catch (err) {
    try {
      deps.pump.cancel(id, 'store-unavailable'); // not acknowledged: its reservations go back; the cancel is stored after the create
    } catch {
      // already terminal
    }
    throw storeDown(err);
  }
  const { pickup, dropoff } = where(plan);
  const booked: BookedRequest = {
    id, kind: b.kind, owner: principal.sub, urgency: base.urgency, createdAt: now, legs: plan.legs, pickup, dropoff,
  };
  deps.book.record(booked);
  deps.metrics.requestsCreated.inc({ kind: b.kind, urgency: base.urgency });
  if (plan.sources) deps.metrics.bloodUnitsReserved.inc(plan.sources.reduce((n, s) => n + s.count, 0));
  return { status: 201, body: { ...requestView(deps, booked), plan: planBody(plan) } };
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

/** The request if the caller may see it; another requester's request looks missing (ids are not probeable). */
export function ownedRequest(book: RequestBook, id: string, p: Principal): BookedRequest {
  const r = book.get(id);
  if (r === undefined || (p.role === 'requester' && r.owner !== p.sub)) throw new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
  return r;
}

/** A request as its owner and dispatchers see it. */
export function requestView(deps: HttpDeps, r: BookedRequest): Record<string, unknown> {
  const live = deps.hub.trackFrame(r.id);
  const summary = deps.pump.summary(r.id);
  const legs = (summary?.legs ?? []).map((l) => ({ id: l.id, status: l.status, ...opt({ courierId: l.courierId, offerId: l.offerId, siteId: l.siteId }) }));
  const assigned = legs.find((l) => l.courierId !== undefined && (l.status === 'assigned' || l.status === 'picked_up'));
  return {
    id: r.id, kind: r.kind, status: summary?.status ?? 'pending', urgency: r.urgency, createdAt: r.createdAt, pickup: r.pickup, dropoff: r.dropoff, legs,
    ...(assigned ? { assignment: { courierId: assigned.courierId, offerId: assigned.offerId } } : {}),
    ...(live?.courier ? { courier: live.courier } : {}),
    ...(live?.eta !== undefined ? { eta: live.eta } : {}),
  };
}
