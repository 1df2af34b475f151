import { describe, expect, it } from 'vitest';
import { BLOOD_PRODUCTS, BLOOD_TYPES, type BloodProduct, type BloodType, compatibleDonorMask } from './blood-types.js';
import { chord2, distanceMeters, metersToChord2, writeUnitVector } from './geodesy.js';
import { type InventoryLot, type LotKey, SITE_KINDS, type SiteNearbyOptions, type SiteProfile, type StockLot, SiteIndex } from './site-index.js';
import { seededRandom } from '../fixtures/prng.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2025, 5, 1);


function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)];
}

interface ModelSite {
  profile: SiteProfile;
  lots: StockLot[];
}

function chordTo(lat: number, lng: number, p: { lat: number; lng: number }): number {
  const a = new Float64Array(6);
  writeUnitVector(lat, lng, a, 0);
  writeUnitVector(p.lat, p.lng, a, 3);
  return chord2(a[0], a[1], a[2], a[3], a[4], a[5]);
}

function modelRoom(p: SiteProfile): number {
  if (p.open === false) return 0;
  return Math.max(0, (p.capacity ?? Infinity) - (p.occupancy ?? 0));
}

function modelUnits(lots: StockLot[], product: BloodProduct, mask: number, asOf: number): number {
  return lots
    .filter((l) => l.product === product && l.expiresAt >= asOf && (mask >> BLOOD_TYPES.indexOf(l.bloodType)) & 1)
    .reduce((n, l) => n + l.available, 0);
}

/** Brute force over the same data: filter, rank by (chord², id), cut to k. */
function oracle(model: Map<string, ModelSite>, lat: number, lng: number, o: SiteNearbyOptions) {
  const kinds = o.kind === undefined ? SITE_KINDS : typeof o.kind === 'string' ? [o.kind] : o.kind;
  const mask = o.stock ? compatibleDonorMask(o.stock.recipient, o.stock.product, { emergency: o.stock.emergency }) : 0;
  const r2 = metersToChord2(o.radius ?? Infinity);
  return [...model]
    .filter(([, s]) => kinds.includes(s.profile.kind))
    .filter(([, s]) => o.open === undefined || (s.profile.open !== false) === o.open)
    .filter(([, s]) => o.room === undefined || modelRoom(s.profile) >= o.room)
    .map(([id, s]) => ({
      id,
      c: chordTo(lat, lng, s.profile),
      distance: distanceMeters(lat, lng, s.profile.lat, s.profile.lng),
      units: o.stock ? modelUnits(s.lots, o.stock.product, mask, o.stock.asOf) : undefined,
    }))
    .filter((h) => !o.stock || (h.units as number) >= (o.stock.units ?? 1))
    .filter((h) => h.c <= r2)
    .sort((a, b) => a.c - b.c || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, o.k ?? 10);
}

function randomLots(rand: () => number): InventoryLot[] {
  const n = Math.floor(rand() * 8);
  return Array.from({ length: n }, () => ({
    product: pick(rand, BLOOD_PRODUCTS),
    bloodType: pick(rand, BLOOD_TYPES),
    count: Math.floor(rand() * 6),
    expiresAt: NOW + (Math.floor(rand() * 10) - 3) * DAY,
  }));
}

function mergeLots(lots: InventoryLot[]): StockLot[] {
  const byKey = new Map<string, StockLot>();
  for (const l of lots) {
    const key = `${l.product}|${l.bloodType}|${l.expiresAt}`;
    const seen = byKey.get(key);
    if (seen) seen.available += l.count;
    else byKey.set(key, { product: l.product, bloodType: l.bloodType, expiresAt: l.expiresAt, available: l.count, reserved: 0 });
  }
  return [...byKey.values()].filter((l) => l.available > 0);
}

function randomSite(rand: () => number, center: [number, number], spread: number, earlier: SiteProfile[]): SiteProfile {
  const twin = earlier.length > 0 && rand() < 0.1 ? pick(rand, earlier) : undefined;
  let lng = twin?.lng ?? center[1] + (rand() * 2 - 1) * spread;
  if (lng > 180) lng -= 360;
  if (lng < -180) lng += 360;
  const capacity = rand() < 0.7 ? Math.floor(rand() * 50) : undefined;
  return {
    kind: pick(rand, SITE_KINDS),
    name: `site ${Math.floor(rand() * 1000)}`,
    lat: twin?.lat ?? Math.max(-90, Math.min(90, center[0] + (rand() * 2 - 1) * spread)),
    lng,
    capacity,
    occupancy: Math.floor(rand() * 60),
    open: rand() < 0.8,
  };
}

const CENTERS: [number, number][] = [
  [40.7, -74],
  [-16.5, -179.97],
  [89.95, -60],
  [-89.9, 10],
  [1.3, 103.8],
];

describe('SiteIndex', () => {
  it('matches a brute-force oracle over random sites, stock, reservations and filters (40 seeds)', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rand = seededRandom(1000 + seed);
      const index = new SiteIndex();
      const model = new Map<string, ModelSite>();
      const center = CENTERS[seed % CENTERS.length];
      const spread = [0.05, 2, 30][seed % 3];
      const add = (id: string) => {
        const profile = randomSite(rand, center, spread, [...model.values()].map((s) => s.profile));
        const lots = randomLots(rand);
        index.upsert(id, profile);
        index.setInventory(id, lots);
        model.set(id, { profile, lots: mergeLots(lots) });
      };
      const n = Math.floor(rand() * 300);
      for (let i = 0; i < n; i++) add(`s${i}`);
      for (let round = 0; round < 3; round++) {
        for (const [id, s] of model) {
          if (s.lots.length === 0 || rand() < 0.7) continue;
          const lot = pick(rand, s.lots);
          const count = 1 + Math.floor(rand() * 3);
          expect(index.reserveUnits(id, lot, count)).toBe(lot.available >= count);
          if (lot.available >= count) {
            lot.available -= count;
            lot.reserved += count;
          }
        }
        for (let q = 0; q < 25; q++) {
          const o: SiteNearbyOptions = {
            k: pick(rand, [undefined, 0, 1, 4, 10, 50, 5_000]),
            radius: pick(rand, [undefined, 0, 1_000, 50_000, 800_000, 5_000_000]),
            kind: pick(rand, [undefined, 'blood_bank', ['food_bank', 'shelter'], 'hospital'] as const),
            open: pick(rand, [undefined, true, false]),
            room: pick(rand, [undefined, undefined, 0, 1, 10]),
          };
          if (rand() < 0.5) {
            o.stock = {
              product: pick(rand, BLOOD_PRODUCTS),
              recipient: pick(rand, [...BLOOD_TYPES, 'unknown'] as const),
              units: pick(rand, [undefined, 1, 3, 8]),
              asOf: NOW + Math.floor(rand() * 5) * DAY,
              emergency: rand() < 0.3,
            };
          }
          const onSite = model.size > 0 && rand() < 0.2;
          const at = onSite ? pick(rand, [...model.values()]).profile : randomSite(rand, center, spread * 1.5, []);
          const got = index.nearby(at.lat, at.lng, o);
          const want = oracle(model, at.lat, at.lng, o);
          expect(got.map((h) => h.id)).toEqual(want.map((h) => h.id));
          got.forEach((h, i) => {
            expect(h.distance).toBeCloseTo(want[i].distance, 6);
            expect(h.units).toBe(want[i].units);
            const p = (model.get(h.id) as ModelSite).profile;
            expect([h.kind, h.name, h.lat, h.lng]).toEqual([p.kind, p.name, p.lat, p.lng]);
          });
        }
        for (const id of [...model.keys()]) {
          const r = rand();
          if (r < 0.15) {
            expect(index.remove(id)).toBe(true);
            model.delete(id);
          } else if (r < 0.3) {
            const s = model.get(id) as ModelSite;
            s.profile = { ...randomSite(rand, center, spread, []), occupancy: undefined };
            index.upsert(id, s.profile);
            s.profile.occupancy = index.get(id)?.occupancy;
          } else if (r < 0.4) {
            const occupancy = Math.floor(rand() * 60);
            index.setOccupancy(id, occupancy);
            (model.get(id) as ModelSite).profile.occupancy = occupancy;
          }
        }
        for (let i = 0; i < 25; i++) add(`r${round}-${i}`);
        expect(index.size).toBe(model.size);
      }
    }
  });

  it('finds sites across the antimeridian first when the query is at lng 179.99', () => {
    const index = new SiteIndex();
    index.upsert('west', { kind: 'hospital', name: 'W', lat: -10, lng: -179.99 });
    index.upsert('east', { kind: 'hospital', name: 'E', lat: -10, lng: 179.8 });
    expect(index.nearby(-10, 179.99).map((h) => h.id)).toEqual(['west', 'east']);
  });

  it('ranks sites near the south pole by true distance whatever their longitude', () => {
    const index = new SiteIndex();
    index.upsert('a', { kind: 'shelter', name: 'a', lat: -89.9, lng: 0 });
    index.upsert('b', { kind: 'shelter', name: 'b', lat: -89.95, lng: 180 });
    index.upsert('c', { kind: 'shelter', name: 'c', lat: -89.8, lng: 90 });
    const hits = index.nearby(-89.9, 179);
    // across the pole 'a' is 0.2° of arc away, closer than 'c' (≈0.22°) although its longitude is opposite
    expect(hits.map((h) => h.id)).toEqual(['b', 'a', 'c']);
    hits.forEach((h) => expect(h.distance).toBeCloseTo(distanceMeters(-89.9, 179, h.lat, h.lng), 6));
  });

  it('handles k beyond the population, k = 0, radius 0, an empty index and duplicate points', () => {
    const index = new SiteIndex();
    expect(index.nearby(0, 0)).toEqual([]);
    index.upsert('b', { kind: 'restaurant', name: 'B', lat: 3, lng: 4 });
    index.upsert('a', { kind: 'restaurant', name: 'A', lat: 3, lng: 4 });
    index.upsert('c', { kind: 'restaurant', name: 'C', lat: 3.001, lng: 4 });
    expect(index.nearby(3, 4, { k: 99 }).map((h) => [h.id, h.distance === 0])).toEqual([
      ['a', true],
      ['b', true],
      ['c', false],
    ]);
    expect(index.nearby(3, 4, { k: 0 })).toEqual([]);
    expect(index.nearby(3, 4, { radius: 0 }).map((h) => h.id)).toEqual(['a', 'b']);
    expect(index.nearby(3, 4, { k: 1 }).map((h) => h.id)).toEqual(['a']);
  });

  it('computes room from capacity and occupancy, 0 when closed and unlimited without a capacity', () => {
    const index = new SiteIndex();
    index.upsert('fb', { kind: 'food_bank', name: 'FB', lat: 0, lng: 0, capacity: 100, occupancy: 30 });
    index.upsert('full', { kind: 'shelter', name: 'S', lat: 0, lng: 0.001, capacity: 10, occupancy: 12 });
    index.upsert('shut', { kind: 'shelter', name: 'X', lat: 0, lng: 0.002, capacity: 50, open: false });
    index.upsert('any', { kind: 'food_bank', name: 'Y', lat: 0, lng: 0.003 });
    expect([index.room('fb'), index.room('full'), index.room('shut'), index.room('any')]).toEqual([70, 0, 0, Infinity]);
    index.setOccupancy('fb', 95);
    expect(index.room('fb')).toBe(5);
    expect(index.nearby(0, 0, { room: 6 }).map((h) => h.id)).toEqual(['any']);
    expect(index.nearby(0, 0, { room: 5, kind: ['food_bank', 'shelter'], open: true }).map((h) => h.id)).toEqual(['fb', 'any']);
    index.upsert('fb', { kind: 'food_bank', name: 'FB2', lat: 0, lng: 0, capacity: 200 });
    expect(index.get('fb')).toEqual({ id: 'fb', kind: 'food_bank', name: 'FB2', lat: 0, lng: 0, capacity: 200, occupancy: 95, open: true });
    expect(() => index.setOccupancy('fb', -1)).toThrow(expect.objectContaining({ code: 'E_BAD_PROFILE' }));
    expect(() => index.room('ghost')).toThrow(expect.objectContaining({ code: 'E_UNKNOWN_SITE' }));
  });

  it('keeps lots first-expiring-first-out and merges lots with the same key', () => {
    const index = new SiteIndex();
    index.upsert('bank', { kind: 'blood_bank', name: 'Bank', lat: 0, lng: 0 });
    index.setInventory('bank', [
      { product: 'red_cells', bloodType: 'A+', count: 2, expiresAt: NOW + 9 * DAY },
      { product: 'plasma', bloodType: 'AB+', count: 1, expiresAt: NOW + 2 * DAY },
      { product: 'red_cells', bloodType: 'A+', count: 3, expiresAt: NOW + 9 * DAY },
      { product: 'red_cells', bloodType: 'O-', count: 4, expiresAt: NOW + 2 * DAY },
      { product: 'platelets', bloodType: 'B+', count: 0, expiresAt: NOW + DAY },
    ]);
    expect(index.lots('bank')).toEqual([
      { product: 'red_cells', bloodType: 'O-', expiresAt: NOW + 2 * DAY, available: 4, reserved: 0 },
      { product: 'plasma', bloodType: 'AB+', expiresAt: NOW + 2 * DAY, available: 1, reserved: 0 },
      { product: 'red_cells', bloodType: 'A+', expiresAt: NOW + 9 * DAY, available: 5, reserved: 0 },
    ]);
  });

  it('takes stock as another writer stored it: reserved exactly as given (capped at the count), not kept from before', () => {
    const index = new SiteIndex();
    index.upsert('bank', { kind: 'blood_bank', name: 'Bank', lat: 0, lng: 0 });
    const lot = { product: 'red_cells' as const, bloodType: 'A+' as const, expiresAt: NOW + 9 * DAY };
    index.setInventory('bank', [{ ...lot, count: 5 }, { product: 'plasma', bloodType: 'O-', count: 2, expiresAt: NOW + DAY }]);
    expect(index.reserveUnits('bank', { product: 'red_cells', bloodType: 'A+', expiresAt: lot.expiresAt }, 3)).toBe(true);
    // the store says: one reserved of six (another core issued two of ours and added stock); plasma gone
    index.setStock('bank', [{ ...lot, count: 6, reserved: 1 }, { product: 'platelets', bloodType: 'B+', count: 2, reserved: 9, expiresAt: NOW + DAY }]);
    expect(index.lots('bank')).toEqual([
      { product: 'platelets', bloodType: 'B+', expiresAt: NOW + DAY, available: 0, reserved: 2 },
      { ...lot, available: 5, reserved: 1 },
    ]);
    expect(index.availableUnits('bank', 'red_cells', ['A+'], NOW)).toBe(5);
  });

  it('excludes expired lots and lots expiring before asOf from counts and stock queries', () => {
    const index = new SiteIndex();
    index.upsert('bank', { kind: 'blood_bank', name: 'Bank', lat: 0, lng: 0 });
    index.setInventory('bank', [
      { product: 'red_cells', bloodType: 'O+', count: 2, expiresAt: NOW - DAY },
      { product: 'red_cells', bloodType: 'O+', count: 3, expiresAt: NOW + DAY },
      { product: 'red_cells', bloodType: 'O-', count: 1, expiresAt: NOW + 5 * DAY },
    ]);
    expect(index.availableUnits('bank', 'red_cells', ['O+', 'O-'], NOW)).toBe(4);
    expect(index.availableUnits('bank', 'red_cells', 0b11, NOW + DAY)).toBe(4);
    expect(index.availableUnits('bank', 'red_cells', 0b11, NOW + DAY + 1)).toBe(1);
    expect(index.availableUnits('bank', 'plasma', 0xff, 0)).toBe(0);
    const stock = { product: 'red_cells' as const, recipient: 'O+' as const, asOf: NOW + 2 * DAY };
    expect(index.nearby(0, 0, { stock })).toMatchObject([{ id: 'bank', units: 1 }]);
    expect(index.nearby(0, 0, { stock: { ...stock, units: 2 } })).toEqual([]);
    expect(index.nearby(0, 0, { stock: { ...stock, asOf: NOW } })).toMatchObject([{ id: 'bank', units: 4 }]);
  });

  it('returns only banks with compatible stock: O− for an O− patient’s red cells', () => {
    const index = new SiteIndex();
    index.upsert('near', { kind: 'blood_bank', name: 'Near', lat: 0, lng: 0.01 });
    index.upsert('far', { kind: 'blood_bank', name: 'Far', lat: 0, lng: 0.5 });
    index.setInventory('near', [{ product: 'red_cells', bloodType: 'O+', count: 10, expiresAt: NOW + 10 * DAY }]);
    index.setInventory('far', [{ product: 'red_cells', bloodType: 'O-', count: 2, expiresAt: NOW + 10 * DAY }]);
    const hits = index.nearby(0, 0, { stock: { product: 'red_cells', recipient: 'O-', asOf: NOW } });
    expect(hits.map((h) => [h.id, h.units])).toEqual([['far', 2]]);
    const plus = index.nearby(0, 0, { stock: { product: 'red_cells', recipient: 'O+', asOf: NOW, units: 2 } });
    expect(plus.map((h) => [h.id, h.units])).toEqual([
      ['near', 10],
      ['far', 2],
    ]);
  });

  it('moves units between available and reserved without ever losing or double-counting one', () => {
    const rand = seededRandom(7);
    const index = new SiteIndex();
    index.upsert('bank', { kind: 'blood_bank', name: 'Bank', lat: 0, lng: 0 });
    const lots: InventoryLot[] = [
      { product: 'red_cells', bloodType: 'A-', count: 5, expiresAt: NOW + DAY },
      { product: 'red_cells', bloodType: 'O-', count: 3, expiresAt: NOW + 2 * DAY },
      { product: 'platelets', bloodType: 'B+', count: 4, expiresAt: NOW + 3 * DAY },
    ];
    index.setInventory('bank', lots);
    const keys: LotKey[] = lots.map(({ product, bloodType, expiresAt }) => ({ product, bloodType, expiresAt }));
    const model = lots.map((l) => ({ available: l.count, reserved: 0 }));
    let issued = 0;
    for (let step = 0; step < 500; step++) {
      const i = Math.floor(rand() * keys.length);
      const count = 1 + Math.floor(rand() * 3);
      const m = model[i];
      const op = Math.floor(rand() * 3);
      if (op === 0) {
        const ok = m.available >= count;
        expect(index.reserveUnits('bank', keys[i], count)).toBe(ok);
        if (ok) (m.available -= count), (m.reserved += count);
      } else if (op === 1) {
        const ok = m.reserved >= count;
        expect(index.releaseUnits('bank', keys[i], count)).toBe(ok);
        if (ok) (m.reserved -= count), (m.available += count);
      } else if (rand() < 0.1) {
        const ok = m.reserved >= count;
        expect(index.issueUnits('bank', keys[i], count)).toBe(ok);
        if (ok) (m.reserved -= count), (issued += count);
      }
      const held = index.lots('bank');
      for (let j = 0; j < keys.length; j++) {
        const lot = held.find((l) => l.product === keys[j].product && l.bloodType === keys[j].bloodType);
        expect(lot ? [lot.available, lot.reserved] : [0, 0]).toEqual([model[j].available, model[j].reserved]);
      }
      expect(held.reduce((n, l) => n + l.available + l.reserved, 0) + issued).toBe(12);
    }
    expect(index.reserveUnits('bank', { ...keys[0], expiresAt: NOW + 99 * DAY }, 1)).toBe(false);
    expect(() => index.reserveUnits('bank', keys[0], 0)).toThrow(expect.objectContaining({ code: 'E_BAD_INVENTORY' }));
    expect(() => index.reserveUnits('ghost', keys[0], 1)).toThrow(expect.objectContaining({ code: 'E_UNKNOWN_SITE' }));
  });

  it('puts issued units back as reserved, listing an emptied lot again in FEFO order', () => {
    const index = new SiteIndex();
    index.upsert('bank', { kind: 'blood_bank', name: 'Bank', lat: 0, lng: 0 });
    const early = { product: 'red_cells' as const, bloodType: 'O-' as const, expiresAt: NOW + DAY };
    const late = { product: 'red_cells' as const, bloodType: 'A+' as const, expiresAt: NOW + 2 * DAY };
    index.setInventory('bank', [{ ...early, count: 2 }, { ...late, count: 1 }]);
    expect(index.reserveUnits('bank', early, 2)).toBe(true);
    expect(index.issueUnits('bank', early, 2)).toBe(true);
    expect(index.lots('bank').map((l) => l.bloodType)).toEqual(['A+']);
    index.returnUnits('bank', early, 2);
    expect(index.lots('bank')).toEqual([
      { ...early, available: 0, reserved: 2 },
      { ...late, available: 1, reserved: 0 },
    ]);
    index.returnUnits('bank', late, 1);
    expect(index.lots('bank')[1]).toEqual({ ...late, available: 1, reserved: 1 });
  });

  it('counts only unreserved units, so two requests never take the same unit', () => {
    const index = new SiteIndex();
    index.upsert('bank', { kind: 'blood_bank', name: 'Bank', lat: 0, lng: 0 });
    const key = { product: 'red_cells' as const, bloodType: 'O-' as const, expiresAt: NOW + DAY };
    index.setInventory('bank', [{ ...key, count: 3 }]);
    expect(index.reserveUnits('bank', key, 2)).toBe(true);
    expect(index.reserveUnits('bank', key, 2)).toBe(false);
    expect(index.availableUnits('bank', 'red_cells', ['O-'], NOW)).toBe(1);
    expect(index.nearby(0, 0, { stock: { product: 'red_cells', recipient: 'O-', asOf: NOW, units: 2 } })).toEqual([]);
  });

  it('keeps reservations of still-listed lots when the inventory is replaced, capped at the new count', () => {
    const index = new SiteIndex();
    index.upsert('bank', { kind: 'blood_bank', name: 'Bank', lat: 0, lng: 0 });
    const a = { product: 'red_cells' as const, bloodType: 'A+' as const, expiresAt: NOW + DAY };
    const b = { product: 'plasma' as const, bloodType: 'AB-' as const, expiresAt: NOW + 30 * DAY };
    index.setInventory('bank', [
      { ...a, count: 6 },
      { ...b, count: 4 },
    ]);
    index.reserveUnits('bank', a, 4);
    index.reserveUnits('bank', b, 3);
    index.setInventory('bank', [
      { ...a, count: 10 },
      { ...b, count: 2 },
    ]);
    expect(index.lots('bank')).toEqual([
      { ...a, available: 6, reserved: 4 },
      { ...b, available: 0, reserved: 2 },
    ]);
  });

  it('rejects bad inventory with E_BAD_INVENTORY and keeps the previous stock', () => {
    const index = new SiteIndex();
    index.upsert('bank', { kind: 'blood_bank', name: 'Bank', lat: 0, lng: 0 });
    const good: InventoryLot = { product: 'red_cells', bloodType: 'B-', count: 2, expiresAt: NOW };
    index.setInventory('bank', [good]);
    index.reserveUnits('bank', good, 1);
    const before = index.lots('bank');
    const bad: unknown[] = [
      { ...good, product: 'serum' },
      { ...good, bloodType: 'B' },
      { ...good, count: -1 },
      { ...good, count: 1.5 },
      { ...good, count: '2' },
      { ...good, expiresAt: Number.NaN },
      { ...good, expiresAt: undefined },
      null,
    ];
    for (const lot of bad) {
      expect(() => index.setInventory('bank', [{ ...good, count: 9 }, lot as InventoryLot])).toThrow(
        expect.objectContaining({ code: 'E_BAD_INVENTORY' }),
      );
    }
    expect(index.lots('bank')).toEqual(before);
    expect(() => index.setInventory('ghost', [good])).toThrow(expect.objectContaining({ code: 'E_UNKNOWN_SITE' }));
  });

  it('rejects bad site profiles with the right code and leaves the previous site untouched', () => {
    const index = new SiteIndex();
    const good: SiteProfile = { kind: 'shelter', name: 'S', lat: 1, lng: 2, capacity: 10, occupancy: 3 };
    index.upsert('s', good);
    const bad: [unknown, string][] = [
      [{ ...good, lat: -90.5 }, 'E_BAD_COORDINATE'],
      [{ ...good, lng: 181 }, 'E_BAD_COORDINATE'],
      [{ ...good, kind: 'castle' }, 'E_BAD_PROFILE'],
      [{ ...good, name: 7 }, 'E_BAD_PROFILE'],
      [{ ...good, capacity: -1 }, 'E_BAD_PROFILE'],
      [{ ...good, occupancy: Number.NaN }, 'E_BAD_PROFILE'],
      [{ ...good, open: 1 }, 'E_BAD_PROFILE'],
    ];
    for (const [profile, code] of bad) {
      expect(() => index.upsert('s', profile as SiteProfile)).toThrow(expect.objectContaining({ code }));
      expect(() => index.upsert('t', profile as SiteProfile)).toThrow(expect.objectContaining({ code }));
    }
    expect(index.get('s')).toEqual({ id: 's', ...good, open: true });
    expect(index.has('t')).toBe(false);
    expect(index.nearby(1, 2).map((h) => h.id)).toEqual(['s']);
  });

  it('finds sites within an area and forgets removed ones', () => {
    const index = new SiteIndex();
    index.upsert('a', { kind: 'hospital', name: 'A', lat: 10, lng: 179.9 });
    index.upsert('b', { kind: 'restaurant', name: 'B', lat: 10, lng: -179.9 });
    index.upsert('c', { kind: 'restaurant', name: 'C', lat: 30, lng: 0 });
    expect(index.within([179, 0, -179, 20]).sort()).toEqual(['a', 'b']);
    expect(index.remove('a')).toBe(true);
    expect(index.remove('a')).toBe(false);
    expect(index.within([179, 0, -179, 20])).toEqual(['b']);
    expect(() => index.lots('a')).toThrow(expect.objectContaining({ code: 'E_UNKNOWN_SITE' }));
    expect(index.nearby(10, 179.9, { k: 5 }).map((h) => h.id)).toEqual(['b', 'c']);
  });

  it('rejects an unknown kind filter', () => {
    expect(() => new SiteIndex().nearby(0, 0, { kind: 'castle' as never })).toThrow(/unknown site kind/);
  });
});
