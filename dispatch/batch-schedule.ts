/**
 * When the dispatch loop's pending legs are matched: the batch window, the legs a batch has in flight, and
 * the legs a plan left without a courier, parked until a retry time. No timers: the loop passes `now`.
 *
 *   leg pending ─► pending(leg) ─► BatchWindow.wait (emergencies skip it)
 *   take(pending legs, now) ─► ready (not in flight, retry time over) ─► scope: all | emergencies | none
 *        └─► the due legs, now in flight ─► planner ─► landed(leg) for each assignment / unassigned leg
 *   no courier could take it ─► park(leg, now): sits out retryMs ─► waits in the window again
 *   a courier becomes available ─► unparkAll(now): every parked leg may be servable at once
 */
import { CourierSnapshot } from '../engine/courier-snapshot.js';
import { planBatch } from './assign-batch.js';
import { BatchWindow, skipsWindow } from './batch-window.js';
import type { DispatchPlan, DispatchPolicy, DispatchRequest, Urgency } from './dispatch-request.js';

/**
 * 10 s: a leg no courier could take is rarely servable a second later unless a courier frees up (which retries
 * it at once), and re-solving it every tick costs a snapshot each time; 10 s bounds how long a courier driving
 * into range goes unnoticed.
 */
export const DEFAULT_RETRY_MS = 10_000;

/** A snapshot of available couriers and the legs due, for a planner running anywhere. */
export interface DispatchBatch {
  id: number;
  /** The time the batch was taken: pass it to the planner as `now`. */
  now: number;
  snapshot: SharedArrayBuffer;
  requests: DispatchRequest[];
  /** The policy to plan it with: the loop's, with this batch's prices of scarce capabilities. */
  policy: DispatchPolicy;
}

/** A planner the loop can call synchronously (inline); a worker pool's async one fits takeBatch/applyPlan. */
export type SyncPlanner = (snapshot: SharedArrayBuffer, requests: DispatchRequest[], policy: DispatchPolicy, now: number) => DispatchPlan;

/** The inline planner: planBatch over the snapshot in this thread. */
export const inlinePlanner: SyncPlanner = (snapshot, requests, policy, now) => planBatch(CourierSnapshot.from(snapshot), requests, policy, now);

/** A pending leg as the schedule sees it. */
export interface WaitingLeg {
  readonly id: string;
  readonly urgency: Urgency;
  readonly updatedAt: number;
}

/** The batch window, in-flight legs and retry times of one dispatch loop. */
export class BatchSchedule {
  private readonly window: BatchWindow;
  private readonly inFlight = new Set<string>();
  /** Legs a plan left without a feasible courier, and when they are matched again (sooner when a courier becomes available). */
  private readonly retryAt = new Map<string, number>();
  private readonly retryMs: number;

  constructor(private readonly policy: Pick<DispatchPolicy, 'mode' | 'windowMs'>, retryMs: number | undefined) {
    this.window = new BatchWindow(policy);
    this.retryMs = retryMs ?? DEFAULT_RETRY_MS;
    if (!(this.retryMs >= 0) || !Number.isFinite(this.retryMs)) throw new Error(`retryMs must be a finite number of ms >= 0, got ${String(retryMs)}`);
  }

  /** A leg was submitted at `now`: it waits in the window (emergencies skip it). */
  submitted(urgency: Urgency, now: number): void {
    if (!skipsWindow(urgency)) this.window.wait(now);
  }

  /** When a leg submitted now is due: at once for emergencies and greedy mode, else when the window closes. */
  dueOf(urgency: Urgency, now: number): number {
    return skipsWindow(urgency) || this.policy.mode === 'greedy' ? now : (this.window.opened ?? now) + this.policy.windowMs;
  }

  /**
   * The legs due at `now` among the pending ones (every ready one when the window has closed or in greedy
   * mode, else emergencies only), now in flight; undefined when none is due.
   */
  take<L extends WaitingLeg>(pending: readonly L[], now: number): L[] | undefined {
    const waiting = pending.filter((r) => !this.inFlight.has(r.id) && this.readyToRetry(r.id, r.urgency, now));
    if (!waiting.some((r) => !skipsWindow(r.urgency))) this.window.close(); // nothing waits for the window
    const scope = this.window.scope(now, waiting.length > 0, waiting.some((r) => skipsWindow(r.urgency)));
    if (scope === 'none') return undefined;
    if (scope === 'all') this.window.close();
    const due = scope === 'all' ? waiting : waiting.filter((r) => skipsWindow(r.urgency));
    for (const r of due) this.inFlight.add(r.id);
    return due;
  }

  /** A plan came back for this leg (assigned or not): it is no longer in flight. */
  landed(legId: string): void {
    this.inFlight.delete(legId);
  }

  /** No courier could take the leg: it sits out the retry delay. */
  park(legId: string, now: number): void {
    this.retryAt.set(legId, now + this.retryMs);
  }

  /** After a plan: a leg still pending and not parked waits in the window again. */
  waitAgain(legId: string, leg: { status: string; urgency: Urgency } | undefined, now: number): void {
    if (leg?.status === 'pending' && !skipsWindow(leg.urgency) && !this.retryAt.has(legId)) this.window.wait(now);
  }

  /** A batch's legs come back unplanned (its worker failed): they are due again at once. */
  abandon(legIds: readonly string[], now: number): void {
    for (const id of legIds) this.inFlight.delete(id);
    if (legIds.length > 0) this.window.wait(now - this.policy.windowMs);
  }

  /** The leg waits again (declined, expired, revoked): no longer parked, in the window unless an emergency. */
  pending(legId: string, urgency: Urgency | undefined, at: number): void {
    this.retryAt.delete(legId);
    if (urgency !== 'emergency') this.window.wait(at);
  }

  /** The leg ended or was forgotten: no longer parked. */
  drop(legId: string): void {
    this.retryAt.delete(legId);
  }

  /** A courier became available: every parked leg may be servable now. */
  unparkAll(now: number, urgencyOf: (legId: string) => Urgency | undefined): void {
    for (const id of this.retryAt.keys()) if (urgencyOf(id) !== 'emergency') this.window.wait(now);
    this.retryAt.clear();
  }

  /** Earliest time a batch is due among the pending legs (≤ now means take one now), or undefined when nothing waits. */
  dueAt(pending: Iterable<WaitingLeg>): number | undefined {
    let waiting = false;
    let emergencySince: number | undefined;
    let retry = Infinity;
    for (const r of pending) {
      if (this.inFlight.has(r.id)) continue;
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

  /** False while a leg sits out its retry delay; once it is over the leg waits in the window again. */
  private readyToRetry(legId: string, urgency: Urgency, now: number): boolean {
    const at = this.retryAt.get(legId);
    if (at === undefined) return true;
    if (at > now) return false;
    this.retryAt.delete(legId);
    if (!skipsWindow(urgency)) this.window.wait(at);
    return true;
  }
}
