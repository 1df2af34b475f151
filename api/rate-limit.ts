/**
 * Token-bucket rate limits per key (a principal's sub, an API key's sub, a remote address), bounded in memory.
 *
 * Each key holds `tokens` (refilled at `perSecond`, capped at `burst`) and the time of its last refill.
 * Buckets live in a Map in least-recently-used order: a `take` moves its key to the back, so the front holds
 * the idlest keys. A full bucket is indistinguishable from an absent one, so idle keys at the front are dropped
 * on every call (amortised O(1)), and beyond `maxKeys` the least recently used key is dropped even when not
 * full — which at worst hands that key a fresh burst.
 */

/** 100,000 keys × ~100 bytes per Map entry ≈ 10 MB: room for every driver of a large city on one instance. */
const DEFAULT_MAX_KEYS = 100_000;
/** Idle buckets dropped per `take`: enough to keep pace with arrivals without a long pause on any one call. */
const SWEEP_PER_TAKE = 2;

const ADMITTED = Object.freeze({ ok: true as const });

/** A rate limiter's answer: admitted, or how long to wait. */
export type Verdict = { ok: true } | { ok: false; retryAfterSec: number };

/**
 * What the HTTP routes take tokens from: this file's in-process buckets (answer at once), or buckets shared by
 * every edge of a cluster (cluster/shared-buckets.ts, answer once Redis has).
 */
export interface RateLimiter {
  take(key: string, now: number, cost?: number): Verdict | Promise<Verdict>;
}

interface Bucket {
  tokens: number;
  /** ms of the last refill. */
  at: number;
}

/** Per-key token buckets; `now` is in ms. */
export class TokenBuckets implements RateLimiter {
  private readonly perMs: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  private readonly buckets = new Map<string, Bucket>();
  /** The key at the back of `buckets` (the last one taken): taking it again needs no move. */
  private newest: string | undefined;

  constructor(options: { perSecond: number; burst: number; maxKeys?: number }) {
    const { perSecond, burst, maxKeys = DEFAULT_MAX_KEYS } = options;
    if (!(perSecond > 0) || !Number.isFinite(perSecond)) throw new Error('TokenBuckets: perSecond must be a positive finite number');
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new Error('TokenBuckets: burst must be a finite number >= 1');
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new Error('TokenBuckets: maxKeys must be a positive integer');
    this.perMs = perSecond / 1000;
    this.burst = burst;
    this.maxKeys = maxKeys;
  }

  /**
   * Takes `cost` tokens from the key's bucket. A cost above `burst` (one big batch) is admitted when the bucket
   * is full and leaves it in debt, so the key waits until the debt is refilled.
   */
  take(key: string, now: number, cost = 1): Verdict {
    // sweep first: it may drop this very key when full, which is the same as finding it full below
    this.sweep(now);
    let bucket = this.buckets.get(key);
    // a known key moves to the back of the Map, unless it is there already
    const moves = bucket === undefined || key !== this.newest;
    if (bucket) {
      if (moves) this.buckets.delete(key);
      bucket.tokens = Math.min(this.burst, bucket.tokens + Math.max(0, now - bucket.at) * this.perMs);
      bucket.at = Math.max(bucket.at, now);
    } else {
      bucket = { tokens: this.burst, at: now };
    }
    if (moves) this.buckets.set(key, bucket);
    this.newest = key;
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);

    const needed = Math.min(cost, this.burst);
    if (bucket.tokens >= needed) {
      bucket.tokens -= cost;
      return ADMITTED;
    }
    return { ok: false, retryAfterSec: Math.max(1, Math.ceil((needed - bucket.tokens) / this.perMs / 1000)) };
  }

  /** Keys currently held (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    let n = 0;
    for (const [key, bucket] of this.buckets) {
      if (n++ >= SWEEP_PER_TAKE) break;
      if (bucket.tokens + (now - bucket.at) * this.perMs < this.burst) break;
      this.buckets.delete(key);
    }
  }
}
