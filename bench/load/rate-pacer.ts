/**
 * Open-loop pacing: how many units (pings, requests) are due at a given moment so the long-run rate matches the
 * target, without bursting to "catch up" after the client stalls.
 *
 *   elapsed × rate ─► due so far ─► minus already issued ─► capped by the burst allowance ─► issue now
 *
 * Pure: the caller passes the clock, so tests need no timers.
 */

/** Paces a target rate (units per second); rate Infinity means "as fast as the caller can go". */
export class RatePacer {
  private issued = 0;
  private dropped = 0;
  private readonly burst: number;

  /**
   * @param rate units per second (> 0, or Infinity)
   * @param startMs clock value at which the schedule starts
   * @param burstMs at most this much schedule is issued at once; older debt is dropped (counted in `behind`)
   */
  constructor(readonly rate: number, private readonly startMs: number, burstMs = 50) {
    if (!(rate > 0)) throw new Error(`rate must be positive (or Infinity), got ${rate}`);
    if (!(burstMs > 0)) throw new Error(`burstMs must be positive, got ${burstMs}`);
    this.burst = Number.isFinite(rate) ? Math.max(1, Math.ceil((rate * burstMs) / 1000)) : Infinity;
  }

  /** Units to issue at `nowMs` (a non-negative integer, Infinity for an unlimited rate); call `take` for what was issued. */
  due(nowMs: number): number {
    if (!Number.isFinite(this.rate)) return Infinity;
    const scheduled = Math.floor(((nowMs - this.startMs) * this.rate) / 1000);
    let debt = scheduled - this.issued - this.dropped;
    if (debt > this.burst) {
      // a stalled client forgets the backlog instead of flooding the server with it
      this.dropped += debt - this.burst;
      debt = this.burst;
    }
    return debt > 0 ? debt : 0;
  }

  /** Records that `n` units were issued. */
  take(n: number): void {
    this.issued += n;
  }

  /** Units issued so far. */
  get sent(): number {
    return this.issued;
  }

  /** Units the schedule wanted but the client could not issue in time. */
  get behind(): number {
    return this.dropped;
  }

  /** Milliseconds until the next unit is due (0 when one is due now). */
  waitMs(nowMs: number): number {
    if (!Number.isFinite(this.rate)) return 0;
    const next = this.issued + this.dropped + 1;
    const at = this.startMs + (next * 1000) / this.rate;
    return at > nowMs ? at - nowMs : 0;
  }
}
