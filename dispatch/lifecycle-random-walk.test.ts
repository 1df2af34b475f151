/**
 * The lifecycle under seeded random operations: thousands of sequences of sensible and wrong calls (stacks and
 * en-route offers included), every invariant checked after every step, every status change seen as an event.
 */
import { describe, expect, it } from 'vitest';
import { checkInvariants } from './lifecycle-invariants.js';
import { T0, ref, released, snapshot } from './lifecycle-test-kit.js';
import { RequestLifecycle, type LifecycleEvent, type ReservationRef } from './request-lifecycle.js';
import { seededRandom } from '../fixtures/prng.js';

describe('RequestLifecycle under random operations', () => {
  it('keeps every invariant after every step of thousands of seeded random sequences', () => {
    const SEQUENCES = 2000;
    const STEPS = 60;
    const seen = new Map<string, number>();
    let refused = 0;
    for (let s = 0; s < SEQUENCES; s++) {
      const rand = seededRandom(0x9e3779b9 ^ s);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)];
      const lc = new RequestLifecycle({ offerTtlMs: 1 + Math.floor(rand() * 60) });
      const events: LifecycleEvent[] = [];
      const replayed: Statuses = { requests: {}, couriers: {} };
      const attached = new Map<string, string[]>(); // request → tags of the refs the test handed over
      const requestIds: string[] = [];
      const courierIds = ['c0', 'c1', 'c2', 'c3'];
      const offerIds: string[] = [];
      let now = T0;
      let tag = 0;
      const refs = (requestId: string): ReservationRef[] =>
        Array.from({ length: Math.floor(rand() * 3) }, () => ref(`${requestId}#${tag++}`, 1 + Math.floor(rand() * 4)));
      const handOver = (requestId: string, given: readonly ReservationRef[]): void =>
        void attached.set(requestId, [...(attached.get(requestId) ?? []), ...given.map((r) => r.siteId)]);
      // mostly sensible choices (so deep states are reached), sometimes wrong ones (so refusals are exercised)
      const someRequest = (wanted?: (id: string) => boolean): string => {
        const fitting = wanted ? requestIds.filter(wanted) : requestIds;
        if (rand() < 0.05 || requestIds.length === 0) return 'ghost';
        return fitting.length > 0 && rand() < 0.8 ? pick(fitting) : pick(requestIds);
      };
      const someCourier = (right?: string): string => (right !== undefined && rand() < 0.8 ? right : rand() < 0.05 ? 'stranger' : pick(courierIds));
      for (let step = 0; step < STEPS; step++) {
        now += Math.floor(rand() * 15);
        const before = snapshot(lc);
        const roll = rand();
        const op =
          roll < 0.12 ? 'add' : roll < 0.2 ? 'status' : roll < 0.4 ? 'offer' : roll < 0.52 ? 'accept' : roll < 0.58 ? 'decline' :
          roll < 0.66 ? 'expire' : roll < 0.71 ? 'cancel' : roll < 0.88 ? 'progress' : roll < 0.94 ? 'fail' : 'attach';
        let res: { ok: boolean; events?: LifecycleEvent[]; offer?: { id: string }; reason?: string };
        if (op === 'add') {
          const id = `r${requestIds.length}`;
          requestIds.push(id);
          const deadline = rand() < 0.4 ? now + Math.floor(rand() * 300) : undefined;
          const kind = pick(['delivery', 'rescue', 'blood'] as const);
          const given = refs(id);
          res = lc.addRequest({ id, kind, urgency: pick(['routine', 'urgent', 'emergency'] as const), deadline, reservations: given }, now);
          if (res.ok) handOver(id, given);
        } else if (op === 'status') {
          res = lc.setCourierStatus(someCourier(), rand() < 0.8 ? 'available' : 'offline', now);
        } else if (op === 'offer') {
          const shape = rand();
          // a plain offer, a stack of two or three, or an en-route offer to a busy courier
          const wanted = shape < 0.85 ? 'available' : 'busy';
          const free = courierIds.filter((id) => lc.courier(id)?.status === wanted);
          const courierId = free.length > 0 && rand() < 0.8 ? pick(free) : someCourier();
          if (shape < 0.6 || shape >= 0.85) {
            res = lc.offer(someRequest((id) => lc.request(id)!.status === 'pending'), courierId, now, undefined, undefined, { busy: shape >= 0.85 });
            if (res.offer) offerIds.push(res.offer.id);
          } else {
            const ids = [...new Set([someRequest((id) => lc.request(id)!.status === 'pending'), someRequest((id) => lc.request(id)!.status === 'pending'), ...(rand() < 0.3 ? [someRequest()] : [])])];
            const stacked = lc.offerStack(ids.map((requestId) => ({ requestId, details: { requestId } })), courierId, now);
            res = stacked;
            if (stacked.ok) {
              offerIds.push(...stacked.offers.map((o) => o.id));
              seen.set(`stack:${stacked.offers.length}`, (seen.get(`stack:${stacked.offers.length}`) ?? 0) + 1);
            }
          }
        } else if (op === 'accept' || op === 'decline') {
          const liveIds = lc.liveOffers().map((o) => o.id);
          const id = rand() < 0.05 ? 'offer-404' : liveIds.length > 0 && rand() < 0.8 ? pick(liveIds) : offerIds.length > 0 ? pick(offerIds) : 'offer-404';
          const courierId = someCourier(lc.offerById(id)?.courierId);
          res = op === 'accept' ? lc.accept(id, courierId, now) : lc.decline(id, courierId, now);
        } else if (op === 'expire') {
          res = lc.expire(now);
        } else if (op === 'cancel') {
          res = lc.cancel(someRequest(), now, 'prop');
        } else if (op === 'progress') {
          const requestId = someRequest((id) => ['assigned', 'picked_up'].includes(lc.request(id)!.status));
          const stage = lc.request(requestId)?.status === 'assigned' ? 'picked_up' : 'delivered';
          res = lc.progress(requestId, someCourier(lc.assignmentOf(requestId)?.courierId), rand() < 0.85 ? stage : pick(['picked_up', 'delivered'] as const), now);
        } else if (op === 'fail') {
          res = rand() < 0.5 ? lc.fail(someRequest(), now, 'no-feasible-courier') : lc.failOverdue(now);
        } else {
          const requestId = someRequest();
          const given = refs(requestId);
          res = lc.attachReservations(requestId, given, now);
          if (res.ok) handOver(requestId, given);
        }
        const outcome = `${op}:${res.reason ?? 'ok'}`;
        seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
        if (res.ok) {
          for (const e of res.events ?? []) seen.set(e.type, (seen.get(e.type) ?? 0) + 1);
          events.push(...(res.events ?? []));
          applyEvents(replayed, res.events ?? []);
        } else {
          refused++;
          if (snapshot(lc) !== before) throw new Error(`seed ${s} step ${step} ${op}: a refusal changed state`);
        }
        const problems = checkInvariants(lc, events);
        if (problems.length > 0) throw new Error(`seed ${s} step ${step} ${op}: ${problems.join('; ')}`);
        if (JSON.stringify(replayed) !== JSON.stringify(statuses(lc))) throw new Error(`seed ${s} step ${step} ${op}: a status changed without an event`);
      }
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: lc.lastSeq }, (_, i) => i + 1));
      // reservations released == reservations of cancelled / failed requests, each exactly once
      const releasedTags = released(events).map((r) => r.siteId).sort();
      const expectedTags = lc.allRequests().filter((r) => r.status === 'cancelled' || r.status === 'failed').flatMap((r) => attached.get(r.id) ?? []).sort();
      expect(releasedTags).toEqual(expectedTags);
    }
    // the walk reached every transition often enough to mean something
    for (const type of ['request.delivered', 'request.picked_up', 'offer.declined', 'offer.expired', 'offer.revoked', 'reservation.released', 'request.failed', 'request.cancelled']) {
      expect(seen.get(type) ?? 0, type).toBeGreaterThan(200);
    }
    expect(seen.get('stack:2') ?? 0).toBeGreaterThan(200);
    expect(seen.get('stack:3') ?? 0).toBeGreaterThan(20);
    for (const refusal of ['accept:not-offer-owner', 'accept:offer-expired', 'progress:out-of-order', 'progress:not-assigned-courier', 'offer:declined-before', 'offer:courier-has-offer', 'cancel:request-terminal']) {
      expect(seen.get(refusal) ?? 0, refusal).toBeGreaterThan(20);
    }
    expect(refused).toBeGreaterThan(SEQUENCES * STEPS * 0.1);
    if (process.env.LIFECYCLE_COVERAGE) console.log([...seen].sort().map(([k, n]) => `${k} ${n}`).join('\n'));
  });
});

interface Statuses {
  requests: Record<string, string>;
  couriers: Record<string, string>;
}

/** Folds events into request and courier statuses: every status change must be an event. */
function applyEvents(into: Statuses, events: readonly LifecycleEvent[]): void {
  for (const e of events) {
    if (e.type === 'courier.status') into.couriers[e.courierId] = e.status;
    else if (e.type === 'request.created') into.requests[e.requestId] = 'pending';
    else if (e.type.startsWith('request.')) into.requests[(e as { requestId: string }).requestId] = e.type.slice('request.'.length);
  }
}

function statuses(lc: RequestLifecycle): Statuses {
  return {
    requests: Object.fromEntries(lc.allRequests().map((r) => [r.id, r.status])),
    couriers: Object.fromEntries(lc.allCouriers().map((c) => [c.id, c.status])),
  };
}

