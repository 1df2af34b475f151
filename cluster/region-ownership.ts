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
 * Regions become known when an edge first routes something to them (`registerRegions`). A core that dies stops
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

/** Adds regions to the cluster's known set (an edge routing a first ping there); cheap to repeat. */
export async function registerRegions(redis: Redis, regions: readonly string[], prefix = 'gd:'): Promise<void> {
  if (regions.length > 0) await redis.sadd(`${prefix}regions`, ...regions);
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
      const [held, known] = await Promise.all([leases.holders(regions), redis.smismember(`${prefix}regions`, ...regions)]);
      return held.map((h, i) => h?.owner ?? (known[i] === 1 ? undefined : null));
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
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;

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

  /** Ticks every third of the lease until stop(); a failed tick (Redis away) is retried by the next. */
  start(onError: (err: unknown) => void = () => undefined): void {
    if (this.timer !== undefined) return;
    const run = (): void => {
      if (this.ticking === undefined) this.ticking = this.tick().catch(onError).finally(() => (this.ticking = undefined));
    };
    run();
    this.timer = setInterval(run, Math.max(50, Math.floor(this.leases.ttlMs / 3)));
  }

  /** Stops ticking and hands every region back, so the others take them without waiting out the leases. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    for (const [region, epoch] of [...this.held]) await this.handBack(region, epoch);
    await this.redis.zrem(this.coresKey(), this.leases.owner);
    await this.redis.eval(RELEASE_NAME, 1, this.nameKey(), this.token);
  }

  /** One round: heartbeat, renew, then take or hand back regions towards an even share. */
  async tick(): Promise<void> {
    if ((await this.redis.eval(KEEP_NAME, 1, this.nameKey(), this.token, String(this.leases.ttlMs))) !== 1) {
      // another process took this name while ours lapsed (Redis unreachable): its leases are its own now
      for (const [region, epoch] of [...this.held]) this.drop(region, epoch);
      throw new NameTaken(this.leases.owner);
    }
    const live = await this.heartbeat();
    for (const [region, epoch] of [...this.held]) {
      if (!(await this.leases.renew(region, epoch))) this.drop(region, epoch);
    }
    const known = (await this.redis.smembers(`${this.prefix}regions`)).sort();
    const share = Math.ceil(known.length / Math.max(1, live));
    if (this.held.size > share) {
      for (const region of [...this.held.keys()].sort().slice(share)) await this.handBack(region, this.held.get(region) as number);
      return;
    }
    // start at a point of the ring that depends on this core's name, so cores starting together spread out
    const start = known.length === 0 ? 0 : hash(this.leases.owner) % known.length;
    for (let i = 0; i < known.length && this.held.size < share; i++) {
      const region = known[(start + i) % known.length];
      if (!this.held.has(region)) await this.tryTake(region);
    }
  }

  private async tryTake(region: string): Promise<void> {
    const floor = (await this.store.regionEpochs([region])).get(region) ?? 0;
    const epoch = await this.leases.acquire(region, floor);
    if (epoch === undefined) return;
    const claim = await this.store.claimRegion(region, epoch);
    if (!claim.claimed) {
      // a larger epoch got there first (a Redis that lost its counters raced a claim): give the lease back
      await this.leases.release(region, epoch);
      return;
    }
    this.held.set(region, epoch);
    await this.options.onGained?.(region, epoch);
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
