import { cellToLatLng, getResolution } from 'h3-js';
import { describe, expect, it } from 'vitest';
import { distanceMeters } from '../engine/geodesy.js';
import { ALL_REGIONS_RADIUS_M, REGION_RES, regionOf, regionsTouched } from './regions.js';

/** A seeded PRNG (mulberry32): the same points on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A point at distance d (m) and bearing b (rad) from (lat, lng), on the sphere. */
function destination(lat: number, lng: number, d: number, b: number): [number, number] {
  const R = 6_371_008.8;
  const φ1 = (lat * Math.PI) / 180;
  const λ1 = (lng * Math.PI) / 180;
  const δ = d / R;
  const φ2 = Math.asin(Math.sin(φ1) * Math.cos(δ) + Math.cos(φ1) * Math.sin(δ) * Math.cos(b));
  const λ2 = λ1 + Math.atan2(Math.sin(b) * Math.sin(δ) * Math.cos(φ1), Math.cos(δ) - Math.sin(φ1) * Math.sin(φ2));
  return [(φ2 * 180) / Math.PI, ((((λ2 * 180) / Math.PI + 540) % 360) - 180)];
}

describe('regions', () => {
  it('gives a point the H3 cell at the region resolution', () => {
    const r = regionOf(51.5074, -0.1278);
    expect(getResolution(r)).toBe(REGION_RES);
    expect(regionOf(51.5075, -0.1277)).toBe(r);
  });

  it('lists every region holding a point of the circle (oracle: 4,000 points sampled in each circle)', () => {
    const rand = prng(7);
    // a city, the antimeridian, near a pole, and near one of H3's pentagons (res 0 cell 08 centre ≈ 64.7N 10.5E)
    const centres: [number, number][] = [[51.5074, -0.1278], [-16.5, 179.95], [84.2, 30], [64.7, 10.5], [0, 0]];
    for (const [lat, lng] of centres) {
      for (const radius of [0, 800, 5_000, 40_000, 150_000]) {
        const touched = regionsTouched(lat, lng, radius);
        if (touched === 'all') throw new Error('a radius under the limit must list its regions');
        const set = new Set(touched);
        expect(set.size).toBe(touched.length);
        const seen = new Set<string>();
        for (let i = 0; i < 4_000; i++) {
          // half on the rim, where a missed region would hide, half inside
          const d = i % 2 === 0 ? radius : radius * Math.sqrt(rand());
          const [plat, plng] = destination(lat, lng, d, rand() * 2 * Math.PI);
          const r = regionOf(plat, plng);
          seen.add(r);
          if (!set.has(r)) throw new Error(`(${plat}, ${plng}) at ${d.toFixed(0)} m from (${lat}, ${lng}) is in ${r}, not listed for radius ${radius}`);
        }
        // a superset, but not a loose one: every listed region's centre is within radius + 2 cell widths
        for (const r of touched) {
          const [clat, clng] = cellToLatLng(r);
          expect(distanceMeters(lat, lng, clat, clng)).toBeLessThan(radius + 2 * 30_000);
        }
        expect(touched.length).toBeLessThanOrEqual(seen.size + 6 * Math.ceil(1 + radius / 20_000));
      }
    }
  });

  it('answers all beyond the listing radius and refuses a negative radius', () => {
    expect(regionsTouched(51.5, -0.12, ALL_REGIONS_RADIUS_M + 1)).toBe('all');
    expect(Array.isArray(regionsTouched(51.5, -0.12, ALL_REGIONS_RADIUS_M))).toBe(true);
    expect(() => regionsTouched(51.5, -0.12, -1)).toThrow(/non-negative/);
    expect(() => regionsTouched(51.5, -0.12, Number.NaN)).toThrow(/non-negative/);
  });
});
