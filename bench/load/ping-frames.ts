/**
 * WebSocket frames of the ingest workload (PRODUCT.md §4): gateway batches `{t:"locs", items:[[id,lat,lng,ts],…]}`
 * as MessagePack or JSON, and a driver's single `{t:"loc", lat, lng, ts}`.
 *
 *   MoveStream (pool) ─► PingCursor (cycles the pool, shifting ts so every courier's pings keep increasing)
 *                     ─► items ─► encode (msgpack | json) ─► ws.send
 *
 * Frames are encoded while sending: msgpackr packs ~7 M pings/s, a small share of one core at the target rate.
 */
import { Packr } from 'msgpackr';
import type { MoveStream } from '../../fixtures/move-stream.js';

/** One gateway item: courier id, latitude, longitude, timestamp (epoch ms). */
export type PingItem = [id: string, lat: number, lng: number, ts: number];

/** How a connection sends its pings. */
export type IngestMode = 'msgpack' | 'json-batch' | 'json-single';

// Records are a msgpackr extension the server need not understand: plain maps and arrays only.
const packr = new Packr({ useRecords: false });

/**
 * Walks a ping pool in order, forever: pass k of the pool is shifted by k × span so timestamps keep rising.
 * With a clock, no timestamp is later than the clock's reading when its batch is taken: a load run replays
 * the pool far faster than real time, and a server refuses pings more than a minute ahead of its clock
 * (E_FUTURE_TIMESTAMP). Clamping keeps each courier's timestamps non-decreasing (the min of two
 * non-decreasing sequences), so none is refused as stale either.
 */
export class PingCursor {
  private next = 0;
  private pass = 0;
  private readonly span: number;

  /**
   * @param stream pings (courier index, position, ts) — typically from generateMoveStream
   * @param ids courier id of each courier index
   * @param tsShift added to every timestamp (rebases fixture time onto the wall clock)
   * @param clock when given, timestamps are capped at its reading (epoch ms)
   */
  constructor(private readonly stream: MoveStream, private readonly ids: readonly string[], private readonly tsShift = 0, private readonly clock?: () => number) {
    const n = stream.index.length;
    if (n === 0) throw new Error('PingCursor needs a non-empty ping stream');
    // one pass later every courier's ts is past its last ping of the previous pass
    this.span = stream.ts[n - 1] - stream.ts[0] + 1000;
  }

  /** Fills `out` with the next `count` pings as gateway items (reusing `out`'s arrays when present). */
  take(count: number, out: PingItem[] = []): PingItem[] {
    const s = this.stream;
    out.length = count;
    const cap = this.clock === undefined ? Infinity : this.clock();
    for (let i = 0; i < count; i++) {
      const k = this.next;
      const shifted = s.ts[k] + this.tsShift + this.pass * this.span;
      const ts = shifted < cap ? shifted : cap;
      const item = out[i];
      if (item === undefined) out[i] = [this.ids[s.index[k]], s.lat[k], s.lng[k], ts];
      else {
        item[0] = this.ids[s.index[k]];
        item[1] = s.lat[k];
        item[2] = s.lng[k];
        item[3] = ts;
      }
      if (++this.next === s.index.length) {
        this.next = 0;
        this.pass++;
      }
    }
    return out;
  }

  /** Pings handed out so far. */
  get taken(): number {
    return this.pass * this.stream.index.length + this.next;
  }
}

/**
 * The stream cut into `parts` by courier (courier i goes to part i % parts), order kept: one per gateway
 * socket, as real gateways each own their drivers. A shared stream would put one courier's consecutive pings
 * on different sockets, and the server, draining sockets in its own order, would refuse the later-applied
 * older one as E_STALE.
 */
export function splitByCourier(stream: MoveStream, parts: number): MoveStream[] {
  if (!Number.isInteger(parts) || parts < 1) throw new Error(`splitByCourier needs parts >= 1, got ${parts}`);
  const counts = new Int32Array(parts);
  for (let k = 0; k < stream.index.length; k++) counts[stream.index[k] % parts]++;
  const out = Array.from(counts, (n) => ({ index: new Int32Array(n), lat: new Float64Array(n), lng: new Float64Array(n), ts: new Float64Array(n) }));
  const fill = new Int32Array(parts);
  for (let k = 0; k < stream.index.length; k++) {
    const p = stream.index[k] % parts;
    const j = fill[p]++;
    const o = out[p];
    o.index[j] = stream.index[k];
    o.lat[j] = stream.lat[k];
    o.lng[j] = stream.lng[k];
    o.ts[j] = stream.ts[k];
  }
  return out.filter((o) => o.index.length > 0);
}

/** A gateway batch as a MessagePack binary frame. */
export function encodeMsgpackBatch(items: readonly PingItem[]): Uint8Array {
  return packr.pack({ t: 'locs', items });
}

/** A gateway batch as a JSON text frame (coordinates to 6 decimals, ~0.1 m, as phones report). */
export function encodeJsonBatch(items: readonly PingItem[]): string {
  let s = '{"t":"locs","items":[';
  for (let i = 0; i < items.length; i++) {
    const [id, lat, lng, ts] = items[i];
    s += `${i === 0 ? '' : ','}[${JSON.stringify(id)},${round6(lat)},${round6(lng)},${ts}]`;
  }
  return s + ']}';
}

/** A driver's own ping as a JSON text frame (the id is the token's `sub`, not in the frame). */
export function encodeJsonSingle(item: PingItem): string {
  return `{"t":"loc","lat":${round6(item[1])},"lng":${round6(item[2])},"ts":${item[3]}}`;
}

/** Decodes a MessagePack frame (server replies, and tests). */
export function decodeMsgpack(frame: Uint8Array): unknown {
  return packr.unpack(frame);
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
