/**
 * The records a RequestLifecycle moves through its transitions, and the read-only views it hands out.
 *
 *   requests ─┬─ pending (dispatch order: urgency, then age)      couriers ── the live offers (one stack) and assignments each holds
 *             └─ offer ids ─► offers (every offer) ⊇ live (live offers, in creation = expiry order)
 *
 * Every update made here first records in the UndoLog how to put the old values back (save*, moveRequest,
 * closeOffer), so a commit the store refuses is undone exactly. Views are copies: callers never hold a record.
 */
import type { CourierStatus } from '../engine/courier-attributes.js';
import type { UndoLog } from './undo-log.js';
import { REQUEST_KINDS } from './request-vocabulary.js';
import type { RequestKind, Urgency, RequestStatus, OfferStatus, ReservationRef, NewRequest, RequestView, CourierView, Offer, Assignment, RespondReason } from './lifecycle-events.js';

/** Request, courier and offer records with their undo-recorded updates and read views; RequestLifecycle adds the transitions. */
export abstract class LifecycleRecords {
  protected readonly undo: UndoLog | undefined;
  protected readonly requests = new Map<string, RequestRecord>();
  protected readonly couriers = new Map<string, CourierRecord>();
  protected readonly offers = new Map<string, OfferRecord>();
  /** Live offers in creation order; with one TTL that is also expiry order. */
  protected readonly live = new Map<string, OfferRecord>();
  protected readonly pending = new Set<RequestRecord>();

  protected constructor(undo: UndoLog | undefined) {
    this.undo = undo;
  }

  /** The request, or undefined. */
  request(id: string): RequestView | undefined {
    const r = this.requests.get(id);
    return r && viewRequest(r);
  }

  /** The courier, or undefined. */
  courier(id: string): CourierView | undefined {
    const c = this.couriers.get(id);
    return c && viewCourier(c);
  }

  /** The offer (live or closed), or undefined. */
  offerById(id: string): Offer | undefined {
    const o = this.offers.get(id);
    return o && { ...o };
  }

  /** The live offer a courier holds (the first of its stack), or undefined. */
  liveOfferOf(courierId: string): Offer | undefined {
    const o = this.couriers.get(courierId)?.offers[0];
    return o && { ...o };
  }

  /** Every live offer a courier holds: one, or the offers of one stack, in stop order. */
  liveOffersOf(courierId: string): Offer[] {
    return (this.couriers.get(courierId)?.offers ?? []).map((o) => ({ ...o }));
  }

  /** The assignments a courier carries now, oldest first. */
  assignmentsOf(courierId: string): Assignment[] {
    return (this.couriers.get(courierId)?.assignments ?? []).map((a) => ({ ...a }));
  }

  /** Every offer ever made for a request, oldest first. */
  offersOf(requestId: string): Offer[] {
    const r = this.requests.get(requestId);
    return r ? r.offerIds.map((id) => ({ ...this.offers.get(id)! })) : [];
  }

  /** Every live offer, oldest first. */
  liveOffers(): Offer[] {
    return [...this.live.values()].map((o) => ({ ...o }));
  }

  /** Pending requests in dispatch order: emergency, urgent, routine; oldest first within each. */
  pendingRequests(): RequestView[] {
    return this.sortedPending().map(viewRequest);
  }

  /** The assignment of a request (also after it ended), or undefined. */
  assignmentOf(requestId: string): Assignment | undefined {
    const a = this.requests.get(requestId)?.assignment;
    return a && { ...a };
  }

  /** Recovery: a courier that declined this request before the restart is not offered it again. */
  restoreExclusion(requestId: string, courierId: string): boolean {
    const r = this.requests.get(requestId);
    if (r === undefined) return false;
    r.excluded.add(courierId);
    return true;
  }

  /** Couriers that declined or let expire an offer of this request; re-dispatch goes without them. */
  excludedCouriers(requestId: string): string[] {
    return [...(this.requests.get(requestId)?.excluded ?? [])];
  }

  /** Every request, in creation order. */
  allRequests(): RequestView[] {
    return [...this.requests.values()].map(viewRequest);
  }

  /** Every courier, in registration order. */
  allCouriers(): CourierView[] {
    return [...this.couriers.values()].map(viewCourier);
  }

  /** Moves a request to `status`, in or out of the pending set; no event (the caller emits it). */
  protected moveRequest(r: RequestRecord, status: RequestStatus, now: number): void {
    this.saveRequest(r);
    r.status = status;
    r.updatedAt = now;
    if (status === 'pending') this.pending.add(r);
    else this.pending.delete(r);
  }

  /** Closes an offer (accepted, declined, expired, revoked): it leaves the live set, request and courier. */
  protected closeOffer(o: OfferRecord, status: Exclude<OfferStatus, 'live'>, now: number): void {
    const r = this.requests.get(o.requestId)!;
    const c = this.couriers.get(o.courierId)!;
    this.saveRequest(r);
    this.saveCourier(c);
    const was = { status: o.status, closedAt: o.closedAt, live: this.live.has(o.id) };
    this.undo?.record(() => {
      o.status = was.status;
      o.closedAt = was.closedAt;
      if (was.live) this.live.set(o.id, o);
    });
    o.status = status;
    o.closedAt = now;
    this.live.delete(o.id);
    r.offer = undefined;
    c.offers = c.offers.filter((x) => x !== o);
  }

  /** Records how to restore a request's fields and its place among the pending (before they change). */
  protected saveRequest(r: RequestRecord): void {
    if (this.undo === undefined) return;
    const was = { updatedAt: r.updatedAt, status: r.status, offer: r.offer, assignment: r.assignment, released: r.released, failReason: r.failReason, cancelledBy: r.cancelledBy };
    const pending = this.pending.has(r);
    this.undo.record(() => {
      Object.assign(r, was);
      if (pending) this.pending.add(r);
      else this.pending.delete(r);
    });
  }

  /** Records how to restore a courier's fields (before they change); its lists are replaced, never edited, so keeping them is enough. */
  protected saveCourier(c: CourierRecord): void {
    if (this.undo === undefined) return;
    const was = { status: c.status, updatedAt: c.updatedAt, offers: c.offers, assignments: c.assignments };
    this.undo.record(() => Object.assign(c, was));
  }

  /** Records how to restore an assignment's timestamps (before they change). */
  protected saveAssignment(a: AssignmentRecord): void {
    if (this.undo === undefined) return;
    const was = { pickedUpAt: a.pickedUpAt, deliveredAt: a.deliveredAt, endedAt: a.endedAt };
    this.undo.record(() => Object.assign(a, was));
  }

  /** Pending records in dispatch order: urgency, then creation time, then creation order. */
  protected sortedPending(): RequestRecord[] {
    return [...this.pending].sort(
      (a, b) => URGENCY_RANK[a.urgency] - URGENCY_RANK[b.urgency] || a.createdAt - b.createdAt || a.order - b.order,
    );
  }
}

/** An offer as the lifecycle holds it. */
export type OfferRecord = Mutable<Offer>;
/** An assignment as the lifecycle holds it. */
export type AssignmentRecord = Mutable<Assignment>;

/** A request as the lifecycle holds it. */
export interface RequestRecord {
  readonly id: string;
  readonly kind: RequestKind;
  readonly urgency: Urgency;
  readonly deadline: number | undefined;
  readonly createdAt: number;
  /** Creation counter: breaks ties between requests created in the same ms. */
  readonly order: number;
  updatedAt: number;
  status: RequestStatus;
  offer: OfferRecord | undefined;
  assignment: AssignmentRecord | undefined;
  reservations: ReservationRef[];
  /** reservations[0, released) have been handed back. */
  released: number;
  excluded: Set<string>;
  offerIds: string[];
  failReason: string | undefined;
  cancelledBy: string | undefined;
}

/** A courier as the lifecycle holds it. */
export interface CourierRecord {
  readonly id: string;
  status: CourierStatus;
  updatedAt: number;
  /** Live offers: none, one, or the offers of one stack (which share a stackId), in stop order. Replaced, never edited. */
  offers: readonly OfferRecord[];
  /** Assignments not yet ended, oldest first (more than one for a stack or an en-route leg). Replaced, never edited. */
  assignments: readonly AssignmentRecord[];
}

/** A fresh pending request record (call assertNewRequest first); throws on malformed reservations. */
export function newRequestRecord(req: NewRequest, now: number, order: number): RequestRecord {
  return {
    id: req.id, kind: req.kind, urgency: req.urgency, deadline: req.deadline, createdAt: now, updatedAt: now,
    order, status: 'pending', offer: undefined, assignment: undefined,
    reservations: copyRefs(req.reservations ?? []), released: 0, excluded: new Set(), offerIds: [],
    failReason: undefined, cancelledBy: undefined,
  };
}

/** Throws unless `req` is a well-formed request (a programmer's mistake otherwise). */
export function assertNewRequest(req: NewRequest): void {
  assertId(req.id, 'request id');
  if (!(REQUEST_KINDS as readonly string[]).includes(req.kind)) throw new Error(`request kind must be one of ${REQUEST_KINDS.join(', ')}, got '${String(req.kind)}'`);
  if (!Object.hasOwn(URGENCY_RANK, req.urgency)) throw new Error(`urgency must be emergency, urgent or routine, got '${String(req.urgency)}'`);
  if (req.deadline !== undefined && !Number.isFinite(req.deadline)) throw new Error(`deadline must be a finite time in ms, got ${String(req.deadline)}`);
}

/** Throws unless `id` is a non-empty string. */
export function assertId(id: string, what: string): void {
  if (typeof id !== 'string' || id === '') throw new Error(`${what} must be a non-empty string`);
}

/** Validated, frozen copies of reservations; throws on a malformed one. */
export function copyRefs(refs: readonly ReservationRef[]): ReservationRef[] {
  if (!Array.isArray(refs)) throw new Error('reservations must be an array of ReservationRef');
  return refs.map((ref) => {
    if (!(Number.isInteger(ref.count) && ref.count > 0) || !Number.isFinite(ref.expiresAt)) {
      throw new Error(`reservation at site '${ref.siteId}' needs a positive integer count and a finite expiresAt`);
    }
    return Object.freeze({ siteId: ref.siteId, product: ref.product, bloodType: ref.bloodType, expiresAt: ref.expiresAt, count: ref.count });
  });
}

/** Why a courier's answer to this offer is refused, or undefined when it may answer now. */
export function refuseResponse(o: OfferRecord | undefined, courierId: string, now: number): RespondReason | undefined {
  if (!o) return 'unknown-offer';
  if (o.courierId !== courierId) return 'not-offer-owner';
  if (o.status === 'expired') return 'offer-expired';
  if (o.status === 'revoked') return 'offer-revoked';
  if (o.status !== 'live') return 'offer-closed';
  // live on [createdAt, expiresAt): expire(now) takes it at exactly expiresAt, so a reply then is too late
  if (now >= o.expiresAt) return 'offer-expired';
  return undefined;
}

// dispatch order: an emergency goes before anything urgent, urgent before routine
const URGENCY_RANK: Readonly<Record<Urgency, number>> = { emergency: 0, urgent: 1, routine: 2 };

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function viewRequest(r: RequestRecord): RequestView {
  return {
    id: r.id, kind: r.kind, urgency: r.urgency, deadline: r.deadline, createdAt: r.createdAt, updatedAt: r.updatedAt,
    status: r.status, offerId: r.offer?.id, courierId: r.assignment?.courierId, reservations: r.reservations.slice(),
    released: r.reservations.slice(0, r.released), failReason: r.failReason, cancelledBy: r.cancelledBy,
  };
}

function viewCourier(c: CourierRecord): CourierView {
  return {
    id: c.id, status: c.status, updatedAt: c.updatedAt, offerId: c.offers[0]?.id, requestId: c.assignments[0]?.requestId,
    offerIds: c.offers.map((o) => o.id), requestIds: c.assignments.map((a) => a.requestId),
  };
}
