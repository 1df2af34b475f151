/**
 * The dispatch loop of one deployment: domain requests in, offers out, every state change as an event.
 * No timers and no I/O: the caller passes `now` (ms) to every verb and decides when to tick.
 *
 *   submit(request) ── delivery ──────────────────────────────────────────► one leg
 *        │           ── rescue ── chooseRescueRecipient (no dropoff given) ► one leg
 *        │           ── blood ─── allocateBlood (FEFO, reserved, call-out) ► one leg per bank
 *        ▼
 *   RequestParents.add(parent, legs) ─► RequestLifecycle.addRequest(leg) ──► pending ──► BatchSchedule
 *                                            (window — emergency: at once; greedy: at once; batched: windowMs)
 *                                                        │
 *   takeBatch(now) ── snapshot of AVAILABLE couriers within policy.radius of a due pickup + due legs (exclude = decliners) ──► planner (inline or worker)
 *                                                                                            │ DispatchPlan
 *   applyPlan(plan, now) ◄──────────────────────────────────────────────────────────────────┘
 *        │ state changed since the snapshot? skip, leg waits for the next batch; no courier? parked retryMs
 *        ▼
 *   lifecycle.offer ─► accept / decline / expire / cancel / progress ─► events ─► CourierIndex status,
 *                                                 StockEffects (SiteIndex issue / release / occupancy),
 *                                                 BatchSchedule (wait again, unpark), RequestParents (blood.status)
 *
 * Legs (request-parents.ts): a blood request served by several banks is one parent with one lifecycle request
 * per bank (`<requestId>/<siteId>`, as bloodPickupLegs names them), each holding the reservations of its bank,
 * so the lifecycle's one-courier-per-request rule holds per leg. The parent's status derives from its legs:
 * the least advanced live leg (pending < offered < assigned < picked_up < delivered); cancelled when every
 * leg is cancelled; failed when no leg is live and at least one failed. Delivery and rescue requests are
 * their own single leg (leg id = request id). `parents` is the one answer to "which request is this leg of"
 * for the API's book and the store's journal.
 *
 * Reservations (stock-effects.ts): held from allocation until the leg is picked up (SiteIndex.issueUnits takes
 * them off the shelf) or released once through the lifecycle's `reservation.released` (cancel / failure before
 * pickup). A release after pickup is ignored: those units are in the courier's box, not on the bank's shelf.
 *
 * Every mutation is recorded in one UndoLog, so drainTransition's rollback takes a refused commit back exactly.
 */
import type { CourierStatus } from '../engine/courier-attributes.js';
import type { CellSpeeds } from '../engine/cell-speeds.js';
import type { CourierIndex } from '../engine/courier-index.js';
import { CourierSnapshot, writeCourierSnapshot } from '../engine/courier-snapshot.js';
import { CapabilityDemand, DEFAULT_SCARCITY, pricedPolicy } from './scarcity.js';
import type { DonorIndex } from '../engine/donor-index.js';
import type { SiteIndex } from '../engine/site-index.js';
import { BatchSchedule, type DispatchBatch, type SyncPlanner, inlinePlanner } from './batch-schedule.js';
import type { DispatchPlan, DispatchPolicy, DispatchRequest, LatLng, PlannedAssignment } from './dispatch-request.js';
import { type Assignment, type CancelReason, type CourierStatusReason, type Done, type LifecycleEvent, type Offer, type ProgressReason, type Rejected, type RespondReason, RequestLifecycle } from './request-lifecycle.js';
import { checkInvariants as checkLifecycleInvariants } from './lifecycle-invariants.js';
import { type BloodStatusEvent, type ParentLookup, RequestParents, type RequestSummary } from './request-parents.js';
import { StockEffects, type StockCounters } from './stock-effects.js';
import { type Leg, type RequestSubmission, type SubmitResult, buildLegs } from './submission-legs.js';
import { type Rollback, UndoLog } from './undo-log.js';
import { stackDetails } from './offer-details.js';
import { type EnRouteCourier, type EnRouteView, enRouteCourierOf, planEnRoute } from './en-route.js';

export type { StackLeg, StackStop } from './offer-details.js';
export type { BloodSubmission, DeliverySubmission, RescueSubmission, RequestSubmission, SubmissionBase, SubmitFailure, SubmitPlan, SubmitResult } from './submission-legs.js';
export { type BloodStatusEvent, type ParentLookup, type RequestSummary, deriveStatus } from './request-parents.js';
export { DEFAULT_RETRY_MS, type DispatchBatch, type SyncPlanner, inlinePlanner } from './batch-schedule.js';

/** Everything the API streams: lifecycle transitions (offers included) and blood parents' status. */
export type DispatchEvent = LifecycleEvent | BloodStatusEvent;

/** Construction: the indexes the loop works on (owned by the caller) and the deployment's policy. */
export interface DispatchLoopOptions {
  couriers: CourierIndex;
  sites: SiteIndex;
  donors: DonorIndex;
  speeds?: CellSpeeds;
  policy: DispatchPolicy;
  /** OFFER_TTL for the lifecycle the loop creates (default 15 s). */
  offerTtlMs?: number;
  /** Prefix of offer ids (RequestLifecycleOptions.offerIdPrefix); one of its own per process when offers are stored. */
  offerIdPrefix?: string;
  /** How long a leg no courier could take sits out before it is matched again, unless a courier becomes available first (default DEFAULT_RETRY_MS). */
  retryMs?: number;
}

/** Counters for monitoring and benchmarks (units issued, released and missing: StockCounters). */
export interface DispatchLoopStats extends StockCounters {
  submitted: number;
  refused: number;
  batches: number;
  offers: number;
  /** Planned assignments skipped because the courier or leg changed since the snapshot. */
  staleAssignments: number;
}

/** Orchestrates one deployment: submissions, batch window, offers, lifecycle, index statuses, blood stock. */
export class DispatchLoop {
  readonly lifecycle: RequestLifecycle;
  readonly policy: DispatchPolicy;
  /** Which request each leg belongs to (read-only; the book and the journal ask it). */
  readonly parents: ParentLookup;
  /** Learned cell speeds every ETA of this deployment is timed with (travel-time.ts); undefined: vehicle speeds only. */
  readonly speeds: CellSpeeds | undefined;
  private readonly couriers: CourierIndex;
  private readonly sites: SiteIndex;
  private readonly donors: DonorIndex;
  /** How to take back what happened since the last drain (a commit the store refuses). */
  private readonly undo = new UndoLog();
  private readonly registry = new RequestParents(this.undo);
  private readonly stock: StockEffects;
  private readonly schedule: BatchSchedule;
  private outbox: DispatchEvent[] = [];
  private batchCount = 0;
  /** What en-route matching reads of this loop: couriers' holds, legs' states and their routes. */
  private readonly enRouteView: EnRouteView;
  /** Recent demand for each capability, which prices scarce couriers per batch; undefined when pricing is off. */
  private readonly demand: CapabilityDemand | undefined;
  private readonly counters = { submitted: 0, refused: 0, batches: 0, offers: 0, staleAssignments: 0 };

  constructor(options: DispatchLoopOptions) {
    if (!options.couriers || !options.sites || !options.donors || !options.policy) throw new Error('DispatchLoop needs { couriers, sites, donors, policy }');
    this.couriers = options.couriers;
    this.sites = options.sites;
    this.donors = options.donors;
    this.speeds = options.speeds;
    this.policy = options.policy;
    this.parents = this.registry;
    this.stock = new StockEffects(options.sites, this.undo);
    this.lifecycle = new RequestLifecycle({ offerTtlMs: options.offerTtlMs, undo: this.undo, offerIdPrefix: options.offerIdPrefix });
    this.schedule = new BatchSchedule(options.policy, options.retryMs);
    this.enRouteView = { lifecycle: this.lifecycle, couriers: this.couriers, policy: this.policy, legOf: (id) => this.registry.leg(id)?.dispatch };
    // on unless turned off (scarcity: false): routine work pays for the cold-chain courier that blood will need
    this.demand = options.policy.scarcity === false ? undefined : new CapabilityDemand(options.policy.scarcity ?? DEFAULT_SCARCITY);
  }

  /** Takes a request: allocates blood or chooses a rescue recipient at once, then queues its legs for matching. */
  submit(request: RequestSubmission, now: number): SubmitResult {
    assertTime(now);
    if (this.registry.has(request.id) || this.lifecycle.request(request.id)) return this.refuse({ ok: false, reason: 'duplicate-request' as const });
    const built = buildLegs(request, now, { sites: this.sites, donors: this.donors, policy: this.policy, speeds: this.speeds });
    if (built.ok === false) return this.refuse(built);
    this.stock.allocated(built.legs);
    const parent = this.registry.add(request.id, request.kind, built.legs);
    for (const leg of built.legs) {
      const added = this.lifecycle.addRequest({ id: leg.id, kind: request.kind, urgency: request.urgency, deadline: leg.dispatch.deadline, reservations: leg.reservations }, now);
      if (!added.ok) throw new Error(`leg '${leg.id}' already exists in the lifecycle: give the loop its own lifecycle or unique request ids`);
      this.apply(added.events);
      this.demand?.note(leg.dispatch.capabilities, now, leg.dispatch.pickup);
      this.schedule.submitted(request.urgency, now);
    }
    this.counters.submitted++;
    return { ok: true, requestId: request.id, kind: request.kind, legs: [...parent.legIds], dueAt: this.schedule.dueOf(request.urgency, now), ...built.plan };
  }

  /**
   * The legs due at `now` (every waiting one when the window has closed or in greedy mode, else emergencies
   * only) with a snapshot of the couriers available right now; undefined when nothing is due.
   */
  takeBatch(now: number): DispatchBatch | undefined {
    assertTime(now);
    const due = this.schedule.take(this.pendingLegs(), now);
    if (due === undefined) return undefined;
    const requests = due.map((r) => {
      const exclude = this.lifecycle.excludedCouriers(r.id);
      const dispatch = this.registry.leg(r.id)!.dispatch;
      return exclude.length === 0 ? dispatch : { ...dispatch, exclude };
    });
    // candidates are only ever searched within policy.radius of a pickup: the snapshot holds just those couriers
    const near = { points: requests.map((r) => r.pickup), radius: this.policy.radius };
    const snapshot = writeCourierSnapshot(this.couriers, { filter: { status: 'available' }, speeds: this.speeds, createdAt: now, near });
    this.counters.batches++;
    const policy = this.demand === undefined ? this.policy : pricedPolicy(this.policy, this.demand, CourierSnapshot.from(snapshot), this.pendingLegs().map((r) => this.registry.leg(r.id)!.dispatch), now);
    return { id: ++this.batchCount, now, snapshot, requests, policy };
  }

  /**
   * Turns a plan into offers; assignments whose courier or leg changed since the snapshot are skipped (the leg
   * waits again). Several assignments to one courier are a stack (stacking.ts): one stack offer, stops in ETA order.
   * `policy`: the one the plan was made with (its batch's, with that batch's prices), which en route plans with too.
   */
  applyPlan(plan: DispatchPlan, now: number, policy: DispatchPolicy = this.policy): Offer[] {
    assertTime(now);
    const offers: Offer[] = [];
    const byCourier = new Map<string, PlannedAssignment[]>();
    for (const a of plan.assignments) {
      this.schedule.landed(a.requestId);
      const group = byCourier.get(a.courierId);
      if (group === undefined) byCourier.set(a.courierId, [a]);
      else group.push(a);
    }
    for (const [courierId, group] of byCourier) {
      const legs = group.map((a) => ({ leg: this.registry.leg(a.requestId), a })).filter((x): x is { leg: Leg; a: PlannedAssignment } => x.leg !== undefined);
      if (legs.length === 0) continue;
      const made = this.offerLegs(legs, courierId, now);
      if (made === undefined) this.counters.staleAssignments += legs.length;
      else offers.push(...made);
    }
    // what the plan left may go to a courier finishing its trip nearby (en-route.ts)
    const enRoute = this.offerEnRoute(plan.unassigned, now, policy);
    offers.push(...enRoute);
    const taken = new Set(enRoute.map((o) => o.requestId));
    for (const u of plan.unassigned) {
      this.schedule.landed(u.requestId);
      if (taken.has(u.requestId)) continue;
      const known = this.registry.leg(u.requestId) !== undefined;
      if ((u.reason === 'no-courier-in-radius' || u.reason === 'no-feasible-courier') && known) this.schedule.park(u.requestId, now);
      // a hard limit (blood, rescue, emergency) already passed: no courier can help any more
      if (u.reason === 'deadline-passed' && known) {
        const failed = this.lifecycle.fail(u.requestId, now, 'deadline-passed');
        if (failed.ok) this.apply(failed.events);
      }
    }
    for (const id of [...plan.assignments.map((a) => a.requestId), ...plan.unassigned.map((u) => u.requestId)]) {
      this.schedule.waitAgain(id, this.lifecycle.request(id), now);
    }
    return offers;
  }

  /**
   * Recovery: a leg that was assigned at the crash goes back to its courier under the offer id the courier
   * accepted, so reads, frames and the store keep naming the same offer. False when the leg or courier cannot take it.
   */
  restoreAssignment(legId: string, courierId: string, offerId: string, now: number, details?: Readonly<Record<string, unknown>>): boolean {
    const leg = this.registry.leg(legId);
    if (leg === undefined) return false;
    // a stack's or an en-route leg's courier already carries another restored leg; the stored details keep its
    // stack (route and id) and its en-route mark, so maps, ETAs and en route read it as before the restart
    const offer = this.offerLegs([{ leg, a: { pickupEta: 0, dropoffEta: 0 } }], courierId, now, { restoredId: offerId, restoredDetails: details })?.[0];
    if (offer === undefined) return false;
    const accepted = this.accept(offer.id, courierId, now);
    if (accepted.ok) this.setIndexedStatus(courierId, this.lifecycle.courier(courierId)!.status);
    return accepted.ok;
  }

  /** Hands a batch's legs back unplanned (its worker failed): they are due again at once. */
  abandonBatch(batch: DispatchBatch, now: number): void {
    this.schedule.abandon(batch.requests.map((r) => r.id), now);
  }

  /** takeBatch, plan in this thread, applyPlan: for tests, benches and single-threaded deployments. */
  tick(now: number, planner: SyncPlanner = inlinePlanner): Offer[] {
    const batch = this.takeBatch(now);
    if (batch === undefined) return [];
    return this.applyPlan(planner(batch.snapshot, batch.requests, batch.policy, batch.now), now, batch.policy);
  }

  /** Earliest time a batch is due (≤ now means tick now), or undefined when nothing waits. */
  dueAt(): number | undefined {
    return this.schedule.dueAt(this.pendingLegs());
  }

  /** The courier takes its offer (and the rest of its stack): legs assigned, courier busy. */
  accept(offerId: string, courierId: string, now: number): Done<{ assignment: Assignment; assignments: Assignment[] }> | Rejected<RespondReason> {
    return this.run(this.lifecycle.accept(offerId, courierId, now));
  }

  /** The courier turns its offer down: the leg waits again, never to be offered to this courier. */
  decline(offerId: string, courierId: string, now: number): Done | Rejected<RespondReason> {
    return this.run(this.lifecycle.decline(offerId, courierId, now));
  }

  /** Expires offers past their TTL (as declines) and fails pending legs past their deadline. */
  expire(now: number): { expired: string[]; failed: string[] } {
    const expired = this.run(this.lifecycle.expire(now));
    const failed = this.run(this.lifecycle.failOverdue(now));
    return { expired: expired.requestIds, failed: failed.requestIds };
  }

  /** Cancels a request (every live leg of it) or a single leg by its id; reservations not yet picked up are released. */
  cancel(requestId: string, now: number, by?: string): Done | Rejected<CancelReason> {
    assertTime(now);
    const ids = this.registry.legsOf(requestId) ?? (this.registry.leg(requestId) !== undefined ? [requestId] : []);
    if (ids.length === 0) return { ok: false, reason: 'unknown-request' };
    const events: LifecycleEvent[] = [];
    for (const id of ids) {
      const res = this.lifecycle.cancel(id, now, by);
      if (res.ok) events.push(...this.run(res).events);
    }
    return events.length === 0 ? { ok: false, reason: 'request-terminal' } : { ok: true, events };
  }

  /** The assigned courier reports pickup (blood units leave the shelf) or delivery (courier free again). Takes a leg id, or a request id the courier carries a leg of. */
  progress(requestId: string, courierId: string, status: 'picked_up' | 'delivered', now: number): Done | Rejected<ProgressReason> {
    const legId = this.registry.legCarried(requestId, (id) => this.lifecycle.request(id)?.courierId === courierId);
    return this.run(this.lifecycle.progress(legId, courierId, status, now));
  }

  /** A courier comes on or goes off shift (an offer it holds is revoked and its leg waits again). */
  setCourierStatus(courierId: string, status: 'available' | 'offline', now: number): Done | Rejected<CourierStatusReason | 'unknown-courier'> {
    if (!this.couriers.has(courierId)) return { ok: false, reason: 'unknown-courier' };
    const res = this.run(this.lifecycle.setCourierStatus(courierId, status, now));
    // a courier the lifecycle already had in that state gets no event, yet the index may say otherwise
    if (res.ok) this.setIndexedStatus(courierId, this.lifecycle.courier(courierId)!.status);
    return res;
  }

  /** Events since the last drain, in order (offers are `offer.created` events carrying the driver's details); their changes are kept for good. */
  drainEvents(): DispatchEvent[] {
    this.undo.clear();
    this.registry.drained();
    const out = this.outbox;
    this.outbox = [];
    return out;
  }

  /**
   * Events since the last drain, with the rollback that takes their changes back out of memory (lifecycle,
   * courier statuses, reservations, occupancy) when the store refuses to commit them. Rollbacks of several
   * drains must run newest first.
   */
  drainTransition(): { events: DispatchEvent[]; rollback: Rollback } {
    const rollback = this.undo.take();
    this.registry.drained();
    const events = this.outbox;
    this.outbox = [];
    return { events, rollback };
  }

  /** A request (or leg) as requesters see it, or undefined. */
  status(requestId: string): RequestSummary | undefined {
    return this.registry.summary(requestId, this.lifecycle);
  }

  /**
   * Drops requests that ended (delivered, cancelled, failed) more than `retentionMs` ago from memory —
   * their legs, offers and lifecycle records — so a server running for weeks holds only recent history
   * (the store keeps all of it). Returns the request ids forgotten.
   */
  forgetEnded(now: number, retentionMs: number): string[] {
    assertTime(now);
    const forgotten: string[] = [];
    for (const parent of this.registry.endedBefore(now - retentionMs, this.lifecycle)) {
      for (const id of parent.legIds) {
        this.lifecycle.forget(id);
        this.schedule.drop(id);
      }
      this.registry.forget(parent.id);
      forgotten.push(parent.id);
    }
    return forgotten;
  }

  /** The leg as it is matched (pickup, dropoff, limits), or undefined. */
  leg(legId: string): Readonly<DispatchRequest> | undefined {
    return this.registry.leg(legId)?.dispatch;
  }

  /** Counters since construction. */
  stats(): DispatchLoopStats {
    return { ...this.counters, ...this.stock.counters };
  }

  /**
   * Broken invariants as sentences (empty when sound): the lifecycle's own, plus index status = lifecycle
   * status for every courier the lifecycle knows, reserved units in the SiteIndex = units held by live legs
   * (so none is reserved twice or leaked), and no reservation released twice.
   */
  checkInvariants(events: readonly LifecycleEvent[] = []): string[] {
    const problems = checkLifecycleInvariants(this.lifecycle, events);
    for (const c of this.lifecycle.allCouriers()) {
      const indexed = this.couriers.get(c.id);
      if (indexed !== undefined && indexed.status !== c.status) problems.push(`courier ${c.id} is ${indexed.status} in the index but ${c.status} in the lifecycle`);
    }
    problems.push(...this.stock.check(this.registry.allLegs(), (id) => this.lifecycle.request(id)?.status));
    return problems;
  }

  private refuse<T extends { ok: false }>(result: T): T {
    this.counters.refused++;
    return result;
  }

  /** Pending lifecycle requests that are legs of this loop. */
  private pendingLegs(): ReturnType<RequestLifecycle['pendingRequests']> {
    return this.lifecycle.pendingRequests().filter((r) => this.registry.leg(r.id) !== undefined);
  }

  /**
   * Offers legs the plan left to busy couriers whose trip ends soon near their pickups (planEnRoute), with
   * `{ busy: true }`: the courier keeps what it carries. Returns the offers made.
   */
  private offerEnRoute(unassigned: DispatchPlan['unassigned'], now: number, policy: DispatchPolicy): Offer[] {
    if (this.policy.enRoute === false || unassigned.length === 0) return [];
    const legs: DispatchRequest[] = [];
    const seen = new Map<string, EnRouteCourier | undefined>();
    for (const u of unassigned) {
      if (u.reason === 'deadline-passed' || this.lifecycle.request(u.requestId)?.status !== 'pending') continue;
      const d = this.registry.leg(u.requestId)?.dispatch;
      if (d === undefined) continue;
      const exclude = this.lifecycle.excludedCouriers(d.id);
      legs.push(exclude.length === 0 ? d : { ...d, exclude });
      const near = this.couriers.nearby(d.pickup.lat, d.pickup.lng, { k: this.policy.candidates, radius: this.policy.radius, status: 'busy', minCapacity: d.load ?? 1, ...(d.capabilities ? { capability: d.capabilities } : {}) });
      for (const hit of near) if (!seen.has(hit.id)) seen.set(hit.id, enRouteCourierOf(hit.id, now, this.enRouteView));
    }
    const couriers = [...seen.values()].filter((c): c is EnRouteCourier => c !== undefined);
    const offers: Offer[] = [];
    for (const a of planEnRoute(legs, couriers, policy, now)) {
      const leg = this.registry.leg(a.requestId)!;
      const finishIn = couriers.find((c) => c.id === a.courierId)!.finishIn;
      const made = this.offerLegs([{ leg, a }], a.courierId, now, { enRoute: finishIn });
      if (made !== undefined) offers.push(...made);
    }
    return offers;
  }

  /**
   * Offers legs to one courier: one leg alone, several as a stack whose every offer carries the whole route
   * (`details.stack`: the legs in pickup order; `details.stops`: pickups and dropoffs in the order to drive them).
   * Undefined when a leg is no longer pending or the courier no longer free: the whole stack waits again.
   */
  private offerLegs(legs: readonly { leg: Leg; a: { pickupEta: number; dropoffEta: number } }[], courierId: string, now: number, how: { restoredId?: string; restoredDetails?: Readonly<Record<string, unknown>>; enRoute?: number } = {}): Offer[] | undefined {
    const { restoredId, restoredDetails, enRoute } = how;
    if (legs.some(({ leg }) => this.lifecycle.request(leg.id)?.status !== 'pending')) return undefined;
    if (this.couriers.get(courierId)?.status !== (enRoute === undefined ? 'available' : 'busy')) return undefined;
    // recovery hands back several assigned legs to one courier: the second finds it busy with the first
    const busy = restoredId !== undefined || enRoute !== undefined;
    if (this.lifecycle.courier(courierId) === undefined) this.run(this.lifecycle.setCourierStatus(courierId, 'available', now));
    const ordered = [...legs].sort((x, y) => x.a.pickupEta - y.a.pickupEta);
    const stack = ordered.length < 2 ? undefined : stackDetails(ordered);
    const items = ordered.map(({ leg, a }) => {
      const d = leg.dispatch;
      const details = restoredDetails ?? { kind: d.kind, parentId: leg.parentId, pickup: d.pickup, dropoff: d.dropoff, eta: a.pickupEta, dropoffEta: a.dropoffEta, ...stack, ...(enRoute === undefined ? {} : { enRoute: { finishIn: enRoute } }) };
      return { requestId: leg.id, details, restoredId };
    });
    const stackId = typeof restoredDetails?.stackId === 'string' ? restoredDetails.stackId : undefined;
    const res = this.lifecycle.offerStack(items, courierId, now, { busy, restore: restoredId !== undefined, ...(stackId === undefined ? {} : { stackId }) });
    if (!res.ok) return undefined;
    this.run(res);
    this.counters.offers += res.offers.length;
    return res.offers;
  }

  /** Applies a verb's events to the indexes and the outbox, and hands the result back. */
  private run<T extends { ok: boolean }>(res: T): T {
    if (res.ok) this.apply((res as unknown as { events: LifecycleEvent[] }).events);
    return res;
  }

  private apply(events: readonly LifecycleEvent[]): void {
    for (const e of events) {
      this.outbox.push(e);
      const leg = 'requestId' in e ? this.registry.leg(e.requestId) : undefined;
      switch (e.type) {
        case 'courier.status':
          this.setIndexedStatus(e.courierId, e.status);
          if (e.status === 'available') this.schedule.unparkAll(e.at, (id) => this.registry.leg(id)?.dispatch.urgency);
          break;
        case 'request.cancelled':
        case 'request.failed':
          this.schedule.drop(e.requestId);
          break;
        case 'request.pending':
          this.schedule.pending(e.requestId, leg?.dispatch.urgency, e.at);
          break;
        case 'request.picked_up':
          if (leg !== undefined) this.stock.issue(leg);
          break;
        case 'request.delivered':
          if (leg !== undefined) this.stock.fillRecipient(leg);
          break;
        case 'reservation.released':
          if (leg !== undefined) this.stock.release(leg, e.reservations);
          break;
      }
      if (e.type.startsWith('request.') && e.type !== 'request.created') {
        const status = this.registry.refresh(e as LifecycleEvent & { requestId: string }, (id) => this.lifecycle.request(id)?.status);
        if (status !== undefined) this.outbox.push(status);
      }
    }
  }

  /** Sets a courier's status in the index (when it is there), recording how to set it back. */
  private setIndexedStatus(courierId: string, status: CourierStatus): void {
    const before = this.couriers.get(courierId)?.status;
    if (before === undefined || before === status) return;
    this.couriers.setStatus(courierId, status);
    this.undo.record(() => {
      if (this.couriers.has(courierId)) this.couriers.setStatus(courierId, before);
    });
  }
}

function assertTime(now: number): void {
  if (typeof now !== 'number' || !Number.isFinite(now)) throw new Error(`now must be a finite time in ms since the epoch, got ${String(now)}`);
}
