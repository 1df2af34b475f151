import { describe, expect, it } from 'vitest';
import { BLOOD_TYPES, type BloodProduct, type RecipientType, compatibleDonorTypes } from '../engine/blood-types.js';
import { DonorIndex } from '../engine/donor-index.js';
import { EARTH_RADIUS_M, distanceMeters } from '../engine/geodesy.js';
import { Prng } from '../fixtures/prng.js';
import { type CalloutNeed, type DonorCallout, planDonorCallout } from './donor-callout.js';

const NOW = Date.UTC(2025, 0, 15, 12);
const DAY = 86_400_000;
const HOSPITAL = { lat: 52.5, lng: 13.4 };
const M_PER_DEG = (EARTH_RADIUS_M * Math.PI) / 180;

/** A point `metres` east-ish of the hospital along a bearing given in degrees. */
function at(metres: number, bearingDeg = 0): { lat: number; lng: number } {
  const b = (bearingDeg * Math.PI) / 180;
  const dLat = (metres * Math.cos(b)) / M_PER_DEG;
  const dLng = (metres * Math.sin(b)) / (M_PER_DEG * Math.cos((HOSPITAL.lat * Math.PI) / 180));
  return { lat: HOSPITAL.lat + dLat, lng: HOSPITAL.lng + dLng };
}

function need(shortfall: number, recipient: RecipientType = 'A+', product: BloodProduct = 'red_cells'): CalloutNeed {
  return { hospital: HOSPITAL, product, recipient, shortfall, urgency: 'urgent' };
}

function randomDonors(seed: number, n: number): DonorIndex {
  const rng = new Prng(seed);
  const donors = new DonorIndex();
  for (let i = 0; i < n; i++) {
    const lastDonation = rng.chance(0.5) ? { whole_blood: NOW - rng.range(1, 200) * DAY } : {};
    donors.upsert('d' + i, { bloodType: rng.pick(BLOOD_TYPES), ...at(rng.range(0, 50_000), rng.range(0, 360)), lastDonation, available: rng.chance(0.8) });
  }
  return donors;
}

/** Brute force: every eligible compatible donor by (distance, id), the first `target`, each in the first wave whose radius holds it. */
function bruteCallout(donors: DonorIndex, n: CalloutNeed, radii: number[], perUnit: number): DonorCallout {
  const ok = new Set(compatibleDonorTypes(n.recipient, n.product, { emergency: n.urgency === 'emergency' }));
  const all = donors
    .within([-180, -90, 180, 90])
    .map((id) => donors.get(id)!)
    .filter((d) => donors.isEligible(d.id, NOW) && ok.has(d.bloodType))
    .map((d) => ({ id: d.id, distance: distanceMeters(d.lat, d.lng, HOSPITAL.lat, HOSPITAL.lng) }))
    .filter((d) => d.distance <= radii[radii.length - 1])
    .sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1));
  const target = n.shortfall * perUnit;
  const chosen = all.slice(0, target);
  const waves = radii.map((radius, i) => ({
    radius,
    donorIds: chosen.filter((d) => d.distance <= radius && (i === 0 || d.distance > radii[i - 1])).map((d) => d.id),
  }));
  // waves after the one that completed the target are never searched
  const searched = chosen.length < target ? radii.length : 1 + radii.findIndex((r) => chosen.length > 0 && chosen[chosen.length - 1].distance <= r);
  return { waves: target === 0 ? [] : waves.slice(0, searched), called: chosen.length, target, enough: chosen.length >= target };
}

describe('planDonorCallout', () => {
  it('expands in waves, nearest first, and stops at shortfall × perUnit', () => {
    const donors = new DonorIndex();
    const metres = [1_000, 2_000, 4_000, 7_000, 9_000, 12_000, 20_000, 30_000, 45_000];
    metres.forEach((m, i) => donors.upsert('d' + i, { bloodType: 'O+', ...at(m, i * 40), available: true }));
    const plan = planDonorCallout(donors, need(2), { now: NOW }); // target 6
    expect(plan).toEqual({
      waves: [
        { radius: 5_000, donorIds: ['d0', 'd1', 'd2'] },
        { radius: 15_000, donorIds: ['d3', 'd4', 'd5'] },
      ],
      called: 6,
      target: 6,
      enough: true,
    });
  });

  it('says when the widest wave runs out of donors', () => {
    const donors = new DonorIndex();
    donors.upsert('near', { bloodType: 'A+', ...at(3_000), available: true });
    donors.upsert('far', { bloodType: 'A-', ...at(30_000), available: true });
    donors.upsert('beyond', { bloodType: 'A+', ...at(41_000), available: true });
    const plan = planDonorCallout(donors, need(1), { now: NOW, perUnit: 3 });
    expect(plan).toEqual({
      waves: [
        { radius: 5_000, donorIds: ['near'] },
        { radius: 15_000, donorIds: [] },
        { radius: 40_000, donorIds: ['far'] },
      ],
      called: 2,
      target: 3,
      enough: false,
    });
  });

  it('calls only available donors past their recovery interval whose type suits the patient', () => {
    const donors = new DonorIndex();
    donors.upsert('ok', { bloodType: 'O-', ...at(1_000), available: true });
    donors.upsert('recent', { bloodType: 'O-', ...at(1_100), lastDonation: { whole_blood: NOW - 10 * DAY }, available: true });
    donors.upsert('away', { bloodType: 'O-', ...at(1_200), available: false });
    donors.upsert('wrong-type', { bloodType: 'B+', ...at(1_300), available: true });
    donors.upsert('rested', { bloodType: 'A-', ...at(1_400), lastDonation: { whole_blood: NOW - 60 * DAY }, available: true });
    expect(planDonorCallout(donors, need(2, 'A-'), { now: NOW }).waves.flatMap((w) => w.donorIds)).toEqual(['ok', 'rested']);
  });

  it('calls only O− donors for an unknown-type patient in an emergency', () => {
    const donors = new DonorIndex();
    BLOOD_TYPES.forEach((t, i) => donors.upsert(t, { bloodType: t, ...at(500 * (i + 1)), available: true }));
    const plan = planDonorCallout(donors, { ...need(5, 'unknown'), urgency: 'emergency' }, { now: NOW });
    expect(plan.waves.flatMap((w) => w.donorIds)).toEqual(['O-']);
    const routine = planDonorCallout(donors, need(5, 'unknown'), { now: NOW });
    expect(routine.waves.flatMap((w) => w.donorIds)).toEqual(['O-', 'O+']);
  });

  it('calls nobody for a shortfall of 0', () => {
    expect(planDonorCallout(randomDonors(1, 50), need(0), { now: NOW })).toEqual({ waves: [], called: 0, target: 0, enough: true });
  });

  it('matches brute force on seeded random donors: no donor twice, each eligible and compatible, within its wave', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rng = new Prng(1000 + seed);
      const donors = randomDonors(seed, 150);
      const recipient: RecipientType = rng.chance(0.1) ? 'unknown' : rng.pick(BLOOD_TYPES);
      const product = rng.pick(['red_cells', 'plasma', 'platelets', 'whole_blood'] as const);
      const n = { ...need(1 + rng.int(8), recipient, product), urgency: rng.chance(0.3) ? ('emergency' as const) : ('routine' as const) };
      const perUnit = 1 + rng.int(4);
      const radii = [5_000, 15_000, 40_000];
      const plan = planDonorCallout(donors, n, { now: NOW, perUnit, waves: radii });
      expect(plan, `seed ${seed}`).toEqual(bruteCallout(donors, n, radii, perUnit));
      const ids = plan.waves.flatMap((w) => w.donorIds);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBeLessThanOrEqual(n.shortfall * perUnit);
      const ok = compatibleDonorTypes(n.recipient, n.product, { emergency: n.urgency === 'emergency' });
      for (const w of plan.waves) {
        for (const id of w.donorIds) {
          const d = donors.get(id)!;
          expect(donors.isEligible(id, NOW)).toBe(true);
          expect(ok).toContain(d.bloodType);
          expect(distanceMeters(d.lat, d.lng, HOSPITAL.lat, HOSPITAL.lng)).toBeLessThanOrEqual(w.radius);
        }
      }
    }
  });

  it('rejects waves that do not grow and a perUnit below 1', () => {
    const donors = new DonorIndex();
    expect(() => planDonorCallout(donors, need(1), { now: NOW, waves: [5_000, 5_000] })).toThrow(/strictly increasing/);
    expect(() => planDonorCallout(donors, need(1), { now: NOW, perUnit: 0 })).toThrow(/perUnit/);
    expect(() => planDonorCallout(donors, need(1.5), { now: NOW })).toThrow(/shortfall/);
  });
});
