/**
 * The dispatcher's `watch` stream (PRODUCT §4): one WebSocket, re-subscribed when the view changes and
 * reconnected with backoff when it drops.
 *
 *   connect ─► open ─► {t:"watch", bbox, hz} ─► snapshot ─► delta, delta, …
 *   setBBox(bbox) ─(debounced)─► {t:"watch", …} again on the same socket (the server answers a fresh snapshot)
 *   close / error ─► wait 0.5 s · 2^attempt (≤ 15 s, ± 25 % jitter) ─► connect   (attempt resets on a snapshot)
 */
import type { CourierTuple, WatchFence, WatchRequest } from '../api/watch-session.js';

/** `[minLng, minLat, maxLng, maxLat]`. */
export type BBox = [number, number, number, number];

// the frame shapes come from the server's own definitions, so the page and the stream cannot drift apart
export type { CourierTuple, WatchRequest } from '../api/watch-session.js';

/** A fence in a snapshot. */
export interface WatchFenceShape {
  id: string;
  kind: string;
  geometry: GeoJSON.Polygon | GeoJSON.MultiPolygon;
}

/** A fence crossing in a delta. */
export type FenceCrossing = WatchFence;

export interface SnapshotFrame {
  t: 'snapshot';
  seq: number;
  bbox: BBox;
  hz: number;
  couriers: CourierTuple[];
  requests: WatchRequest[];
  fences: WatchFenceShape[];
  truncated: boolean;
}

export interface DeltaFrame {
  t: 'delta';
  seq: number;
  moved: CourierTuple[];
  removed: string[];
  requests: WatchRequest[];
  fences: FenceCrossing[];
}

/** What the socket reports. */
export interface WatchHandlers {
  snapshot(f: SnapshotFrame): void;
  delta(f: DeltaFrame): void;
  state(s: 'connecting' | 'live' | 'retrying', detail?: string): void;
  error?(code: string, message: string): void;
}

/** Longest wait between reconnects: a restarting server is back well within it. */
const MAX_BACKOFF_MS = 15_000;
/** Pan / zoom settle time before re-subscribing: one watch per gesture, not per animation frame. */
const RESUBSCRIBE_DEBOUNCE_MS = 250;

/** One watch stream. */
export class WatchSocket {
  private ws: WebSocket | undefined;
  private bbox: BBox;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private debounce: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** Watch frames sent (tests and the panel read it). */
  watchesSent = 0;
  /** Connections opened (1 + reconnects). */
  connections = 0;

  constructor(
    private readonly url: string,
    bbox: BBox,
    private readonly hz: number,
    private readonly on: WatchHandlers,
  ) {
    this.bbox = bbox;
  }

  /** Opens the socket (and keeps it open until `close()`). */
  start(): void {
    this.closed = false;
    this.connect();
  }

  /** The view changed: re-subscribe once it settles. */
  setBBox(bbox: BBox): void {
    this.bbox = bbox;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.sendWatch(), RESUBSCRIBE_DEBOUNCE_MS);
  }

  /** Drops the connection as a network failure would (the reconnect path runs); for tests and the panel. */
  drop(): void {
    this.ws?.close(4000, 'dropped by client');
  }

  /** Closes for good. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.debounce);
    this.ws?.close(1000, 'bye');
  }

  private connect(): void {
    this.connections++;
    this.on.state('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => this.sendWatch();
    ws.onmessage = (e) => {
      if (typeof e.data !== 'string') return;
      const f = JSON.parse(e.data) as { t: string; code?: string; message?: string };
      if (f.t === 'snapshot') {
        this.attempt = 0;
        this.on.state('live');
        this.on.snapshot(f as unknown as SnapshotFrame);
      } else if (f.t === 'delta') this.on.delta(f as unknown as DeltaFrame);
      else if (f.t === 'error') this.on.error?.(f.code ?? 'E_UNKNOWN', f.message ?? '');
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      if (this.closed) return;
      const wait = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt++) * (0.75 + Math.random() * 0.5);
      this.on.state('retrying', `closed (${e.code}${e.reason ? ` ${e.reason}` : ''}); retry in ${(wait / 1000).toFixed(1)} s`);
      this.retryTimer = setTimeout(() => this.connect(), wait);
    };
  }

  private sendWatch(): void {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    this.watchesSent++;
    this.ws.send(JSON.stringify({ t: 'watch', bbox: this.bbox, hz: this.hz }));
  }
}

/** The stream URL of this page's server with the token as `access_token`. */
export function streamUrl(location: Location, token: string): string {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/v1/stream?access_token=${encodeURIComponent(token)}`;
}
