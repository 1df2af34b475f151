import { describe, expect, test } from 'vitest';
import type { CourierHit } from '../engine/courier-index.js';
import { courierResultsJson } from './nearby-json.js';

// what the route returned before it wrote its own text: the oracle
function viaStringify(hits: readonly CourierHit[], eta: (h: CourierHit) => number): string {
  return JSON.stringify({
    results: hits.map((h) => ({ id: h.id, kind: 'courier', lat: h.lat, lng: h.lng, distance: Math.round(h.distance), status: h.status, vehicle: h.vehicle, eta: Math.round(eta(h)) })),
  });
}

function hit(id: string, over: Partial<CourierHit> = {}): CourierHit {
  return { id, lat: 51.507402, lng: -0.127788, distance: 12.5, status: 'available', vehicle: 'bike', ...over } as CourierHit;
}

describe('courierResultsJson', () => {
  test('writes the same text as JSON.stringify, for plain and awkward ids and numbers', () => {
    const ids = ['c1', 'courier-007', 'quote"d', 'back\\slash', 'tab\there', 'ünïcødé', 'emoji-🚲', 'lone-\ud800', 'nul\u0000', ''];
    const hits = ids.map((id, i) => hit(id, { lat: -89.999999 + i, lng: 179.5 - i * 1e-7, distance: i * 1234.5678, status: i % 2 ? 'busy' : 'available', vehicle: i % 3 ? 'car' : 'bike' }));
    const etas = [0, 1.5, -0.4, 1e21, 3e-7, NaN, Infinity, 42, 7, 2.5];
    const eta = (h: CourierHit): number => etas[hits.indexOf(h)];
    expect(courierResultsJson(hits, eta)).toBe(viaStringify(hits, eta));
    expect(JSON.parse(courierResultsJson(hits, eta)).results.map((r: { id: string }) => r.id)).toEqual(ids.map((id) => JSON.parse(JSON.stringify(id))));
  });

  test('no hits is an empty list', () => {
    expect(courierResultsJson([], () => 0)).toBe('{"results":[]}');
  });

  test('seeded random hits match JSON.stringify', () => {
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let round = 0; round < 50; round++) {
      const hits = Array.from({ length: 1 + Math.floor(rnd() * 20) }, (_, i) =>
        hit(String.fromCharCode(...Array.from({ length: 1 + Math.floor(rnd() * 12) }, () => Math.floor(rnd() * 0x3000))) + i, { lat: rnd() * 180 - 90, lng: rnd() * 360 - 180, distance: rnd() * 1e5 }));
      const eta = (h: CourierHit): number => h.distance / 7;
      expect(courierResultsJson(hits, eta)).toBe(viaStringify(hits, eta));
    }
  });
});
