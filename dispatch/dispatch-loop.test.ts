import { describe, expect, it } from 'vitest';
import { distanceMeters } from '../engine/geodesy.js';
import { type BloodSubmission, DEFAULT_RETRY_MS, DispatchLoop, deriveStatus, inlinePlanner } from './dispatch-loop.js';
import type { Scenario } from '../fixtures/city-scenario.js';
import type { SiteIndex } from '../engine/site-index.js';
import { BATCHED, GREEDY, SMALL_CITY, T0, delivery, fixtureAt, lifecycleEvents, ok, onlyOffer, world } from './loop-test-world.js';

describe('DispatchLoop, each kind end to end on small-city', () => {
  it('a delivery is offered, accepted, picked up and delivered, with the courier index following every step', () => {
    const { loop, couriers } = world(GREEDY);
    const plan = ok(loop.submit(delivery('d1', T0), T0));
    expect(plan).toMatchObject({ requestId: 'd1', kind: 'delivery', legs: ['d1'], dueAt: T0 });
    const offer = onlyOffer(loop.tick(T0));
    expect(offer).toMatchObject({ requestId: 'd1', status: 'live', expiresAt: T0 + 15_000 });
    expect(couriers.get(offer.courierId)!.status).toBe('offered');
    expect(loop.status('d1')!.status).toBe('offered');

    ok(loop.accept(offer.id, offer.courierId, T0 + 3_000));
    expect(couriers.get(offer.courierId)!.status).toBe('busy');
    ok(loop.progress('d1', offer.courierId, 'picked_up', T0 + 600_000));
    expect(couriers.get(offer.courierId)!.status).toBe('busy');
    ok(loop.progress('d1', offer.courierId, 'delivered', T0 + 1_200_000));
    expect(couriers.get(offer.courierId)!.status).toBe('available');
    expect(loop.status('d1')!.status).toBe('delivered');

    const events = loop.drainEvents();
    expect(events.filter((e) => e.type.startsWith('request.')).map((e) => e.type)).toEqual([
      'request.created', 'request.offered', 'request.assigned', 'request.picked_up', 'request.delivered',
    ]);
    const created = events.find((e) => e.type === 'offer.created');
    expect(created).toMatchObject({ offerId: offer.id, details: { kind: 'delivery', parentId: 'd1', pickup: fixtureAt('delivery', T0).pickup } });
    expect(loop.checkInvariants(lifecycleEvents(events))).toEqual([]);
  });

  it('the offer goes to the courier with the lowest pickup cost among the available ones', () => {
    const { loop, couriers } = world(GREEDY);
    const sub = delivery('d1', T0);
    loop.submit(sub, T0);
    const offer = onlyOffer(loop.tick(T0));
    const chosen = couriers.get(offer.courierId)!;
    expect(chosen.status).toBe('offered');
    // nobody available is more than a little closer (route cost also weighs vehicle speed)
    const nearest = couriers.nearby(sub.pickup.lat, sub.pickup.lng, { k: 1, status: 'available' })[0];
    expect(distanceMeters(chosen.lat, chosen.lng, sub.pickup.lat, sub.pickup.lng)).toBeLessThan(Math.max(3_000, 4 * nearest.distance));
  });

  it('a rescue without a dropoff goes to the nearest open food bank or shelter with room', () => {
    const { loop, sites, scenario } = world(GREEDY);
    const sub = fixtureAt('rescue', T0);
    expect(sub.kind === 'rescue' && sub.dropoff).toBeUndefined();
    const plan = ok(loop.submit(sub, T0));
    const oracle = scenario.sites
      .filter((s) => (s.kind === 'food_bank' || s.kind === 'shelter') && s.open && (s.capacity ?? Infinity) - (s.occupancy ?? 0) >= 1)
      .map((s) => ({ id: s.id, d: distanceMeters(sub.pickup.lat, sub.pickup.lng, s.lat, s.lng) }))
      .sort((a, b) => a.d - b.d)[0];
    expect(plan.recipient!.siteId).toBe(oracle.id);
    expect(loop.leg(sub.id)!.dropoff).toEqual({ lat: plan.recipient!.lat, lng: plan.recipient!.lng });
    expect(loop.leg(sub.id)!.pickupBy).toBe(sub.createdAt + 2 * 3_600_000);

    // delivered food takes up room at the recipient
    const before = sites.get(oracle.id)!.occupancy;
    const offer = onlyOffer(loop.tick(T0));
    ok(loop.accept(offer.id, offer.courierId, T0 + 1));
    ok(loop.progress(sub.id, offer.courierId, 'picked_up', T0 + 2));
    ok(loop.progress(sub.id, offer.courierId, 'delivered', T0 + 3));
    expect(sites.get(oracle.id)!.occupancy).toBe(before + 1);
  });

  it('a rescue with no open recipient anywhere is refused as a value and keeps nothing', () => {
    const { loop, sites, scenario } = world(GREEDY);
    for (const s of scenario.sites) if (s.kind === 'food_bank' || s.kind === 'shelter') sites.upsert(s.id, { ...s, open: false });
    const sub = fixtureAt('rescue', T0);
    expect(loop.submit(sub, T0)).toEqual({ ok: false, reason: 'no-open-recipient-with-room' });
    expect(loop.status(sub.id)).toBeUndefined();
    expect(loop.tick(T0)).toEqual([]);
  });

  it('blood allocates first-expiring units, reserves them, and releases exactly them on cancel', () => {
    const { loop, sites } = world(BATCHED);
    const sub: BloodSubmission = { id: 'b1', kind: 'blood', urgency: 'urgent', createdAt: T0, requesterId: 'h0', dropoff: SMALL_CITY.sites.find((s) => s.kind === 'hospital')!, blood: { product: 'red_cells', bloodType: 'A+', units: 3 }, deadline: T0 + 4 * 3_600_000 };
    const reservedBefore = reservedUnits(sites, SMALL_CITY);
    const plan = ok(loop.submit(sub, T0));
    expect(plan.shortfall).toBe(0);
    expect(plan.sources!.reduce((n, s) => n + s.count, 0)).toBe(3);
    expect(plan.legs).toEqual(plan.sources!.map((s) => `b1/${s.siteId}`));
    expect(reservedUnits(sites, SMALL_CITY)).toBe(reservedBefore + 3);
    // FEFO within a type at a bank: no usable lot of the same type expiring earlier is left available
    for (const source of plan.sources!) {
      for (const lot of source.units) {
        const earlier = sites.lots(source.siteId).filter((l) => l.product === lot.product && l.bloodType === lot.bloodType && l.expiresAt < lot.expiresAt && l.expiresAt >= T0 + source.etaSeconds * 1000);
        expect(earlier.every((l) => l.available === 0)).toBe(true);
      }
    }
    expect(loop.checkInvariants()).toEqual([]);

    ok(loop.cancel('b1', T0 + 1_000, 'h0'));
    expect(loop.status('b1')!.status).toBe('cancelled');
    expect(reservedUnits(sites, SMALL_CITY)).toBe(reservedBefore);
    expect(loop.cancel('b1', T0 + 2_000)).toEqual({ ok: false, reason: 'request-terminal' });
    expect(reservedUnits(sites, SMALL_CITY)).toBe(reservedBefore);
    expect(loop.stats().unitsReleased).toBe(3);
    expect(loop.checkInvariants(lifecycleEvents(loop.drainEvents()))).toEqual([]);
  });

  it('a blood need larger than the stock in reach is partly allocated and calls donors out', () => {
    const { loop, sites } = world(BATCHED);
    const hospital = SMALL_CITY.sites.find((s) => s.kind === 'hospital')!;
    const units = 1 + stockInReach(sites, hospital, 'AB-', T0).reduce((n, u) => n + u, 0);
    const sub: BloodSubmission = { id: 'b1', kind: 'blood', urgency: 'emergency', createdAt: T0, requesterId: hospital.id, dropoff: hospital, blood: { product: 'platelets', bloodType: 'AB-', units } };
    const plan = ok(loop.submit(sub, T0));
    expect(plan.shortfall).toBeGreaterThan(0);
    expect(plan.sources!.reduce((n, s) => n + s.count, 0)).toBe(units - plan.shortfall!);
    expect(plan.callout!.called).toBeGreaterThan(0);
    expect(plan.callout!.target).toBe(plan.shortfall! * 3);
    expect(plan.legs.length).toBe(plan.sources!.length);
    expect(loop.checkInvariants()).toEqual([]);
    expect(reservedUnits(sites, SMALL_CITY)).toBe(units - plan.shortfall!);
  });

  it('blood no bank can bring before the deadline is refused as a value with nothing reserved', () => {
    const { loop, sites } = world(BATCHED);
    const hospital = SMALL_CITY.sites.find((s) => s.kind === 'hospital')!;
    const sub: BloodSubmission = { id: 'b1', kind: 'blood', urgency: 'routine', createdAt: T0, requesterId: hospital.id, dropoff: hospital, blood: { product: 'red_cells', bloodType: 'O+', units: 1 }, deadline: T0 + 1 };
    expect(loop.submit(sub, T0)).toMatchObject({ ok: false, reason: 'none-before-deadline' });
    expect(reservedUnits(sites, SMALL_CITY)).toBe(0);
    expect(loop.submit({ ...sub, deadline: undefined }, T0)).toMatchObject({ ok: true });
    expect(loop.submit({ ...sub, deadline: undefined }, T0)).toEqual({ ok: false, reason: 'duplicate-request' });
  });

  it('blood from several banks is one leg per bank; the request is assigned only when every leg is, and pickup takes units off the shelf', () => {
    const { loop, sites } = world(GREEDY);
    const hospital = SMALL_CITY.sites.find((s) => s.kind === 'hospital')!;
    const units = 1 + stockInReach(sites, hospital, 'O+', T0)[0]; // one more than the nearest bank holds
    const sub: BloodSubmission = { id: 'b1', kind: 'blood', urgency: 'urgent', createdAt: T0, requesterId: hospital.id, dropoff: hospital, blood: { product: 'platelets', bloodType: 'O+', units } };
    const plan = ok(loop.submit(sub, T0));
    expect(plan.legs.length).toBeGreaterThan(1);
    const offers = loop.tick(T0);
    expect(offers.map((o) => o.requestId).sort()).toEqual([...plan.legs].sort());
    expect(new Set(offers.map((o) => o.courierId)).size).toBe(offers.length);
    ok(loop.accept(offers[0].id, offers[0].courierId, T0 + 1));
    expect(loop.status('b1')!.status).toBe('offered');
    for (const o of offers.slice(1)) ok(loop.accept(o.id, o.courierId, T0 + 2));
    expect(loop.status('b1')!.status).toBe('assigned');
    const shelfBefore = shelfUnits(sites, SMALL_CITY);
    // the courier reports progress against the request id; the loop finds its leg
    for (const o of offers) ok(loop.progress('b1', o.courierId, 'picked_up', T0 + 60_000));
    expect(shelfUnits(sites, SMALL_CITY)).toBe(shelfBefore - (units - plan.shortfall!));
    expect(reservedUnits(sites, SMALL_CITY)).toBe(0);
    // cancelling after pickup releases nothing: the units are in the couriers' boxes
    ok(loop.cancel('b1', T0 + 70_000));
    expect(reservedUnits(sites, SMALL_CITY)).toBe(0);
    expect(shelfUnits(sites, SMALL_CITY)).toBe(shelfBefore - (units - plan.shortfall!));
    const events = loop.drainEvents();
    expect(events.filter((e) => e.type === 'blood.status').map((e) => (e as { status: string }).status)).toEqual(['offered', 'assigned', 'picked_up', 'cancelled']);
    expect(loop.checkInvariants(lifecycleEvents(events))).toEqual([]);
  });
});

describe('DispatchLoop memory over time', () => {
  it('forgets a request once it ended longer ago than the retention, and keeps live ones', () => {
    const { loop } = world(GREEDY);
    ok(loop.submit(delivery('d1', T0), T0));
    ok(loop.submit(delivery('d2', T0), T0));
    const offers = loop.tick(T0);
    const first = offers.find((o) => o.requestId === 'd1')!;
    ok(loop.accept(first.id, first.courierId, T0 + 1_000));
    ok(loop.progress('d1', first.courierId, 'picked_up', T0 + 2_000));
    ok(loop.progress('d1', first.courierId, 'delivered', T0 + 3_000));
    const hour = 3_600_000;
    expect(loop.forgetEnded(T0 + 3_000 + hour - 1, hour)).toEqual([]);
    expect(loop.forgetEnded(T0 + 3_000 + hour, hour)).toEqual(['d1']);
    expect(loop.status('d1')).toBeUndefined();
    expect(loop.lifecycle.request('d1')).toBeUndefined();
    expect(loop.status('d2')).toBeDefined(); // still live: offered, never ended
    expect(loop.forgetEnded(T0 + 10 * hour, hour)).toEqual([]);
    expect(loop.checkInvariants()).toEqual([]);
  });
});

describe('DispatchLoop batch window', () => {
  it('an emergency is dispatched at once in batched mode while a routine request waits for the window', () => {
    const { loop } = world(BATCHED);
    expect(ok(loop.submit(delivery('routine', T0, 'routine', 0), T0)).dueAt).toBe(T0 + 2_000);
    expect(loop.tick(T0)).toEqual([]);
    expect(ok(loop.submit(delivery('emergency', T0 + 100, 'emergency', 1), T0 + 100)).dueAt).toBe(T0 + 100);
    expect(loop.dueAt()).toBe(T0 + 100);
    expect(onlyOffer(loop.tick(T0 + 100)).requestId).toBe('emergency');
    expect(loop.dueAt()).toBe(T0 + 2_000);
    expect(loop.tick(T0 + 1_999)).toEqual([]);
    expect(onlyOffer(loop.tick(T0 + 2_000)).requestId).toBe('routine');
    expect(loop.dueAt()).toBeUndefined();
  });

  it('greedy mode dispatches each request at once', () => {
    const { loop } = world(GREEDY);
    expect(ok(loop.submit(delivery('a', T0, 'routine', 0), T0)).dueAt).toBe(T0);
    expect(onlyOffer(loop.tick(T0)).requestId).toBe('a');
    loop.submit(delivery('b', T0 + 10, 'routine', 1), T0 + 10);
    expect(onlyOffer(loop.tick(T0 + 10)).requestId).toBe('b');
  });

  it('requests arriving during the window are matched together when it closes', () => {
    const { loop } = world(BATCHED);
    for (let i = 0; i < 5; i++) loop.submit(delivery(`r${i}`, T0 + 300 * i, 'routine', i), T0 + 300 * i);
    expect(loop.tick(T0 + 1_500)).toEqual([]);
    const offers = loop.tick(T0 + 2_000);
    expect(offers.map((o) => o.requestId).sort()).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(new Set(offers.map((o) => o.courierId)).size).toBe(5);
  });

  it('an assignment whose courier went offline after the snapshot is skipped and the request waits for the next batch', () => {
    const { loop, couriers } = world(GREEDY);
    loop.submit(delivery('d1', T0), T0);
    const batch = loop.takeBatch(T0)!;
    expect(batch.requests.map((r) => r.id)).toEqual(['d1']);
    expect(loop.takeBatch(T0)).toBeUndefined(); // in flight: not taken twice
    const plan = inlinePlanner(batch.snapshot, batch.requests, GREEDY, batch.now); // a worker would run this
    const courierId = plan.assignments[0].courierId;
    ok(loop.setCourierStatus(courierId, 'offline', T0 + 5));
    expect(loop.applyPlan(plan, T0 + 10)).toEqual([]);
    expect(loop.stats().staleAssignments).toBe(1);
    expect(couriers.get(courierId)!.status).toBe('offline');
    expect(loop.status('d1')!.status).toBe('pending');
    const next = onlyOffer(loop.tick(T0 + 20));
    expect(next.courierId).not.toBe(courierId);
    expect(loop.checkInvariants()).toEqual([]);
  });
});

describe('DispatchLoop retries', () => {
  it('a request no courier can take sits out the retry delay, and is retried at once when a courier comes on shift', () => {
    const { loop, scenario } = world(GREEDY);
    for (const c of scenario.couriers) if (c.status !== 'offline') loop.setCourierStatus(c.id, 'offline', T0);
    loop.submit(delivery('d1', T0), T0);
    expect(loop.tick(T0)).toEqual([]);
    expect(loop.dueAt()).toBe(T0 + DEFAULT_RETRY_MS);
    expect(loop.takeBatch(T0 + 1_000)).toBeUndefined(); // nothing changed: no snapshot, no re-plan
    const sub = fixtureAt('delivery', T0);
    const near = scenario.couriers.map((c) => ({ id: c.id, d: distanceMeters(c.lat, c.lng, sub.pickup.lat, sub.pickup.lng) })).sort((a, b) => a.d - b.d)[0];
    ok(loop.setCourierStatus(near.id, 'available', T0 + 2_000));
    expect(loop.dueAt()).toBe(T0 + 2_000);
    expect(onlyOffer(loop.tick(T0 + 2_000)).courierId).toBe(near.id);
    expect(loop.checkInvariants()).toEqual([]);
  });

  it('in batched mode a parked request rejoins the window after its delay, or when a courier becomes available', () => {
    const { loop, scenario } = world(BATCHED);
    for (const c of scenario.couriers) if (c.status !== 'offline') loop.setCourierStatus(c.id, 'offline', T0);
    loop.submit(delivery('d1', T0), T0);
    expect(loop.tick(T0 + 2_000)).toEqual([]);
    const due = T0 + 2_000 + DEFAULT_RETRY_MS + 2_000;
    expect(loop.dueAt()).toBe(due);
    expect(loop.takeBatch(due - 1)).toBeUndefined();
    expect(loop.tick(due)).toEqual([]); // retried, still nobody: parked again
    expect(loop.dueAt()).toBe(due + DEFAULT_RETRY_MS + 2_000);
    ok(loop.setCourierStatus(scenario.couriers.find((c) => c.status !== 'offline')!.id, 'available', due + 500));
    expect(loop.dueAt()).toBe(due + 2_500);
    expect(loop.tick(due + 2_499)).toEqual([]);
    expect(onlyOffer(loop.tick(due + 2_500)).requestId).toBe('d1');
  });
});

describe('DispatchLoop declines and expiries', () => {
  it('a declined request is re-offered to another courier and never to one that declined it', () => {
    const { loop, couriers } = world(BATCHED);
    loop.submit(delivery('d1', T0), T0);
    let now = T0 + 2_000;
    let offer = onlyOffer(loop.tick(now));
    const decliners: string[] = [];
    for (let round = 0; round < 5; round++) {
      ok(loop.decline(offer.id, offer.courierId, now + 1_000));
      decliners.push(offer.courierId);
      expect(couriers.get(offer.courierId)!.status).toBe('available');
      expect(loop.status('d1')!.status).toBe('pending');
      now += 1_000;
      expect(loop.tick(now + 1_999)).toEqual([]); // back in the window
      now += 2_000;
      offer = onlyOffer(loop.tick(now));
      expect(decliners).not.toContain(offer.courierId);
    }
    expect(loop.lifecycle.excludedCouriers('d1').sort()).toEqual([...decliners].sort());
    expect(loop.checkInvariants(lifecycleEvents(loop.drainEvents()))).toEqual([]);
  });

  it('an offer left unanswered expires after the TTL and the request is offered to someone else', () => {
    const { loop, couriers } = world(GREEDY);
    loop.submit(delivery('d1', T0), T0);
    const first = onlyOffer(loop.tick(T0));
    expect(loop.expire(T0 + 14_999)).toEqual({ expired: [], failed: [] });
    expect(loop.expire(T0 + 15_000)).toEqual({ expired: ['d1'], failed: [] });
    expect(couriers.get(first.courierId)!.status).toBe('available');
    expect(loop.accept(first.id, first.courierId, T0 + 15_001)).toEqual({ ok: false, reason: 'offer-expired' });
    const second = onlyOffer(loop.tick(T0 + 15_000));
    expect(second.courierId).not.toBe(first.courierId);
    expect(loop.checkInvariants()).toEqual([]);
  });

  it('a courier answering an offer that is not its own changes nothing', () => {
    const { loop } = world(GREEDY);
    loop.submit(delivery('d1', T0), T0);
    const offer = onlyOffer(loop.tick(T0));
    expect(loop.accept(offer.id, 'c-nobody', T0 + 1)).toEqual({ ok: false, reason: 'not-offer-owner' });
    expect(loop.progress('d1', offer.courierId, 'picked_up', T0 + 2)).toEqual({ ok: false, reason: 'request-not-assigned' });
    expect(loop.status('d1')!.status).toBe('offered');
  });

  it('a blood leg past its deadline fails and hands its units back', () => {
    const { loop, sites, couriers, scenario } = world(GREEDY);
    for (const c of scenario.couriers) if (c.status !== 'offline') loop.setCourierStatus(c.id, 'offline', T0);
    expect([...scenario.couriers].every((c) => couriers.get(c.id)!.status === 'offline')).toBe(true);
    const hospital = scenario.sites.find((s) => s.kind === 'hospital')!;
    const plan = ok(loop.submit({ id: 'b1', kind: 'blood', urgency: 'urgent', createdAt: T0, requesterId: 'h', dropoff: hospital, blood: { product: 'red_cells', bloodType: 'B+', units: 2 }, deadline: T0 + 3_600_000 }, T0));
    expect(loop.tick(T0)).toEqual([]);
    expect(reservedUnits(sites, scenario)).toBe(2);
    expect(loop.expire(T0 + 3_600_001).failed).toEqual(plan.legs);
    expect(loop.status('b1')!.status).toBe('failed');
    expect(reservedUnits(sites, scenario)).toBe(0);
    expect(loop.checkInvariants()).toEqual([]);
  });
});

describe('deriveStatus', () => {
  it('is the least advanced live leg, cancelled when all are cancelled, failed when none is live and one failed', () => {
    expect(deriveStatus(['assigned', 'offered', 'delivered'])).toBe('offered');
    expect(deriveStatus(['assigned', 'picked_up'])).toBe('assigned');
    expect(deriveStatus(['failed', 'delivered'])).toBe('delivered');
    expect(deriveStatus(['cancelled', 'cancelled'])).toBe('cancelled');
    expect(deriveStatus(['cancelled', 'failed'])).toBe('failed');
  });
});

function reservedUnits(sites: SiteIndex, scenario: Scenario): number {
  return scenario.sites.filter((s) => s.kind === 'blood_bank').reduce((n, s) => n + sites.lots(s.id).reduce((m, l) => m + l.reserved, 0), 0);
}

function shelfUnits(sites: SiteIndex, scenario: Scenario): number {
  return scenario.sites.filter((s) => s.kind === 'blood_bank').reduce((n, s) => n + sites.lots(s.id).reduce((m, l) => m + l.reserved + l.available, 0), 0);
}

/** Compatible platelet units each bank in reach holds for the recipient, nearest bank first. */
function stockInReach(sites: SiteIndex, at: { lat: number; lng: number }, recipient: 'AB-' | 'O+', now: number): number[] {
  const hits = sites.nearby(at.lat, at.lng, { kind: 'blood_bank', open: true, k: 100, stock: { product: 'platelets', recipient, units: 1, asOf: now } });
  return hits.map((h) => h.units!);
}
