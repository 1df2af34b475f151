/**
 * The pump's pace: taking a batch copies couriers into a snapshot, and under load one batch per request would
 * spend the whole thread on copies. Here the loop is a stand-in whose takeBatch costs a chosen time, always due.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DispatchLoop } from '../dispatch/dispatch-loop.js';
import { DEFAULT_POLICY } from '../dispatch/dispatch-request.js';
import type { Planner } from '../workers/dispatch-pool.js';
import { DispatchPump, type TransitionJournal } from './dispatch-pump.js';

/** A loop that always has one leg due and spends `takeMs` of the thread taking each batch. */
function alwaysDue(takeMs: number): { loop: DispatchLoop; starts: number[] } {
  const starts: number[] = [];
  const loop = {
    policy: DEFAULT_POLICY,
    lifecycle: { pendingRequests: () => [] },
    expire: () => undefined,
    forgetEnded: () => [],
    drainTransition: () => ({ events: [], rollback: () => undefined }),
    dueAt: () => 0,
    takeBatch: (now: number) => {
      const t = performance.now();
      starts.push(t);
      while (performance.now() - t < takeMs) {
        // the snapshot copy
      }
      return { id: starts.length, now, snapshot: new SharedArrayBuffer(8), requests: [] };
    },
    applyPlan: () => [],
    abandonBatch: () => undefined,
  };
  return { loop: loop as unknown as DispatchLoop, starts };
}

const planner: Planner = async () => ({ assignments: [], unassigned: [], stats: { planMs: 0 } }) as unknown as Awaited<ReturnType<Planner>>;
const journal: TransitionJournal = { record: () => ({ stored: Promise.resolve() }) as never, describe: () => undefined, isHealthy: () => true };

let pump: DispatchPump | undefined;
afterEach(async () => {
  await pump?.stop();
  pump = undefined;
});

async function run(takeMs: number, forMs: number): Promise<number[]> {
  const { loop, starts } = alwaysDue(takeMs);
  pump = new DispatchPump({ loop, planner, journal, clock: () => Date.now(), tickMs: 1_000 });
  pump.kick();
  await new Promise((r) => setTimeout(r, forMs));
  await pump.stop();
  return starts;
}

describe('DispatchPump pace', () => {
  it('starts the next batch no sooner than twice the last take after the last start, and keeps going', async () => {
    const starts = await run(6, 300);
    // the 1 s timer would give one batch: the pace drives it
    expect(starts.length).toBeGreaterThanOrEqual(5);
    const gaps = starts.slice(1).map((t, i) => t - starts[i]);
    // timers fire on whole milliseconds: allow one short
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(11);
  });

  it('takes cheap batches back to back', async () => {
    const starts = await run(0, 100);
    // a pace of a few microseconds is no pace: far more batches than a timer of 1 ms or more would allow
    expect(starts.length).toBeGreaterThan(120);
  });

  it('takes no batch once stopped, even with a kick on its way', async () => {
    const { loop, starts } = alwaysDue(0);
    pump = new DispatchPump({ loop, planner, journal, clock: () => Date.now(), tickMs: 1_000 });
    pump.kick();
    await new Promise((r) => setTimeout(r, 20));
    await pump.stop();
    const taken = starts.length;
    pump.kick();
    await new Promise((r) => setTimeout(r, 30));
    expect(taken).toBeGreaterThan(0);
    expect(starts.length).toBe(taken);
  });

  it('never waits more than MAX_PACE_MS however long the last take was', async () => {
    const starts = await run(60, 500);
    const gaps = starts.slice(1).map((t, i) => t - starts[i]).sort((a, b) => a - b);
    expect(gaps.length).toBeGreaterThanOrEqual(3);
    // by the time a 60 ms take ends the 20 ms cap has passed: the next starts at once, not 120 ms after the last
    expect(gaps[Math.floor(gaps.length / 2)]).toBeLessThan(100);
  });
});
