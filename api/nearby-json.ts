/**
 * The reply of `GET /v1/nearby?kind=courier` written as JSON bytes by hand: the hottest read of the API.
 * JSON.stringify over its objects was a sixth of its server time; a string built by hand was cheaper but
 * still had to be flattened, measured and copied as UTF-8 by uWS before sending, at a cost that grew on the
 * busy server's cold caches. The bytes encode
 * `{ results: [{ id, kind, lat, lng, distance, status, vehicle, eta }, …] }` with positions rounded to
 * 7 decimal places (about 1 cm, far finer than any GPS fix), written as scaled integers with no
 * float-to-text conversion; nearby-json.test.ts checks the bytes against JSON.stringify of the same values.
 */
import type { CourierHit } from '../engine/courier-index.js';

/** Decimal places kept in the latitudes and longitudes of a nearest answer. */
export const POSITION_DECIMALS = 7;
const SCALE = 10 ** POSITION_DECIMALS;

/** A position as the nearest answer gives it (rounded to POSITION_DECIMALS). */
export function roundPosition(x: number): number {
  return Math.round(x * SCALE) / SCALE;
}

const encoder = new TextEncoder();
const bytesOf = (s: string): Uint8Array => encoder.encode(s);
const OPEN = bytesOf('{"results":[');
const FIRST = bytesOf('{"id":');
const NEXT = bytesOf(',{"id":');
const KIND_LAT = bytesOf(',"kind":"courier","lat":');
const LNG = bytesOf(',"lng":');
const DISTANCE = bytesOf(',"distance":');
const CLOSE = bytesOf(']}');
const NULL = bytesOf('null');
// the most a hit takes besides its id and its status-and-vehicle tail: keys (~45), two positions (≤ 13 each),
// two integers (≤ 22 each as String writes them)
const HIT_ROOM = 192;

/** JSON bytes written into one buffer that every reply reuses (grown on demand). */
class ByteWriter {
  buf = Buffer.allocUnsafeSlow(4096);
  at = 0;

  /** Makes sure n more bytes fit. */
  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(2 * this.buf.length, this.at + n));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }

  put(bytes: Uint8Array): void {
    const n = bytes.length;
    // a native copy pays off past two dozen bytes (the status-vehicle tail); shorter runs are cheaper by hand
    if (n > 24) this.buf.set(bytes, this.at);
    else for (let i = 0, b = this.buf, p = this.at; i < n; i++) b[p + i] = bytes[i];
    this.at += n;
  }

  /** A JSON string literal: byte by byte when plain printable ASCII (ids are short and plain), else JSON.stringify's text as UTF-8. */
  quoted(s: string): void {
    this.room(s.length + 2);
    const b = this.buf;
    let p = this.at;
    b[p++] = 0x22;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return this.escaped(s);
      b[p++] = c;
    }
    b[p++] = 0x22;
    this.at = p;
  }

  /** A coordinate (|x| ≤ 180: the scaled value fits an int32) as decimal text without trailing zeros. */
  position(x: number): void {
    let v = Math.round(x * SCALE);
    const b = this.buf;
    if (v < 0) {
      b[this.at++] = 0x2d; // -
      v = -v;
    }
    const whole = (v / SCALE) | 0;
    let frac = v - whole * SCALE;
    this.digits(whole);
    if (frac === 0) return;
    let places = POSITION_DECIMALS;
    let q = (frac / 10) | 0;
    while (frac === q * 10) {
      frac = q;
      q = (frac / 10) | 0;
      places--;
    }
    const dot = this.at;
    b[dot] = 0x2e; // .
    const end = dot + 1 + places;
    for (let p = end - 1; p > dot; p--) {
      q = (frac / 10) | 0;
      b[p] = 0x30 + (frac - q * 10);
      frac = q;
    }
    this.at = end;
  }

  /** An integer as JSON.stringify writes it: below 2^31 digit by digit, beyond (or NaN, ±Infinity) through String. */
  integer(n: number): void {
    if (n >= 0 && n < 0x80000000) return this.digits(n);
    if (n < 0 && n > -0x80000000) {
      this.buf[this.at++] = 0x2d;
      return this.digits(-n);
    }
    if (!Number.isFinite(n)) return this.put(NULL);
    const text = String(n);
    for (let i = 0; i < text.length; i++) this.buf[this.at++] = text.charCodeAt(i);
  }

  /** A non-negative integer below 2^31. */
  digits(n: number): void {
    let len = 1;
    for (let t = 10; t <= n && len < 10; t *= 10) len++;
    const b = this.buf;
    const end = this.at + len;
    for (let p = end - 1; p >= this.at; p--) {
      const q = (n / 10) | 0;
      b[p] = 0x30 + (n - q * 10);
      n = q;
    }
    this.at = end;
  }

  /** The bytes written: a view of the buffer, good until the next reply is written. */
  written(): Uint8Array {
    return this.buf.subarray(0, this.at);
  }

  private escaped(s: string): void {
    const text = JSON.stringify(s);
    this.room(3 * text.length + HIT_ROOM);
    this.at += this.buf.write(text, this.at, 'utf8');
  }
}

const writer = new ByteWriter();

// `,"status":…,"vehicle":…,"eta":` for each pair seen (a handful: statuses × vehicles), written once
const pairs = new Map<string, Map<string, Uint8Array>>();
function statusAndVehicle(status: string, vehicle: string): Uint8Array {
  let byVehicle = pairs.get(status);
  if (byVehicle === undefined) pairs.set(status, (byVehicle = new Map()));
  let bytes = byVehicle.get(vehicle);
  if (bytes === undefined) byVehicle.set(vehicle, (bytes = bytesOf(`,"status":${JSON.stringify(status)},"vehicle":${JSON.stringify(vehicle)},"eta":`)));
  return bytes;
}

/**
 * `{ "results": [...] }` for courier hits, as UTF-8 JSON bytes; `eta(hit)` is the seconds to the query point.
 * The bytes are a view of a buffer the next call overwrites: send them at once (the route does, synchronously:
 * uWS copies what it cannot write before `end` returns) or copy them.
 */
export function courierResultsJson(hits: readonly CourierHit[], eta: (hit: CourierHit) => number): Uint8Array {
  const w = writer;
  w.at = 0;
  w.room(OPEN.length + CLOSE.length);
  w.put(OPEN);
  for (let i = 0; i < hits.length; i++) {
    const h = hits[i];
    const tail = statusAndVehicle(h.status, h.vehicle);
    w.room(HIT_ROOM + tail.length);
    w.put(i > 0 ? NEXT : FIRST);
    w.quoted(h.id);
    w.put(KIND_LAT);
    w.position(h.lat);
    w.put(LNG);
    w.position(h.lng);
    w.put(DISTANCE);
    w.integer(Math.round(h.distance));
    w.put(tail);
    w.integer(Math.round(eta(h)));
    w.buf[w.at++] = 0x7d; // }
  }
  w.room(CLOSE.length);
  w.put(CLOSE);
  return w.written();
}
