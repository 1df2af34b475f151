/**
 * One core's commits across the regions it holds, grouped: each region has a journal of its own (its fence, its
 * seq block), and a journal with one change waiting commits it alone — with a few dozen regions taking one
 * request each, that is one PostgreSQL transaction per request. GroupCommits sits between the regions' journals
 * and the store and puts what they hand it meanwhile into one transaction (every region's fence checked in it).
 *
 *   journal r1 ─┐
 *   journal r2 ─┼─► queue ─► one commitTransitions(all, fences of all) ─► each journal's call resolves
 *   journal r3 ─┘              └ refused or failed? ─► each call again on its own, so only its own outcome reaches it
 *
 * A journal hands over its next change only after the last one is settled, so each region's order holds; regions'
 * changes are independent of each other. A group retried call by call after an unknown outcome is safe: a seq is
 * applied at most once (store/transition-runs.ts).
 */
import type { RegionFence } from '../store/region-fences.js';
import type { Store, Transition } from '../store/store.js';

type GroupStore = Pick<Store, 'commitTransitions' | 'ping'>;

interface Call {
  ts: readonly Transition[];
  fences: readonly RegionFence[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Transitions in one grouped database transaction at most. */
const MAX_GROUP = 256;

export class GroupCommits implements GroupStore {
  private queue: Call[] = [];
  private running = false;
  /** Grouped transactions and the calls they carried (for /metrics and the bench). */
  readonly stats = { groups: 0, calls: 0 };

  constructor(private readonly store: GroupStore) {}

  ping(): Promise<boolean> {
    return this.store.ping();
  }

  commitTransitions(ts: readonly Transition[], fences: readonly RegionFence[] = []): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ts, fences, resolve, reject });
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const group = this.take();
        this.stats.groups++;
        this.stats.calls += group.length;
        if (group.length === 1) {
          await this.alone(group[0]);
          continue;
        }
        try {
          await this.store.commitTransitions(group.flatMap((c) => c.ts), group.flatMap((c) => c.fences));
          for (const c of group) c.resolve();
        } catch {
          // one region's stale fence (or one bad change) must not fail the others: each on its own says whose it was
          for (const c of group) await this.alone(c);
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** The head calls that fit in one transaction, with no region fenced twice under different epochs. */
  private take(): Call[] {
    const group: Call[] = [];
    const epochs = new Map<string, number>();
    let size = 0;
    while (this.queue.length > 0) {
      const c = this.queue[0];
      const clash = c.fences.some((f) => epochs.has(f.region) && epochs.get(f.region) !== f.epoch);
      if (group.length > 0 && (clash || size + c.ts.length > MAX_GROUP)) break;
      this.queue.shift();
      group.push(c);
      size += c.ts.length;
      for (const f of c.fences) epochs.set(f.region, f.epoch);
    }
    return group;
  }

  private async alone(c: Call): Promise<void> {
    try {
      await this.store.commitTransitions(c.ts, c.fences);
      c.resolve();
    } catch (err) {
      c.reject(err);
    }
  }
}
