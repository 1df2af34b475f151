/**
 * HTTP bodies in and replies out over uWebSockets.js.
 *
 *   res.onData chunks ─► readBody (copy each chunk; past `limit` nothing more is buffered: the rest is read and
 *                        dropped, then 413, so the client reads the answer; a body that goes on past the
 *                        drain cap is cut off with the 413 at once)
 *                          │ onDone(Buffer)
 *                          ▼
 *                        decodeBody (JSON, or MessagePack for application/msgpack; no __proto__ & co.)
 *                          │ unknown → schemas.validate → route handler
 *                          ▼
 *                        sendReply (encodeReply by Accept; cork; skip when aborted; close after a 413)
 *
 * uWS allows ONE onAborted handler per response: readBody (or watchAborted for bodiless async routes)
 * registers it and records the abort; handlers then ask isAborted(res) instead of registering their own.
 */
import type { HttpResponse } from '@trufflesuite/uws-js-unofficial';
import { Packr } from 'msgpackr';
import { ApiError, errorBody } from './api-error.js';

export const JSON_TYPE = 'application/json; charset=utf-8';
export const MSGPACK_TYPE = 'application/msgpack';
/** Deepest nesting accepted in a body: GeoJSON MultiPolygons need 4 levels; 32 leaves headroom and keeps walks cheap. */
export const MAX_BODY_DEPTH = 32;

/** Keys that reach Object.prototype through assignment or merging; refused anywhere in a body. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
/** msgpackr renames a decoded `__proto__` key to `__proto_`; no schema has that key, so it means the same attack. */
const FORBIDDEN_MSGPACK_KEYS = new Set([...FORBIDDEN_KEYS, '__proto_']);

// plain maps (no msgpackr records) so any MessagePack client interoperates; one Packr for the whole process is
// stateless apart from its scratch buffer, which is not shared across calls
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

const aborted = new WeakSet<HttpResponse>();
const ended = new WeakSet<HttpResponse>();
const closeAfterReply = new WeakSet<HttpResponse>();

/** Records that uWS aborted this response (the client went away); later replies are skipped. */
export function markAborted(res: HttpResponse): void {
  aborted.add(res);
}

/** True once uWS has aborted this response. */
export function isAborted(res: HttpResponse): boolean {
  return aborted.has(res);
}

/** True while a reply may still be written (not aborted, not already ended). */
export function canReply(res: HttpResponse): boolean {
  return !aborted.has(res) && !ended.has(res);
}

/** Registers the abort handler for a route without a body that answers asynchronously. */
export function watchAborted(res: HttpResponse): void {
  res.onAborted(() => aborted.add(res));
}

/** Bytes past the limit read and dropped before a 413 is sent, so an honest client that sent too much can read it. */
export const DRAIN_CAP_BYTES = 16 * 1024 * 1024;

/**
 * Reads the whole body, calling `onDone` with a copy, or `onFail` with 413 E_BODY_TOO_LARGE once a body past
 * `limit` has been read to its end (nothing past the limit is buffered; the reply then closes the connection).
 * An aborted request calls neither. Must be called synchronously in the route handler.
 */
export function readBody(res: HttpResponse, limit: number, onDone: (body: Buffer) => void, onFail: (err: ApiError) => void): void {
  const chunks: Buffer[] = [];
  let total = 0;
  let finished = false;
  let over = false;
  res.onAborted(() => {
    aborted.add(res);
    finished = true;
    chunks.length = 0;
  });
  res.onData((chunk, isLast) => {
    if (finished) return;
    total += chunk.byteLength;
    if (total > limit) {
      over = true;
      chunks.length = 0;
      if (!isLast && total <= limit + DRAIN_CAP_BYTES) return;
      finished = true;
      closeAfterReply.add(res);
      onFail(new ApiError(413, 'E_BODY_TOO_LARGE', `body exceeds ${limit} bytes; send at most ${limit} bytes${limit < 1024 * 1024 ? ', or use the bulk routes for batches' : ''}`));
      return;
    }
    if (over) return;
    // uWS neuters the ArrayBuffer when the callback returns, so every chunk is copied
    if (chunk.byteLength > 0) chunks.push(Buffer.from(new Uint8Array(chunk)));
    if (isLast) {
      finished = true;
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
      chunks.length = 0;
      onDone(body);
    }
  });
}

/** Decodes a JSON or MessagePack body; throws ApiError 400 E_BAD_JSON on malformed input or forbidden keys. */
export function decodeBody(body: Buffer, contentType: string | undefined): unknown {
  if (isMsgpack(contentType)) {
    let value: unknown;
    try {
      value = packr.unpack(body);
    } catch (cause) {
      throw new ApiError(400, 'E_BAD_JSON', 'body is not valid MessagePack', { cause });
    }
    assertSafeKeys(value, FORBIDDEN_MSGPACK_KEYS);
    return value;
  }
  if (body.length === 0) throw new ApiError(400, 'E_BAD_JSON', 'body is empty; send a JSON object');
  // a deeply nested body costs a full parse before the walk below could refuse it: count brackets first
  if (jsonNestsDeeper(body, MAX_BODY_DEPTH)) throw new ApiError(400, 'E_BAD_JSON', `body nests deeper than ${MAX_BODY_DEPTH} levels`);
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw new ApiError(400, 'E_BAD_JSON', 'body is not valid JSON', { cause });
  }
  assertSafeKeys(value, FORBIDDEN_KEYS);
  return value;
}

/**
 * A reply body a hot route already wrote as UTF-8 JSON (api/nearby-json.ts); sent as is unless Accept asks for
 * MessagePack. The bytes may be a view of a buffer the route reuses: reply with it in the same call.
 */
export class JsonBytes {
  constructor(readonly bytes: Uint8Array) {}

  /** The value the bytes encode. */
  value(): unknown {
    return JSON.parse(Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength).toString('utf8'));
  }
}

/** Encodes a reply as MessagePack when `Accept` asks for it, JSON otherwise. */
export function encodeReply(payload: unknown, accept: string | undefined): { body: Uint8Array | string; contentType: string } {
  if (accept !== undefined && isMsgpack(accept)) return { body: packr.pack(payload instanceof JsonBytes ? payload.value() : payload), contentType: MSGPACK_TYPE };
  if (payload instanceof JsonBytes) return { body: payload.bytes, contentType: JSON_TYPE };
  return { body: payload === undefined ? '' : JSON.stringify(payload), contentType: JSON_TYPE };
}

/**
 * Writes a complete reply inside `res.cork`; does nothing once the response was aborted or already ended.
 * 204 and 304 carry no body. After a 413 from readBody the connection is closed (the unread body would
 * otherwise be parsed as the next request).
 */
export function sendReply(res: HttpResponse, status: number, payload: unknown, accept: string | undefined, headers?: Record<string, string>): void {
  if (!canReply(res)) return;
  ended.add(res);
  const close = closeAfterReply.has(res);
  const noBody = status === 204 || status === 304;
  const encoded = noBody ? undefined : encodeReply(payload, accept);
  res.cork(() => {
    res.writeStatus(`${status} ${STATUS_TEXT[status] ?? 'Status'}`);
    if (encoded) res.writeHeader('content-type', encoded.contentType);
    if (headers) for (const name in headers) res.writeHeader(name, headers[name]);
    if (encoded) res.end(encoded.body, close);
    // endWithoutBody(undefined, …) neither ends nor throws in this uWS build: pass no arguments, or both
    else if (close) res.endWithoutBody(0, true);
    else res.endWithoutBody();
  });
}

/** Replies `{ error: { code, message } }` with the status toErrorReply maps `err` to (add Retry-After for 429). */
export function sendError(res: HttpResponse, err: unknown, accept: string | undefined, headers?: Record<string, string>): void {
  const { status, body } = errorBody(err);
  sendReply(res, status, body, accept, headers);
}

/** True for MessagePack media types (`application/msgpack`, `application/x-msgpack`, with or without params). */
function isMsgpack(mediaType: string | undefined): boolean {
  if (!mediaType) return false;
  return /\bapplication\/(?:x-)?msgpack\b/i.test(mediaType);
}

/**
 * Walks the decoded value without recursion (a hostile body could nest deeply) and refuses forbidden keys and
 * strings no database can store: a NUL character, or half of a UTF-16 surrogate pair.
 */
function assertSafeKeys(root: unknown, forbidden: ReadonlySet<string>): void {
  // two parallel stacks, and scalars checked where they are met: a gateway frame of 1,000 pings is 5,000
  // values, walked on every frame
  const values: object[] = [];
  const depths: number[] = [];
  const visit = (v: unknown, depth: number): void => {
    if (typeof v === 'string') assertStorable(v);
    else if (typeof v === 'object' && v !== null) {
      values.push(v);
      depths.push(depth);
    }
  };
  visit(root, 0);
  while (values.length > 0) {
    const value = values.pop() as object;
    const depth = depths.pop() as number;
    if (depth > MAX_BODY_DEPTH) throw new ApiError(400, 'E_BAD_JSON', `body nests deeper than ${MAX_BODY_DEPTH} levels`);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) visit(value[i], depth + 1);
      continue;
    }
    // MessagePack can also yield binaries, dates, Maps and msgpackr's 0xC1 marker: no request field takes them
    if (Object.getPrototypeOf(value) !== Object.prototype) {
      throw new ApiError(400, 'E_BAD_JSON', 'body may hold only maps with string keys, arrays, strings, numbers, booleans and nil');
    }
    for (const key of Object.keys(value)) {
      if (forbidden.has(key)) throw new ApiError(400, 'E_BAD_JSON', `key '${key}' is not allowed`);
      assertStorable(key);
      visit((value as Record<string, unknown>)[key], depth + 1);
    }
  }
}

// a NUL, or a high surrogate without its low half, or a low one without its high half (code units, no `u` flag)
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function assertStorable(s: string): void {
  // most strings (ids, codes, names) hold neither a NUL nor a surrogate: one pass over the code units decides
  let suspect = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || (c >= 0xd800 && c <= 0xdfff)) {
      suspect = true;
      break;
    }
  }
  if (suspect && UNSTORABLE.test(s)) throw new ApiError(400, 'E_BAD_JSON', 'strings may not hold NUL characters or unpaired UTF-16 surrogates');
}

/** True when the JSON text opens more than `max` arrays/objects at once (brackets inside strings do not count). */
export function jsonNestsDeeper(body: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: the next byte is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'No Content',
  304: 'Not Modified',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};
