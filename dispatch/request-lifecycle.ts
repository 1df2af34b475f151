/**
 * The lifecycle of requests, couriers and offers (PRODUCT.md §3) as one explicit state machine. No I/O and
 * no timers: every verb takes `now` (ms) and the caller runs `expire(now)` / `failOverdue(now)` on its tick.
 *
 *   addRequest ─► pending ──offer──► offered ──accept──► assigned ──progress──► picked_up ──progress──► delivered
 *                   ▲                   │
 *                   └──decline / expire─┘    cancel: any non-terminal → cancelled (revokes offer, frees courier)
 *                                            fail:   pending | offered → failed     (both release reservations)
 *
 *   courier:  offline ⇄ available ⇄ offered ──accept──► busy ──delivered / cancel──► available
 *
 * Every transition is a LifecycleEvent with a strictly increasing `seq`. A rejected call ({ ok: false })
 * changes nothing; a programmer's mistake (bad `now`, unknown kind) throws.
 */
import type { CourierStatus } from '../engine/courier-attributes.js';
import type { UndoLog } from './undo-log.js';
import { REQUEST_KINDS, isTerminal } from './request-vocabulary.js';
import type { RequestKind, Urgency, RequestStatus, OfferStatus, ReservationRef, NewRequest, RequestView, CourierView, Offer, Assignment, LifecycleEventBody, LifecycleEvent, Rejected, Done, AddRequestReason, AttachReason, CourierStatusReason, OfferReason, RespondReason, CancelReason, FailReason, ProgressReason, ForgetReason } from './lifecycle-events.js';

export type { RequestKind, Urgency, RequestStatus, OfferStatus, ReservationRef, NewRequest, RequestView, CourierView, Offer, Assignment, LifecycleEventBody, LifecycleEvent, Rejected, Done, AddRequestReason, AttachReason, CourierStatusReason, OfferReason, RespondReason, CancelReason, FailReason, ProgressReason, ForgetReason } from './lifecycle-events.js';

/** OFFER_TTL default: 15 s is long enough to read and tap an offer, short enough that a silent phone does not stall a request. */
export const DEFAULT_OFFER_TTL_MS = 15_000;

export interface RequestLifecycleOptions {
  /** OFFER_TTL in ms (default 15 000). */
  offerTtlMs?: number;
  /** Called with each event after the verb that produced it has finished changing state. */
  onEvent?: (event: LifecycleEvent) => void;
  /** Where every mutation records how to take it back (a commit the store refuses is undone). */
  undo?: UndoLog;
  /**
   * Prefix of offer ids (default 'offer-'): give each process its own (e.g. a random boot id) when offers are
   * stored, so ids stay unique across restarts.
   */
  offerIdPrefix?: string;
}

/** Holds every request, courier and offer and moves them through §3's transitions. */
export class RequestLifecycle {
  readonly offerTtlMs: number;
  private readonly onEvent: ((event: LifecycleEvent) => void) | undefined;
  private readonly undo: UndoLog | undefined;
  private readonly offerIdPrefix: string;
  private readonly requests = new Map<string, RequestRecord>();
  private readonly couriers = new Map<string, CourierRecord>();
  private readonly offers = new Map<string, OfferRecord>();
  /** Live offers in creation order; with one TTL that is also expiry order. */
  private readonly live = new Map<string, OfferRecord>();
  private readonly pending = new Set<RequestRecord>();
  private seq = 0;
  private created = 0;
  private offerCount = 0;

  constructor(options: RequestLifecycleOptions = {}) {
    const ttl = options.offerTtlMs ?? DEFAULT_OFFER_TTL_MS;
    if (!(typeof ttl === 'number' && Number.isFinite(ttl) && ttl > 0)) {
      throw new Error(`offerTtlMs must be a positive finite number of ms, got ${String(ttl)}`);
    }
    this.offerTtlMs = ttl;
    this.onEvent = options.onEvent;
    this.undo = options.undo;
    this.offerIdPrefix = options.offerIdPrefix ?? 'offer-';
  }

  /** Sequence number of the last event emitted (0 before any). */
  get lastSeq(): number {
    return this.seq;
  }

  /** Registers a pending request, with the blood units already reserved for it. */
  addRequest(req: NewRequest, now: number): Done | Rejected<AddRequestReason> {
    assertTime(now);
    assertNewRequest(req);
    if (this.requests.has(req.id)) return reject('duplicate-request');
    const r: RequestRecord = {
      id: req.id, kind: req.kind, urgency: req.urgency, deadline: req.deadline, createdAt: now, updatedAt: now,
      order: this.created++, status: 'pending', offer: undefined, assignment: undefined,
      reservations: copyRefs(req.reservations ?? []), released: 0, excluded: new Set(), offerIds: [],
      failReason: undefined, cancelledBy: undefined,
    };
    this.requests.set(r.id, r);
    this.pending.add(r);
    this.undo?.record(() => {
      this.requests.delete(r.id);
      this.pending.delete(r);
    });
    const out: LifecycleEvent[] = [];
    this.emit(out, now, { type: 'request.created', requestId: r.id, kind: r.kind, urgency: r.urgency, deadline: r.deadline });
    return this.done(out);
  }

  /** Adds reservations to a request; on a cancelled or failed one they are released at once. */
  attachReservations(requestId: string, refs: readonly ReservationRef[], now: number): Done | Rejected<AttachReason> {
    assertTime(now);
    const r = this.requests.get(requestId);
    if (!r) return reject('unknown-request');
    if (r.status === 'delivered') return reject('request-terminal');
    const before = r.reservations.length;
    r.reservations.push(...copyRefs(refs));
    this.undo?.record(() => {
      r.reservations.length = before;
    });
    const out: LifecycleEvent[] = [];
    if (r.status === 'cancelled' || r.status === 'failed') this.releaseReservations(r, r.status, now, out);
    return this.done(out);
  }

  /** A courier comes on or goes off shift; an unknown courier is registered. Going offline revokes a live offer. */
  setCourierStatus(courierId: string, status: 'available' | 'offline', now: number): Done | Rejected<CourierStatusReason> {
    assertTime(now);
    if (status !== 'available' && status !== 'offline') throw new Error(`status must be 'available' or 'offline', got '${String(status)}'`);
    assertId(courierId, 'courierId');
    const out: LifecycleEvent[] = [];
    const c = this.couriers.get(courierId);
    if (!c) {
      this.couriers.set(courierId, { id: courierId, status, updatedAt: now, offer: undefined, assignment: undefined });
      this.undo?.record(() => this.couriers.delete(courierId));
      this.emit(out, now, { type: 'courier.status', courierId, status, previous: undefined });
      return this.done(out);
    }
    if (status === 'available') {
      // offered and busy couriers are already on shift: nothing to change
      if (c.status === 'offline') this.moveCourier(c, 'available', now, out);
      return this.done(out);
    }
    if (c.status === 'busy') return reject('courier-busy');
    if (c.offer) this.withdraw(c.offer, 'revoked', now, out, true);
    if (c.status !== 'offline') this.moveCourier(c, 'offline', now, out);
    return this.done(out);
  }

  /**
   * Offers a pending request to an available courier; the offer lives until `now + offerTtlMs`. `restoredId` is
   * for recovery only: an assignment that comes back keeps the id of the offer its courier accepted.
   */
  offer(requestId: string, courierId: string, now: number, details?: Readonly<Record<string, unknown>>, restoredId?: string): Done<{ offer: Offer }> | Rejected<OfferReason> {
    assertTime(now);
    const r = this.requests.get(requestId);
    if (!r) return reject('unknown-request');
    const c = this.couriers.get(courierId);
    if (!c) return reject('unknown-courier');
    if (r.status !== 'pending') return reject('request-not-pending');
    if (r.deadline !== undefined && now > r.deadline) return reject('past-deadline');
    if (r.excluded.has(courierId)) return reject('declined-before');
    if (c.status === 'offline') return reject('courier-offline');
    if (c.status === 'busy') return reject('courier-busy');
    if (c.status === 'offered') return reject('courier-has-offer');
    if (restoredId !== undefined && this.offers.has(restoredId)) return reject('offer-id-taken');
    const o: OfferRecord = {
      id: restoredId ?? `${this.offerIdPrefix}${++this.offerCount}`, requestId, courierId, createdAt: now, expiresAt: now + this.offerTtlMs,
      status: 'live', closedAt: undefined, details: details === undefined ? undefined : Object.freeze({ ...details }),
    };
    this.saveRequest(r);
    this.saveCourier(c);
    this.offers.set(o.id, o);
    this.live.set(o.id, o);
    r.offer = o;
    r.offerIds.push(o.id);
    c.offer = o;
    this.undo?.record(() => {
      this.offers.delete(o.id);
      this.live.delete(o.id);
      r.offerIds.pop();
    });
    const out: LifecycleEvent[] = [];
    this.emit(out, now, { type: 'offer.created', offerId: o.id, requestId, courierId, expiresAt: o.expiresAt, details: o.details });
    this.moveRequest(r, 'offered', now);
    this.emit(out, now, { type: 'request.offered', requestId, courierId, offerId: o.id });
    this.moveCourier(c, 'offered', now, out);
    return { ...this.done(out), offer: { ...o } };
  }

  /** The courier takes its offer: request → assigned, courier → busy. */
  accept(offerId: string, courierId: string, now: number): Done<{ assignment: Assignment }> | Rejected<RespondReason> {
    assertTime(now);
    const o = this.offers.get(offerId);
    const refusal = refuseResponse(o, courierId, now);
    if (refusal || !o) return reject(refusal ?? 'unknown-offer');
    const r = this.requests.get(o.requestId)!;
    const c = this.couriers.get(o.courierId)!;
    this.closeOffer(o, 'accepted', now);
    const a: AssignmentRecord = { requestId: r.id, courierId, offerId, assignedAt: now, pickedUpAt: undefined, deliveredAt: undefined, endedAt: undefined };
    this.saveRequest(r);
    this.saveCourier(c);
    r.assignment = a;
    c.assignment = a;
    const out: LifecycleEvent[] = [];
    this.emit(out, now, { type: 'offer.accepted', offerId, requestId: r.id, courierId });
    this.moveRequest(r, 'assigned', now);
    this.emit(out, now, { type: 'request.assigned', requestId: r.id, courierId, offerId });
    this.moveCourier(c, 'busy', now, out);
    return { ...this.done(out), assignment: { ...a } };
  }

  /** The courier turns its offer down: request → pending without it, courier → available. */
  decline(offerId: string, courierId: string, now: number): Done | Rejected<RespondReason> {
    assertTime(now);
    const o = this.offers.get(offerId);
    const refusal = refuseResponse(o, courierId, now);
    if (refusal || !o) return reject(refusal ?? 'unknown-offer');
    const out: LifecycleEvent[] = [];
    this.withdraw(o, 'declined', now, out, true);
    return this.done(out);
  }

  /** Expires every live offer with `expiresAt <= now` (as a decline); returns the requests to re-dispatch. */
  expire(now: number): Done<{ requestIds: string[] }> {
    assertTime(now);
    const out: LifecycleEvent[] = [];
    const due = [...this.live.values()].filter((o) => o.expiresAt <= now).sort((a, b) => a.expiresAt - b.expiresAt);
    for (const o of due) this.withdraw(o, 'expired', now, out, true);
    return { ...this.done(out), requestIds: due.map((o) => o.requestId) };
  }

  /** Cancels a request in any non-terminal state: revokes its offer, frees its courier, releases its reservations. */
  cancel(requestId: string, now: number, by?: string): Done | Rejected<CancelReason> {
    assertTime(now);
    const r = this.requests.get(requestId);
    if (!r) return reject('unknown-request');
    if (isTerminal(r.status)) return reject('request-terminal');
    const out: LifecycleEvent[] = [];
    const courierId = r.offer?.courierId ?? (r.assignment ? r.assignment.courierId : undefined);
    if (r.offer) this.withdraw(r.offer, 'revoked', now, out, false);
    this.moveRequest(r, 'cancelled', now);
    r.cancelledBy = by;
    this.emit(out, now, { type: 'request.cancelled', requestId, courierId, by });
    if (r.assignment && r.assignment.endedAt === undefined) this.endAssignment(r.assignment, now, out);
    this.releaseReservations(r, 'cancelled', now, out);
    return this.done(out);
  }

  /** Fails a pending or offered request (no feasible courier or source before its deadline). */
  fail(requestId: string, now: number, reason: string): Done | Rejected<FailReason> {
    assertTime(now);
    if (typeof reason !== 'string' || reason === '') throw new Error('fail() needs a non-empty reason, e.g. "no-feasible-courier"');
    const r = this.requests.get(requestId);
    if (!r) return reject('unknown-request');
    if (isTerminal(r.status)) return reject('request-terminal');
    if (r.status === 'assigned' || r.status === 'picked_up') return reject('request-assigned');
    const out: LifecycleEvent[] = [];
    this.failRecord(r, now, reason, out);
    return this.done(out);
  }

  /** Fails every pending request whose deadline is before `now`; returns their ids. */
  failOverdue(now: number): Done<{ requestIds: string[] }> {
    assertTime(now);
    const out: LifecycleEvent[] = [];
    const overdue = this.sortedPending().filter((r) => r.deadline !== undefined && r.deadline < now);
    for (const r of overdue) this.failRecord(r, now, 'deadline-passed', out);
    return { ...this.done(out), requestIds: overdue.map((r) => r.id) };
  }

  /** The assigned courier reports pickup, then delivery (which frees it). */
  progress(requestId: string, courierId: string, status: 'picked_up' | 'delivered', now: number): Done | Rejected<ProgressReason> {
    assertTime(now);
    if (status !== 'picked_up' && status !== 'delivered') throw new Error(`progress status must be 'picked_up' or 'delivered', got '${String(status)}'`);
    const r = this.requests.get(requestId);
    if (!r) return reject('unknown-request');
    if (isTerminal(r.status)) return reject('request-terminal');
    const a = r.assignment;
    if (!a) return reject('request-not-assigned');
    if (a.courierId !== courierId) return reject('not-assigned-courier');
    if (r.status !== (status === 'picked_up' ? 'assigned' : 'picked_up')) return reject('out-of-order');
    const out: LifecycleEvent[] = [];
    this.saveAssignment(a);
    this.moveRequest(r, status, now);
    if (status === 'picked_up') {
      a.pickedUpAt = now;
      this.emit(out, now, { type: 'request.picked_up', requestId, courierId });
    } else {
      a.deliveredAt = now;
      this.emit(out, now, { type: 'request.delivered', requestId, courierId });
      this.endAssignment(a, now, out);
    }
    return this.done(out);
  }

  /** Drops a terminal request and its offers from memory (no event: nothing transitions). */
  forget(requestId: string): { ok: true } | Rejected<ForgetReason> {
    const r = this.requests.get(requestId);
    if (!r) return reject('unknown-request');
    if (!isTerminal(r.status)) return reject('request-not-terminal');
    for (const id of r.offerIds) this.offers.delete(id);
    this.requests.delete(requestId);
    return { ok: true };
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

  /** The live offer a courier holds, or undefined. */
  liveOfferOf(courierId: string): Offer | undefined {
    const o = this.couriers.get(courierId)?.offer;
    return o && { ...o };
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

  private emit(out: LifecycleEvent[], now: number, body: LifecycleEventBody): void {
    out.push(Object.freeze({ seq: ++this.seq, at: now, ...body }));
  }

  private done(out: LifecycleEvent[]): Done {
    if (this.onEvent) for (const e of out) this.onEvent(e);
    return { ok: true, events: out };
  }

  private moveRequest(r: RequestRecord, status: RequestStatus, now: number): void {
    this.saveRequest(r);
    r.status = status;
    r.updatedAt = now;
    if (status === 'pending') this.pending.add(r);
    else this.pending.delete(r);
  }

  private moveCourier(c: CourierRecord, status: CourierStatus, now: number, out: LifecycleEvent[]): void {
    this.saveCourier(c);
    const previous = c.status;
    c.status = status;
    c.updatedAt = now;
    this.emit(out, now, { type: 'courier.status', courierId: c.id, status, previous });
  }

  private closeOffer(o: OfferRecord, status: Exclude<OfferStatus, 'live'>, now: number): void {
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
    c.offer = undefined;
  }

  /** Ends a live offer other than by acceptance; the courier becomes available again. */
  private withdraw(o: OfferRecord, outcome: 'declined' | 'expired' | 'revoked', now: number, out: LifecycleEvent[], backToPending: boolean): void {
    const r = this.requests.get(o.requestId)!;
    const c = this.couriers.get(o.courierId)!;
    this.closeOffer(o, outcome, now);
    if (outcome !== 'revoked' && !r.excluded.has(c.id)) {
      r.excluded.add(c.id);
      this.undo?.record(() => r.excluded.delete(c.id));
    }
    this.emit(out, now, { type: `offer.${outcome}`, offerId: o.id, requestId: r.id, courierId: c.id });
    if (backToPending) {
      this.moveRequest(r, 'pending', now);
      this.emit(out, now, { type: 'request.pending', requestId: r.id, courierId: c.id, offerId: o.id, cause: outcome });
    }
    this.moveCourier(c, 'available', now, out);
  }

  private endAssignment(a: AssignmentRecord, now: number, out: LifecycleEvent[]): void {
    const c = this.couriers.get(a.courierId)!;
    this.saveAssignment(a);
    this.saveCourier(c);
    a.endedAt = now;
    c.assignment = undefined;
    this.moveCourier(c, 'available', now, out);
  }

  private failRecord(r: RequestRecord, now: number, reason: string, out: LifecycleEvent[]): void {
    const courierId = r.offer?.courierId;
    if (r.offer) this.withdraw(r.offer, 'revoked', now, out, false);
    this.moveRequest(r, 'failed', now);
    r.failReason = reason;
    this.emit(out, now, { type: 'request.failed', requestId: r.id, courierId, reason });
    this.releaseReservations(r, 'failed', now, out);
  }

  /** Hands back every reservation not yet released; each is released exactly once. */
  private releaseReservations(r: RequestRecord, cause: 'cancelled' | 'failed', now: number, out: LifecycleEvent[]): void {
    if (r.released === r.reservations.length) return;
    this.saveRequest(r);
    const reservations = Object.freeze(r.reservations.slice(r.released));
    r.released = r.reservations.length;
    this.emit(out, now, { type: 'reservation.released', requestId: r.id, reservations, cause });
  }

  /** Records how to restore a request's fields and its place among the pending (before they change). */
  private saveRequest(r: RequestRecord): void {
    if (this.undo === undefined) return;
    const was = { updatedAt: r.updatedAt, status: r.status, offer: r.offer, assignment: r.assignment, released: r.released, failReason: r.failReason, cancelledBy: r.cancelledBy };
    const pending = this.pending.has(r);
    this.undo.record(() => {
      Object.assign(r, was);
      if (pending) this.pending.add(r);
      else this.pending.delete(r);
    });
  }

  private saveCourier(c: CourierRecord): void {
    if (this.undo === undefined) return;
    const was = { status: c.status, updatedAt: c.updatedAt, offer: c.offer, assignment: c.assignment };
    this.undo.record(() => Object.assign(c, was));
  }

  private saveAssignment(a: AssignmentRecord): void {
    if (this.undo === undefined) return;
    const was = { pickedUpAt: a.pickedUpAt, deliveredAt: a.deliveredAt, endedAt: a.endedAt };
    this.undo.record(() => Object.assign(a, was));
  }

  private sortedPending(): RequestRecord[] {
    return [...this.pending].sort(
      (a, b) => URGENCY_RANK[a.urgency] - URGENCY_RANK[b.urgency] || a.createdAt - b.createdAt || a.order - b.order,
    );
  }
}

const URGENCY_RANK: Readonly<Record<Urgency, number>> = { emergency: 0, urgent: 1, routine: 2 };

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type OfferRecord = Mutable<Offer>;
type AssignmentRecord = Mutable<Assignment>;

interface RequestRecord {
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

interface CourierRecord {
  readonly id: string;
  status: CourierStatus;
  updatedAt: number;
  offer: OfferRecord | undefined;
  assignment: AssignmentRecord | undefined;
}

function reject<R extends string>(reason: R): Rejected<R> {
  return { ok: false, reason };
}

function refuseResponse(o: OfferRecord | undefined, courierId: string, now: number): RespondReason | undefined {
  if (!o) return 'unknown-offer';
  if (o.courierId !== courierId) return 'not-offer-owner';
  if (o.status === 'expired') return 'offer-expired';
  if (o.status === 'revoked') return 'offer-revoked';
  if (o.status !== 'live') return 'offer-closed';
  // live on [createdAt, expiresAt): expire(now) takes it at exactly expiresAt, so a reply then is too late
  if (now >= o.expiresAt) return 'offer-expired';
  return undefined;
}


/** True while a courier holds the request: assigned or picked up. */
export function isCarried(status: RequestStatus | undefined): boolean {
  return status === 'assigned' || status === 'picked_up';
}

function viewRequest(r: RequestRecord): RequestView {
  return {
    id: r.id, kind: r.kind, urgency: r.urgency, deadline: r.deadline, createdAt: r.createdAt, updatedAt: r.updatedAt,
    status: r.status, offerId: r.offer?.id, courierId: r.assignment?.courierId, reservations: r.reservations.slice(),
    released: r.reservations.slice(0, r.released), failReason: r.failReason, cancelledBy: r.cancelledBy,
  };
}

function viewCourier(c: CourierRecord): CourierView {
  return { id: c.id, status: c.status, updatedAt: c.updatedAt, offerId: c.offer?.id, requestId: c.assignment?.requestId };
}

function copyRefs(refs: readonly ReservationRef[]): ReservationRef[] {
  if (!Array.isArray(refs)) throw new Error('reservations must be an array of ReservationRef');
  return refs.map((ref) => {
    if (!(Number.isInteger(ref.count) && ref.count > 0) || !Number.isFinite(ref.expiresAt)) {
      throw new Error(`reservation at site '${ref.siteId}' needs a positive integer count and a finite expiresAt`);
    }
    return Object.freeze({ siteId: ref.siteId, product: ref.product, bloodType: ref.bloodType, expiresAt: ref.expiresAt, count: ref.count });
  });
}

function assertTime(now: number): void {
  if (typeof now !== 'number' || !Number.isFinite(now)) throw new Error(`now must be a finite time in ms since the epoch, got ${String(now)}`);
}

function assertId(id: string, what: string): void {
  if (typeof id !== 'string' || id === '') throw new Error(`${what} must be a non-empty string`);
}

function assertNewRequest(req: NewRequest): void {
  assertId(req.id, 'request id');
  if (!(REQUEST_KINDS as readonly string[]).includes(req.kind)) throw new Error(`request kind must be one of ${REQUEST_KINDS.join(', ')}, got '${String(req.kind)}'`);
  if (!Object.hasOwn(URGENCY_RANK, req.urgency)) throw new Error(`urgency must be emergency, urgent or routine, got '${String(req.urgency)}'`);
  if (req.deadline !== undefined && !Number.isFinite(req.deadline)) throw new Error(`deadline must be a finite time in ms, got ${String(req.deadline)}`);
}
