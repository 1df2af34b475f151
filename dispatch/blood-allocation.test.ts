import { describe, expect, it } from 'vitest';
import { BLOOD_PRODUCTS, BLOOD_TYPES, type BloodProduct, type BloodType, type RecipientType } from '../engine/blood-types.js';
import { DonorIndex } from '../engine/donor-index.js';
import { EARTH_RADIUS_M, distanceMeters } from '../engine/geodesy.js';
import { type InventoryLot, SiteIndex } from '../engine/site-index.js';
import { Prng } from '../fixtures/prng.js';
import { type BloodAllocation, type BloodNeed, allocateBlood, bloodPickupLegs, defaultTransitSeconds, releaseAllocation } from './blood-allocation.js';
import { planDonorCallout } from './donor-callout.js';

const NOW = Date.UTC(2025, 0, 15, 12);
const DAY = 86_400_000;
const HOSPITAL = { lat: 40, lng: -75 };
const M_PER_DEG = (EARTH_RADIUS_M * Math.PI) / 180;

/** A point `metres` north of the hospital. */
function north(metres: number): { lat: number; lng: number } {
  return { lat: HOSPITAL.lat + metres / M_PER_DEG, lng: HOSPITAL.lng };
}

function lot(bloodType: BloodType, count: number, days: number, product: BloodProduct = 'red_cells'): InventoryLot {
  return { product, bloodType, count, expiresAt: NOW + days * DAY };
}

function bank(sites: SiteIndex, id: string, metres: number, lots: InventoryLot[], open = true): void {
  sites.upsert(id, { kind: 'blood_bank', name: id, ...north(metres), open });
  sites.setInventory(id, lots);
}

function need(units: number, recipient: RecipientType = 'A+', product: BloodProduct = 'red_cells', extra: Partial<BloodNeed> = {}): BloodNeed {
  return { requestId: 'r1', hospital: HOSPITAL, product, recipient, units, urgency: 'urgent', ...extra };
}

/** Lots taken as [site, type, days-to-expiry, count], in allocation order. */
function taken(a: BloodAllocation): [string, string, number, number][] {
  return a.sources.flatMap((s) => s.units.map((u) => [s.siteId, u.bloodType, (u.expiresAt - NOW) / DAY, u.count] as [string, string, number, number]));
}

describe('allocateBlood: type preference and FEFO', () => {
  it('gives an A+ patient A+ first, then O+, then O− last', () => {
    const sites = new SiteIndex();
    bank(sites, 'bb', 1_000, [lot('O-', 5, 3), lot('O+', 2, 4), lot('A+', 2, 20)]);
    const a = allocateBlood(sites, need(6), { now: NOW });
    expect(a.ok).toBe(true);
    expect(taken(a)).toEqual([
      ['bb', 'A+', 20, 2],
      ['bb', 'O+', 4, 2],
      ['bb', 'O-', 3, 2],
    ]);
    expect(a.shortfall).toBe(0);
    expect(a.allocated).toBe(6);
  });

  it('takes only the identical type when it covers the need, even if other types expire sooner', () => {
    const sites = new SiteIndex();
    bank(sites, 'bb', 1_000, [lot('O-', 5, 1), lot('O+', 5, 1), lot('A+', 4, 30)]);
    expect(taken(allocateBlood(sites, need(3), { now: NOW }))).toEqual([['bb', 'A+', 30, 3]]);
  });

  it('takes lots of the same type first-expiring-first-out', () => {
    const sites = new SiteIndex();
    bank(sites, 'bb', 1_000, [lot('A+', 3, 10), lot('A+', 2, 3), lot('A+', 5, 20)]);
    expect(taken(allocateBlood(sites, need(4), { now: NOW }))).toEqual([
      ['bb', 'A+', 3, 2],
      ['bb', 'A+', 10, 2],
    ]);
  });

  it('skips an expired unit and one expiring before arrival, but takes one expiring after arrival', () => {
    const sites = new SiteIndex();
    bank(sites, 'bb', 10_000, []);
    const eta = defaultTransitSeconds(north(10_000), HOSPITAL); // 10 km × 1.35 ÷ 8.5 m/s ≈ 1588 s
    expect(eta).toBeCloseTo(1588.2, 0);
    const beforeArrival = NOW + (eta - 60) * 1000;
    const afterArrival = NOW + (eta + 60) * 1000;
    sites.setInventory('bb', [
      { product: 'red_cells', bloodType: 'A+', count: 4, expiresAt: NOW - 1 },
      { product: 'red_cells', bloodType: 'A+', count: 4, expiresAt: beforeArrival },
      { product: 'red_cells', bloodType: 'A+', count: 3, expiresAt: afterArrival },
    ]);
    const a = allocateBlood(sites, need(5), { now: NOW });
    expect(a.ok).toBe('partial');
    expect(a.sources[0].units).toEqual([{ product: 'red_cells', bloodType: 'A+', expiresAt: afterArrival, count: 3 }]);
    expect(a.sources[0].etaSeconds).toBe(eta);
    expect(a.shortfall).toBe(2);
  });

  it('gives an unknown-type patient group O only, and O− only in an emergency', () => {
    const sites = new SiteIndex();
    bank(sites, 'bb', 1_000, BLOOD_TYPES.map((t) => lot(t, 3, 10)));
    const routine = allocateBlood(sites, need(5, 'unknown'), { now: NOW });
    expect(taken(routine)).toEqual([
      ['bb', 'O+', 10, 3],
      ['bb', 'O-', 10, 2],
    ]);
    releaseAllocation(sites, routine.reservations);
    const emergency = allocateBlood(sites, need(5, 'unknown', 'red_cells', { urgency: 'emergency' }), { now: NOW });
    expect(emergency.ok).toBe('partial');
    expect(taken(emergency)).toEqual([['bb', 'O-', 10, 3]]);
  });

  it('gives whole blood of the identical type only', () => {
    const sites = new SiteIndex();
    bank(sites, 'bb', 1_000, BLOOD_TYPES.filter((t) => t !== 'B-').map((t) => lot(t, 5, 10, 'whole_blood')));
    const none = allocateBlood(sites, need(1, 'B-', 'whole_blood'), { now: NOW });
    expect(none).toMatchObject({ ok: false, reason: 'no-compatible-stock-in-reach', shortfall: 1, sources: [], reservations: [] });
    sites.setInventory('bb', BLOOD_TYPES.map((t) => lot(t, 5, 10, 'whole_blood')));
    expect(taken(allocateBlood(sites, need(3, 'B-', 'whole_blood'), { now: NOW }))).toEqual([['bb', 'B-', 10, 3]]);
  });

  it('follows the plasma table: an AB patient gets AB plasma only, an O patient any group, identical first', () => {
    const sites = new SiteIndex();
    bank(sites, 'bb', 1_000, BLOOD_TYPES.map((t) => lot(t, 2, 100, 'plasma')));
    const ab = allocateBlood(sites, need(6, 'AB+', 'plasma'), { now: NOW });
    expect(taken(ab)).toEqual([
      ['bb', 'AB+', 100, 2],
      ['bb', 'AB-', 100, 2],
    ]);
    expect(ab.shortfall).toBe(2);
    releaseAllocation(sites, ab.reservations);
    const o = allocateBlood(sites, need(16, 'O+', 'plasma'), { now: NOW });
    expect(o.allocated).toBe(16);
    expect(taken(o)[0]).toEqual(['bb', 'O+', 100, 2]);
  });

  it('never takes another product, and marks platelets for room-temperature transport', () => {
    const sites = new SiteIndex();
    bank(sites, 'bb', 1_000, [lot('A+', 9, 10, 'red_cells'), lot('A+', 2, 3, 'platelets'), lot('O+', 2, 2, 'platelets')]);
    const a = allocateBlood(sites, need(3, 'A+', 'platelets'), { now: NOW });
    expect(taken(a)).toEqual([
      ['bb', 'A+', 3, 2],
      ['bb', 'O+', 2, 1],
    ]);
    expect(a.sources[0]).toMatchObject({ transport: 'room', capabilities: ['insulated'] });
    const red = allocateBlood(sites, need(1), { now: NOW });
    expect(red.sources[0]).toMatchObject({ transport: 'chilled', capabilities: ['cold_chain'] });
  });
});

describe('allocateBlood: banks', () => {
  it('takes one bank that covers the need over a split that arrives no sooner', () => {
    const sites = new SiteIndex();
    bank(sites, 'near', 2_000, [lot('A+', 2, 10)]);
    bank(sites, 'mid', 5_000, [lot('A+', 10, 10)]);
    expect(allocateBlood(sites, need(5), { now: NOW }).sources.map((s) => [s.siteId, s.count])).toEqual([['mid', 5]]);
  });

  it('splits across two banks, nearest first, when no one bank can cover', () => {
    const sites = new SiteIndex();
    bank(sites, 'near', 2_000, [lot('A+', 2, 10)]);
    bank(sites, 'mid', 5_000, [lot('A+', 3, 10)]);
    bank(sites, 'far', 8_000, [lot('A+', 10, 1)]);
    const a = allocateBlood(sites, need(5), { now: NOW, typeSlackSeconds: { routine: 0, urgent: 0, emergency: 0 } });
    expect(a.ok).toBe(true);
    expect(a.sources.map((s) => [s.siteId, s.count])).toEqual([
      ['near', 2],
      ['mid', 3],
    ]);
    expect(a.sources[0].etaSeconds).toBeLessThan(a.sources[1].etaSeconds);
    expect(a.reservations).toEqual([
      { siteId: 'near', product: 'red_cells', bloodType: 'A+', expiresAt: NOW + 10 * DAY, count: 2 },
      { siteId: 'mid', product: 'red_cells', bloodType: 'A+', expiresAt: NOW + 10 * DAY, count: 3 },
    ]);
  });

  it('uses a farther bank’s identical units before a nearer bank’s O− once both are needed', () => {
    const sites = new SiteIndex();
    bank(sites, 'near', 2_000, [lot('O-', 3, 5)]);
    bank(sites, 'mid', 5_000, [lot('A+', 3, 10)]);
    const a = allocateBlood(sites, need(4), { now: NOW });
    // grouped by source (nearest first): all 3 A+ from the farther bank, only 1 O− from the nearer one
    expect(taken(a)).toEqual([
      ['near', 'O-', 5, 1],
      ['mid', 'A+', 10, 3],
    ]);
  });

  it('stops at maxBanks and reports the shortfall; skips closed banks and banks beyond the radius', () => {
    const sites = new SiteIndex();
    bank(sites, 'closed', 500, [lot('A+', 50, 10)], false);
    bank(sites, 'b1', 1_000, [lot('A+', 1, 10)]);
    bank(sites, 'b2', 2_000, [lot('A+', 1, 10)]);
    bank(sites, 'b3', 3_000, [lot('A+', 1, 10)]);
    bank(sites, 'b4', 4_000, [lot('A+', 1, 10)]);
    bank(sites, 'distant', 60_000, [lot('A+', 50, 10)]);
    const a = allocateBlood(sites, need(10), { now: NOW });
    expect(a).toMatchObject({ ok: 'partial', allocated: 3, shortfall: 7 });
    expect(a.sources.map((s) => s.siteId)).toEqual(['b1', 'b2', 'b3']);
    releaseAllocation(sites, a.reservations);
    expect(allocateBlood(sites, need(10), { now: NOW, maxBanks: 1 }).sources.map((s) => s.siteId)).toEqual(['b1']);
  });

  it('orders banks by the given transit time, not by distance', () => {
    const sites = new SiteIndex();
    bank(sites, 'near-slow', 1_000, [lot('A+', 5, 10)]);
    bank(sites, 'far-fast', 3_000, [lot('A+', 5, 10)]);
    const transitSeconds = (from: { lat: number }): number => (from.lat > north(2_000).lat ? 100 : 900);
    const a = allocateBlood(sites, need(2), { now: NOW, transitSeconds });
    expect(a.sources.map((s) => [s.siteId, s.etaSeconds])).toEqual([['far-fast', 100]]);
  });

  it('skips banks that cannot arrive before the deadline and says so when none can', () => {
    const sites = new SiteIndex();
    bank(sites, 'bb', 10_000, [lot('A+', 5, 10)]);
    const tooSoon = NOW + 60_000; // a minute; the bank is ~26 minutes away
    const a = allocateBlood(sites, need(2, 'A+', 'red_cells', { deadline: tooSoon }), { now: NOW });
    expect(a).toMatchObject({ ok: false, reason: 'none-before-deadline', shortfall: 2, allocated: 0 });
    expect(sites.lots('bb')[0]).toMatchObject({ available: 5, reserved: 0 });
  });

  it('carries a donor call-out when units are short and donors are given', () => {
    const sites = new SiteIndex();
    bank(sites, 'bb', 1_000, [lot('A+', 1, 10)]);
    const donors = new DonorIndex();
    for (let i = 0; i < 10; i++) donors.upsert('d' + i, { bloodType: 'A+', ...north(300 * (i + 1)), available: true });
    const a = allocateBlood(sites, need(3), { now: NOW, donors, callout: { perUnit: 2 } });
    expect(a.ok).toBe('partial');
    if (a.ok !== 'partial') return;
    expect(a.callout).toEqual(planDonorCallout(donors, { ...need(3), shortfall: 2 }, { now: NOW, perUnit: 2 }));
    expect(a.callout?.waves[0].donorIds).toEqual(['d0', 'd1', 'd2', 'd3']);
    const full = allocateBlood(sites, need(1, 'O-'), { now: NOW, donors });
    expect(full.ok).toBe(false);
    if (full.ok === false) expect(full.callout?.called).toBe(0); // nobody O− in the index
  });

  it('turns each source into one pickup leg to the hospital', () => {
    const sites = new SiteIndex();
    bank(sites, 'near', 2_000, [lot('A+', 2, 10)]);
    bank(sites, 'mid', 5_000, [lot('A+', 3, 10)]);
    const n = need(5, 'A+', 'red_cells', { deadline: NOW + 3_600_000 });
    const legs = bloodPickupLegs(allocateBlood(sites, n, { now: NOW }), n, NOW);
    expect(legs.map((l) => [l.id, l.pickup, l.dropoff, l.capabilities, l.deadline])).toEqual([
      ['r1/near', north(2_000), HOSPITAL, ['cold_chain'], NOW + 3_600_000],
      ['r1/mid', north(5_000), HOSPITAL, ['cold_chain'], NOW + 3_600_000],
    ]);
  });
});

describe('allocateBlood: type preference is worth minutes (PRODUCT §2)', () => {
  // the issue's case: the nearest bank holds A+ ×2, O+ ×2 and O− ×4; a bank 3 km farther holds A+ ×3 and A− ×2
  const twoBanks = (): SiteIndex => {
    const sites = new SiteIndex();
    bank(sites, 'near', 1_000, [lot('A+', 2, 10), lot('O+', 2, 10), lot('O-', 4, 10)]);
    bank(sites, 'far', 4_000, [lot('A+', 3, 10), lot('A-', 2, 10)]);
    return sites;
  };

  it('visits a farther bank for identical units rather than give O+ or O−, within the slack', () => {
    const a = allocateBlood(twoBanks(), need(4, 'A+', 'red_cells', { urgency: 'routine' }), { now: NOW });
    expect(taken(a)).toEqual([['near', 'A+', 10, 2], ['far', 'A+', 10, 2]]);
    // the next A+ patient gets the last identical unit and A−, not the universal reserve
    const sites = twoBanks();
    allocateBlood(sites, need(4, 'A+', 'red_cells', { urgency: 'routine' }), { now: NOW });
    expect(taken(allocateBlood(sites, need(4, 'A+', 'red_cells', { urgency: 'routine' }), { now: NOW }))).toEqual([['near', 'O+', 10, 2], ['far', 'A+', 10, 1], ['far', 'A-', 10, 1]]);
  });

  it('against the nearest-bank baseline: the same two patients get 2 O+ (not 4 units of O+ and O−) from the baseline', () => {
    const nearest = twoBanks();
    const routine = need(4, 'A+', 'red_cells', { urgency: 'routine' });
    expect(taken(allocateBlood(nearest, routine, { now: NOW, bankChoice: 'nearest' }))).toEqual([['near', 'A+', 10, 2], ['near', 'O+', 10, 2]]);
    expect(taken(allocateBlood(nearest, routine, { now: NOW, bankChoice: 'nearest' }))).toEqual([['near', 'O-', 10, 4]]);
  });

  it('gives O− only when nothing else compatible is within the slack, and then as few as possible', () => {
    const sites = new SiteIndex();
    bank(sites, 'near', 1_000, [lot('O-', 6, 10), lot('B+', 1, 10)]);
    bank(sites, 'far', 30_000, [lot('B+', 6, 10)]); // ~75 minutes farther by car
    // urgent: the far bank is beyond 10 minutes of slack, so O− makes up what B+ cannot
    expect(taken(allocateBlood(sites, need(3, 'B+'), { now: NOW }))).toEqual([['near', 'B+', 10, 1], ['near', 'O-', 10, 2]]);
    // with slack for the far bank (a slower routine plan), no O− is used
    const slow = { now: NOW, typeSlackSeconds: { routine: 7_200, urgent: 600, emergency: 180 } };
    const a = allocateBlood(sites, need(3, 'B+', 'red_cells', { urgency: 'routine' }), slow);
    expect(a.reservations.filter((r) => r.bloodType === 'O-')).toEqual([]);
    expect(a.allocated).toBe(3);
  });

  it('never trades units for types: covering the need comes first', () => {
    const sites = new SiteIndex();
    bank(sites, 'near', 1_000, [lot('O-', 4, 10)]);
    bank(sites, 'far', 4_000, [lot('A+', 2, 10)]);
    const a = allocateBlood(sites, need(4, 'A+', 'red_cells', { urgency: 'routine' }), { now: NOW, maxBanks: 1 });
    expect(taken(a)).toEqual([['near', 'O-', 10, 4]]);
  });
});

describe('allocateBlood: reservations', () => {
  it('never lets two successive requests share a unit: a second allocation sees fewer units', () => {
    const sites = new SiteIndex();
    bank(sites, 'bb', 1_000, [lot('A+', 3, 10), lot('O+', 2, 5)]);
    const first = allocateBlood(sites, need(4), { now: NOW });
    const second = allocateBlood(sites, need(4, 'A+', 'red_cells', { requestId: 'r2' }), { now: NOW });
    expect(taken(first)).toEqual([
      ['bb', 'A+', 10, 3],
      ['bb', 'O+', 5, 1],
    ]);
    expect(taken(second)).toEqual([['bb', 'O+', 5, 1]]);
    expect(second.shortfall).toBe(3);
    const third = allocateBlood(sites, need(1), { now: NOW });
    expect(third).toMatchObject({ ok: false, reason: 'no-compatible-stock-in-reach' });
  });

  it('keeps total reserved within stock over many random requests, each unit counted once, and release restores exactly', () => {
    const rng = new Prng(7);
    const sites = new SiteIndex();
    for (let b = 0; b < 6; b++) bank(sites, 'bb' + b, 500 + rng.int(20_000), randomLots(rng));
    const before = snapshot(sites);
    const all: BloodAllocation[] = [];
    for (let i = 0; i < 60; i++) {
      const product = rng.pick(BLOOD_PRODUCTS);
      const recipient = rng.chance(0.1) ? 'unknown' : rng.pick(BLOOD_TYPES);
      all.push(allocateBlood(sites, need(1 + rng.int(8), recipient, product, { requestId: 'r' + i }), { now: NOW }));
    }
    const reservedByLot = new Map<string, number>();
    for (const a of all) {
      for (const r of a.reservations) {
        const key = `${r.siteId}|${r.product}|${r.bloodType}|${r.expiresAt}`;
        reservedByLot.set(key, (reservedByLot.get(key) ?? 0) + r.count);
      }
    }
    for (const [key, lotBefore] of before) {
      const now = snapshot(sites).get(key);
      const reserved = reservedByLot.get(key) ?? 0;
      expect(reserved).toBeLessThanOrEqual(lotBefore.available);
      expect(now).toEqual({ available: lotBefore.available - reserved, reserved });
    }
    expect(reservedByLot.size).toBeGreaterThan(10);
    for (const a of all.reverse()) expect(releaseAllocation(sites, a.reservations).failed).toEqual([]);
    expect(snapshot(sites)).toEqual(before);
  });

  it('reports a reservation it cannot release (already issued) and releases the rest', () => {
    const sites = new SiteIndex();
    bank(sites, 'a', 1_000, [lot('A+', 2, 10)]);
    bank(sites, 'b', 2_000, [lot('A+', 2, 10)]);
    const a = allocateBlood(sites, need(4), { now: NOW });
    sites.issueUnits('a', a.reservations[0], 2);
    expect(releaseAllocation(sites, a.reservations)).toEqual({ released: 2, failed: [a.reservations[0]] });
    expect(sites.lots('b')[0]).toMatchObject({ available: 2, reserved: 0 });
  });
});

describe('allocateBlood against a brute-force oracle', () => {
  it('on small seeded cases (≤ 4 banks, every allocation enumerated) is as good as the best allocation by PRODUCT §2', () => {
    const outcomes = { multiBank: 0, partial: 0, none: 0, farther: 0, spared: 0 };
    for (let seed = 1; seed <= 400; seed++) {
      const rng = new Prng(seed);
      const sites = new SiteIndex();
      const banks = 1 + rng.int(4);
      const eta = new Map<number, number>();
      for (let b = 0; b < banks; b++) {
        const at = north(1_000 + b * 1_000);
        eta.set(at.lat, 60 + rng.int(3_600)); // transit seconds, any order against distance
        bank(sites, 'bb' + b, 1_000 + b * 1_000, smallLots(rng), rng.chance(0.9));
      }
      const product = rng.pick(['red_cells', 'red_cells', 'plasma', 'platelets'] as const);
      const recipient: RecipientType = rng.chance(0.1) ? 'unknown' : rng.pick(BLOOD_TYPES);
      const n = need(1 + rng.int(5), recipient, product, { urgency: rng.pick(['routine', 'urgent', 'emergency'] as const) });
      const maxBanks = 1 + rng.int(3);
      const transitSeconds = (from: { lat: number }): number => eta.get(from.lat)!;
      const best = bestByEnumeration(sites, n, maxBanks, transitSeconds);
      const a = allocateBlood(sites, n, { now: NOW, maxBanks, transitSeconds });
      const got = scoreOf(a.sources.flatMap((s) => s.units.map((u) => ({ site: s.siteId, eta: s.etaSeconds, type: u.bloodType, count: u.count }))), n);
      expect(got, `seed ${seed}`).toEqual(best);
      expect(a.shortfall).toBe(n.units - a.allocated);
      expectFefo(sites, a, n, `seed ${seed}`);
      if (a.sources.length > 1) outcomes.multiBank++;
      if (a.ok === 'partial') outcomes.partial++;
      if (a.ok === false) outcomes.none++;
      if (a.sources.length > 0 && Math.max(...a.sources.map((s) => s.etaSeconds)) > Math.min(...[...eta.values()])) outcomes.farther++;
      releaseAllocation(sites, a.reservations);
    }
    // the seeds exercise splits, shortfalls, empty hands and farther banks, not only the easy case
    expect(outcomes.multiBank).toBeGreaterThan(5);
    expect(outcomes.partial).toBeGreaterThan(10);
    expect(outcomes.none).toBeGreaterThan(10);
    expect(outcomes.farther).toBeGreaterThan(50);
  });
});

/** What an allocation is worth, as PRODUCT §2 ranks it: [covered, O− to others, other non-identical, same ABO, transit, banks]. */
type Score = [number, number, number, number, number, number];

function scoreOf(units: { site: string; eta: number; type: BloodType; count: number }[], n: BloodNeed): Score {
  const emergency = n.urgency === 'emergency';
  const tier = (t: BloodType, rank: number): number => (n.recipient === 'unknown' ? rank + 1 : rank); // unknown: the later allowed type is the worse
  const count = (t: number): number => units.reduce((k, u) => k + (tier(u.type, oracleRank(n.recipient, u.type, n.product, emergency)!) === t ? u.count : 0), 0);
  const used = new Set(units.filter((u) => u.count > 0).map((u) => u.site));
  const transit = Math.max(0, ...units.filter((u) => u.count > 0).map((u) => u.eta));
  return [units.reduce((k, u) => k + u.count, 0), count(3), count(2), count(1), transit, used.size];
}

/**
 * The best allocation by enumeration: every way of taking units from the usable lots (open banks in 50 km, product,
 * compatible, not expiring before arrival) of at most maxBanks banks, ranked: cover the most; arrive within the
 * urgency's slack (routine 30, urgent 10, emergency 3 min) of the fastest way to cover as much; then the fewest O−
 * units to another type, other non-identical units, same-ABO units; then the quickest; then the fewest banks.
 */
function bestByEnumeration(sites: SiteIndex, n: BloodNeed, maxBanks: number, transit: (from: { lat: number }) => number): Score {
  const emergency = n.urgency === 'emergency';
  const slack = { routine: 1_800, urgent: 600, emergency: 180 }[n.urgency];
  const lots = sites
    .within({ minLng: -180, minLat: -90, maxLng: 180, maxLat: 90 })
    .map((id) => sites.get(id)!)
    .filter((s) => s.kind === 'blood_bank' && s.open && distanceMeters(s.lat, s.lng, n.hospital.lat, n.hospital.lng) <= 50_000)
    .flatMap((s) => {
      const eta = transit(s);
      return sites.lots(s.id).filter((l) => l.product === n.product && l.available > 0 && l.expiresAt >= NOW + eta * 1000 && oracleRank(n.recipient, l.bloodType, n.product, emergency) !== undefined)
        .map((l) => ({ site: s.id, eta, type: l.bloodType, available: l.available }));
    });
  const scores: Score[] = [];
  const counts = lots.map(() => 0);
  const walk = (i: number, left: number): void => {
    if (i === lots.length) {
      const units = lots.map((l, k) => ({ site: l.site, eta: l.eta, type: l.type, count: counts[k] }));
      if (new Set(units.filter((u) => u.count > 0).map((u) => u.site)).size <= maxBanks) scores.push(scoreOf(units, n));
      return;
    }
    for (let c = 0; c <= Math.min(left, lots[i].available); c++) {
      counts[i] = c;
      walk(i + 1, left - c);
    }
    counts[i] = 0;
  };
  walk(0, n.units);
  const covered = Math.max(...scores.map((x) => x[0]));
  const full = scores.filter((x) => x[0] === covered);
  const fastest = Math.min(...full.map((x) => x[4]));
  const within = full.filter((x) => x[4] <= fastest + slack);
  within.sort((a, b) => a[1] - b[1] || a[2] - b[2] || a[3] - b[3] || a[4] - b[4] || a[5] - b[5]);
  return within[0];
}

// First-expiring-first-out within what was chosen: no unit left at a chosen bank is as suitable and expires sooner.
function expectFefo(sites: SiteIndex, a: BloodAllocation, n: BloodNeed, what: string): void {
  const emergency = n.urgency === 'emergency';
  for (const s of a.sources) {
    for (const u of s.units) {
      const rank = oracleRank(n.recipient, u.bloodType, n.product, emergency)!;
      const sooner = sites.lots(s.siteId).filter((l) => l.product === n.product && l.available > 0 && l.expiresAt < u.expiresAt && l.expiresAt >= NOW + s.etaSeconds * 1000 && oracleRank(n.recipient, l.bloodType, n.product, emergency) === rank);
      expect(sooner, what).toEqual([]);
    }
  }
}

// One to three lots per bank, few units each, of several products and types, some expiring within the hour.
function smallLots(rng: Prng): InventoryLot[] {
  const lots: InventoryLot[] = [];
  for (let i = 1 + rng.int(3); i > 0; i--) {
    const days = rng.chance(0.15) ? rng.range(0, 1 / 24) : 1 + rng.int(5);
    lots.push({ product: rng.pick(['red_cells', 'red_cells', 'plasma', 'platelets'] as const), bloodType: rng.pick(BLOOD_TYPES), count: 1 + rng.int(3), expiresAt: Math.round(NOW + days * DAY) });
  }
  return lots;
}

// ---- oracle: written from PRODUCT.md §2 directly, not from blood-types.ts ----

const RED_CELLS: Record<BloodType, BloodType[]> = {
  'O-': ['O-'],
  'O+': ['O-', 'O+'],
  'A-': ['O-', 'A-'],
  'A+': ['O-', 'O+', 'A-', 'A+'],
  'B-': ['O-', 'B-'],
  'B+': ['O-', 'O+', 'B-', 'B+'],
  'AB-': ['O-', 'A-', 'B-', 'AB-'],
  'AB+': [...BLOOD_TYPES],
};
const PLASMA_GROUPS: Record<string, string[]> = { O: ['O', 'A', 'B', 'AB'], A: ['A', 'AB'], B: ['B', 'AB'], AB: ['AB'] };

function group(t: BloodType): string {
  return t.replace(/[+-]$/, '');
}

/** Preference rank of a donor type for the need, or undefined when incompatible; ties broken by BLOOD_TYPES order. */
function oracleRank(recipient: RecipientType, donor: BloodType, product: BloodProduct, emergency: boolean): number | undefined {
  if (recipient === 'unknown') {
    const allowed: Record<BloodProduct, BloodType[]> = {
      red_cells: emergency ? ['O-'] : ['O+', 'O-'],
      platelets: emergency ? ['O-'] : ['O+', 'O-'],
      whole_blood: ['O-'],
      plasma: ['AB+', 'AB-'],
    };
    const i = allowed[product].indexOf(donor);
    return i < 0 ? undefined : i;
  }
  if (donor === recipient) return 0;
  switch (product) {
    case 'whole_blood':
      return undefined;
    case 'red_cells':
      return RED_CELLS[recipient].includes(donor) ? (donor === 'O-' ? 3 : 2) : undefined;
    case 'plasma':
      return PLASMA_GROUPS[group(recipient)].includes(group(donor)) ? 2 : undefined;
    case 'platelets':
      return group(donor) === group(recipient) ? 1 : 2;
  }
}

// A few lots per bank over all products, some expired, some expiring within the hour, some long-dated.
function randomLots(rng: Prng): InventoryLot[] {
  const lots: InventoryLot[] = [];
  const count = 2 + rng.int(10);
  for (let i = 0; i < count; i++) {
    const u = rng.next();
    const days = u < 0.1 ? -rng.range(0, 2) : u < 0.25 ? rng.range(0, 1 / 24) : rng.int(8); // whole days → equal-expiry ties
    lots.push({ product: rng.pick(BLOOD_PRODUCTS), bloodType: rng.pick(BLOOD_TYPES), count: 1 + rng.int(6), expiresAt: Math.round(NOW + days * DAY) });
  }
  return lots;
}

function snapshot(sites: SiteIndex): Map<string, { available: number; reserved: number }> {
  const out = new Map<string, { available: number; reserved: number }>();
  for (const id of sites.within({ minLng: -180, minLat: -90, maxLng: 180, maxLat: 90 }).sort()) {
    for (const l of sites.lots(id)) out.set(`${id}|${l.product}|${l.bloodType}|${l.expiresAt}`, { available: l.available, reserved: l.reserved });
  }
  return out;
}
