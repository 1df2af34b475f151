/**
 * Each requester's open requests across a cluster, as one core sees them: PostgreSQL's count (every core's
 * committed requests) at most REFRESH_MS old, plus what this core created since it read it and what it is creating
 * now, less what ended here since. A query per create
 * would cost each create a database round trip (measured: about half of a core's create throughput); this costs one
 * per requester per second. Two cores can each let a requester past the bound by what it creates within
 * REFRESH_MS of another core's last count — a bounded overshoot of a fairness limit, not of anything stored.
 */
import type { Store } from '../store/store.js';

/** How old a stored count may be. */
const REFRESH_MS = 1_000;
/** Principals remembered at most (oldest dropped first; a dropped one is simply counted again). */
const MAX_REMEMBERED = 100_000;

interface Count {
  /** Open as PostgreSQL counted them (up to the bound), when. */
  stored: number;
  at: number;
  /** Created here and committed since that count; admitted here and not answered yet. */
  since: number;
  inFlight: number;
  /** The count being read now (every caller waits for the one read). */
  reading?: Promise<void>;
}

export class OpenCounts {
  private readonly counts = new Map<string, Count>();

  constructor(
    private readonly store: Pick<Store, 'countOpenRequests'>,
    private readonly bound: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Admits one more create for the requester when it is under the bound, counting it at once (so creates racing
   * each other on this core are counted against each other); false at the bound. Every admitted create ends with done().
   */
  async admit(role: string, sub: string): Promise<boolean> {
    const c = await this.current(`${role}\u0000${sub}`);
    if (c.stored + c.since + c.inFlight >= this.bound) return false;
    c.inFlight++;
    return true;
  }

  /** An admitted create was answered: stored (counted until the next read of the store) or not (forgotten). */
  done(role: string, sub: string, created: boolean): void {
    const c = this.counts.get(`${role}\u0000${sub}`);
    if (c === undefined) return;
    c.inFlight = Math.max(0, c.inFlight - 1);
    if (created) c.since++;
  }

  /** One of the requester's requests ended on this core (delivered, cancelled, failed): no longer counted. */
  ended(role: string, sub: string): void {
    const c = this.counts.get(`${role}\u0000${sub}`);
    if (c === undefined) return;
    if (c.since > 0) c.since--;
    else if (c.stored > 0) c.stored--;
  }

  /** The requester's count, read again from the store when it is older than REFRESH_MS (one read however many ask). */
  private async current(key: string): Promise<Count> {
    const sep = key.indexOf('\u0000');
    for (;;) {
      let c = this.counts.get(key);
      if (c === undefined) {
        c = { stored: 0, at: Number.NEGATIVE_INFINITY, since: 0, inFlight: 0 };
        this.counts.set(key, c);
        if (this.counts.size > MAX_REMEMBERED) this.evictOne();
      }
      if (this.clock() - c.at < REFRESH_MS) return c;
      const entry = c;
      entry.reading ??= this.store.countOpenRequests(key.slice(sep + 1), key.slice(0, sep), this.bound).then(
        (n) => {
          entry.stored = n;
          entry.since = 0;
          entry.at = this.clock();
        },
      ).finally(() => (entry.reading = undefined));
      await entry.reading;
      if (this.counts.get(key) === entry) return entry;
    }
  }

  /** The oldest requester with nothing in flight is forgotten (it is simply read again when it creates). */
  private evictOne(): void {
    for (const [key, c] of this.counts) {
      if (c.inFlight === 0 && c.reading === undefined) {
        this.counts.delete(key);
        return;
      }
    }
  }
}
