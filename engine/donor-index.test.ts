import { describe, expect, it } from 'vitest';
import { BLOOD_PRODUCTS, BLOOD_TYPES, type BloodProduct, type RecipientType, compatibleDonorMask } from './blood-types.js';
import { DEFAULT_DONATION_INTERVAL_DAYS, type DonorNearbyOptions, type DonorProfile, DonorIndex } from './donor-index.js';
import { EngineError } from './errors.js';
import { chord2, distanceMeters, metersToChord2, writeUnitVector } from './geodesy.js';
import { seededRandom } from '../fixtures/prng.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2025, 5, 1);


function chordTo(lat: number, lng: number, p: { lat: number; lng: number }): number {
  const a = new Float64Array(6);
  writeUnitVector(lat, lng, a, 0);
  writeUnitVector(p.lat, p.lng, a, 3);
  return chord2(a[0], a[1], a[2], a[3], a[4], a[5]);
}

function eligible(p: DonorProfile, asOf: number): boolean {
  if (!p.available) return false;
  for (const product of BLOOD_PRODUCTS) {
    const t = p.lastDonation?.[product];
    if (t !== undefined && asOf - t < DEFAULT_DONATION_INTERVAL_DAYS[product] * DAY) return false;
  }
  return true;
}

/** Brute force over the same data: filter, rank by (chord², id), cut to k. */
function oracle(model: Map<string, DonorProfile>, lat: number, lng: number, o: DonorNearbyOptions) {
  const mask = o.recipient === undefined ? 0xff : compatibleDonorMask(o.recipient, o.product as BloodProduct, { emergency: o.emergency });
  const r2 = metersToChord2(o.radius ?? Infinity);
  return [...model]
    .filter(([, p]) => (mask >> BLOOD_TYPES.indexOf(p.bloodType)) & 1)
    .filter(([, p]) => (o.asOf === undefined ? p.available : eligible(p, o.asOf)))
    .map(([id, p]) => ({ id, c: chordTo(lat, lng, p), distance: distanceMeters(lat, lng, p.lat, p.lng) }))
    .filter((h) => h.c <= r2)
    .sort((a, b) => a.c - b.c || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, o.k ?? 10);
}

function expectSameAsOracle(index: DonorIndex, model: Map<string, DonorProfile>, lat: number, lng: number, o: DonorNearbyOptions): void {
  const got = index.nearby(lat, lng, o);
  const want = oracle(model, lat, lng, o);
  expect(got.map((h) => h.id)).toEqual(want.map((h) => h.id));
  got.forEach((h, i) => {
    expect(h.distance).toBeCloseTo(want[i].distance, 6);
    const p = model.get(h.id) as DonorProfile;
    expect([h.lat, h.lng, h.bloodType]).toEqual([p.lat, p.lng, p.bloodType]);
  });
}

function randomDonor(rand: () => number, center: [number, number], spreadDeg: number, earlier: DonorProfile[]): DonorProfile {
  let lat: number;
  let lng: number;
  if (earlier.length > 0 && rand() < 0.1) {
    const twin = earlier[Math.floor(rand() * earlier.length)];
    lat = twin.lat;
    lng = twin.lng;
  } else {
    lat = Math.max(-90, Math.min(90, center[0] + (rand() * 2 - 1) * spreadDeg));
    lng = center[1] + (rand() * 2 - 1) * spreadDeg;
    if (lng > 180) lng -= 360;
    if (lng < -180) lng += 360;
  }
  const lastDonation: Partial<Record<BloodProduct, number>> = {};
  for (const product of BLOOD_PRODUCTS) if (rand() < 0.2) lastDonation[product] = NOW - Math.floor(rand() * 150) * DAY;
  return { bloodType: BLOOD_TYPES[Math.floor(rand() * 8)], lat, lng, lastDonation, available: rand() < 0.85 };
}

const CENTERS: [number, number][] = [
  [52.52, 13.4],
  [0, 179.95],
  [89.9, 0],
  [-89.95, 120],
  [-33.9, -70.6],
];

describe('DonorIndex', () => {
  it('matches a brute-force oracle over random donors, queries and edits (40 seeds)', () => {
    const recipients: (RecipientType | undefined)[] = [undefined, ...BLOOD_TYPES, 'unknown'];
    for (let seed = 1; seed <= 40; seed++) {
      const rand = seededRandom(seed);
      const index = new DonorIndex();
      const model = new Map<string, DonorProfile>();
      const center = CENTERS[seed % CENTERS.length];
      const spread = [0.05, 1, 20][seed % 3];
      const n = Math.floor(rand() * 400);
      for (let i = 0; i < n; i++) {
        const p = randomDonor(rand, center, spread, [...model.values()]);
        index.upsert(`d${i}`, p);
        model.set(`d${i}`, p);
      }
      for (let round = 0; round < 3; round++) {
        for (let q = 0; q < 25; q++) {
          const recipient = recipients[Math.floor(rand() * recipients.length)];
          const o: DonorNearbyOptions = {
            k: [undefined, 0, 1, 3, 10, 40, 10_000][Math.floor(rand() * 7)],
            radius: [undefined, 0, 500, 20_000, 300_000, 3_000_000][Math.floor(rand() * 6)],
            recipient,
            product: recipient === undefined ? undefined : BLOOD_PRODUCTS[Math.floor(rand() * 4)],
            asOf: rand() < 0.8 ? NOW : undefined,
            emergency: rand() < 0.3,
          };
          const onDonor = model.size > 0 && rand() < 0.2;
          const at = onDonor ? [...model.values()][Math.floor(rand() * model.size)] : randomDonor(rand, center, spread * 1.5, []);
          expectSameAsOracle(index, model, at.lat, at.lng, o);
        }
        // edits between rounds: removals free slots, new donors reuse them, some donors move
        for (const id of [...model.keys()]) {
          const r = rand();
          if (r < 0.2) {
            expect(index.remove(id)).toBe(true);
            model.delete(id);
          } else if (r < 0.35) {
            const p = randomDonor(rand, center, spread, [...model.values()]);
            index.upsert(id, p);
            model.set(id, p);
          }
        }
        for (let i = 0; i < 30; i++) {
          const id = `r${round}-${i}`;
          const p = randomDonor(rand, center, spread, [...model.values()]);
          index.upsert(id, p);
          model.set(id, p);
        }
        expect(index.size).toBe(model.size);
      }
    }
  });

  it('finds donors across the antimeridian first when the query is at lng 179.99', () => {
    const index = new DonorIndex();
    index.upsert('west', { bloodType: 'O+', lat: 0, lng: -179.99, available: true });
    index.upsert('east', { bloodType: 'O+', lat: 0, lng: 179.5, available: true });
    index.upsert('far', { bloodType: 'O+', lat: 0, lng: 170, available: true });
    const hits = index.nearby(0, 179.99, { k: 3 });
    expect(hits.map((h) => h.id)).toEqual(['west', 'east', 'far']);
    expect(hits[0].distance).toBeCloseTo(distanceMeters(0, 179.99, 0, -179.99), 6);
    expect(hits[0].distance).toBeLessThan(2_300);
  });

  it('ranks donors near the north pole by true distance whatever their longitude', () => {
    const index = new DonorIndex();
    const model = new Map<string, DonorProfile>();
    [-180, -135, -90, -45, 0, 45, 90, 135, 180].forEach((lng, i) => {
      const p: DonorProfile = { bloodType: 'A+', lat: 89.9 - i * 0.01, lng, available: true };
      index.upsert(`p${i}`, p);
      model.set(`p${i}`, p);
    });
    for (const lng of [-170, -10, 0, 100, 179.99]) expectSameAsOracle(index, model, 89.9, lng, { k: 9 });
    expect(index.nearby(89.9, 180, { k: 1 })[0].id).toBe('p0');
  });

  it('returns every matching donor when k exceeds the population, and nothing for k = 0', () => {
    const index = new DonorIndex();
    index.upsert('a', { bloodType: 'O-', lat: 10, lng: 10, available: true });
    index.upsert('b', { bloodType: 'O-', lat: 11, lng: 10, available: true });
    index.upsert('c', { bloodType: 'O-', lat: 12, lng: 10, available: false });
    expect(index.nearby(10, 10, { k: 1_000_000 }).map((h) => h.id)).toEqual(['a', 'b']);
    expect(index.nearby(10, 10, { k: 0 })).toEqual([]);
  });

  it('returns only donors exactly at the query point for radius 0', () => {
    const index = new DonorIndex();
    index.upsert('here', { bloodType: 'B+', lat: 48.1, lng: 11.5, available: true });
    index.upsert('also-here', { bloodType: 'B+', lat: 48.1, lng: 11.5, available: true });
    index.upsert('a-metre-away', { bloodType: 'B+', lat: 48.10001, lng: 11.5, available: true });
    const hits = index.nearby(48.1, 11.5, { radius: 0 });
    expect(hits.map((h) => [h.id, h.distance])).toEqual([
      ['also-here', 0],
      ['here', 0],
    ]);
  });

  it('answers an empty index with an empty list', () => {
    expect(new DonorIndex().nearby(0, 0, { k: 5, recipient: 'A+', product: 'red_cells', asOf: NOW })).toEqual([]);
  });

  it('returns all duplicate donors at equal distance, ordered by id, even when k cuts through them', () => {
    const index = new DonorIndex();
    const ids = Array.from({ length: 40 }, (_, i) => `dup${String(39 - i).padStart(2, '0')}`);
    for (const id of ids) index.upsert(id, { bloodType: 'AB+', lat: -20, lng: 30, available: true });
    index.upsert('near', { bloodType: 'AB+', lat: -20.001, lng: 30.0005, available: true });
    const all = index.nearby(-20.0005, 30, { k: 41 });
    expect(all.slice(0, 40).map((h) => h.id)).toEqual([...ids].sort());
    expect(new Set(all.slice(0, 40).map((h) => h.distance)).size).toBe(1);
    expect(all[40].id).toBe('near');
    expect(index.nearby(-20, 30, { k: 5 }).map((h) => h.id)).toEqual(['dup00', 'dup01', 'dup02', 'dup03', 'dup04']);
  });

  it('keeps a donor who gave whole blood 10 days ago ineligible until 56 days have passed', () => {
    const index = new DonorIndex();
    const donated = NOW - 10 * DAY;
    index.upsert('d', { bloodType: 'A+', lat: 1, lng: 1, available: true, lastDonation: { whole_blood: donated } });
    const query = { recipient: 'A+' as const, product: 'red_cells' as const };
    expect(index.isEligible('d', NOW)).toBe(false);
    expect(index.nearby(1, 1, { ...query, asOf: NOW })).toEqual([]);
    expect(index.isEligible('d', donated + 56 * DAY - 1)).toBe(false);
    expect(index.isEligible('d', donated + 56 * DAY)).toBe(true);
    expect(index.nearby(1, 1, { ...query, asOf: donated + 56 * DAY }).map((h) => h.id)).toEqual(['d']);
    expect(index.isEligible(index.get('d')!, donated + 56 * DAY)).toBe(true);
  });

  it('applies each product’s own interval and honours configured intervals', () => {
    const index = new DonorIndex({ intervalsDays: { platelets: 14 } });
    index.upsert('p', { bloodType: 'O+', lat: 0, lng: 0, available: true, lastDonation: { platelets: NOW - 10 * DAY } });
    index.upsert('r', { bloodType: 'O+', lat: 0, lng: 0, available: true, lastDonation: { red_cells: NOW - 100 * DAY } });
    expect(index.isEligible('p', NOW)).toBe(false);
    expect(index.isEligible('p', NOW + 4 * DAY)).toBe(true);
    expect(index.isEligible('r', NOW)).toBe(false);
    expect(index.isEligible('r', NOW + 12 * DAY)).toBe(true);
  });

  it('never calls out an unavailable donor, however long ago they gave', () => {
    const index = new DonorIndex();
    index.upsert('off', { bloodType: 'O-', lat: 0, lng: 0, available: false });
    expect(index.isEligible('off', NOW)).toBe(false);
    expect(index.nearby(0, 0, { asOf: NOW })).toEqual([]);
    expect(index.nearby(0, 0)).toEqual([]);
  });

  it('returns only O− donors to an O− patient’s red-cell query', () => {
    const index = new DonorIndex();
    BLOOD_TYPES.forEach((t, i) => index.upsert(`t${i}`, { bloodType: t, lat: 0, lng: i * 0.001, available: true }));
    const hits = index.nearby(0, 0, { k: 8, recipient: 'O-', product: 'red_cells', asOf: NOW });
    expect(hits.map((h) => [h.id, h.bloodType])).toEqual([['t0', 'O-']]);
    const plasma = index.nearby(0, 0, { k: 8, recipient: 'O-', product: 'plasma', asOf: NOW });
    expect(plasma).toHaveLength(8);
    const unknown = index.nearby(0, 0, { k: 8, recipient: 'unknown', product: 'red_cells', asOf: NOW, emergency: true });
    expect(unknown.map((h) => h.bloodType)).toEqual(['O-']);
  });

  it('finds donors within a bbox, one crossing the antimeridian, and a polygon', () => {
    const index = new DonorIndex();
    index.upsert('a', { bloodType: 'O+', lat: 10, lng: 179.5, available: true });
    index.upsert('b', { bloodType: 'O+', lat: 10, lng: -179.5, available: false });
    index.upsert('c', { bloodType: 'O+', lat: 10, lng: 0, available: true });
    expect(index.within([179, 9, -179, 11]).sort()).toEqual(['a', 'b']);
    expect(index.within({ minLng: -1, minLat: 9, maxLng: 1, maxLat: 11 })).toEqual(['c']);
    const poly = { type: 'Polygon' as const, coordinates: [[[-1, 9], [1, 9], [1, 11], [-1, 11], [-1, 9]]] };
    expect(index.within(poly)).toEqual(['c']);
    expect(() => index.within([0, 10, 1, 9])).toThrow(expect.objectContaining({ code: 'E_BAD_GEOMETRY' }));
  });

  it('moves, replaces and removes donors, reusing freed slots', () => {
    const index = new DonorIndex();
    index.upsert('a', { bloodType: 'O+', lat: 0, lng: 0, available: true });
    index.upsert('b', { bloodType: 'O+', lat: 1, lng: 1, available: true });
    index.upsert('a', { bloodType: 'B-', lat: 5, lng: 5, available: true, lastDonation: { plasma: NOW } });
    expect(index.get('a')).toEqual({ id: 'a', bloodType: 'B-', lat: 5, lng: 5, available: true, lastDonation: { plasma: NOW } });
    expect(index.nearby(5, 5, { k: 1 }).map((h) => h.id)).toEqual(['a']);
    expect(index.remove('b')).toBe(true);
    expect(index.remove('b')).toBe(false);
    expect(index.has('b')).toBe(false);
    expect(index.get('b')).toBeUndefined();
    index.upsert('c', { bloodType: 'A-', lat: 1, lng: 1, available: true });
    expect(index.size).toBe(2);
    expect(index.nearby(1, 1, { k: 5 }).map((h) => h.id)).toEqual(['c', 'a']);
    expect(index.within([0.5, 0.5, 1.5, 1.5])).toEqual(['c']);
  });

  it('rejects bad profiles with the right code and leaves the previous donor untouched', () => {
    const index = new DonorIndex();
    const good: DonorProfile = { bloodType: 'A+', lat: 10, lng: 20, available: true, lastDonation: { plasma: NOW - DAY } };
    index.upsert('d', good);
    const bad: [unknown, string][] = [
      [{ ...good, lat: 91 }, 'E_BAD_COORDINATE'],
      [{ ...good, lng: Number.NaN }, 'E_BAD_COORDINATE'],
      [{ ...good, lat: '10' }, 'E_BAD_COORDINATE'],
      [{ ...good, bloodType: 'C+' }, 'E_BAD_PROFILE'],
      [{ ...good, available: 'yes' }, 'E_BAD_PROFILE'],
      [{ ...good, lastDonation: { blood: NOW } }, 'E_BAD_PROFILE'],
      [{ ...good, lastDonation: { plasma: Number.POSITIVE_INFINITY } }, 'E_BAD_TIMESTAMP'],
    ];
    for (const [profile, code] of bad) {
      expect(() => index.upsert('d', profile as DonorProfile)).toThrow(expect.objectContaining({ code }));
      expect(() => index.upsert('new', profile as DonorProfile)).toThrow(EngineError);
    }
    expect(index.get('d')).toEqual({ id: 'd', ...good });
    expect(index.has('new')).toBe(false);
    expect(index.size).toBe(1);
    expect(index.nearby(10, 20, { k: 5 }).map((h) => h.id)).toEqual(['d']);
    expect(() => index.isEligible('ghost', NOW)).toThrow(expect.objectContaining({ code: 'E_UNKNOWN_DONOR' }));
  });

  it('rejects bad query arguments', () => {
    const index = new DonorIndex();
    expect(() => index.nearby(100, 0)).toThrow(expect.objectContaining({ code: 'E_BAD_COORDINATE' }));
    expect(() => index.nearby(0, 0, { k: -1 })).toThrow(/k must be/);
    expect(() => index.nearby(0, 0, { k: 1.5 })).toThrow(/k must be/);
    expect(() => index.nearby(0, 0, { radius: -1 })).toThrow(/radius/);
    expect(() => index.nearby(0, 0, { recipient: 'A+' })).toThrow(/needs a product/);
    expect(() => new DonorIndex({ intervalsDays: { plasma: -1 } })).toThrow(/intervalsDays.plasma/);
  });
});
