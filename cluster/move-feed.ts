/**
 * Couriers' moves from region owners to the edges' map watches (PRODUCT §7: deltas travel owner → edges over
 * pub/sub), coalesced so a busy region costs one message per interval, not one per ping.
 *
 *   core: ping applied ─► note(region, id, lat, lng, status)    courier left the region ─► left(region, id)
 *         a request changed (stored) ─► request(r): in the regions of its pickup and of its dropoff
 *         a courier crossed a geofence ─► fence(region, crossing, lat, lng)
 *         every intervalMs ─► one PUBLISH moves:{region} per region that changed:
 *                             { m: [[id, lat, lng, status]…], g: [id…], r: [WatchRequest…], f: [[type, courierId, fenceId, ts, lat, lng]…] }
 *   edge: subscribed to moves:{region} for each region a watched box touches ─► decodeMoves ─► watch sessions
 *
 * Only the latest move of a courier in an interval is sent (a map shows where couriers are, not every step);
 * what is held between flushes is bounded by the couriers the core holds.
 */
import { pack, unpack } from 'msgpackr';
import type { CourierStatus } from '../engine/courier-attributes.js';
import { MAX_PENDING_FENCES, type WatchFence, type WatchRequest } from '../api/watch-session.js';
import type { Bus } from './bus.js';
import { regionOf } from './regions.js';

/** Crossings of one region sent per flush at most (as a watch keeps at most MAX_PENDING_FENCES between deltas). */
const MAX_FENCES_PER_FLUSH = MAX_PENDING_FENCES;

/** The bus channel of a region's moves. */
export function movesChannel(region: string): string {
  return `moves:${region}`;
}

/** One message of a region's moves: couriers now in it (`[id, lat, lng, status]`), couriers that left it, and requests picked up or dropped off in it that changed. */
export interface RegionMoves {
  moved: [string, number, number, CourierStatus][];
  left: string[];
  requests: WatchRequest[];
  /** Geofence crossings, with where the courier was. */
  fences: { fence: WatchFence; lat: number; lng: number }[];
}

/** Reads a moves message; undefined for one that is not (a broken or foreign publisher). */
export function decodeMoves(payload: Buffer): RegionMoves | undefined {
  let m: { m?: unknown; g?: unknown; r?: unknown; f?: unknown };
  try {
    m = unpack(payload) as typeof m;
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null || !Array.isArray(m.m) || !Array.isArray(m.g)) return undefined;
  const moved = m.m.filter(
    (t): t is RegionMoves['moved'][number] => Array.isArray(t) && t.length === 4 && typeof t[0] === 'string' && typeof t[1] === 'number' && typeof t[2] === 'number' && typeof t[3] === 'string',
  );
  const requests = Array.isArray(m.r) ? m.r.filter(isWatchRequest) : [];
  const fences = (Array.isArray(m.f) ? m.f : [])
    .filter((t): t is FenceTuple => Array.isArray(t) && t.length === 6 && (t[0] === 'enter' || t[0] === 'exit') && typeof t[1] === 'string' && typeof t[2] === 'string' && typeof t[3] === 'number' && typeof t[4] === 'number' && typeof t[5] === 'number')
    .map(([type, courierId, fenceId, ts, lat, lng]) => ({ fence: { type, courierId, fenceId, ts }, lat, lng }));
  return { moved, left: m.g.filter((id): id is string => typeof id === 'string'), requests, fences };
}

type FenceTuple = [WatchFence['type'], string, string, number, number, number];

function isWatchRequest(r: unknown): r is WatchRequest {
  const w = r as Partial<WatchRequest> | null;
  const point = (p: unknown): boolean => typeof (p as { lat?: unknown })?.lat === 'number' && typeof (p as { lng?: unknown })?.lng === 'number';
  return typeof w === 'object' && w !== null && typeof w.id === 'string' && typeof w.kind === 'string' && typeof w.status === 'string' && point(w.pickup) && point(w.dropoff)
    && (w.courierId === undefined || typeof w.courierId === 'string');
}

/** A core's side: the latest move per courier and region since the last flush, published every intervalMs. */
export class MovePublisher {
  private moved = new Map<string, Map<string, [string, number, number, CourierStatus]>>();
  private left = new Map<string, Set<string>>();
  private requests = new Map<string, Map<string, WatchRequest>>();
  private fences = new Map<string, FenceTuple[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly intervalMs = 50,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  /** A courier is at (lat, lng) in `region`. */
  note(region: string, id: string, lat: number, lng: number, status: CourierStatus): void {
    let m = this.moved.get(region);
    if (m === undefined) this.moved.set(region, (m = new Map()));
    const t = m.get(id);
    if (t === undefined) m.set(id, [id, lat, lng, status]);
    else {
      t[1] = lat;
      t[2] = lng;
      t[3] = status;
    }
    this.left.get(region)?.delete(id);
  }

  /** A courier is no longer in `region` (it moved on, or another core holds it now). */
  gone(region: string, id: string): void {
    this.moved.get(region)?.delete(id);
    let g = this.left.get(region);
    if (g === undefined) this.left.set(region, (g = new Set()));
    g.add(id);
  }

  /** A request changed: maps watching its pickup's region or its dropoff's hear its latest state. */
  request(r: WatchRequest): void {
    for (const region of new Set([regionOf(r.pickup.lat, r.pickup.lng), regionOf(r.dropoff.lat, r.dropoff.lng)])) {
      let m = this.requests.get(region);
      if (m === undefined) this.requests.set(region, (m = new Map()));
      m.set(r.id, r);
    }
  }

  /** A courier in `region`, at (lat, lng), crossed a geofence (kept to MAX_FENCES_PER_FLUSH per region; a storm drops the oldest). */
  fence(region: string, f: WatchFence, lat: number, lng: number): void {
    let list = this.fences.get(region);
    if (list === undefined) this.fences.set(region, (list = []));
    if (list.length >= MAX_FENCES_PER_FLUSH) list.shift();
    list.push([f.type, f.courierId, f.fenceId, f.ts, lat, lng]);
  }

  /** Publishes what changed, one message per region; a failed publish is reported and dropped (soft state). */
  flush(): Promise<void> {
    const regions = new Set([...this.moved.keys(), ...this.left.keys(), ...this.requests.keys(), ...this.fences.keys()]);
    const { moved, left, requests, fences } = this;
    this.moved = new Map();
    this.left = new Map();
    this.requests = new Map();
    this.fences = new Map();
    const sends: Promise<void>[] = [];
    for (const region of regions) {
      const m = [...(moved.get(region)?.values() ?? [])];
      const g = [...(left.get(region) ?? [])];
      const r = [...(requests.get(region)?.values() ?? [])];
      const f = fences.get(region) ?? [];
      if (m.length + g.length + r.length + f.length > 0) sends.push(this.bus.publish(movesChannel(region), pack({ m, g, ...(r.length > 0 ? { r } : {}), ...(f.length > 0 ? { f } : {}) })).catch(this.onError));
    }
    return Promise.all(sends).then(() => undefined);
  }

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
