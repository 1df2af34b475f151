/**
 * The crash property against a cluster, short form (long form: `npm run soak:cluster -- --kills 20`): two edges
 * and two cores as processes, deliveries, cancels, reads and drivers' answers through the edges only, a core
 * SIGKILLed 3 times under that load and started again; everything acknowledged stands exactly once, nothing refused
 * is stored (cluster/cluster-crash.ts).
 */
import { describe, expect, it } from 'vitest';
import { runClusterCrash, summaryLine } from './cluster-crash.js';

const SEED = 41;

describe('a cluster whose cores are SIGKILLed at random moments under a mix of requests', () => {
  it(`keeps every acknowledged request, cancel, assignment and delivery exactly once over 3 kills (seed ${SEED})`, async () => {
    const report = await runClusterCrash({ seed: SEED, kills: 3, loadMs: [800, 1_500] });
    expect(report.violations, summaryLine(report)).toEqual([]);
    // it really exercised something: requests made, answered, assigned and delivered across the kills
    expect(report.creates.acknowledged, summaryLine(report)).toBeGreaterThan(50);
    expect(report.accepted).toBeGreaterThan(5);
    expect(report.delivered).toBeGreaterThan(0);
    expect(report.worstFailoverMs).toBeLessThan(10_000);
  }, 240_000);
});
