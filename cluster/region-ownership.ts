/**
 * Which regions this core serves: a loop over Redis leases and PostgreSQL epochs (PRODUCT §7).
 *
 *   every tick (a third of the lease):
 *     heartbeat ── ZADD cores (this core, now + ttl), drop the expired ─► live cores
 *     renew held leases ── lost one? ─► onLost(region)  (stop serving it; its commits would be refused anyway)
 *     share = ⌈known regions / live cores⌉
 *     fewer than share ─► take free regions: acquire(region, floor = stored epoch) ─► claimRegion ─► onGained
 *     more than share  ─► hand the extras back: onLost, then release (a core that joined gets them next tick)
 *
 * Regions become known when an edge routes something to them (`registerRegions`, a sorted set scored by when), and
 * are forgotten by the core holding them once nothing is in them (`forget`). A core that dies stops
 * renewing; its leases lapse within the ttl and the survivors' next ticks take them under larger epochs.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Store } from '../store/store.js';
import type { OwnerDirectory } from './nearest-scatter.js';
import type { RegionLeases } from './region-lease.js';

export interface RegionOwnershipOptions {
  /** Key prefix shared by the cluster (the leases' own). */
  prefix?: string;
  /** Called once the region is this core's under `epoch` (leased and claimed): load it, then serve it. */
  onGained?: (region: string, epoch: number) => void | Promise<void>;
  /** Called when the region stops being this core's (lease lost, or handed back): stop serving it at once. */
  onLost?: (region: string, epoch: number) => void;
}

/** The store calls ownership needs: epochs to start above, and the claim that fences the previous holder. */
export type EpochStore = Pick<Store, 'claimRegion' | 'regionEpochs'>;

/**
 * Adds regions to the cluster's known set (an edge routing a ping there), scored by when (default now): cores take
 * the most recently pinged first, so the regions a fleet is moving in come before ones pinged once long ago.
 */
export async function registerRegions(redis: Redis, regions: readonly string[], prefix = 'gd:', at = Date.now()): Promise<void> {
  if (regions.length > 0) await redis.zadd(`${prefix}regions`, ...regions.flatMap((r) => [at, r]));
}

/** The cores whose heartbeat has not lapsed. */
export async function liveCores(redis: Redis, prefix = 'gd:'): Promise<string[]> {
  return redis.zrangebyscore(`${prefix}cores`, Date.now(), '+inf');
}

/** Who owns what, as an edge reads it: lease holders and live cores. */
export function leaseDirectory(redis: Redis, leases: RegionLeases, prefix = 'gd:'): OwnerDirectory {
  return {
    holders: async (regions) => {
      if (regions.length === 0) return [];
      const [held, known] = await Promise.all([leases.holders(regions), redis.zmscore(`${prefix}regions`, ...regions)]);
      return held.map((h, i) => h?.owner ?? (known[i] !== null ? undefined : null));
    },
    liveCores: () => liveCores(redis, prefix),
  };
}

// KEYS[1] the name's key; ARGV token, ttl. Keeps (or, when it lapsed, takes back) this process's hold on its
// name; 0 when another process holds the name now.
const KEEP_NAME = `
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] or not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

// KEYS[1] the name's key; ARGV token: lets go of the name only if this process holds it
const RELEASE_NAME = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * Regions taken per round at most: each is a lease, a claim in PostgreSQL and a load of its couriers, and a round
 * must stay short however many regions are known (a sender pinging random points registers thousands).
 */
export const MAX_TAKES_PER_ROUND = 4;

/** A second process started under a live core's name: it would share that core's leases and consumer. */
export class NameTaken extends Error {
  constructor(name: string) {
    super(`a core named '${name}' is already running in this cluster: give each core its own GD_NODE_NAME (or wait for the old one's lease to lapse)`);
    this.name = 'NameTaken';
  }
}

/** One core's share of the regions, kept by `tick()` (or `start()`, which ticks every third of the lease). */
export class RegionOwnership {
  private readonly held = new Map<string, number>();
  private readonly prefix: string;
  /** This process's hold on its name: leases are by name, so two processes under one name would share them. */
  private readonly token = randomBytes(12).toString('hex');
  private timers: NodeJS.Timeout[] = [];
  private keeping: Promise<void> | undefined;
  private balancing: Promise<void> | undefined;
  /** Live cores at the last heartbeat, this one included (0 until the first). */
  private live = 0;

  constructor(
    private readonly redis: Redis,
    private readonly leases: RegionLeases,
    private readonly store: EpochStore,
    private readonly options: RegionOwnershipOptions = {},
  ) {
    this.prefix = options.prefix ?? 'gd:';
  }

  /** The regions this core serves now, with their epochs. */
  regions(): ReadonlyMap<string, number> {
    return this.held;
  }

  /** Takes this core's name for this process; NameTaken when a live process holds it. */
  async claimName(): Promise<void> {
    const ok = await this.redis.set(this.nameKey(), this.token, 'PX', this.leases.ttlMs, 'NX');
    if (ok !== 'OK') throw new NameTaken(this.leases.owner);
  }

  /**
   * Keeps (heartbeat, name, renewals) and balances (take, hand back) every third of the lease until stop(), on
   * two timers: taking regions waits on PostgreSQL and on loading them, and renewals must never wait behind that.
   * A failed round (Redis away) is retried by the next.
   */
  start(onError: (err: unknown) => void = () => undefined): void {
    if (this.timers.length > 0) return;
    const every = Math.max(50, Math.floor(this.leases.ttlMs / 3));
    const keep = (): void => {
      if (this.keeping === undefined) this.keeping = this.keep().catch(onError).finally(() => (this.keeping = undefined));
    };
    const balance = (): void => {
      if (this.balancing === undefined) this.balancing = this.balance().catch(onError).finally(() => (this.balancing = undefined));
    };
    keep();
    balance();
    this.timers.push(setInterval(keep, every), setInterval(balance, every));
  }

  /** Stops ticking and hands every region back, so the others take them without waiting out the leases. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.keeping;
    await this.balancing;
    for (const [region, epoch] of [...this.held]) await this.handBack(region, epoch);
    await this.redis.zrem(this.coresKey(), this.leases.owner);
    await this.redis.eval(RELEASE_NAME, 1, this.nameKey(), this.token);
  }

  /** One round of both: keep, then balance. */
  async tick(): Promise<void> {
    await this.keep();
    await this.balance();
  }

  /**
   * Lets go of a region that has nothing in it (no courier held, no ping applied for a while): out of the known
   * set and handed back, so regions a broken or hostile sender pinged once do not pile up for ever. The next ping
   * there registers it again.
   */
  async forget(region: string): Promise<void> {
    const epoch = this.held.get(region);
    if (epoch === undefined) return;
    await this.redis.zrem(`${this.prefix}regions`, region);
    await this.handBack(region, epoch);
  }

  /** Heartbeat, this process's name, renewals: a lease this core lost is dropped at once. */
  private async keep(): Promise<void> {
    if ((await this.redis.eval(KEEP_NAME, 1, this.nameKey(), this.token, String(this.leases.ttlMs))) !== 1) {
      // another process took this name while ours lapsed (Redis unreachable): its leases are its own now
      for (const [region, epoch] of [...this.held]) this.drop(region, epoch);
      throw new NameTaken(this.leases.owner);
    }
    this.live = await this.heartbeat();
    for (const [region, epoch] of [...this.held]) {
      if (this.held.get(region) !== epoch) continue; // handed back meanwhile
      if (!(await this.leases.renew(region, epoch)) && this.held.get(region) === epoch) this.drop(region, epoch);
    }
  }

  /** Takes free regions towards ⌈known / live⌉ (a few per round, so a round stays short) or hands extras back. */
  private async balance(): Promise<void> {
    if (this.live === 0) return; // not kept yet (or the name is taken): nothing to take under
    const scored = await this.redis.zrange(`${this.prefix}regions`, '0', '-1', 'WITHSCORES');
    const lastPinged = new Map<string, number>();
    for (let i = 0; i + 1 < scored.length; i += 2) lastPinged.set(scored[i], Number(scored[i + 1]));
    const known = [...lastPinged.keys()].sort();
    const share = Math.ceil(known.length / Math.max(1, this.live));
    if (this.held.size > share) {
      // hand back the quietest first: the busy regions stay where their couriers are loaded
      const quietest = [...this.held.keys()].sort((a, b) => (lastPinged.get(a) ?? 0) - (lastPinged.get(b) ?? 0) || (a < b ? -1 : 1));
      for (const region of quietest.slice(0, this.held.size - share)) await this.handBack(region, this.held.get(region) as number);
      return;
    }
    // the most recently pinged first (a dead core's busy regions before regions pinged once, long ago); among
    // equals, from a point of the ring that depends on this core's name, so cores starting together spread out
    const start = known.length === 0 ? 0 : hash(this.leases.owner) % known.length;
    const ring = known.map((_, i) => known[(start + i) % known.length]);
    const order = ring.map((r, i) => [r, i] as const).sort((a, b) => (lastPinged.get(b[0]) ?? 0) - (lastPinged.get(a[0]) ?? 0) || a[1] - b[1]);
    let taken = 0;
    for (const [region] of order) {
      if (this.held.size >= share || taken >= MAX_TAKES_PER_ROUND) break;
      if (!this.held.has(region) && (await this.tryTake(region))) taken++;
    }
  }

  private async tryTake(region: string): Promise<boolean> {
    const floor = (await this.store.regionEpochs([region])).get(region) ?? 0;
    const epoch = await this.leases.acquire(region, floor);
    if (epoch === undefined) return false;
    const claim = await this.store.claimRegion(region, epoch);
    if (!claim.claimed) {
      // a larger epoch got there first (a Redis that lost its counters raced a claim): give the lease back
      await this.leases.release(region, epoch);
      return false;
    }
    this.held.set(region, epoch);
    await this.options.onGained?.(region, epoch);
    return true;
  }

  private async handBack(region: string, epoch: number): Promise<void> {
    this.drop(region, epoch);
    await this.leases.release(region, epoch);
  }

  private drop(region: string, epoch: number): void {
    this.held.delete(region);
    this.options.onLost?.(region, epoch);
  }

  /** Records this core as live until now + ttl; the number of live cores, this one included. */
  private async heartbeat(): Promise<number> {
    const now = Date.now();
    const key = this.coresKey();
    const [, , [, live]] = (await this.redis
      .multi()
      .zadd(key, now + this.leases.ttlMs, this.leases.owner)
      .zremrangebyscore(key, '-inf', now)
      .zcard(key)
      .exec()) as [unknown, unknown, [unknown, number]];
    return live;
  }

  private coresKey(): string {
    return `${this.prefix}cores`;
  }

  private nameKey(): string {
    return `${this.prefix}core-name:${this.leases.owner}`;
  }
}

/** FNV-1a of a string: a stable, cheap spread of starting points. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
