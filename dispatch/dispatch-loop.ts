/**
 * The dispatch loop of one deployment: domain requests in, offers out, every state change as an event.
 * No timers and no I/O: the caller passes `now` (ms) to every verb and decides when to tick.
 *
 *   submit(request) ── delivery ──────────────────────────────────────────► one leg
 *        │           ── rescue ── chooseRescueRecipient (no dropoff given) ► one leg
 *        │           ── blood ─── allocateBlood (FEFO, reserved, call-out) ► one leg per bank
 *        ▼
 *   RequestLifecycle.addRequest(leg) ──► pending ──► BatchWindow (emergency: at once; greedy: at once; batched: windowMs)
 *                                                        │
 *   takeBatch(now) ── snapshot of AVAILABLE couriers + due legs (exclude = decliners) ──► planner (inline or worker)
 *                                                                                            │ DispatchPlan
 *   applyPlan(plan, now) ◄──────────────────────────────────────────────────────────────────┘
 *        │ state changed since the snapshot? skip, leg waits for the next batch
 *        ▼
 *   lifecycle.offer ─► accept / decline / expire / cancel / progress ─► events ─► CourierIndex status,
 *                                                                        SiteIndex release / issue, window
 *
 * Legs: a blood request served by several banks is one parent with one lifecycle request per bank
 * (`<requestId>/<siteId>`, as bloodPickupLegs names them), each holding the reservations of its bank, so
 * the lifecycle's one-courier-per-request rule holds per leg. The parent's status derives from its legs:
 * the least advanced live leg (pending < offered < assigned < picked_up < delivered); cancelled when every
 * leg is cancelled; failed when no leg is live and at least one failed. Delivery and rescue requests are
 * their own single leg (leg id = request id).
 *
 * Reservations: held from allocation until the leg is picked up (SiteIndex.issueUnits takes them off the
 * shelf) or released once through the lifecycle's `reservation.released` (cancel / failure before pickup).
 * A release after pickup is ignored: those units are in the courier's box, not on the bank's shelf.
 */
import type { BloodProduct, BloodType } from '../engine/blood-types.js';
import type { CourierStatus } from '../engine/courier-attributes.js';
import type { CellSpeeds } from '../engine/cell-speeds.js';
import type { CourierIndex } from '../engine/courier-index.js';
import { CourierSnapshot, writeCourierSnapshot } from '../engine/courier-snapshot.js';
import type { DonorIndex } from '../engine/donor-index.js';
import type { SiteIndex } from '../engine/site-index.js';
import { isTerminal } from './request-vocabulary.js';
import { planBatch } from './assign-batch.js';
import { BatchWindow, skipsWindow } from './batch-window.js';
import { releaseAllocation } from './blood-allocation.js';
import type { DispatchPlan, DispatchPolicy, DispatchRequest, Urgency } from './dispatch-request.js';
import {
  type Assignment,
  type CancelReason,
  type CourierStatusReason,
  type Done,
  type LifecycleEvent,
  type Offer,
  type ProgressReason,
  type Rejected,
  type RequestStatus,
  type ReservationRef,
  type RespondReason,
  RequestLifecycle,
} from './request-lifecycle.js';
import { checkInvariants as checkLifecycleInvariants } from './lifecycle-invariants.js';
import { type Leg, type RequestSubmission, type SubmitResult, buildLegs } from './submission-legs.js';
import { type Rollback, UndoLog } from './undo-log.js';

export type { BloodSubmission, DeliverySubmission, RescueSubmission, RequestSubmission, SubmissionBase, SubmitFailure, SubmitPlan, SubmitResult } from './submission-legs.js';

/** Fields every submitted request carries. */
/** A snapshot of available couriers and the legs due, for a planner running anywhere. */
export interface DispatchBatch {
  id: number;
  /** The time the batch was taken: pass it to the planner as `now`. */
  now: number;
  snapshot: SharedArrayBuffer;
  requests: DispatchRequest[];
}

/** A planner the loop can call synchronously (inline); a worker pool's async one fits takeBatch/applyPlan. */
export type SyncPlanner = (snapshot: SharedArrayBuffer, requests: DispatchRequest[], policy: DispatchPolicy, now: number) => DispatchPlan;

/** The inline planner: planBatch over the snapshot in this thread. */
export const inlinePlanner: SyncPlanner = (snapshot, requests, policy, now) => planBatch(CourierSnapshot.from(snapshot), requests, policy, now);

/** A blood parent's derived status changed; `seq` is that of the leg transition that caused it. */
export interface BloodStatusEvent {
  readonly seq: number;
  readonly at: number;
  readonly type: 'blood.status';
  readonly requestId: string;
  readonly status: RequestStatus;
  readonly previous: RequestStatus;
}

/** Everything the API streams: lifecycle transitions (offers included) and blood parents' status. */
export type DispatchEvent = LifecycleEvent | BloodStatusEvent;

/** A request as a requester or dispatcher sees it. */
export interface RequestSummary {
  id: string;
  kind: RequestSubmission['kind'];
  status: RequestStatus;
  legs: { id: string; status: RequestStatus; courierId: string | undefined; offerId: string | undefined; siteId: string | undefined }[];
}

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

/**
 * 10 s: a leg no courier could take is rarely servable a second later unless a courier frees up (which retries
 * it at once), and re-solving it every tick costs a snapshot each time; 10 s bounds how long a courier driving
 * into range goes unnoticed.
 */
export const DEFAULT_RETRY_MS = 10_000;

/** Counters for monitoring and benchmarks. */
export interface DispatchLoopStats {
  submitted: number;
  refused: number;
  batches: number;
  offers: number;
  /** Planned assignments skipped because the courier or leg changed since the snapshot. */
  staleAssignments: number;
  unitsIssued: number;
  unitsReleased: number;
  /** Reserved units the SiteIndex no longer held when released or issued (e.g. an expired lot removed). */
  unitsMissing: number;
}

/** Orchestrates one deployment: submissions, batch window, offers, lifecycle, index statuses, blood stock. */
export class DispatchLoop {
  readonly lifecycle: RequestLifecycle;
  readonly policy: DispatchPolicy;
  private readonly couriers: CourierIndex;
  private readonly sites: SiteIndex;
  private readonly donors: DonorIndex;
  /** Learned cell speeds every ETA of this deployment is timed with (travel-time.ts); undefined: vehicle speeds only. */
  readonly speeds: CellSpeeds | undefined;
  private readonly window: BatchWindow;
  private readonly parents = new Map<string, Parent>();
  private readonly legs = new Map<string, Leg>();
  private readonly inFlight = new Set<string>();
  /** Legs a plan left without a feasible courier, and when they are matched again (sooner when a courier becomes available). */
  private readonly retryAt = new Map<string, number>();
  private readonly retryMs: number;
  private outbox: DispatchEvent[] = [];
  /** How to take back what happened since the last drain (a commit the store refuses). */
  private readonly undo = new UndoLog();
  private readonly anomalies: string[] = [];
  private batchCount = 0;
  private readonly counters: DispatchLoopStats = {
    submitted: 0, refused: 0, batches: 0, offers: 0, staleAssignments: 0, unitsIssued: 0, unitsReleased: 0, unitsMissing: 0,
  };

  constructor(options: DispatchLoopOptions) {
    if (!options.couriers || !options.sites || !options.donors || !options.policy) throw new Error('DispatchLoop needs { couriers, sites, donors, policy }');
    this.couriers = options.couriers;
    this.sites = options.sites;
    this.donors = options.donors;
    this.speeds = options.speeds;
    this.policy = options.policy;
    this.lifecycle = new RequestLifecycle({ offerTtlMs: options.offerTtlMs, undo: this.undo, offerIdPrefix: options.offerIdPrefix });
    this.window = new BatchWindow(options.policy);
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    if (!(this.retryMs >= 0) || !Number.isFinite(this.retryMs)) throw new Error(`retryMs must be a finite number of ms >= 0, got ${String(options.retryMs)}`);
  }

  /** Takes a request: allocates blood or chooses a rescue recipient at once, then queues its legs for matching. */
  submit(request: RequestSubmission, now: number): SubmitResult {
    assertTime(now);
    if (this.parents.has(request.id) || this.legs.has(request.id) || this.lifecycle.request(request.id)) return this.refuse({ ok: false, reason: 'duplicate-request' as const });
    const built = buildLegs(request, now, { sites: this.sites, donors: this.donors, policy: this.policy, speeds: this.speeds });
    if (built.ok === false) return this.refuse(built);
    const parent: Parent = { id: request.id, kind: request.kind, legIds: built.legs.map((l) => l.id), status: 'pending' };
    const held = built.legs.filter((l) => l.held);
    if (held.length > 0) {
      this.undo.record(() => {
        for (const leg of held) releaseAllocation(this.sites, leg.reservations);
      });
    }
    this.parents.set(parent.id, parent);
    this.undo.record(() => this.parents.delete(parent.id));
    for (const leg of built.legs) {
      this.legs.set(leg.id, leg);
      this.undo.record(() => this.legs.delete(leg.id));
      const added = this.lifecycle.addRequest({ id: leg.id, kind: request.kind, urgency: request.urgency, deadline: leg.dispatch.deadline, reservations: leg.reservations }, now);
      if (!added.ok) throw new Error(`leg '${leg.id}' already exists in the lifecycle: give the loop its own lifecycle or unique request ids`);
      this.apply(added.events);
      if (!skipsWindow(request.urgency)) this.window.wait(now);
    }
    this.counters.submitted++;
    const due = skipsWindow(request.urgency) || this.policy.mode === 'greedy' ? now : (this.window.opened ?? now) + this.policy.windowMs;
    return { ok: true, requestId: request.id, kind: request.kind, legs: parent.legIds, dueAt: due, ...built.plan };
  }

  /**
   * The legs due at `now` (every waiting one when the window has closed or in greedy mode, else emergencies
   * only) with a snapshot of the couriers available right now; undefined when nothing is due.
   */
  takeBatch(now: number): DispatchBatch | undefined {
    assertTime(now);
    const waiting = this.lifecycle.pendingRequests().filter((r) => this.legs.has(r.id) && !this.inFlight.has(r.id) && this.readyToRetry(r.id, r.urgency, now));
    if (!waiting.some((r) => !skipsWindow(r.urgency))) this.window.close(); // nothing waits for the window
    const scope = this.window.scope(now, waiting.length > 0, waiting.some((r) => skipsWindow(r.urgency)));
    if (scope === 'none') return undefined;
    if (scope === 'all') this.window.close();
    const due = scope === 'all' ? waiting : waiting.filter((r) => skipsWindow(r.urgency));
    const requests = due.map((r) => {
      this.inFlight.add(r.id);
      const exclude = this.lifecycle.excludedCouriers(r.id);
      const dispatch = this.legs.get(r.id)!.dispatch;
      return exclude.length === 0 ? dispatch : { ...dispatch, exclude };
    });
    const snapshot = writeCourierSnapshot(this.couriers, { filter: { status: 'available' }, speeds: this.speeds, createdAt: now });
    this.counters.batches++;
    return { id: ++this.batchCount, now, snapshot, requests };
  }

  /** Turns a plan into offers; assignments whose courier or leg changed since the snapshot are skipped (the leg waits again). */
  applyPlan(plan: DispatchPlan, now: number): Offer[] {
    assertTime(now);
    const offers: Offer[] = [];
    for (const a of plan.assignments) {
      this.inFlight.delete(a.requestId);
      const leg = this.legs.get(a.requestId);
      if (leg === undefined) continue;
      const made = this.offerLeg(leg, a.courierId, now, { pickupEta: a.pickupEta, dropoffEta: a.dropoffEta });
      if (made === undefined) this.counters.staleAssignments++;
      else offers.push(made);
    }
    for (const u of plan.unassigned) {
      this.inFlight.delete(u.requestId);
      if ((u.reason === 'no-courier-in-radius' || u.reason === 'no-feasible-courier') && this.legs.has(u.requestId)) this.retryAt.set(u.requestId, now + this.retryMs);
      // a hard limit (blood, rescue, emergency) already passed: no courier can help any more
      if (u.reason === 'deadline-passed' && this.legs.has(u.requestId)) {
        const failed = this.lifecycle.fail(u.requestId, now, 'deadline-passed');
        if (failed.ok) this.apply(failed.events);
      }
    }
    for (const id of [...plan.assignments.map((a) => a.requestId), ...plan.unassigned.map((u) => u.requestId)]) {
      const r = this.lifecycle.request(id);
      if (r?.status === 'pending' && !skipsWindow(r.urgency) && !this.retryAt.has(id)) this.window.wait(now);
    }
    return offers;
  }

  /**
   * Recovery: a leg that was assigned at the crash goes back to its courier under the offer id the courier
   * accepted, so reads, frames and the store keep naming the same offer. False when the leg or courier cannot take it.
   */
  restoreAssignment(legId: string, courierId: string, offerId: string, now: number): boolean {
    const leg = this.legs.get(legId);
    if (leg === undefined) return false;
    const offer = this.offerLeg(leg, courierId, now, { pickupEta: 0, dropoffEta: 0 }, offerId);
    if (offer === undefined) return false;
    const accepted = this.accept(offer.id, courierId, now);
    return accepted.ok;
  }

  /** Hands a batch's legs back unplanned (its worker failed): they are due again at once. */
  abandonBatch(batch: DispatchBatch, now: number): void {
    for (const r of batch.requests) this.inFlight.delete(r.id);
    if (batch.requests.length > 0) this.window.wait(now - this.policy.windowMs);
  }

  /** takeBatch, plan in this thread, applyPlan: for tests, benches and single-threaded deployments. */
  tick(now: number, planner: SyncPlanner = inlinePlanner): Offer[] {
    const batch = this.takeBatch(now);
    if (batch === undefined) return [];
    return this.applyPlan(planner(batch.snapshot, batch.requests, this.policy, batch.now), now);
  }

  /** Earliest time a batch is due (≤ now means tick now), or undefined when nothing waits. */
  dueAt(): number | undefined {
    let waiting = false;
    let emergencySince: number | undefined;
    let retry = Infinity;
    for (const r of this.lifecycle.pendingRequests()) {
      if (!this.legs.has(r.id) || this.inFlight.has(r.id)) continue;
      const parked = this.retryAt.get(r.id);
      if (parked !== undefined) {
        retry = Math.min(retry, parked + (this.policy.mode === 'batched' && !skipsWindow(r.urgency) ? this.policy.windowMs : 0));
        continue;
      }
      waiting = true;
      if (skipsWindow(r.urgency)) emergencySince = Math.min(emergencySince ?? Infinity, r.updatedAt);
    }
    const due = Math.min(this.window.dueAt(waiting, emergencySince) ?? Infinity, retry);
    return due === Infinity ? undefined : due;
  }

  /** The courier takes its offer: leg assigned, courier busy. */
  accept(offerId: string, courierId: string, now: number): Done<{ assignment: Assignment }> | Rejected<RespondReason> {
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
    const parent = this.parents.get(requestId);
    const ids = parent !== undefined ? parent.legIds : this.legs.has(requestId) ? [requestId] : [];
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
    return this.run(this.lifecycle.progress(this.legFor(requestId, courierId), courierId, status, now));
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
    const events = this.outbox;
    this.outbox = [];
    return { events, rollback };
  }

  /** A request (or leg) as requesters see it, or undefined. */
  status(requestId: string): RequestSummary | undefined {
    const parent = this.parents.get(requestId);
    if (parent === undefined) return undefined;
    const legs = parent.legIds.map((id) => {
      const r = this.lifecycle.request(id);
      // the live offer while offered, else the offer that was accepted
      const offerId = r?.offerId ?? this.lifecycle.assignmentOf(id)?.offerId;
      return { id, status: r?.status ?? 'cancelled', courierId: r?.courierId, offerId, siteId: this.legs.get(id)?.siteId };
    });
    return { id: parent.id, kind: parent.kind, status: deriveStatus(legs.map((l) => l.status)), legs };
  }

  /**
   * Drops requests that ended (delivered, cancelled, failed) more than `retentionMs` ago from memory —
   * their legs, offers and lifecycle records — so a server running for weeks holds only recent history
   * (the store keeps all of it). Returns the request ids forgotten.
   */
  forgetEnded(now: number, retentionMs: number): string[] {
    assertTime(now);
    const forgotten: string[] = [];
    for (const parent of this.parents.values()) {
      const views = parent.legIds.map((id) => this.lifecycle.request(id));
      if (views.some((v) => v === undefined || !isTerminal(v.status))) continue;
      const endedAt = Math.max(...views.map((v) => v!.updatedAt));
      if (endedAt > now - retentionMs) continue;
      for (const id of parent.legIds) {
        this.lifecycle.forget(id);
        this.legs.delete(id);
        this.retryAt.delete(id);
      }
      this.parents.delete(parent.id);
      forgotten.push(parent.id);
    }
    return forgotten;
  }

  /** The leg as it is matched (pickup, dropoff, limits), or undefined. */
  leg(legId: string): Readonly<DispatchRequest> | undefined {
    return this.legs.get(legId)?.dispatch;
  }

  /** Counters since construction. */
  stats(): DispatchLoopStats {
    return { ...this.counters };
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
    const held = new Map<string, number>();
    const banks = new Set<string>();
    for (const leg of this.legs.values()) {
      for (const r of leg.reservations) banks.add(r.siteId);
      const status = this.lifecycle.request(leg.id)?.status;
      const shouldHold = status === 'pending' || status === 'offered' || status === 'assigned';
      if (leg.held !== shouldHold && leg.reservations.length > 0) problems.push(`leg ${leg.id} is ${String(status)} but ${leg.held ? 'holds' : 'does not hold'} its reservations`);
      if (!leg.held) continue;
      for (const r of leg.reservations) held.set(lotKey(r.siteId, r), (held.get(lotKey(r.siteId, r)) ?? 0) + r.count);
    }
    for (const siteId of banks) {
      if (!this.sites.has(siteId)) continue;
      for (const lot of this.sites.lots(siteId)) {
        const key = lotKey(siteId, lot);
        const want = held.get(key) ?? 0;
        held.delete(key);
        if (lot.reserved !== want) problems.push(`lot ${key} has ${lot.reserved} units reserved but live legs hold ${want}`);
      }
    }
    for (const [key, n] of held) if (n > 0) problems.push(`live legs hold ${n} units of lot ${key}, which the SiteIndex no longer lists`);
    problems.push(...this.anomalies);
    return problems;
  }

  private refuse<T extends { ok: false }>(result: T): T {
    this.counters.refused++;
    return result;
  }

  private offerLeg(leg: Leg, courierId: string, now: number, eta: { pickupEta: number; dropoffEta: number }, restoredId?: string): Offer | undefined {
    if (this.lifecycle.request(leg.id)?.status !== 'pending') return undefined;
    if (this.couriers.get(courierId)?.status !== 'available') return undefined;
    if (this.lifecycle.courier(courierId) === undefined) this.run(this.lifecycle.setCourierStatus(courierId, 'available', now));
    const d = leg.dispatch;
    const details = { kind: d.kind, parentId: leg.parentId, pickup: d.pickup, dropoff: d.dropoff, eta: eta.pickupEta, dropoffEta: eta.dropoffEta };
    const res = this.lifecycle.offer(leg.id, courierId, now, details, restoredId);
    if (!res.ok) return undefined;
    this.run(res);
    this.counters.offers++;
    return res.offer;
  }

  /** False while a leg sits out its retry delay; once it is over the leg waits in the window again. */
  private readyToRetry(legId: string, urgency: Urgency, now: number): boolean {
    const at = this.retryAt.get(legId);
    if (at === undefined) return true;
    if (at > now) return false;
    this.retryAt.delete(legId);
    if (!skipsWindow(urgency)) this.window.wait(at);
    return true;
  }

  /** A courier became available: every parked leg may be servable now. */
  private unparkAll(now: number): void {
    for (const id of this.retryAt.keys()) if (this.legs.get(id)?.dispatch.urgency !== 'emergency') this.window.wait(now);
    this.retryAt.clear();
  }

  private legFor(requestId: string, courierId: string): string {
    if (this.legs.has(requestId)) return requestId;
    const parent = this.parents.get(requestId);
    const carried = parent?.legIds.find((id) => this.lifecycle.request(id)?.courierId === courierId);
    return carried ?? requestId;
  }

  /** Applies a verb's events to the indexes and the outbox, and hands the result back. */
  private run<T extends { ok: boolean }>(res: T): T {
    if (res.ok) this.apply((res as unknown as { events: LifecycleEvent[] }).events);
    return res;
  }

  private apply(events: readonly LifecycleEvent[]): void {
    for (const e of events) {
      this.outbox.push(e);
      switch (e.type) {
        case 'courier.status':
          this.setIndexedStatus(e.courierId, e.status);
          if (e.status === 'available') this.unparkAll(e.at);
          break;
        case 'request.cancelled':
        case 'request.failed':
          this.retryAt.delete(e.requestId);
          break;
        case 'request.pending':
          this.retryAt.delete(e.requestId);
          if (this.legs.get(e.requestId)?.dispatch.urgency !== 'emergency') this.window.wait(e.at);
          break;
        case 'request.picked_up':
          this.issue(e.requestId);
          break;
        case 'request.delivered':
          this.fillRecipient(e.requestId);
          break;
        case 'reservation.released':
          this.release(e.requestId, e.reservations);
          break;
      }
      if (e.type.startsWith('request.') && e.type !== 'request.created') this.refreshParent(e);
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

  private issue(legId: string): void {
    const leg = this.legs.get(legId);
    if (leg === undefined || !leg.held) return;
    leg.held = false;
    const issued: ReservationRef[] = [];
    for (const r of leg.reservations) {
      if (this.sites.has(r.siteId) && this.sites.issueUnits(r.siteId, lotOf(r), r.count)) {
        this.counters.unitsIssued += r.count;
        issued.push(r);
      } else this.counters.unitsMissing += r.count;
    }
    this.undo.record(() => {
      leg.held = true;
      for (const r of issued) if (this.sites.has(r.siteId)) this.sites.returnUnits(r.siteId, lotOf(r), r.count);
    });
  }

  private release(legId: string, refs: readonly ReservationRef[]): void {
    const leg = this.legs.get(legId);
    if (leg === undefined) return;
    if (leg.releasedOnce) this.anomalies.push(`reservations of leg ${legId} were released twice`);
    const was = { releasedOnce: leg.releasedOnce, held: leg.held };
    leg.releasedOnce = true;
    if (!leg.held) {
      this.undo.record(() => Object.assign(leg, was));
      return; // picked up already: the units are in the courier's box
    }
    leg.held = false;
    const { released, failed } = releaseAllocation(this.sites, refs);
    this.counters.unitsReleased += released;
    this.counters.unitsMissing += failed.reduce((n, r) => n + r.count, 0);
    const back = refs.filter((r) => !failed.includes(r));
    this.undo.record(() => {
      Object.assign(leg, was);
      for (const r of back) if (this.sites.has(r.siteId)) this.sites.reserveUnits(r.siteId, lotOf(r), r.count);
    });
  }

  private fillRecipient(legId: string): void {
    const leg = this.legs.get(legId);
    const siteId = leg?.recipientSiteId;
    if (leg === undefined || siteId === undefined || !this.sites.has(siteId)) return;
    const before = this.sites.get(siteId)!.occupancy;
    this.sites.setOccupancy(siteId, before + (leg.dispatch.load ?? 1));
    this.undo.record(() => {
      if (this.sites.has(siteId)) this.sites.setOccupancy(siteId, before);
    });
  }

  private refreshParent(e: LifecycleEvent): void {
    const legId = (e as { requestId: string }).requestId;
    const leg = this.legs.get(legId);
    if (leg === undefined || leg.parentId === leg.id) return;
    const parent = this.parents.get(leg.parentId)!;
    const status = deriveStatus(parent.legIds.map((id) => this.lifecycle.request(id)?.status ?? 'cancelled'));
    if (status === parent.status) return;
    const previous = parent.status;
    parent.status = status;
    this.undo.record(() => {
      parent.status = previous;
    });
    this.outbox.push(Object.freeze({ seq: e.seq, at: e.at, type: 'blood.status', requestId: parent.id, status, previous }));
  }
}

/**
 * A parent's status from its legs' statuses: the least advanced live leg; cancelled when all are
 * cancelled; failed when none is live and one failed.
 */
export function deriveStatus(legs: readonly RequestStatus[]): RequestStatus {
  let best: RequestStatus | undefined;
  for (const s of legs) if (s !== 'cancelled' && s !== 'failed' && (best === undefined || RANK[s] < RANK[best])) best = s;
  if (best !== undefined) return best;
  return legs.length > 0 && legs.every((s) => s === 'cancelled') ? 'cancelled' : 'failed';
}

const RANK: Readonly<Record<RequestStatus, number>> = { pending: 0, offered: 1, assigned: 2, picked_up: 3, delivered: 4, cancelled: 5, failed: 5 };

interface Parent {
  id: string;
  kind: RequestSubmission['kind'];
  legIds: string[];
  /** Last derived status (blood parents emit blood.status on change). */
  status: RequestStatus;
}

function lotOf(r: ReservationRef): { product: BloodProduct; bloodType: BloodType; expiresAt: number } {
  return { product: r.product as BloodProduct, bloodType: r.bloodType as BloodType, expiresAt: r.expiresAt };
}

function lotKey(siteId: string, lot: { product: string; bloodType: string; expiresAt: number }): string {
  return `${siteId}|${lot.product}|${lot.bloodType}|${lot.expiresAt}`;
}

function assertTime(now: number): void {
  if (typeof now !== 'number' || !Number.isFinite(now)) throw new Error(`now must be a finite time in ms since the epoch, got ${String(now)}`);
}
