/**
 * When pending requests are due for matching (PRODUCT.md §2: emergencies skip the window).
 *
 *   request becomes pending ──► wait(now) ── no window open? ──► window opens at `now`
 *                                                                    │
 *   due(now):  greedy ─────────────────────────────────────────────► every waiting request, now
 *              batched, now ≥ openedAt + windowMs ─────────────────► every waiting request; window closes
 *              batched, otherwise ────────────────────────────────► emergencies only; window stays open
 *
 * A request left unmatched by a batch waits again (a fresh window opens when the plan is applied), so a
 * request nobody can serve is retried once per window until its deadline fails it.
 */
import type { DispatchPolicy, Urgency } from './dispatch-request.js';

/** Which requests a batch should take now. */
export type BatchScope = 'all' | 'emergency' | 'none';

/** The batch window of one deployment: no timers, the caller asks with `now`. */
export class BatchWindow {
  private openedAt: number | undefined;

  constructor(private readonly policy: Pick<DispatchPolicy, 'mode' | 'windowMs'>) {
    if (policy.mode !== 'batched' && policy.mode !== 'greedy') throw new Error(`policy.mode must be 'batched' or 'greedy', got '${String(policy.mode)}'`);
    if (!(policy.windowMs >= 0) || !Number.isFinite(policy.windowMs)) throw new Error(`policy.windowMs must be a finite number of ms >= 0, got ${String(policy.windowMs)}`);
  }

  /** Time the open window started, or undefined when none is open. */
  get opened(): number | undefined {
    return this.openedAt;
  }

  /** A request started waiting at `now`: opens the window if none is open. */
  wait(now: number): void {
    if (this.openedAt === undefined || now < this.openedAt) this.openedAt = now;
  }

  /** What a batch taken at `now` covers, given whether any emergency or any request at all is waiting. */
  scope(now: number, waiting: boolean, emergencyWaiting: boolean): BatchScope {
    if (!waiting) return 'none';
    if (this.policy.mode === 'greedy') return 'all';
    if (this.openedAt !== undefined && now >= this.openedAt + this.policy.windowMs) return 'all';
    return emergencyWaiting ? 'emergency' : 'none';
  }

  /** A batch took every waiting request: the window closes until the next request waits. */
  close(): void {
    this.openedAt = undefined;
  }

  /** Earliest time a batch is due, or undefined when nothing waits. */
  dueAt(waiting: boolean, emergencyWaitingSince: number | undefined): number | undefined {
    if (!waiting) return undefined;
    if (emergencyWaitingSince !== undefined) return emergencyWaitingSince;
    if (this.policy.mode === 'greedy') return this.openedAt ?? -Infinity;
    return this.openedAt === undefined ? undefined : this.openedAt + this.policy.windowMs;
  }
}

/** True for requests that skip the window. */
export function skipsWindow(urgency: Urgency): boolean {
  return urgency === 'emergency';
}
