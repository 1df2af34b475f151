/**
 * Each requester's open requests across a cluster, as one core sees them: PostgreSQL's count (every core's
 * committed requests) at most REFRESH_MS old, plus what this core created since it read it. A query per create
 * would cost each create a database round trip (measured: about half of a core's create throughput); this costs one
 * per requester per second. Two cores can each let a requester past the bound by what it creates within
 * REFRESH_MS of another core's last count — a bounded overshoot of a fairness limit, not of anything stored.
 */
import type { Store } from '../store/store.js';

/** How old a stored count may be. */
const REFRESH_MS = 1_000;
/** Principals remembered at most (oldest dropped first; a dropped one is simply counted again). */
const MAX_REMEMBERED = 100_000;

export class OpenCounts {
  private readonly counts = new Map<string, { stored: number; at: number; since: number }>();

  constructor(
    private readonly store: Pick<Store, 'countOpenRequests'>,
    private readonly bound: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The requester's open requests (up to the bound), counted as stored at most a second ago plus this core's since. */
  async open(role: string, sub: string): Promise<number> {
    const key = `${role}\u0000${sub}`;
    const now = this.clock();
    const known = this.counts.get(key);
    if (known !== undefined && now - known.at < REFRESH_MS) return known.stored + known.since;
    const stored = await this.store.countOpenRequests(sub, role, this.bound);
    this.counts.delete(key);
    this.counts.set(key, { stored, at: now, since: 0 });
    if (this.counts.size > MAX_REMEMBERED) this.counts.delete(this.counts.keys().next().value as string);
    return stored;
  }

  /** This core created one for the requester (counted until the next read of the store). */
  created(role: string, sub: string): void {
    const known = this.counts.get(`${role}\u0000${sub}`);
    if (known !== undefined) known.since++;
  }
}
