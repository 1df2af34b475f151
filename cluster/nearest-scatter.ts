/**
 * Nearest queries across region owners (PRODUCT §7): an edge asks every core that owns a region the circle
 * touches, each answers its own top k, and the edge merges them into the top k overall.
 *
 *   edge: regionsTouched(circle) ─► owners (lease holders; every live core past 500 km)
 *         ─► publish core:{owner}:nearest {id, replyTo, query} ─► wait for each answer (timeout)
 *   core: NearestResponder ─► answer(query) over its own index ─► publish replyTo {id, hits}
 *   edge: mergeNearest(answers, k) ─► hits, plus the regions or cores that did not answer (`missing`)
 *
 * Exact because each courier is in exactly one region and each region has one owner: the true top k is made of
 * each owner's top k. A region with no owner (a core died and its lease has not lapsed) or a core that does
 * not answer in time is reported in `missing`, and the caller decides (PRODUCT: answer 503 rather than guess).
 */
import { randomUUID } from 'node:crypto';
import { pack, unpack } from 'msgpackr';
import type { Bus, BusHandler } from './bus.js';
import { type LngLatBox, boxCircle, regionsTouched } from './regions.js';

/** What a nearest query carries to the cores (the API's parsed query; `filter` is passed through as is). */
export interface NearestQuery {
  lat: number;
  lng: number;
  k: number;
  radius: number;
  filter?: unknown;
  /** Instead of the nearest: the couriers inside this box (k of them at most, by id; distance 0). */
  bbox?: LngLatBox;
}

/** The least a hit has: the merge ranks by distance, then id. */
export interface RankedHit {
  id: string;
  distance: number;
}

/** Where the edge finds who owns what (region leases and live cores, in Redis). */
export interface OwnerDirectory {
  /**
   * The holder of each region; undefined where none holds it now, null where the cluster has never had anything
   * there (no ping ever routed to it: nothing to ask, and nothing missing).
   */
  holders(regions: readonly string[]): Promise<(string | undefined | null)[]>;
  /** Every live core. */
  liveCores(): Promise<string[]>;
}

/** The top k of several answers: nearest first (ties by id); a courier answered twice (mid-handover) counts once, at its smaller distance. */
export function mergeNearest<T extends RankedHit>(answers: readonly (readonly T[])[], k: number): T[] {
  const best = new Map<string, T>();
  for (const hits of answers) {
    for (const h of hits) {
      const seen = best.get(h.id);
      if (seen === undefined || h.distance < seen.distance) best.set(h.id, h);
    }
  }
  return [...best.values()].sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).slice(0, k);
}

/** The API's bounds on a nearest query (api/schemas.ts nearbyQuery): k 1..1000, radius up to half the Earth. */
export const MAX_K = 1_000;
/** Couriers a box query answers at most (a map snapshot's bound, api/watch-fanout.ts). */
export const MAX_WITHIN = 50_000;
const MAX_RADIUS_M = 20_037_509;

/** Why a nearest query is not one a core answers (or an edge sends), or undefined. Numbers only: no coercion. */
export function badQuery(q: NearestQuery | undefined): string | undefined {
  if (typeof q !== 'object' || q === null) return 'no query';
  if (typeof q.lat !== 'number' || typeof q.lng !== 'number' || !(Math.abs(q.lat) <= 90) || !(Math.abs(q.lng) <= 180)) return 'lat must be a number in -90..90 and lng in -180..180';
  const maxK = q.bbox === undefined ? MAX_K : MAX_WITHIN;
  if (!Number.isInteger(q.k) || q.k < 1 || q.k > maxK) return `k must be an integer from 1 to ${maxK}`;
  if (q.bbox !== undefined) {
    const b = q.bbox as unknown;
    if (!Array.isArray(b) || b.length !== 4 || !b.every((v) => typeof v === 'number')) return 'bbox must be [minLng, minLat, maxLng, maxLat]';
    if (!(Math.abs(b[0]) <= 180 && Math.abs(b[2]) <= 180 && Math.abs(b[1]) <= 90 && Math.abs(b[3]) <= 90 && b[1] <= b[3])) return 'bbox out of range (or minLat > maxLat)';
  }
  if (typeof q.radius !== 'number' || !(q.radius >= 0 && q.radius <= MAX_RADIUS_M)) return `radius must be a number from 0 to ${MAX_RADIUS_M} m`;
  return undefined;
}

/** A query the edge refused to send (the API validates first, so this is a caller's bug). */
export class BadNearestQuery extends Error {}

/** The bus channel a core takes nearest queries on. */
export function nearestChannel(core: string): string {
  return `core:${core}:nearest`;
}

/** A core's side: answers queries sent to it with `answer` over its own index. */
export class NearestResponder<T extends RankedHit> {
  private readonly handler: BusHandler;

  constructor(
    private readonly bus: Bus,
    private readonly core: string,
    answer: (q: NearestQuery) => T[],
    onError: (err: unknown) => void = () => undefined,
  ) {
    this.handler = (_channel, payload) => {
      let ask: { id: string; replyTo: string; q: NearestQuery };
      try {
        ask = unpack(payload) as typeof ask;
      } catch (err) {
        onError(err);
        return;
      }
      if (typeof ask?.id !== 'string' || typeof ask.replyTo !== 'string' || !ask.replyTo.startsWith('edge:')) {
        onError(new Error('a nearest query without an id or an edge reply channel was ignored'));
        return;
      }
      let reply: Buffer;
      try {
        const bad = badQuery(ask.q);
        reply = pack(bad === undefined ? { id: ask.id, core: this.core, hits: answer(ask.q) } : { id: ask.id, core: this.core, error: bad });
      } catch (err) {
        reply = pack({ id: ask.id, core: this.core, error: err instanceof Error ? err.message : String(err) });
      }
      this.bus.publish(ask.replyTo, reply).catch(onError);
    };
  }

  async start(): Promise<void> {
    await this.bus.subscribe(nearestChannel(this.core), this.handler);
  }

  async stop(): Promise<void> {
    await this.bus.unsubscribe(nearestChannel(this.core), this.handler);
  }
}

/** An edge's side: scatters a query to the owners it touches and merges what comes back. */
export class NearestScatter<T extends RankedHit> {
  private readonly replyTo: string;
  private readonly waiting = new Map<string, { pending: Set<string>; answers: T[][]; errors: string[]; done: () => void }>();
  private readonly handler: BusHandler;

  constructor(
    private readonly bus: Bus,
    edge: string,
    private readonly directory: OwnerDirectory,
    private readonly timeoutMs = 250,
  ) {
    this.replyTo = `edge:${edge}:nearest`;
    this.handler = (_channel, payload) => {
      const reply = unpack(payload) as { id: string; core: string; hits?: T[]; error?: string };
      const w = this.waiting.get(reply.id);
      if (w === undefined || !w.pending.delete(reply.core)) return; // late, or not asked
      if (reply.hits) w.answers.push(reply.hits);
      else w.errors.push(`${reply.core}: ${reply.error ?? 'no answer'}`);
      if (w.pending.size === 0) w.done();
    };
  }

  async start(): Promise<void> {
    await this.bus.subscribe(this.replyTo, this.handler);
  }

  async stop(): Promise<void> {
    await this.bus.unsubscribe(this.replyTo, this.handler);
  }

  /** The couriers inside a box (at most `limit`, by id) from every owner it touches; `missing` as for nearest. */
  within(bbox: LngLatBox, limit: number, filter?: unknown): Promise<{ hits: T[]; missing: string[] }> {
    return this.nearest({ ...boxCircle(bbox), k: limit, bbox, ...(filter === undefined ? {} : { filter }) });
  }

  /** The merged top k; `missing` names unowned regions and cores that failed or did not answer in time. */
  async nearest(q: NearestQuery): Promise<{ hits: T[]; missing: string[] }> {
    const bad = badQuery(q);
    if (bad !== undefined) throw new BadNearestQuery(bad);
    const regions = regionsTouched(q.lat, q.lng, q.radius);
    const missing: string[] = [];
    let cores: string[];
    if (regions === 'all') {
      cores = await this.directory.liveCores();
      // no core alive: nothing answers for any region (an empty answer would read as "no couriers anywhere")
      if (cores.length === 0) missing.push('no live core');
    } else {
      const holders = await this.directory.holders(regions);
      holders.forEach((h, i) => h === undefined && missing.push(`region ${regions[i]} has no owner`));
      cores = [...new Set(holders.filter((h): h is string => typeof h === 'string'))];
    }
    if (cores.length === 0) return { hits: [], missing };
    const id = randomUUID();
    const answers: T[][] = [];
    const errors: string[] = [];
    const pending = new Set(cores);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.timeoutMs);
      const done = (): void => (clearTimeout(timer), resolve());
      this.waiting.set(id, { pending, answers, errors, done });
      const ask = pack({ id, replyTo: this.replyTo, q });
      for (const core of cores) {
        this.bus.publish(nearestChannel(core), ask).catch((err: unknown) => {
          if (!pending.delete(core)) return;
          errors.push(`${core}: ${err instanceof Error ? err.message : String(err)}`);
          if (pending.size === 0) done();
        });
      }
    });
    this.waiting.delete(id);
    for (const core of pending) missing.push(`core ${core} did not answer in ${this.timeoutMs} ms`);
    missing.push(...errors);
    return { hits: mergeNearest(answers, q.k), missing };
  }
}
