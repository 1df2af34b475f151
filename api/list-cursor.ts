/**
 * Cursor pagination for the fleet lists (couriers, sites, requests): opaque, tamper-evident cursors and the
 * keyset page of ids kept in memory.
 *
 *   page n ─► the `limit` smallest ids after the cursor's id ─► { items, next: cursor(last id) } ─► page n+1
 *
 * A keyset (not an offset) keeps a listing stable while others write: an item present from the first page to the
 * last is seen exactly once, whatever was added or removed meanwhile (it comes after or before the last id seen,
 * never at a shifted offset). A cursor is the position (JSON) plus an HMAC of it and of the list's filters, so a
 * cursor edited by hand, or replayed against other filters, answers 400 E_BAD_CURSOR instead of a wrong page.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ApiError } from './api-error.js';

/** Bytes of HMAC-SHA256 kept in a cursor: 128 bits, far beyond guessing, half the length of the full MAC. */
const MAC_BYTES = 16;

/** Makes and checks cursors under one key; the same key on every instance (and restart) keeps cursors valid there. */
export class ListCursors {
  private readonly key: Buffer;

  /** `secret` shared by instances that should accept each other's cursors; a random one per process otherwise. */
  constructor(secret?: string) {
    this.key = secret === undefined ? randomBytes(32) : createHmac('sha256', 'geodispatch list cursors').update(secret).digest();
  }

  /** The cursor of `position` within the list named by `scope` (list name and its filters). */
  encode(scope: string, position: unknown): string {
    const body = Buffer.from(JSON.stringify(position), 'utf8');
    return `${body.toString('base64url')}.${this.mac(scope, body).toString('base64url')}`;
  }

  /** The position a cursor of this scope holds; 400 E_BAD_CURSOR when it was made elsewhere, edited or is garbage. */
  decode<T>(scope: string, cursor: string): T {
    const dot = cursor.indexOf('.');
    if (dot > 0) {
      const body = Buffer.from(cursor.slice(0, dot), 'base64url');
      const mac = Buffer.from(cursor.slice(dot + 1), 'base64url');
      // canonical only: base64url decoding ignores stray characters and spare bits, an edit must not slip through them
      const canonical = `${body.toString('base64url')}.${mac.toString('base64url')}` === cursor;
      if (canonical && mac.length === MAC_BYTES && timingSafeEqual(mac, this.mac(scope, body))) {
        try {
          return JSON.parse(body.toString('utf8')) as T;
        } catch {
          // a valid MAC over bytes that are not JSON cannot be ours: fall through to the refusal
        }
      }
    }
    throw new ApiError(400, 'E_BAD_CURSOR', 'cursor is not one this list handed out (edited, or made for other filters): start again without a cursor');
  }

  private mac(scope: string, body: Buffer): Buffer {
    return createHmac('sha256', this.key).update(scope).update('\n').update(body).digest().subarray(0, MAC_BYTES);
  }
}

/**
 * The `limit` smallest ids greater than `after` (all when undefined), ascending, and whether more follow.
 * One pass with a sorted buffer of limit + 1: an id beyond the buffer's largest costs one comparison, so a page
 * over a fleet registered in id order is a plain scan.
 */
export function pageAfter(ids: Iterable<string>, after: string | undefined, limit: number): { ids: string[]; more: boolean } {
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`pageAfter(limit) takes a positive integer, got ${String(limit)}`);
  const keep = limit + 1;
  const buf: string[] = [];
  for (const id of ids) {
    if (after !== undefined && id <= after) continue;
    if (buf.length === keep) {
      if (id >= buf[keep - 1]) continue;
      buf.pop();
    }
    buf.splice(insertionPoint(buf, id), 0, id);
  }
  const more = buf.length > limit;
  if (more) buf.pop();
  return { ids: buf, more };
}

/** The scope of a list: its name and its filters in a fixed order, so a cursor only fits the query that made it. */
export function listScope(name: string, filters: Record<string, unknown>): string {
  const keys = Object.keys(filters).filter((k) => filters[k] !== undefined).sort();
  return `${name}?${keys.map((k) => `${k}=${String(filters[k])}`).join('&')}`;
}

/** A `minLng,minLat,maxLng,maxLat` query value as numbers, or 400 naming what is wrong. */
export function parseBbox(raw: string): [number, number, number, number] {
  const parts = raw.split(',').map(Number);
  const [minLng, minLat, maxLng, maxLat] = parts;
  const ok = parts.length === 4 && parts.every(Number.isFinite) &&
    Math.abs(minLng) <= 180 && Math.abs(maxLng) <= 180 && Math.abs(minLat) <= 90 && Math.abs(maxLat) <= 90 && minLat <= maxLat;
  if (!ok) throw new ApiError(400, 'E_VALIDATION', 'bbox: minLng,minLat,maxLng,maxLat with lng within ±180, lat within ±90 and minLat <= maxLat');
  return [minLng, minLat, maxLng, maxLat];
}

function insertionPoint(sorted: readonly string[], id: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
