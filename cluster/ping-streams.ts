/**
 * Pings from edges to region owners through Redis Streams (PRODUCT §7): one stream per region, read by the
 * region's owner through a consumer group, acknowledged once applied.
 *
 *   edge: frame of pings ─► split by region ─► XADD pings:{region} (one entry per region per frame, MessagePack)
 *                                              ─► resolves: the gateway may ack the driver (the ping is in Redis)
 *   core: XREADGROUP owners, one blocking read over every stream it owns ─► onBatch(region, pings) ─► XACK
 *         on gaining a region: XAUTOCLAIM what the previous owner read but never acknowledged, then read on
 *
 * Pings are soft state (the next ping repairs a lost one), so each stream is capped (MAXLEN ~): a region left
 * without an owner for long keeps only its newest entries instead of growing without bound.
 */
import type { Redis } from 'ioredis';
import { pack, unpack } from 'msgpackr';
import { regionOf } from './regions.js';

/** Pings as parallel arrays (the gateway's own batch shape). */
export interface PingBatch {
  ids: string[];
  lat: number[];
  lng: number[];
  ts: number[];
}

/**
 * Pings in one stream entry at most: a publisher splits larger frames, a consumer drops an entry over it as
 * poison. Applying 5,000 pings takes a few ms, so a core yields between entries well within its lease renewals.
 */
export const MAX_PINGS_PER_ENTRY = 5_000;
/** An entry's bytes at most (~40 B a ping, with room): a larger one is dropped before it is decoded. */
const MAX_ENTRY_BYTES = 512 * 1024;

/** Entries a region's stream keeps at most (~): about a minute of a busy region's frames. */
export const STREAM_MAXLEN = 10_000;

/** The consumer group every region owner reads through (one owner at a time, by lease). */
export const OWNER_GROUP = 'owners';

/** The stream key of a region's pings. */
export function pingStreamKey(prefix: string, region: string): string {
  return `${prefix}pings:${region}`;
}

/** The edge's half: appends a frame's pings to their regions' streams; resolves once Redis holds them all. */
/** How long an edge trusts that a region it registered is still known (cores forget empty regions). */
const REGISTERED_FOR_MS = 5_000;

export class PingPublisher {
  /** Regions registered lately, with when: registered again after REGISTERED_FOR_MS (a core may have forgotten it). */
  private readonly registered = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'gd:',
  ) {}

  /** Appends the pings, grouped by region, in one pipeline; the regions they went to. */
  async publish(batch: PingBatch): Promise<string[]> {
    const byRegion = new Map<string, PingBatch>();
    for (let i = 0; i < batch.ids.length; i++) {
      const region = regionOf(batch.lat[i], batch.lng[i]);
      let b = byRegion.get(region);
      if (b === undefined) byRegion.set(region, (b = { ids: [], lat: [], lng: [], ts: [] }));
      b.ids.push(batch.ids[i]);
      b.lat.push(batch.lat[i]);
      b.lng.push(batch.lng[i]);
      b.ts.push(batch.ts[i]);
    }
    const pipe = this.redis.pipeline();
    const now = Date.now();
    const fresh = [...byRegion.keys()].filter((r) => !(now - (this.registered.get(r) ?? -Infinity) < REGISTERED_FOR_MS));
    // known regions scored by when they were last pinged: cores take the busiest first (cluster/region-ownership.ts)
    if (fresh.length > 0) pipe.zadd(`${this.prefix}regions`, ...fresh.flatMap((r) => [now, r]));
    for (const [region, b] of byRegion) {
      for (let from = 0; from < b.ids.length; from += MAX_PINGS_PER_ENTRY) {
        const to = from + MAX_PINGS_PER_ENTRY;
        const entry = from === 0 && b.ids.length <= MAX_PINGS_PER_ENTRY ? [b.ids, b.lat, b.lng, b.ts] : [b.ids.slice(from, to), b.lat.slice(from, to), b.lng.slice(from, to), b.ts.slice(from, to)];
        pipe.xadd(pingStreamKey(this.prefix, region), 'MAXLEN', '~', STREAM_MAXLEN, '*', 'p', pack(entry));
      }
    }
    const results = (await pipe.exec()) ?? [];
    const failed = results.find(([err]) => err !== null);
    if (failed) throw failed[0];
    for (const r of fresh) this.registered.set(r, now);
    if (this.registered.size > 100_000) this.registered.clear(); // bounded: a sender spraying points costs SADDs, not memory
    return [...byRegion.keys()];
  }
}

export interface PingConsumerOptions {
  prefix?: string;
  /** This core's consumer name in each group (its owner name). */
  consumer: string;
  /** Entries per read; a frame is one entry, so 64 entries can be 64,000 pings. */
  count?: number;
  /** How long one blocking read waits for a first entry. */
  blockMs?: number;
  /** An entry dropped (undecodable, or onBatch threw on it); it is acknowledged all the same. */
  onDropped?: (region: string, entryId: string, reason: string) => void;
}

/**
 * The core's half: reads the streams of the regions it owns, hands each entry's pings to `onBatch`, then
 * acknowledges them. Needs a connection of its own (XREADGROUP BLOCK holds it).
 */
export class PingConsumer {
  private readonly streams = new Set<string>();
  private readonly prefix: string;
  private running = false;
  private loop: Promise<void> | undefined;
  /** Entries dropped so far (see onDropped). */
  dropped = 0;

  constructor(
    private readonly redis: Redis,
    private readonly onBatch: (region: string, batch: PingBatch) => void,
    private readonly options: PingConsumerOptions,
  ) {
    this.prefix = options.prefix ?? 'gd:';
  }

  /** Starts reading a region: creates its group if new, then takes over what a previous owner left unacked. */
  async addRegion(region: string): Promise<void> {
    const key = pingStreamKey(this.prefix, region);
    try {
      // from the start of what the stream keeps: a region's first owner applies pings sent before it came
      await this.redis.xgroup('CREATE', key, OWNER_GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
    }
    await this.claimPending(region, key);
    this.streams.add(region);
  }

  /** Stops reading a region (lost or handed back); what it read and acked stays acked. */
  removeRegion(region: string): void {
    this.streams.delete(region);
  }

  /** Reads until stop(); a failed read (Redis away) is retried after a pause. */
  start(onError: (err: unknown) => void = () => undefined): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        try {
          if (this.streams.size === 0) await sleep(this.options.blockMs ?? 100);
          else await this.readOnce();
        } catch (err) {
          onError(err);
          await sleep(250);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** One XREADGROUP over every region owned now; applies and acknowledges what came. */
  async readOnce(): Promise<number> {
    const regions = [...this.streams];
    if (regions.length === 0) return 0;
    const keys = regions.map((r) => pingStreamKey(this.prefix, r));
    const reply = (await this.redis.callBuffer(
      'XREADGROUP', 'GROUP', OWNER_GROUP, this.options.consumer, 'COUNT', this.options.count ?? 64, 'BLOCK', this.options.blockMs ?? 100,
      'STREAMS', ...keys, ...keys.map(() => '>'),
    )) as unknown[] | null;
    if (reply === null) return 0;
    let n = 0;
    for (const [keyBuf, entries] of streamsOf(reply)) {
      const key = keyBuf.toString();
      const region = regions[keys.indexOf(key)];
      n += await this.apply(region, entries);
      if (entries.length > 0) await this.redis.xack(key, OWNER_GROUP, ...entries.map(([id]) => id.toString()));
    }
    return n;
  }

  private async claimPending(region: string, key: string): Promise<void> {
    let cursor = '0-0';
    do {
      const [next, entries] = (await this.redis.callBuffer('XAUTOCLAIM', key, OWNER_GROUP, this.options.consumer, 0, cursor, 'COUNT', 256)) as [Buffer, [Buffer, Buffer[] | null][]];
      const live = entries.filter((e): e is [Buffer, Buffer[]] => e[1] !== null);
      await this.apply(region, live);
      if (entries.length > 0) await this.redis.xack(key, OWNER_GROUP, ...entries.map(([id]) => id.toString()));
      cursor = next.toString();
    } while (cursor !== '0-0');
  }

  /**
   * Hands each entry's pings to onBatch. An entry that does not decode to a batch, or whose batch onBatch throws
   * on, is dropped and reported, never left unacknowledged: a poison entry left pending would be claimed and
   * thrown on by every later owner, and the region would never be served again.
   */
  private async apply(region: string, entries: [Buffer, Buffer[]][]): Promise<number> {
    let n = 0;
    for (const [id, fields] of entries) {
      // between entries, timers run: lease renewals and heartbeats never wait behind a long read
      if (n > 0) await new Promise((r) => setImmediate(r));
      let found = false;
      for (let f = 0; f + 1 < fields.length; f += 2) {
        if (fields[f].toString() !== 'p') continue;
        found = true;
        const batch = decodeBatch(fields[f + 1]);
        if (typeof batch === 'string') {
          this.drop(region, id, batch);
          continue;
        }
        try {
          this.onBatch(region, batch);
          n += batch.ids.length;
        } catch (err) {
          this.drop(region, id, `applying it threw: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (!found) this.drop(region, id, 'no p field');
    }
    return n;
  }

  private drop(region: string, id: Buffer, reason: string): void {
    this.dropped++;
    this.options.onDropped?.(region, id.toString(), reason);
  }
}

/** A stream entry's batch, or why it is not one. */
function decodeBatch(value: Buffer): PingBatch | string {
  if (value.length > MAX_ENTRY_BYTES) return `${value.length} bytes: more than ${MAX_ENTRY_BYTES}`;
  let v: unknown;
  try {
    v = unpack(value);
  } catch (err) {
    return `not MessagePack: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (!Array.isArray(v) || v.length !== 4 || !v.every(Array.isArray)) return 'not [ids, lat, lng, ts]';
  const [ids, lat, lng, ts] = v as unknown[][];
  if (lat.length !== ids.length || lng.length !== ids.length || ts.length !== ids.length) return 'arrays of different lengths';
  if (ids.length > MAX_PINGS_PER_ENTRY) return `${ids.length} pings: more than ${MAX_PINGS_PER_ENTRY} in one entry`;
  if (!ids.every((x) => typeof x === 'string') || ![lat, lng, ts].every((a) => a.every((x) => typeof x === 'number'))) return 'ids must be strings and positions numbers';
  return { ids: ids as string[], lat: lat as number[], lng: lng as number[], ts: ts as number[] };
}

/** XREADGROUP's streams as [key, entries] pairs: RESP2 answers a list of pairs, RESP3 (ioredis 6) a flattened map. */
function streamsOf(reply: unknown[]): [Buffer, [Buffer, Buffer[]][]][] {
  if (reply.length === 0 || !Buffer.isBuffer(reply[0])) return reply as [Buffer, [Buffer, Buffer[]][]][];
  const out: [Buffer, [Buffer, Buffer[]][]][] = [];
  for (let i = 0; i + 1 < reply.length; i += 2) out.push([reply[i] as Buffer, reply[i + 1] as [Buffer, Buffer[]][]]);
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
