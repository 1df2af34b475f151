import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegionLeases } from './region-lease.js';
import { connectTestRedis } from './test-redis.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('region leases on a real Redis', () => {
  let redis: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => ({ redis, prefix, cleanup } = await connectTestRedis()));
  afterAll(async () => cleanup());

  const leases = (owner: string, ttlMs = 5_000): RegionLeases => new RegionLeases(redis, { owner, ttlMs, prefix });

  it('gives a free region to one of two contending cores, and the other is refused', async () => {
    const [a, b] = [leases('core-a'), leases('core-b')];
    const got = await Promise.all([a.acquire('r1'), b.acquire('r1')]);
    expect(got.filter((e) => e !== undefined)).toEqual([1]);
    const winner = got[0] !== undefined ? 'core-a' : 'core-b';
    expect(await a.holder('r1')).toEqual({ owner: winner, epoch: 1 });
  });

  it('keeps the epoch when the holder acquires again, and renews only its own lease', async () => {
    const [a, b] = [leases('core-a'), leases('core-b')];
    const epoch = await a.acquire('r2');
    expect(epoch).toBe(1);
    expect(await a.acquire('r2')).toBe(1);
    expect(await a.renew('r2', 1)).toBe(true);
    expect(await b.renew('r2', 1)).toBe(false);
    expect(await a.renew('r2', 2)).toBe(false);
  });

  it('hands an expired region to the next core under a larger epoch; the old holder can no longer renew', async () => {
    const a = leases('core-a', 300);
    const b = leases('core-b', 300);
    expect(await a.acquire('r3')).toBe(1);
    expect(await b.acquire('r3')).toBeUndefined();
    await sleep(450); // core A stops renewing (killed)
    expect(await b.acquire('r3')).toBe(2);
    expect(await a.renew('r3', 1)).toBe(false);
    expect(await a.acquire('r3')).toBeUndefined();
    expect(await a.holder('r3')).toEqual({ owner: 'core-b', epoch: 2 });
  });

  it('frees a released region at once, and a release by a non-holder changes nothing', async () => {
    const [a, b] = [leases('core-a'), leases('core-b')];
    expect(await a.acquire('r4')).toBe(1);
    expect(await b.release('r4', 1)).toBe(false);
    expect(await a.release('r4', 1)).toBe(true);
    expect(await a.holder('r4')).toBeUndefined();
    expect(await b.acquire('r4')).toBe(2);
  });

  it('lands above the floor it is given (a Redis that restarted and lost its counters)', async () => {
    const a = leases('core-a');
    expect(await a.acquire('r5', 41)).toBe(42);
    await a.release('r5', 42);
    expect(await a.acquire('r5', 10)).toBe(43);
  });

  it('refuses an owner name that would break the lease value', () => {
    expect(() => leases('a|b')).toThrow(/free of '\|'/);
    expect(() => leases('')).toThrow(/non-empty/);
  });
});
