/**
 * The lifecycle of requests, couriers and offers (PRODUCT.md §3) as one explicit state machine. No I/O and
 * no timers: every verb takes `now` (ms) and the caller runs `expire(now)` / `failOverdue(now)` on its tick.
 *
 *   addRequest ─► pending ──offer──► offered ──accept──► assigned ──progress──► picked_up ──progress──► delivered
 *                   ▲                   │
 *                   └──decline / expire─┘    cancel: any non-terminal → cancelled (revokes offer, frees courier)
 *                                            fail:   pending | offered → failed     (both release reservations)
 *
 *   courier:  offline ⇄ available ⇄ offered ──accept──► busy ──last delivered / cancel──► available
 *
 * Stacks (PRODUCT §2): offerStack gives one courier several requests at once, one offer each sharing a stackId;
 * answering one answers the stack. A courier carries every assignment of its stack and is busy until the last
 * ends. An offer with `{ busy: true }` reaches a busy courier (en route): it stays busy, holding the offer.
 *
 * Every transition is a LifecycleEvent with a strictly increasing `seq`. A rejected call ({ ok: false })
 * changes nothing; a programmer's mistake (bad `now`, unknown kind) throws. This file holds the transitions;
 * the records they move, their undo-recorded updates and the read views are in lifecycle-records.ts.
 */
import type { CourierStatus } from '../engine/courier-attributes.js';
import type { UndoLog } from './undo-log.js';
import { isTerminal } from './request-vocabulary.js';
import { type AssignmentRecord, type CourierRecord, LifecycleRecords, type OfferRecord, type RequestRecord, assertId, assertNewRequest, copyRefs, newRequestRecord, refuseResponse } from './lifecycle-records.js';
import type { RequestStatus, ReservationRef, NewRequest, Offer, Assignment, LifecycleEventBody, LifecycleEvent, Rejected, Done, AddRequestReason, AttachReason, CourierStatusReason, OfferReason, RespondReason, CancelReason, FailReason, ProgressReason, ForgetReason } from './lifecycle-events.js';

export type { RequestKind, Urgency, RequestStatus, OfferStatus, ReservationRef, NewRequest, RequestView, CourierView, Offer, Assignment, LifecycleEventBody, LifecycleEvent, Rejected, Done, AddRequestReason, AttachReason, CourierStatusReason, OfferReason, RespondReason, CancelReason, FailReason, ProgressReason, ForgetReason } from './lifecycle-events.js';

/** OFFER_TTL default: 15 s is long enough to read and tap an offer, short enough that a silent phone does not stall a request. */
export const DEFAULT_OFFER_TTL_MS = 15_000;

/** One request of a stack offer, in stop order. */
export interface StackItem {
  requestId: string;
  /** The driver frame's payload for this request. */
  details?: Readonly<Record<string, unknown>>;
  /** Recovery only: the id of the offer the courier accepted before the restart. */
  restoredId?: string;
}

/** How an offer may be made. */
export interface OfferOptions {
  /** May go to a busy courier (an en-route leg, or a stack's next leg restored): what it carries stays. */
  busy?: boolean;
  /** Recovery: an assignment the courier accepted before a restart comes back even past the request's deadline. */
  restore?: boolean;
  /** Recovery: the stack a restored offer belonged to (its offers come back one at a time). */
  stackId?: string;
}

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
export class RequestLifecycle extends LifecycleRecords {
  readonly offerTtlMs: number;
  private readonly onEvent: ((event: LifecycleEvent) => void) | undefined;
  private readonly offerIdPrefix: string;
  private seq = 0;
  private created = 0;
  private offerCount = 0;

  constructor(options: RequestLifecycleOptions = {}) {
    super(options.undo);
    const ttl = options.offerTtlMs ?? DEFAULT_OFFER_TTL_MS;
    if (!(typeof ttl === 'number' && Number.isFinite(ttl) && ttl > 0)) {
      throw new Error(`offerTtlMs must be a positive finite number of ms, got ${String(ttl)}`);
    }
    this.offerTtlMs = ttl;
    this.onEvent = options.onEvent;
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
    const r = newRequestRecord(req, now, this.created++);
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
      this.couriers.set(courierId, { id: courierId, status, updatedAt: now, offers: [], assignments: [] });
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
    for (const o of c.offers) this.withdraw(o, 'revoked', now, out, true);
    if (c.status !== 'offline') this.moveCourier(c, 'offline', now, out);
    return this.done(out);
  }

  /**
   * Offers a pending request to an available courier; the offer lives until `now + offerTtlMs`. `restoredId` is
   * for recovery only: an assignment that comes back keeps the id of the offer its courier accepted.
   */
  offer(requestId: string, courierId: string, now: number, details?: Readonly<Record<string, unknown>>, restoredId?: string, options: OfferOptions = {}): Done<{ offer: Offer }> | Rejected<OfferReason> {
    const res = this.offerStack([{ requestId, details, restoredId }], courierId, now, options);
    return res.ok ? { ok: true, events: res.events, offer: res.offers[0] } : res;
  }

  /**
   * Offers several pending requests to one courier as one stack (PRODUCT §2 "Stacking"), in stop order: one offer
   * per request, sharing a stackId and an expiry, so the courier answers them together — accepting or declining
   * any one answers all that are still live. One item is a plain offer. Refused as a whole when any item is.
   */
  offerStack(items: readonly StackItem[], courierId: string, now: number, options: OfferOptions = {}): Done<{ offers: Offer[] }> | Rejected<OfferReason> {
    assertTime(now);
    if (items.length === 0) throw new Error('offerStack needs at least one request');
    if (new Set(items.map((i) => i.requestId)).size !== items.length) throw new Error('offerStack: a request appears twice in one stack');
    const c = this.couriers.get(courierId);
    const records: RequestRecord[] = [];
    for (const item of items) {
      const r = this.requests.get(item.requestId);
      if (!r) return reject('unknown-request');
      if (r.status !== 'pending') return reject('request-not-pending');
      if (r.deadline !== undefined && now > r.deadline && options.restore !== true) return reject('past-deadline');
      if (c !== undefined && r.excluded.has(courierId)) return reject('declined-before');
      if (item.restoredId !== undefined && this.offers.has(item.restoredId)) return reject('offer-id-taken');
      records.push(r);
    }
    if (!c) return reject('unknown-courier');
    if (c.status === 'offline') return reject('courier-offline');
    if (c.offers.length > 0) return reject('courier-has-offer');
    if (c.status === 'busy' && options.busy !== true) return reject('courier-busy');
    const out: LifecycleEvent[] = [];
    const made: OfferRecord[] = [];
    let stackId: string | undefined;
    this.saveCourier(c);
    for (let i = 0; i < items.length; i++) {
      const r = records[i];
      const details = items[i].details;
      const o: OfferRecord = {
        id: items[i].restoredId ?? `${this.offerIdPrefix}${++this.offerCount}`, requestId: r.id, courierId, createdAt: now, expiresAt: now + this.offerTtlMs,
        status: 'live', closedAt: undefined, details: details === undefined ? undefined : Object.freeze({ ...details }), stackId: undefined,
      };
      if (items.length > 1) o.stackId = stackId ??= o.id;
      else if (options.stackId !== undefined) o.stackId = options.stackId;
      // a stack's id rides in its details too, so a restart that restores its legs one by one keeps it
      if (o.stackId !== undefined && details !== undefined && details.stackId !== o.stackId) o.details = Object.freeze({ ...details, stackId: o.stackId });
      this.saveRequest(r);
      this.offers.set(o.id, o);
      this.live.set(o.id, o);
      r.offer = o;
      r.offerIds.push(o.id);
      made.push(o);
      this.undo?.record(() => {
        this.offers.delete(o.id);
        this.live.delete(o.id);
        r.offerIds.pop();
      });
      this.emit(out, now, { type: 'offer.created', offerId: o.id, requestId: r.id, courierId, expiresAt: o.expiresAt, details: o.details, ...(o.stackId === undefined ? {} : { stackId: o.stackId }) });
      this.moveRequest(r, 'offered', now);
      this.emit(out, now, { type: 'request.offered', requestId: r.id, courierId, offerId: o.id });
    }
    c.offers = made;
    this.settleCourier(c, now, out);
    return { ...this.done(out), offers: made.map((o) => ({ ...o })) };
  }

  /** The courier takes its offer — and every live offer of its stack: requests → assigned, courier → busy. */
  accept(offerId: string, courierId: string, now: number): Done<{ assignment: Assignment; assignments: Assignment[] }> | Rejected<RespondReason> {
    assertTime(now);
    const o = this.offers.get(offerId);
    const refusal = refuseResponse(o, courierId, now);
    if (refusal || !o) return reject(refusal ?? 'unknown-offer');
    const c = this.couriers.get(o.courierId)!;
    const out: LifecycleEvent[] = [];
    const made: AssignmentRecord[] = [];
    for (const x of this.stackOf(o, c)) {
      const r = this.requests.get(x.requestId)!;
      this.closeOffer(x, 'accepted', now);
      const a: AssignmentRecord = { requestId: r.id, courierId, offerId: x.id, assignedAt: now, pickedUpAt: undefined, deliveredAt: undefined, endedAt: undefined };
      this.saveRequest(r);
      r.assignment = a;
      made.push(a);
      this.emit(out, now, { type: 'offer.accepted', offerId: x.id, requestId: r.id, courierId });
      this.moveRequest(r, 'assigned', now);
      this.emit(out, now, { type: 'request.assigned', requestId: r.id, courierId, offerId: x.id });
    }
    this.saveCourier(c);
    c.assignments = [...c.assignments, ...made];
    this.settleCourier(c, now, out);
    const assignments = made.map((a) => ({ ...a }));
    return { ...this.done(out), assignment: assignments.find((a) => a.offerId === offerId)!, assignments };
  }

  /** The courier turns its offer (and the rest of its stack) down: requests → pending without it, courier → available. */
  decline(offerId: string, courierId: string, now: number): Done | Rejected<RespondReason> {
    assertTime(now);
    const o = this.offers.get(offerId);
    const refusal = refuseResponse(o, courierId, now);
    if (refusal || !o) return reject(refusal ?? 'unknown-offer');
    const out: LifecycleEvent[] = [];
    for (const x of this.stackOf(o, this.couriers.get(o.courierId)!)) this.withdraw(x, 'declined', now, out, true);
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

  private emit(out: LifecycleEvent[], now: number, body: LifecycleEventBody): void {
    out.push(Object.freeze({ seq: ++this.seq, at: now, ...body }));
  }

  private done(out: LifecycleEvent[]): Done {
    if (this.onEvent) for (const e of out) this.onEvent(e);
    return { ok: true, events: out };
  }

  private moveCourier(c: CourierRecord, status: CourierStatus, now: number, out: LifecycleEvent[]): void {
    this.saveCourier(c);
    const previous = c.status;
    c.status = status;
    c.updatedAt = now;
    this.emit(out, now, { type: 'courier.status', courierId: c.id, status, previous });
  }

  /** Ends a live offer other than by acceptance; the courier is available again once it holds nothing else. */
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
    this.settleCourier(c, now, out);
  }

  private endAssignment(a: AssignmentRecord, now: number, out: LifecycleEvent[]): void {
    const c = this.couriers.get(a.courierId)!;
    this.saveAssignment(a);
    this.saveCourier(c);
    a.endedAt = now;
    c.assignments = c.assignments.filter((x) => x !== a);
    this.settleCourier(c, now, out);
  }

  /** The live offers answered together with `o`: its whole stack still live, or `o` alone. */
  private stackOf(o: OfferRecord, c: CourierRecord): OfferRecord[] {
    return o.stackId === undefined ? [o] : c.offers.filter((x) => x.stackId === o.stackId);
  }

  /** An on-shift courier's status follows what it holds: busy while it carries anything, offered while it holds offers, else available. */
  private settleCourier(c: CourierRecord, now: number, out: LifecycleEvent[]): void {
    if (c.status === 'offline') return;
    const status: CourierStatus = c.assignments.length > 0 ? 'busy' : c.offers.length > 0 ? 'offered' : 'available';
    if (status !== c.status) this.moveCourier(c, status, now, out);
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
}

function reject<R extends string>(reason: R): Rejected<R> {
  return { ok: false, reason };
}

/** True while a courier holds the request: assigned or picked up. */
export function isCarried(status: RequestStatus | undefined): boolean {
  return status === 'assigned' || status === 'picked_up';
}

function assertTime(now: number): void {
  if (typeof now !== 'number' || !Number.isFinite(now)) throw new Error(`now must be a finite time in ms since the epoch, got ${String(now)}`);
}

