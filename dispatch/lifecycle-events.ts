/**
 * The vocabulary of the request lifecycle (PRODUCT.md §3): statuses, what callers see of requests,
 * couriers, offers and assignments, the events every transition emits, and the refusals each verb may
 * answer with. Types only; the state machine is request-lifecycle.ts.
 */
import type { CourierStatus } from '../engine/courier-attributes.js';

import type { RequestKind, RequestStatus, Urgency } from './request-vocabulary.js';

export type { RequestKind, RequestStatus, Urgency } from './request-vocabulary.js';
export type OfferStatus = 'live' | 'accepted' | 'declined' | 'expired' | 'revoked';


/** Blood units held for a request; opaque here, handed back once in a `reservation.released` event. */
export interface ReservationRef {
  readonly siteId: string;
  readonly product: string;
  readonly bloodType: string;
  readonly expiresAt: number;
  readonly count: number;
}

/** What `addRequest` needs to know about a request. */
export interface NewRequest {
  id: string;
  kind: RequestKind;
  urgency: Urgency;
  deadline?: number;
  reservations?: readonly ReservationRef[];
}

/** A request as the lifecycle sees it (a copy; mutating it changes nothing). */
export interface RequestView {
  readonly id: string;
  readonly kind: RequestKind;
  readonly urgency: Urgency;
  readonly deadline: number | undefined;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly status: RequestStatus;
  /** The live offer, while `offered`. */
  readonly offerId: string | undefined;
  /** The assigned courier, kept after the assignment ends. */
  readonly courierId: string | undefined;
  readonly reservations: readonly ReservationRef[];
  /** Reservations already handed back (only ever for cancelled / failed requests). */
  readonly released: readonly ReservationRef[];
  readonly failReason: string | undefined;
  readonly cancelledBy: string | undefined;
}

/** A courier as the lifecycle sees it (a copy). */
export interface CourierView {
  readonly id: string;
  readonly status: CourierStatus;
  readonly updatedAt: number;
  /** The (first) live offer it holds. */
  readonly offerId: string | undefined;
  /** The (first) request it carries, while `busy`. */
  readonly requestId: string | undefined;
  /** Every live offer it holds: one, or a stack's. */
  readonly offerIds: readonly string[];
  /** Every request it carries: one, a stack's, or more with an en-route leg. */
  readonly requestIds: readonly string[];
}

/** One offer of one request to one courier. */
export interface Offer {
  readonly id: string;
  readonly requestId: string;
  readonly courierId: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly status: OfferStatus;
  readonly closedAt: number | undefined;
  /** Opaque payload for the driver's offer frame (pickup, dropoff, eta …). */
  readonly details: Readonly<Record<string, unknown>> | undefined;
  /** Offers made together as one stack share this id (the first offer's); undefined for a single offer. Answering one answers all. */
  readonly stackId: string | undefined;
}

/** The courier that accepted a request; `endedAt` is set once it is delivered or cancelled. */
export interface Assignment {
  readonly requestId: string;
  readonly courierId: string;
  readonly offerId: string;
  readonly assignedAt: number;
  readonly pickedUpAt: number | undefined;
  readonly deliveredAt: number | undefined;
  readonly endedAt: number | undefined;
}

/** The body of every transition; the emitted event adds `seq` and `at`. */
export type LifecycleEventBody =
  | { type: 'request.created'; requestId: string; kind: RequestKind; urgency: Urgency; deadline: number | undefined }
  | { type: 'request.offered' | 'request.assigned'; requestId: string; courierId: string; offerId: string }
  | { type: 'request.pending'; requestId: string; courierId: string; offerId: string; cause: 'declined' | 'expired' | 'revoked' }
  | { type: 'request.picked_up' | 'request.delivered'; requestId: string; courierId: string }
  | { type: 'request.cancelled'; requestId: string; courierId: string | undefined; by: string | undefined }
  | { type: 'request.failed'; requestId: string; courierId: string | undefined; reason: string }
  | { type: 'offer.created'; offerId: string; requestId: string; courierId: string; expiresAt: number; details: Readonly<Record<string, unknown>> | undefined; stackId?: string }
  | { type: 'offer.accepted' | 'offer.declined' | 'offer.expired' | 'offer.revoked'; offerId: string; requestId: string; courierId: string }
  | { type: 'courier.status'; courierId: string; status: CourierStatus; previous: CourierStatus | undefined }
  | { type: 'reservation.released'; requestId: string; reservations: readonly ReservationRef[]; cause: 'cancelled' | 'failed' };

/** One transition, numbered. */
export type LifecycleEvent = { readonly seq: number; readonly at: number } & LifecycleEventBody;

/** An expected refusal: ids and actions come from clients, so these are values, not throws. */
export interface Rejected<R extends string> {
  ok: false;
  reason: R;
}
/** A success with the events it produced (and whatever else the verb returns). */
export type Done<T = unknown> = { ok: true; events: LifecycleEvent[] } & T;

export type AddRequestReason = 'duplicate-request';
export type AttachReason = 'unknown-request' | 'request-terminal';
export type CourierStatusReason = 'courier-busy';
export type OfferReason =
  | 'unknown-request'
  | 'unknown-courier'
  | 'request-not-pending'
  | 'past-deadline'
  | 'declined-before'
  | 'courier-offline'
  | 'courier-busy'
  | 'courier-has-offer'
  | 'offer-id-taken';
export type RespondReason = 'unknown-offer' | 'not-offer-owner' | 'offer-expired' | 'offer-revoked' | 'offer-closed';
export type CancelReason = 'unknown-request' | 'request-terminal';
export type FailReason = 'unknown-request' | 'request-terminal' | 'request-assigned';
export type ProgressReason = 'unknown-request' | 'request-terminal' | 'request-not-assigned' | 'not-assigned-courier' | 'out-of-order';
export type ForgetReason = 'unknown-request' | 'request-not-terminal';
