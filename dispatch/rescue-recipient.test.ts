import { describe, expect, it } from 'vitest';
import { EARTH_RADIUS_M, distanceMeters } from '../engine/geodesy.js';
import { SiteIndex, type SiteProfile } from '../engine/site-index.js';
import { Prng } from '../fixtures/prng.js';
import { DEFAULT_POLICY } from './dispatch-request.js';
import { RESCUE_RECIPIENT_KINDS, chooseRescueRecipient } from './rescue-recipient.js';

const NOW = Date.UTC(2025, 0, 15, 12);
const HOUR = 3_600_000;
const PICKUP = { lat: -33.87, lng: 151.2 };
const M_PER_DEG = (EARTH_RADIUS_M * Math.PI) / 180;

function north(metres: number): { lat: number; lng: number } {
  return { lat: PICKUP.lat + metres / M_PER_DEG, lng: PICKUP.lng };
}

function site(sites: SiteIndex, id: string, metres: number, profile: Partial<SiteProfile> = {}): void {
  sites.upsert(id, { kind: 'food_bank', name: id, ...north(metres), ...profile });
}

describe('chooseRescueRecipient', () => {
  it('chooses the nearest open food bank or shelter with room, skipping closed, full and other kinds', () => {
    const sites = new SiteIndex();
    site(sites, 'kitchen', 100, { kind: 'restaurant' });
    site(sites, 'hospital', 150, { kind: 'hospital' });
    site(sites, 'closed', 200, { open: false, capacity: 500 });
    site(sites, 'full', 300, { kind: 'shelter', capacity: 100, occupancy: 100 });
    site(sites, 'small', 400, { capacity: 100, occupancy: 95 });
    site(sites, 'shelter', 900, { kind: 'shelter', capacity: 100, occupancy: 40 });
    site(sites, 'far', 2_000);
    const r = chooseRescueRecipient(sites, PICKUP, 10, { now: NOW, deadline: NOW + 2 * HOUR });
    const d = distanceMeters(PICKUP.lat, PICKUP.lng, north(900).lat, north(900).lng);
    expect(r).toEqual({ ok: true, siteId: 'shelter', kind: 'shelter', ...north(900), distance: r.ok ? r.distance : NaN, etaSeconds: (d * 1.35) / 8.5 });
    expect(r.ok && r.distance).toBeCloseTo(900, 3);
    // a load that fits the small food bank goes there
    expect(chooseRescueRecipient(sites, PICKUP, 5, { now: NOW, deadline: NOW + 2 * HOUR })).toMatchObject({ ok: true, siteId: 'small' });
  });

  it('treats a site without tracked capacity as having room for any load', () => {
    const sites = new SiteIndex();
    site(sites, 'unbounded', 5_000);
    expect(chooseRescueRecipient(sites, PICKUP, 1e6, { now: NOW, deadline: NOW + HOUR })).toMatchObject({ ok: true, siteId: 'unbounded' });
  });

  it('respects the perishability deadline with the given speed and circuity', () => {
    const sites = new SiteIndex();
    site(sites, 'fb', 10_000);
    // 10 km × 1.5 ÷ 5 m/s = 3000 s
    const options = { now: NOW, policy: { ...DEFAULT_POLICY, circuity: 1.5, vehicleSpeed: { ...DEFAULT_POLICY.vehicleSpeed, car: 5 } } };
    expect(chooseRescueRecipient(sites, PICKUP, 1, { ...options, deadline: NOW + 3_001_000 })).toMatchObject({ ok: true, siteId: 'fb' });
    expect(chooseRescueRecipient(sites, PICKUP, 1, { ...options, deadline: NOW + 2_999_000 })).toEqual({ ok: false, reason: 'none-before-deadline' });
    expect(chooseRescueRecipient(sites, PICKUP, 1, { now: NOW, deadline: NOW - 1 })).toEqual({ ok: false, reason: 'none-before-deadline' });
  });

  it('reports when no open recipient has room', () => {
    const sites = new SiteIndex();
    expect(chooseRescueRecipient(sites, PICKUP, 1, { now: NOW, deadline: NOW + HOUR })).toEqual({ ok: false, reason: 'no-open-recipient-with-room' });
    site(sites, 'closed', 100, { open: false });
    site(sites, 'full', 200, { kind: 'shelter', capacity: 10, occupancy: 10 });
    site(sites, 'bank', 300, { kind: 'blood_bank' });
    expect(chooseRescueRecipient(sites, PICKUP, 1, { now: NOW, deadline: NOW + HOUR })).toEqual({ ok: false, reason: 'no-open-recipient-with-room' });
  });

  it('matches brute force over seeded random sites', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const rng = new Prng(seed);
      const sites = new SiteIndex();
      const kinds = ['food_bank', 'shelter', 'restaurant', 'hospital', 'blood_bank'] as const;
      for (let i = 0; i < 30; i++) {
        const capacity = rng.chance(0.2) ? undefined : 10 + rng.int(100);
        site(sites, 's' + i, rng.range(0, 30_000), {
          kind: rng.pick(kinds),
          open: rng.chance(0.8),
          capacity,
          occupancy: capacity === undefined ? 0 : rng.int(capacity + 1),
          lng: PICKUP.lng + rng.range(-0.2, 0.2),
        });
      }
      const load = 1 + rng.int(60);
      const deadline = NOW + rng.range(0, 2) * HOUR;
      const expected = sites
        .within([-180, -90, 180, 90])
        .map((id) => sites.get(id)!)
        .filter((s) => (RESCUE_RECIPIENT_KINDS as readonly string[]).includes(s.kind) && s.open && s.capacity - s.occupancy >= load)
        .map((s) => ({ id: s.id, d: distanceMeters(PICKUP.lat, PICKUP.lng, s.lat, s.lng) }))
        .sort((a, b) => a.d - b.d || (a.id < b.id ? -1 : 1))[0];
      const r = chooseRescueRecipient(sites, PICKUP, load, { now: NOW, deadline });
      if (expected === undefined) expect(r).toEqual({ ok: false, reason: 'no-open-recipient-with-room' });
      else if (NOW + ((expected.d * 1.35) / 8.5) * 1000 > deadline) expect(r).toEqual({ ok: false, reason: 'none-before-deadline' });
      else expect(r, `seed ${seed}`).toMatchObject({ ok: true, siteId: expected.id });
    }
  });
});
