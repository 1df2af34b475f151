/**
 * One dispatcher's watch over a bbox: what changed since the last delta, coalesced so a slow reader never
 * makes the server hold more than one entry per courier and per request in view.
 *
 *   courier moved / status ─► noteCourier ─ inside bbox ─► moved[id] = latest tuple (older ones overwritten)
 *                                         └ was inside ──► removed += id
 *   request changed ────────► noteRequest ─ pickup/dropoff inside, or shown before ─► requests[id] = latest
 *   fence enter / exit ─────► noteFence ── courier inside ─► fences (bounded ring: the oldest are dropped)
 *
 *   flush timer (watch hz) ─► takeDelta(now) ─ due? anything pending? ─► { moved, removed, requests, fences }
 *
 * No I/O: the stream decides when to flush (only when the socket's buffer has room) and encodes the frame.
 */
import { isTerminal } from '../dispatch/request-vocabulary.js';
import type { CourierStatus } from '../engine/courier-attributes.js';

/** `[minLng, minLat, maxLng, maxLat]`, as in the watch frame. */
export type WatchBBox = readonly [number, number, number, number];

/** What a watch may ask for. */
export type WatchKind = 'couriers' | 'requests' | 'fences';

/** A courier on the map: `[id, lat, lng, status]`. */
export type CourierTuple = [string, number, number, CourierStatus];

/** A request on the map. */
export interface WatchRequest {
  id: string;
  kind: string;
  status: string;
  pickup: { lat: number; lng: number };
  dropoff: { lat: number; lng: number };
  courierId?: string;
  /** Carried as part of a stack (PRODUCT §2): the stack's id, shared by its legs on the same courier. */
  stackId?: string;
  /** Taken en route: the courier drives to it after the trip it is on. */
  enRoute?: true;
}

/** Whether a point is inside a watch box (`[minLng, minLat, maxLng, maxLat]`; minLng > maxLng crosses the antimeridian). */
export function bboxContains(bbox: WatchBBox, lat: number, lng: number): boolean {
  const [minLng, minLat, maxLng, maxLat] = bbox;
  if (lat < minLat || lat > maxLat) return false;
  return minLng <= maxLng ? lng >= minLng && lng <= maxLng : lng >= minLng || lng <= maxLng;
}

/** A geofence crossing on the map. */
export interface WatchFence {
  type: 'enter' | 'exit';
  courierId: string;
  fenceId: string;
  ts: number;
}

/** The body of a `delta` frame. */
export interface WatchDelta {
  moved: CourierTuple[];
  removed: string[];
  requests: WatchRequest[];
  fences: WatchFence[];
}

/** Options of a watch; hz is already clamped to the server's limits. */
export interface WatchOptions {
  hz: number;
  kinds?: readonly WatchKind[];
}

/** Fence crossings kept between two flushes; beyond it the oldest go (a crossing storm must not grow memory). */
export const MAX_PENDING_FENCES = 1024;


/** Pending changes of one watch, coalesced to the latest state per courier and per request. */
export class WatchSession {
  readonly bbox: WatchBBox;
  readonly intervalMs: number;
  readonly kinds: ReadonlySet<WatchKind>;
  /** Couriers the client currently shows (sent in the snapshot or a delta, not removed since). */
  private readonly shown = new Set<string>();
  private readonly shownRequests = new Set<string>();
  private readonly moved = new Map<string, CourierTuple>();
  private readonly removed = new Set<string>();
  private readonly requests = new Map<string, WatchRequest>();
  private fences: WatchFence[] = [];
  private lastFlush = -Infinity;
  /** Fence crossings dropped because the client did not keep up. */
  droppedFences = 0;

  constructor(bbox: WatchBBox, options: WatchOptions) {
    if (!(options.hz > 0)) throw new Error(`watch hz must be > 0, got ${String(options.hz)}`);
    this.bbox = bbox;
    this.intervalMs = 1000 / options.hz;
    this.kinds = new Set(options.kinds ?? ['couriers', 'requests', 'fences']);
  }

  /** True when the point lies in the bbox (minLng > maxLng crosses the antimeridian). */
  contains(lat: number, lng: number): boolean {
    return bboxContains(this.bbox, lat, lng);
  }

  /** Records what the snapshot showed, so later exits become `removed`. */
  seed(couriers: readonly CourierTuple[], requests: readonly WatchRequest[]): void {
    for (const c of couriers) this.shown.add(c[0]);
    for (const r of requests) if (!isTerminal(r.status)) this.shownRequests.add(r.id);
  }

  /** A courier's latest position and status. */
  noteCourier(id: string, lat: number, lng: number, status: CourierStatus): void {
    if (!this.kinds.has('couriers')) return;
    if (this.contains(lat, lng)) {
      this.shown.add(id);
      this.removed.delete(id);
      const t = this.moved.get(id);
      if (t === undefined) this.moved.set(id, [id, lat, lng, status]);
      else {
        t[1] = lat;
        t[2] = lng;
        t[3] = status;
      }
    } else this.noteGone(id);
  }

  /** A courier left the view (moved out, or deleted). */
  noteGone(id: string): void {
    if (!this.shown.delete(id)) return;
    this.moved.delete(id);
    this.removed.add(id);
  }

  /** A request's latest state; kept when it touches the bbox or the client already shows it. */
  noteRequest(r: WatchRequest): void {
    if (!this.kinds.has('requests')) return;
    const touches = this.contains(r.pickup.lat, r.pickup.lng) || this.contains(r.dropoff.lat, r.dropoff.lng);
    if (!touches && !this.shownRequests.has(r.id)) return;
    this.requests.set(r.id, r);
    if (isTerminal(r.status)) this.shownRequests.delete(r.id);
    else this.shownRequests.add(r.id);
  }

  /** A fence crossing by a courier now at (lat, lng). */
  noteFence(f: WatchFence, lat: number, lng: number): void {
    if (!this.kinds.has('fences') || !this.contains(lat, lng)) return;
    if (this.fences.length >= MAX_PENDING_FENCES) {
      this.fences.shift();
      this.droppedFences++;
    }
    this.fences.push(f);
  }

  /** Entries waiting for the next delta. */
  get pending(): number {
    return this.moved.size + this.removed.size + this.requests.size + this.fences.length;
  }

  /** True when the watch interval has passed since the last delta. */
  due(now: number): boolean {
    return now - this.lastFlush >= this.intervalMs;
  }

  /** The coalesced delta (and clears it), or undefined when nothing is pending or the interval has not passed. */
  takeDelta(now: number): WatchDelta | undefined {
    if (!this.due(now) || this.pending === 0) return undefined;
    this.lastFlush = now;
    const delta: WatchDelta = { moved: [...this.moved.values()], removed: [...this.removed], requests: [...this.requests.values()], fences: this.fences };
    this.moved.clear();
    this.removed.clear();
    this.requests.clear();
    this.fences = [];
    return delta;
  }
}
