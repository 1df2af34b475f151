/**
 * Region leases in Redis with fencing epochs (PRODUCT §7): at most one core holds a region at a time, and each
 * new holder gets a larger epoch than every holder before it.
 *
 *   core A: acquire(r) ─► epoch 7 ─ renew ─ renew ─ (dies) · · · · lease expires (ttl)
 *   core B: acquire(r) ─► refused ─ … ─────────────────────────────► acquire(r) ─► epoch 8
 *   core A comes back: renew(r, 7) ─► false (the lease names B|8); its commits under epoch 7 are refused by
 *   PostgreSQL, which has seen 8 (store `claimRegion` / commit fences): Redis decides who holds, PostgreSQL
 *   refuses whoever no longer does.
 *
 * The epoch counter never expires, so an epoch is never handed out twice even when every lease has lapsed. Redis
 * on these machines keeps nothing on disk: after a Redis restart the counter starts again at 1, which PostgreSQL's
 * stored epoch then outranks; `acquire` takes a floor (the stored epoch) so a new holder always lands above it.
 */
import type { Redis } from 'ioredis';

/** Who holds a region and under which epoch. */
export interface RegionHolder {
  owner: string;
  epoch: number;
}

export interface RegionLeaseOptions {
  /** This core's name; unique in the cluster (a restarted core should take a new one). */
  owner: string;
  /** How long a lease lives without renewal; PRODUCT §7 wants a dead core's regions free within 5 s. */
  ttlMs?: number;
  /** Key prefix, so clusters (and test runs) sharing a Redis do not meet. */
  prefix?: string;
}

/** 5 s: PRODUCT §7's bound on a dead core's regions; holders renew every third of it. */
export const DEFAULT_LEASE_TTL_MS = 5_000;

// KEYS[1] lease, KEYS[2] epoch counter; ARGV owner, ttl, floor. The holder itself re-acquiring keeps its epoch.
const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, '|', 1, true)
  if string.sub(cur, 1, sep - 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(cur, sep + 1))
  end
  return 0
end
local epoch = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if epoch <= floor then
  epoch = floor + 1
  redis.call('SET', KEYS[2], epoch)
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
return epoch`;

// KEYS[1] lease; ARGV holder value, ttl: extends only the lease this holder still holds
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`;

/** One core's view of the region leases: acquire, renew, release, and who holds what. */
export class RegionLeases {
  readonly owner: string;
  readonly ttlMs: number;
  private readonly prefix: string;

  constructor(
    private readonly redis: Redis,
    options: RegionLeaseOptions,
  ) {
    if (options.owner === '' || options.owner.includes('|')) throw new Error(`a lease owner must be non-empty and free of '|', got '${options.owner}'`);
    this.owner = options.owner;
    this.ttlMs = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    if (!(this.ttlMs >= 100)) throw new Error(`ttlMs must be at least 100 ms, got ${this.ttlMs}`);
    this.prefix = options.prefix ?? 'gd:';
  }

  /**
   * Takes the region when no one holds it; the epoch it holds it under, or undefined when another core does.
   * `floor`: the largest epoch already seen for the region (PostgreSQL's), which the new epoch must exceed.
   */
  async acquire(region: string, floor = 0): Promise<number | undefined> {
    const epoch = Number(await this.redis.eval(ACQUIRE, 2, this.leaseKey(region), this.epochKey(region), this.owner, this.ttlMs, floor));
    return epoch > 0 ? epoch : undefined;
  }

  /** Extends the lease; false when it lapsed or another core holds the region now (stop serving it). */
  async renew(region: string, epoch: number): Promise<boolean> {
    return Number(await this.redis.eval(RENEW, 1, this.leaseKey(region), `${this.owner}|${epoch}`, this.ttlMs)) === 1;
  }

  /** Gives the region up (a clean shutdown), so another core need not wait out the lease. */
  async release(region: string, epoch: number): Promise<boolean> {
    return Number(await this.redis.eval(RELEASE, 1, this.leaseKey(region), `${this.owner}|${epoch}`)) === 1;
  }

  /** The region's current holder, if any. */
  async holder(region: string): Promise<RegionHolder | undefined> {
    const value = await this.redis.get(this.leaseKey(region));
    return value === null ? undefined : parseHolder(value);
  }

  /** The holders of several regions in one round trip, in the order given. */
  async holders(regions: readonly string[]): Promise<(RegionHolder | undefined)[]> {
    if (regions.length === 0) return [];
    const values = await this.redis.mget(...regions.map((r) => this.leaseKey(r)));
    return values.map((v) => (v === null ? undefined : parseHolder(v)));
  }

  private leaseKey(region: string): string {
    return `${this.prefix}lease:${region}`;
  }

  private epochKey(region: string): string {
    return `${this.prefix}epoch:${region}`;
  }
}

function parseHolder(value: string): RegionHolder {
  const sep = value.lastIndexOf('|');
  return { owner: value.slice(0, sep), epoch: Number(value.slice(sep + 1)) };
}
