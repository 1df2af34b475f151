/**
 * Token buckets shared by every edge through Redis (PRODUCT §7: a client spreading its calls over edges gets
 * one allowance, not one per edge). The same arithmetic as api/rate-limit.ts's TokenBuckets, run as one Lua
 * script per take so read-refill-take is atomic across edges:
 *
 *   edge A ─┐                       HMGET t, a ─► refill by (now − a) × perMs, capped at burst
 *           ├─ EVALSHA take(key) ─► take cost if there ─► HSET t, a ─► PEXPIRE (time to refill full)
 *   edge B ─┘                       ◄─ [1] admitted  |  [0, retry-after s]
 *
 * A bucket expires once it would be full again, and a full bucket is the same as an absent one, so Redis holds
 * only the keys that are in use. `now` is the caller's (each edge's clock), as in TokenBuckets.
 */
import type { Redis } from 'ioredis';
import type { RateLimiter, Verdict } from '../api/rate-limit.js';

const TAKE = `
local perMs = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local v = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens = burst
local at = now
if v[1] then
  tokens = math.min(burst, tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * perMs)
  at = math.max(tonumber(v[2]), now)
end
local needed = math.min(cost, burst)
local ok = tokens >= needed
if ok then tokens = tokens - cost end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'a', string.format('%.17g', at))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / perMs) + 60000)
if ok then return {1, 0} end
return {0, math.max(1, math.ceil((needed - tokens) / perMs / 1000))}`;

/** Per-key token buckets in Redis; the same decisions as TokenBuckets for the same calls. */
export class SharedTokenBuckets implements RateLimiter {
  private readonly perMs: number;
  private readonly burst: number;
  private readonly prefix: string;

  constructor(
    private readonly redis: Redis,
    options: { perSecond: number; burst: number; prefix?: string },
  ) {
    const { perSecond, burst } = options;
    if (!(perSecond > 0) || !Number.isFinite(perSecond)) throw new Error('SharedTokenBuckets: perSecond must be a positive finite number');
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new Error('SharedTokenBuckets: burst must be a finite number >= 1');
    this.perMs = perSecond / 1000;
    this.burst = burst;
    this.prefix = `${options.prefix ?? 'gd:'}rl:`;
  }

  /** Takes `cost` tokens from the key's bucket (a cost above burst is admitted from a full bucket, into debt). */
  async take(key: string, now: number, cost = 1): Promise<Verdict> {
    const [ok, retry] = (await this.redis.eval(TAKE, 1, this.prefix + key, String(this.perMs), String(this.burst), String(now), String(cost))) as [number, number];
    return ok === 1 ? { ok: true } : { ok: false, retryAfterSec: retry };
  }
}
