import { describe, expect, it } from 'vitest';
import { LatencyRecorder, percentile } from './latency.js';

describe('percentile', () => {
  it('picks by nearest rank from a sorted sample', () => {
    const s = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(s, 0.5)).toBe(5);
    expect(percentile(s, 0.95)).toBe(10);
    expect(percentile(s, 0.1)).toBe(1);
    expect(percentile(s, 0)).toBe(1);
    expect(percentile(s, 1)).toBe(10);
  });

  it('is NaN for an empty sample and refuses q outside [0, 1]', () => {
    expect(percentile([], 0.5)).toBeNaN();
    expect(() => percentile([1], 1.5)).toThrow(/q must be within/);
  });
});

describe('LatencyRecorder', () => {
  it('summarizes every value exactly while under capacity', () => {
    const r = new LatencyRecorder(1000);
    for (let i = 100; i >= 1; i--) r.record(i);
    expect(r.summary()).toEqual({ count: 100, mean: 50.5, p50: 50, p95: 95, p99: 99, max: 100 });
  });

  it('keeps count, mean and max exact past capacity and percentiles within the sampled range', () => {
    const r = new LatencyRecorder(100, 7);
    for (let i = 1; i <= 10_000; i++) r.record(i);
    const s = r.summary();
    expect(s.count).toBe(10_000);
    expect(s.max).toBe(10_000);
    expect(s.mean).toBe(5000.5);
    expect(s.p50).toBeGreaterThan(2500);
    expect(s.p50).toBeLessThan(7500);
  });

  it('reports NaN percentiles when nothing was recorded', () => {
    const s = new LatencyRecorder(10).summary();
    expect(s.count).toBe(0);
    expect(s.p99).toBeNaN();
    expect(s.max).toBeNaN();
  });
});
