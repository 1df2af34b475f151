/**
 * From a submitted request to the legs dispatch matches: a delivery or rescue is one leg (the rescue's
 * recipient chosen here when none is named), a blood request one leg per bank its units are allocated
 * (and reserved) from. Refusals are values; nothing is reserved when a submission is refused.
 */
import type { BloodProduct, RecipientType } from '../engine/blood-types.js';
import type { CellSpeeds } from '../engine/cell-speeds.js';
import type { Capability } from '../engine/courier-attributes.js';
import type { DonorIndex } from '../engine/donor-index.js';
import type { SiteIndex } from '../engine/site-index.js';
import { type AllocationFailure, type BloodNeed, type BloodSource, allocateBlood, bloodPickupLegs } from './blood-allocation.js';
import type { DispatchPolicy, DispatchRequest, LatLng, Urgency } from './dispatch-request.js';
import type { DonorCallout } from './donor-callout.js';
import type { ReservationRef } from './request-lifecycle.js';
import { type RescueRecipientFailure, chooseRescueRecipient } from './rescue-recipient.js';

/** Fields every submitted request carries. */
export interface SubmissionBase {
  id: string;
  urgency: Urgency;
  createdAt: number;
  requesterId: string;
  /** Latest acceptable arrival at the dropoff (ms). */
  deadline?: number;
}

/** A restaurant order: pickup at the restaurant when the food is ready. */
export interface DeliverySubmission extends SubmissionBase {
  kind: 'delivery';
  pickup: LatLng;
  dropoff: LatLng;
  readyAt?: number;
  coldChain?: boolean;
  load?: number;
}

/** Surplus food to a food bank or shelter; the engine picks the recipient when `dropoff` is omitted. */
export interface RescueSubmission extends SubmissionBase {
  kind: 'rescue';
  pickup: LatLng;
  dropoff?: LatLng;
  readyAt?: number;
  /** End of the pickup window (default createdAt + 2 h, PRODUCT.md §2). */
  pickupBy?: number;
  coldChain?: boolean;
  load?: number;
}

/** Units of blood for a hospital (the dropoff); the banks are chosen by allocation. */
export interface BloodSubmission extends SubmissionBase {
  kind: 'blood';
  dropoff: LatLng;
  blood: { product: BloodProduct; bloodType: RecipientType; units: number };
}

/** A domain request as the API (or a fixture) hands it over. */
export type RequestSubmission = DeliverySubmission | RescueSubmission | BloodSubmission;

/** Why a submission was refused; nothing is kept or reserved then. */
export type SubmitFailure = 'duplicate-request' | RescueRecipientFailure | AllocationFailure;

/** The immediate plan of an accepted submission. */
export interface SubmitPlan {
  ok: true;
  requestId: string;
  kind: RequestSubmission['kind'];
  /** Lifecycle request ids of the legs (the request id itself for delivery and rescue). */
  legs: string[];
  /** When the legs are due for matching: `now` for emergencies and greedy mode, the window's close otherwise. */
  dueAt: number;
  /** Rescue: the recipient the engine chose (absent when the submission named a dropoff). */
  recipient?: { siteId: string; lat: number; lng: number; distance: number; etaSeconds: number };
  /** Blood: the banks, one leg each, with the exact lots reserved. */
  sources?: BloodSource[];
  /** Blood: units no bank in reach could cover. */
  shortfall?: number;
  /** Blood: donors called when short. */
  callout?: DonorCallout;
}

/** What `submit` answers: the plan, or why not (with the call-out a blood shortfall triggered). */
export type SubmitResult = SubmitPlan | { ok: false; reason: SubmitFailure; shortfall?: number; callout?: DonorCallout };

/** What building legs reads: stock and recipients, donors for call-outs, the policy and learned speeds that time each trip. */
export interface LegDeps {
  sites: SiteIndex;
  donors: DonorIndex;
  policy: Readonly<DispatchPolicy>;
  speeds?: CellSpeeds;
}

/** The legs of a submission, or why it cannot be served. */
export function buildLegs(r: RequestSubmission, now: number, deps: LegDeps): Built | { ok: false; reason: SubmitFailure; shortfall?: number; callout?: DonorCallout } {
  if (r.kind === 'delivery') return buildDelivery(r);
  if (r.kind === 'rescue') return buildRescue(r, now, deps);
  if (r.kind === 'blood') return buildBlood(r, now, deps);
  throw new Error(`request kind must be delivery, rescue or blood, got '${String((r as { kind: unknown }).kind)}'`);
}

/** One lifecycle request: the whole of a delivery or rescue, one bank's share of a blood request. */
export interface Leg {
  id: string;
  parentId: string;
  dispatch: DispatchRequest;
  /** The bank of a blood leg. */
  siteId: string | undefined;
  /** The food bank / shelter the engine chose for a rescue. */
  recipientSiteId: string | undefined;
  reservations: ReservationRef[];
  /** True while the SiteIndex holds this leg's reservations (allocation → pickup or release). */
  held: boolean;
  releasedOnce: boolean;
}

/** Legs built from a submission, with what the submitter is told at once. */
export type Built = { ok: true; legs: Leg[]; plan: Partial<SubmitPlan> };

/** A fresh leg around its dispatch request. */
export function newLeg(parentId: string, dispatch: DispatchRequest): Leg {
  return { id: dispatch.id, parentId, dispatch, siteId: undefined, recipientSiteId: undefined, reservations: [], held: false, releasedOnce: false };
}

function baseLeg(r: DeliverySubmission | RescueSubmission, id: string, pickup: LatLng, dropoff: LatLng): DispatchRequest {
  const leg: DispatchRequest = { id, kind: r.kind, urgency: r.urgency, createdAt: r.createdAt, pickup, dropoff };
  if (r.deadline !== undefined) leg.deadline = r.deadline;
  const capabilities: Capability[] = r.coldChain === true ? ['cold_chain'] : [];
  if (capabilities.length > 0) leg.capabilities = capabilities;
  if (r.load !== undefined) leg.load = r.load;
  return leg;
}

function buildDelivery(r: DeliverySubmission): Built {
  const dispatch = baseLeg(r, r.id, r.pickup, r.dropoff);
  if (r.readyAt !== undefined) dispatch.readyAt = r.readyAt;
  return { ok: true, legs: [newLeg(r.id, dispatch)], plan: {} };
}

function buildRescue(r: RescueSubmission, now: number, deps: LegDeps): Built | { ok: false; reason: SubmitFailure } {
  const deadline = r.deadline ?? r.createdAt + FOOD_OUT_OF_CONTROL_MS;
  let dropoff = r.dropoff;
  let recipient: SubmitPlan['recipient'];
  if (dropoff === undefined) {
    const chosen = chooseRescueRecipient(deps.sites, r.pickup, r.load ?? 1, { now, deadline, policy: deps.policy, speeds: deps.speeds });
    if (!chosen.ok) return { ok: false, reason: chosen.reason };
    recipient = { siteId: chosen.siteId, lat: chosen.lat, lng: chosen.lng, distance: chosen.distance, etaSeconds: chosen.etaSeconds };
    dropoff = { lat: chosen.lat, lng: chosen.lng };
  }
  const dispatch = baseLeg(r, r.id, r.pickup, dropoff);
  dispatch.deadline = deadline;
  dispatch.pickupBy = r.pickupBy ?? r.createdAt + RESCUE_PICKUP_WINDOW_MS;
  dispatch.readyAt = r.readyAt;
  if (dispatch.readyAt === undefined) delete dispatch.readyAt;
  const leg = newLeg(r.id, dispatch);
  leg.recipientSiteId = recipient?.siteId;
  return { ok: true, legs: [leg], plan: recipient === undefined ? {} : { recipient } };
}

function buildBlood(r: BloodSubmission, now: number, deps: LegDeps): Built | { ok: false; reason: SubmitFailure; shortfall: number; callout?: DonorCallout } {
  const need: BloodNeed = {
    requestId: r.id, hospital: r.dropoff, product: r.blood.product, recipient: r.blood.bloodType, units: r.blood.units, urgency: r.urgency,
  };
  if (r.deadline !== undefined) need.deadline = r.deadline;
  const allocation = allocateBlood(deps.sites, need, { now, donors: deps.donors, policy: deps.policy, speeds: deps.speeds });
  const callout = allocation.ok === true ? undefined : allocation.callout;
  if (allocation.ok === false) return { ok: false, reason: allocation.reason, shortfall: allocation.shortfall, ...(callout === undefined ? {} : { callout }) };
  const legs = bloodPickupLegs(allocation, need, now).map((dispatch, i) => {
    const source = allocation.sources[i];
    const leg = newLeg(r.id, { ...dispatch, createdAt: r.createdAt });
    leg.siteId = source.siteId;
    leg.reservations = allocation.reservations.filter((x) => x.siteId === source.siteId);
    leg.held = leg.reservations.length > 0;
    return leg;
  });
  const plan: Partial<SubmitPlan> = { sources: allocation.sources, shortfall: allocation.shortfall };
  if (callout !== undefined) plan.callout = callout;
  return { ok: true, legs, plan };
}

/** A rescue's default pickup window: 2 hours (PRODUCT.md §2). */
const RESCUE_PICKUP_WINDOW_MS = 2 * 3_600_000;
/** Food out of temperature control: at most 4 hours (FDA Food Code). */
const FOOD_OUT_OF_CONTROL_MS = 4 * 3_600_000;
