import { describe, expect, test } from 'vitest';
import type { CourierHit } from '../engine/courier-index.js';
import { courierResultsJson as courierResultsBytes, roundPosition } from './nearby-json.js';

const text = (bytes: Uint8Array): string => new TextDecoder('utf-8', { fatal: true }).decode(bytes);
const courierResultsJson = (hits: readonly CourierHit[], eta: (h: CourierHit) => number): string => text(courierResultsBytes(hits, eta));

// what the route returned before it wrote its own bytes (positions rounded as the route now rounds them): the
// oracle, compared as values (JSON.stringify writes 1e-7 where the bytes say 0.0000001) and, where the text
// can be the same, as text
function viaStringify(hits: readonly CourierHit[], eta: (h: CourierHit) => number): string {
  return JSON.stringify({
    results: hits.map((h) => ({ id: h.id, kind: 'courier', lat: roundPosition(h.lat), lng: roundPosition(h.lng), distance: Math.round(h.distance), status: h.status, vehicle: h.vehicle, eta: Math.round(eta(h)) })),
  });
}

function expectSame(hits: readonly CourierHit[], eta: (h: CourierHit) => number): void {
  const got = courierResultsJson(hits, eta);
  const want = viaStringify(hits, eta);
  expect(JSON.parse(got)).toEqual(JSON.parse(want));
  if (!/\de-/.test(want)) expect(got).toBe(want);
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
    expectSame(hits, eta);
    expect(JSON.parse(courierResultsJson(hits, eta)).results.map((r: { id: string }) => r.id)).toEqual(ids.map((id) => JSON.parse(JSON.stringify(id))));
  });

  test('positions are rounded to 7 decimal places: tiny, negative, carried and whole values', () => {
    const places = [
      [1e-7, -4e-8],
      [4.9e-7, -0.00000051],
      [-179.99999995, 179.99999996],
      [51.5074, -0.1278],
      [-90, 180],
      [0, -0],
      [12.3456785, -12.3456785],
      [51.50740234234234, -0.12780000001],
    ];
    const hits = places.map(([lat, lng], i) => hit(`p${i}`, { lat, lng }));
    expectSame(hits, () => 3);
    const back = JSON.parse(courierResultsJson(hits, () => 3)).results as { lat: number; lng: number }[];
    back.forEach((r, i) => {
      expect(Math.abs(r.lat - places[i][0])).toBeLessThanOrEqual(0.5e-7 + 1e-12);
      expect(Math.abs(r.lng - places[i][1])).toBeLessThanOrEqual(0.5e-7 + 1e-12);
    });
    expect(courierResultsJson([hit('z', { lat: 51.5074, lng: -0.1278 })], () => 3)).toContain('"lat":51.5074,"lng":-0.1278,');
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
      expectSame(hits, eta);
    }
  });

  test('a reply larger than the buffer grows it; the bytes are a view the next reply overwrites', () => {
    const many = Array.from({ length: 500 }, (_, i) => hit(`courier-with-a-long-id-${i}`, { distance: i }));
    expectSame(many, () => 1);
    const first = courierResultsBytes([hit('a1')], () => 5);
    const kept = text(first);
    courierResultsBytes([hit('b2')], () => 6);
    expect(text(first)).not.toBe(kept);
    expect(kept).toContain('"a1"');
  });
});
