import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenBuckets } from '../api/rate-limit.js';
import { seededRandom } from '../fixtures/prng.js';
import { SharedTokenBuckets } from './shared-buckets.js';
import { connectTestRedis } from './test-redis.js';

describe('shared token buckets on a real Redis', () => {
  let redis: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => ({ redis, prefix, cleanup } = await connectTestRedis()));
  afterAll(async () => cleanup());

  it('decides every call as the in-process buckets do (oracle: 3,000 random calls over 12 keys)', async () => {
    for (const seed of [1, 2, 3]) {
      const rand = seededRandom(seed);
      const options = { perSecond: 5 + Math.floor(rand() * 50), burst: 1 + Math.floor(rand() * 30) };
      const local = new TokenBuckets(options);
      const shared = new SharedTokenBuckets(redis, { ...options, prefix: `${prefix}oracle${seed}:` });
      let now = 1_700_000_000_000;
      for (let i = 0; i < 1_000; i++) {
        now += Math.floor(rand() * rand() * 400); // bursts and pauses; sometimes the same ms
        const key = `k${Math.floor(rand() * 12)}`;
        const cost = rand() < 0.1 ? 1 + Math.floor(rand() * options.burst * 2) : 1;
        const want = local.take(key, now, cost);
        const got = await shared.take(key, now, cost);
        if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`seed ${seed} call ${i} (${key}, +${cost} at ${now}): Redis ${JSON.stringify(got)}, in process ${JSON.stringify(want)}`);
      }
    }
  });

  it('gives a key one allowance across edges: drained through one, refused through the other', async () => {
    const options = { perSecond: 1, burst: 3, prefix: `${prefix}edges:` };
    const [edgeA, edgeB] = [new SharedTokenBuckets(redis, options), new SharedTokenBuckets(redis.duplicate(), options)];
    const now = Date.now();
    for (let i = 0; i < 3; i++) expect(await edgeA.take('driver-1', now)).toEqual({ ok: true });
    expect(await edgeB.take('driver-1', now)).toEqual({ ok: false, retryAfterSec: 1 });
    expect(await edgeB.take('driver-2', now)).toEqual({ ok: true });
    expect(await edgeB.take('driver-1', now + 1_000)).toEqual({ ok: true });
  });

  it('keeps only buckets in use: a bucket expires once it would be full again', async () => {
    const shared = new SharedTokenBuckets(redis, { perSecond: 1_000, burst: 5, prefix: `${prefix}ttl:` });
    await shared.take('k', Date.now(), 2);
    const ttl = await redis.pttl(`${prefix}ttl:rl:k`);
    expect(ttl).toBeGreaterThan(60_000);
    expect(ttl).toBeLessThanOrEqual(60_002);
  });
});
