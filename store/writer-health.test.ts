import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WriterHealth } from './writer-health.js';

function build(options: { maxDoublings?: number } = {}) {
  const changes: [boolean, unknown][] = [];
  const health = new WriterHealth({ backoffMinMs: 100, backoffMaxMs: 5_000, ...options, onHealthChange: (h, cause) => changes.push([h, cause]) });
  return { health, changes };
}

describe('WriterHealth', () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  it('starts healthy with no failures', () => {
    const { health, changes } = build();
    expect(health.isHealthy()).toBe(true);
    expect(health.consecutiveFailures).toBe(0);
    expect(changes).toEqual([]);
  });

  it('doubles the wait with each consecutive failure up to the cap', () => {
    const { health } = build();
    const waits = Array.from({ length: 8 }, () => health.failed(new Error('down')));
    expect(waits).toEqual([100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
    expect(health.consecutiveFailures).toBe(8);
  });

  it('stops doubling after maxDoublings even below the cap', () => {
    const { health } = build({ maxDoublings: 2 });
    const waits = Array.from({ length: 5 }, () => health.failed('x'));
    expect(waits).toEqual([100, 200, 400, 400, 400]);
  });

  it('tells the listener once per change of health, with the failure that caused it', () => {
    const { health, changes } = build();
    const first = new Error('first');
    health.failed(first);
    health.failed(new Error('second'));
    health.markUnhealthy(new Error('third'));
    health.succeeded();
    health.succeeded();
    expect(changes).toEqual([[false, first], [true, undefined]]);
  });

  it('forgets the failures on success, so the next failure waits the minimum again', () => {
    const { health } = build();
    health.failed('a');
    health.failed('b');
    health.succeeded();
    expect(health.isHealthy()).toBe(true);
    expect(health.consecutiveFailures).toBe(0);
    expect(health.failed('c')).toBe(100);
  });

  it('counts nothing when marked unhealthy', () => {
    const { health } = build();
    health.markUnhealthy('gone');
    expect(health.isHealthy()).toBe(false);
    expect(health.consecutiveFailures).toBe(0);
  });

  it('probes after each back-off until the ping answers true, then turns healthy with no failures left', async () => {
    const { health, changes } = build();
    const answers: (boolean | Error)[] = [false, new Error('refused'), true];
    const pingedAt: number[] = [];
    const ping = vi.fn(async () => {
      pingedAt.push(Date.now());
      const a = answers.shift()!;
      if (a instanceof Error) throw a; // a ping that throws counts as a no
      return a;
    });
    const start = Date.now();
    health.markUnhealthy('down');
    health.probe(ping);
    health.probe(ping); // a second call while probing starts nothing
    await vi.advanceTimersByTimeAsync(99);
    expect(ping).toHaveBeenCalledTimes(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(ping).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(200 + 400);
    expect(pingedAt.map((t) => t - start)).toEqual([100, 300, 700]);
    expect(health.isHealthy()).toBe(true);
    expect(health.consecutiveFailures).toBe(0);
    expect(changes.map(([h]) => h)).toEqual([false, true]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(ping).toHaveBeenCalledTimes(3);
  });

  it('does not probe while healthy', async () => {
    const { health } = build();
    const ping = vi.fn(async () => true);
    health.probe(ping);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(ping).not.toHaveBeenCalled();
  });
});
