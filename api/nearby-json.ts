/**
 * The reply of `GET /v1/nearby?kind=courier` written as JSON text by hand: the hottest read of the API, and
 * JSON.stringify over its objects was a sixth of its server time. The text is what JSON.stringify gives for
 * `{ results: [{ id, kind, lat, lng, distance, status, vehicle, eta }, …] }` (nearby-json.test.ts checks it).
 */
import type { CourierHit } from '../engine/courier-index.js';

/** `{ "results": [...] }` for courier hits; `eta(hit)` is the seconds to the query point. */
export function courierResultsJson(hits: readonly CourierHit[], eta: (hit: CourierHit) => number): string {
  let out = '{"results":[';
  for (let i = 0; i < hits.length; i++) {
    const h = hits[i];
    if (i > 0) out += ',';
    out += `{"id":${quote(h.id)},"kind":"courier","lat":${num(h.lat)},"lng":${num(h.lng)},"distance":${num(Math.round(h.distance))},"status":${quote(h.status)},"vehicle":${quote(h.vehicle)},"eta":${num(Math.round(eta(h)))}}`;
  }
  return `${out}]}`;
}

// a JSON string literal: as is when nothing needs escaping (ids are short and plain), else JSON.stringify's
function quote(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s);
  }
  return `"${s}"`;
}

// JSON has no NaN or Infinity: JSON.stringify writes null
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}
