import { describe, expect, test } from 'vitest';
import { TokenBuckets } from './rate-limit.js';

describe('TokenBuckets', () => {
  test('a key may spend its burst at once, then waits for the refill', () => {
    const b = new TokenBuckets({ perSecond: 2, burst: 3 });
    expect([b.take('a', 0), b.take('a', 0), b.take('a', 0)]).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(b.take('a', 0)).toEqual({ ok: false, retryAfterSec: 1 });
    expect(b.take('a', 499)).toEqual({ ok: false, retryAfterSec: 1 });
    expect(b.take('a', 500)).toEqual({ ok: true });
    expect(b.take('a', 500)).toEqual({ ok: false, retryAfterSec: 1 });
  });

  test('keys are independent', () => {
    const b = new TokenBuckets({ perSecond: 1, burst: 1 });
    expect(b.take('a', 0).ok).toBe(true);
    expect(b.take('b', 0).ok).toBe(true);
    expect(b.take('a', 0).ok).toBe(false);
  });

  test('the refill never exceeds the burst', () => {
    const b = new TokenBuckets({ perSecond: 10, burst: 2 });
    b.take('a', 0);
    expect(b.take('a', 60_000, 2)).toEqual({ ok: true });
    expect(b.take('a', 60_000).ok).toBe(false);
  });

  test('retryAfter counts the seconds until enough tokens are back', () => {
    const b = new TokenBuckets({ perSecond: 1, burst: 10 });
    expect(b.take('a', 0, 10).ok).toBe(true);
    expect(b.take('a', 0, 5)).toEqual({ ok: false, retryAfterSec: 5 });
    expect(b.take('a', 2_000, 5)).toEqual({ ok: false, retryAfterSec: 3 });
  });

  test('a batch larger than the burst is admitted from a full bucket and leaves it in debt', () => {
    const b = new TokenBuckets({ perSecond: 100, burst: 100 });
    expect(b.take('gw', 0, 250)).toEqual({ ok: true });
    // 150 tokens of debt: one more token needs 151 / 100 s
    expect(b.take('gw', 0)).toEqual({ ok: false, retryAfterSec: 2 });
    expect(b.take('gw', 1_510).ok).toBe(true);
  });

  test('memory stays bounded by maxKeys, dropping the least recently used key', () => {
    const b = new TokenBuckets({ perSecond: 1, burst: 1, maxKeys: 3 });
    for (const key of ['a', 'b', 'c']) b.take(key, 0);
    b.take('a', 0); // a is now the most recently used
    b.take('d', 0);
    expect(b.size).toBe(3);
    expect(b.take('a', 0).ok).toBe(false); // still held: its bucket is empty
    expect(b.take('b', 0).ok).toBe(true); // was dropped: starts with a fresh burst
  });

  test('idle keys whose buckets have refilled are dropped as other keys arrive', () => {
    const b = new TokenBuckets({ perSecond: 1, burst: 1 });
    for (let i = 0; i < 100; i++) b.take(`k${i}`, 0);
    for (let i = 0; i < 60; i++) b.take(`later${i}`, 10_000);
    expect(b.size).toBeLessThan(100);
  });

  test('nonsense options are programming errors', () => {
    expect(() => new TokenBuckets({ perSecond: 0, burst: 1 })).toThrow(/perSecond/);
    expect(() => new TokenBuckets({ perSecond: 1, burst: 0 })).toThrow(/burst/);
    expect(() => new TokenBuckets({ perSecond: 1, burst: 1, maxKeys: 0 })).toThrow(/maxKeys/);
  });

  test('taking the newest key again without moving it answers as moving every key would (seeded, against that model)', () => {
    // the model: every take moves its key to the back of the LRU order
    class Model {
      readonly order = new Map<string, { tokens: number; at: number }>();
      constructor(readonly perMs: number, readonly burst: number, readonly maxKeys: number) {}
      take(key: string, now: number): boolean {
        let n = 0;
        for (const [k, b] of this.order) {
          if (n++ >= 2 || b.tokens + (now - b.at) * this.perMs < this.burst) break;
          this.order.delete(k);
        }
        const b = this.order.get(key) ?? { tokens: this.burst, at: now };
        this.order.delete(key);
        b.tokens = Math.min(this.burst, b.tokens + Math.max(0, now - b.at) * this.perMs);
        b.at = Math.max(b.at, now);
        this.order.set(key, b);
        if (this.order.size > this.maxKeys) this.order.delete(this.order.keys().next().value as string);
        if (b.tokens >= 1) {
          b.tokens -= 1;
          return true;
        }
        return false;
      }
    }
    let seed = 3;
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
    const buckets = new TokenBuckets({ perSecond: 5, burst: 3, maxKeys: 4 });
    const model = new Model(5 / 1000, 3, 4);
    let now = 0;
    for (let i = 0; i < 20_000; i++) {
      now += rnd(4) === 0 ? rnd(2000) : rnd(20);
      const key = `k${rnd(3) === 0 ? rnd(8) : rnd(2)}`;
      expect(buckets.take(key, now).ok, `take ${i}`).toBe(model.take(key, now));
      expect(buckets.size).toBe(model.order.size);
    }
  });
});

