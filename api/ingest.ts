/**
 * Positions in: the one path every ping takes, whichever of the four ways it arrives.
 *
 *   POST /v1/couriers/{id}/location ─┐ (body checked by its schema: speed, heading, accuracy)
 *   POST /v1/locations (batch) ──────┤
 *   WS { t:'loc' } ──────────────────┼─► PositionIngest.one / batch
 *   WS { t:'locs' } (gateway) ───────┘        │ per ping: id, coordinates, ts ≤ now + 60 s (E_FUTURE_TIMESTAMP)
 *                                             ▼
 *                       CourierIndex.move ── older than the last accepted one ─► E_STALE (nothing changes)
 *                             │ moved
 *                             ├─► write-behind (positions + sampled history, at most POSITION_FLUSH_MS lost in a crash)
 *                             ├─► metrics (accepted / rejected by code)
 *                             └─► fan-out: watch sessions see the courier; fence crossings routed once per call
 *
 * A bad ping from one driver never touches another's state: each ping is checked and applied on its own, and
 * a batch answers `{ accepted, rejected: [{ index, code }] }` with the good ones applied.
 */
import type { CourierIndex } from '../engine/courier-index.js';
import { ApiError, toErrorReply } from './api-error.js';
import type { ApiMetrics } from './metrics.js';
import { ID_PATTERN } from './schemas.js';

/** PRODUCT §4: a ping more than this far ahead of the server clock is refused (a phone clock a minute off is normal; an hour is not). */
export const MAX_FUTURE_MS = 60_000;

/** Where accepted positions go besides the index. */
export interface PositionSinks {
  /** The write-behind buffer (store/write-behind.ts). */
  record(id: string, lat: number, lng: number, ts: number): void;
  /** Drops what is waiting to be written for a courier (it was deleted: a re-created one must not inherit it). */
  forget(id: string): void;
}

/** Who hears about a moved courier. */
export interface MoveFanOut {
  courierChanged(id: string): void;
  drainFences(): void;
}

/** What ingest works on; each part owned by the caller. */
export interface IngestDeps {
  couriers: CourierIndex;
  positions: PositionSinks;
  fanOut: MoveFanOut;
  metrics: ApiMetrics;
  clock: () => number;
}

/** One rejected item of a batch. */
export interface RejectedPing {
  index: number;
  code: string;
}

/** Applies pings to the courier index and everything that follows a move. */
export class PositionIngest {
  constructor(private readonly deps: IngestDeps) {}

  /** One ping; throws ApiError / EngineError with the code (E_STALE 409, E_FUTURE_TIMESTAMP 400, E_UNKNOWN_COURIER 404 …). */
  one(id: string, lat: number, lng: number, ts: number): void {
    const now = this.deps.clock();
    let refused: PingRejection | undefined;
    try {
      refused = this.apply(id, lat, lng, ts, now);
    } catch (err) {
      this.deps.metrics.pingsRejected.inc();
      throw err;
    }
    if (refused !== undefined) {
      this.deps.metrics.pingsRejected.inc();
      throw rejectionError(refused, ts, now);
    }
    this.deps.metrics.pingsAccepted.inc();
    this.deps.fanOut.drainFences();
  }

  /**
   * Many pings as `[id, lat, lng, ts]` tuples (anything else in an item is rejected by index); every good
   * one is applied. `skip` holds indices already rejected by the caller (with their codes), reported in order.
   * A rejected item costs a code, not an exception (a gateway replaying old pings must not cost more than
   * sending new ones).
   */
  batch(items: readonly unknown[], skip: readonly RejectedPing[] = []): { accepted: number; rejected: RejectedPing[] } {
    const now = this.deps.clock();
    const rejected: RejectedPing[] = [];
    const skipped = skip.length === 0 ? undefined : new Map(skip.map((r) => [r.index, r.code]));
    let accepted = 0;
    for (let i = 0; i < items.length; i++) {
      const early = skipped?.get(i);
      if (early !== undefined) {
        rejected.push({ index: i, code: early });
        continue;
      }
      const item = items[i];
      let code: string | undefined;
      if (!Array.isArray(item) || item.length !== 4) code = 'E_VALIDATION';
      else {
        try {
          code = this.apply(item[0], item[1], item[2], item[3], now)?.code;
        } catch (err) {
          code = toErrorReply(err).code; // the engine's own refusals (unknown courier, bad coordinate)
        }
      }
      if (code === undefined) accepted++;
      else rejected.push({ index: i, code });
    }
    this.deps.metrics.pingsAccepted.inc(accepted);
    if (rejected.length > 0) this.deps.metrics.pingsRejected.inc(rejected.length);
    this.deps.fanOut.drainFences();
    return { accepted, rejected };
  }

  /** Applies one ping: undefined when applied, else why not. The engine throws EngineError for its own refusals. */
  private apply(id: unknown, lat: unknown, lng: unknown, ts: unknown, now: number): PingRejection | undefined {
    const refused = pingRefusal(id, lat, lng, ts, now);
    if (refused !== undefined) return refused;
    if (this.deps.couriers.move(id as string, lat as number, lng as number, ts as number) === 'stale') return STALE;
    this.deps.positions.record(id as string, lat as number, lng as number, ts as number);
    this.deps.fanOut.courierChanged(id as string);
    return undefined;
  }
}

/**
 * What is wrong with a ping before any index sees it (id, number types, timestamp, a minute ahead at most), or
 * undefined. A cluster edge, which holds no index, also passes `range` to refuse points off the globe.
 */
export function pingRefusal(id: unknown, lat: unknown, lng: unknown, ts: unknown, now: number, range = false): PingRejection | undefined {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) return BAD_ID;
  if (typeof lat !== 'number' || typeof lng !== 'number') return BAD_COORDINATES;
  if (range && !(Math.abs(lat) <= 90 && Math.abs(lng) <= 180)) return OFF_THE_GLOBE;
  if (typeof ts !== 'number' || !Number.isInteger(ts) || ts < 0) return BAD_TIMESTAMP;
  if (ts > now + MAX_FUTURE_MS) return FUTURE_TIMESTAMP;
  return undefined;
}

/** Why ingest refused a ping before the engine did: preallocated, so a refusal allocates nothing. */
export interface PingRejection {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

const rejection = (status: number, code: string, message: string): PingRejection => Object.freeze({ status, code, message });
const BAD_ID = rejection(400, 'E_VALIDATION', 'a courier id is 1..64 characters of A-Z a-z 0-9 . _ : -');
const BAD_COORDINATES = rejection(400, 'E_VALIDATION', 'lat and lng are numbers');
const OFF_THE_GLOBE = rejection(400, 'E_BAD_COORDINATE', 'lat must be within -90..90 and lng within -180..180');
const BAD_TIMESTAMP = rejection(400, 'E_BAD_TIMESTAMP', 'ts is whole milliseconds since the epoch');
// its message says by how much, so rejectionError writes it (a batch reports only the code)
const FUTURE_TIMESTAMP = rejection(400, 'E_FUTURE_TIMESTAMP', '');
const STALE = rejection(409, 'E_STALE', 'this ping is older than the last one accepted for this courier; it was ignored');

/** The error a single ping's caller gets; a future timestamp says by how much. */
export function rejectionError(r: PingRejection, ts: number, now: number): ApiError {
  if (r !== FUTURE_TIMESTAMP) return new ApiError(r.status, r.code, r.message);
  return new ApiError(r.status, r.code, `ts is ${Math.round((ts - now) / 1000)} s ahead of the server clock (at most ${MAX_FUTURE_MS / 1000} s): send milliseconds since the epoch from a synchronised clock`);
}
