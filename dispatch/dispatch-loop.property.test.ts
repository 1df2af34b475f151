/**
 * DispatchLoop properties over long seeded random walks: every invariant after each step, and a drained
 * transition's rollback putting memory back exactly as it was.
 */
import { describe, expect, it } from 'vitest';
import { generateScenario } from '../fixtures/city-scenario.js';
import { Prng } from '../fixtures/prng.js';
import { DEFAULT_POLICY } from './dispatch-request.js';
import { DispatchLoop } from './dispatch-loop.js';
import type { LifecycleEvent } from './request-lifecycle.js';
import { T0, delivery, lifecycleEvents, ok, submissionOf, world } from './loop-test-world.js';

describe('DispatchLoop under a seeded random event sequence', () => {
  for (const mode of ['batched', 'greedy'] as const) {
    it(`keeps every invariant through thousands of random steps (${mode})`, () => {
      const scenario = generateScenario({ seed: 11, couriers: 120, requests: 600, donors: 300, bloodBanks: 3, hospitals: 4 });
      const { loop, couriers } = world({ ...DEFAULT_POLICY, mode, windowMs: 2_000 }, scenario);
      const rng = new Prng(mode === 'batched' ? 99 : 100);
      const seen: LifecycleEvent[] = [];
      let now = T0;
      let next = 0;
      const submitted: string[] = [];
      const counts = new Map<string, number>();
      const bump = (k: string): void => void counts.set(k, (counts.get(k) ?? 0) + 1);
      for (let step = 0; step < 4_000; step++) {
        now += rng.int(1_500);
        const u = rng.next();
        if (u < 0.15 && next < scenario.requests.length) {
          const f = scenario.requests[next++];
          const sub = submissionOf(f, now);
          if (rng.chance(0.1)) sub.urgency = 'emergency';
          const res = loop.submit(sub, now);
          bump(res.ok ? `submit:${sub.kind}` : `refused:${res.reason}`);
          if (res.ok) submitted.push(sub.id);
        } else if (u < 0.35) {
          bump(`tick:${loop.tick(now).length > 0}`);
        } else if (u < 0.55) {
          const live = loop.lifecycle.liveOffers();
          if (live.length > 0) {
            const o = rng.pick(live);
            const courier = rng.chance(0.85) ? o.courierId : rng.pick(scenario.couriers).id;
            const res = rng.chance(0.7) ? loop.accept(o.id, courier, now) : loop.decline(o.id, courier, now);
            bump(`respond:${res.ok ? 'ok' : res.reason}`);
          }
        } else if (u < 0.7) {
          const carried = loop.lifecycle.allRequests().filter((r) => r.status === 'assigned' || r.status === 'picked_up');
          if (carried.length > 0) {
            const r = rng.pick(carried);
            const courier = rng.chance(0.9) ? r.courierId! : rng.pick(scenario.couriers).id;
            const res = loop.progress(r.id, courier, r.status === 'assigned' ? 'picked_up' : 'delivered', now);
            bump(`progress:${res.ok ? 'ok' : res.reason}`);
          }
        } else if (u < 0.75 && submitted.length > 0) {
          bump(`cancel:${loop.cancel(rng.pick(submitted), now, 'requester').ok}`);
        } else if (u < 0.85) {
          const e = loop.expire(now);
          bump(`expire:${e.expired.length + e.failed.length > 0}`);
        } else if (u < 0.95) {
          const c = rng.pick(scenario.couriers);
          const at = couriers.get(c.id)!;
          couriers.move(c.id, at.lat + rng.range(-0.002, 0.002), at.lng + rng.range(-0.002, 0.002), now);
          bump('move');
        } else {
          const c = rng.pick(scenario.couriers);
          const res = loop.setCourierStatus(c.id, rng.chance(0.6) ? 'available' : 'offline', now);
          bump(`status:${res.ok ? 'ok' : res.reason}`);
        }
        seen.push(...lifecycleEvents(loop.drainEvents()));
        const problems = loop.checkInvariants(seen.slice(-50));
        if (problems.length > 0) throw new Error(`step ${step}: ${problems.slice(0, 5).join('; ')}`);
      }
      expect(loop.checkInvariants(seen)).toEqual([]);
      // the walk really exercised the loop: every kind of verb succeeded and failed somewhere
      for (const k of ['submit:delivery', 'submit:blood', 'tick:true', 'respond:ok', 'respond:not-offer-owner', 'progress:ok', 'cancel:true', 'expire:true', 'status:ok']) {
        expect(counts.get(k) ?? 0, k).toBeGreaterThan(0);
      }
      const statuses = new Set(loop.lifecycle.allRequests().map((r) => r.status));
      for (const s of ['delivered', 'cancelled']) expect(statuses.has(s as never), s).toBe(true);
    });
  }
});

/** Where two strings first differ, with a little context. */
function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `before …${a.slice(Math.max(0, i - 80), i + 80)}… after …${b.slice(Math.max(0, i - 80), i + 80)}…`;
}

describe('DispatchLoop rollback of a drained transition', () => {
  it('puts memory back exactly as it was before the verb, at any step of a random walk', () => {
    const scenario = generateScenario({ seed: 23, couriers: 80, requests: 400, donors: 200, bloodBanks: 3, hospitals: 4 });
    const { loop, couriers, sites } = world({ ...DEFAULT_POLICY, mode: 'greedy' }, scenario);
    const rng = new Prng(5);
    const banks = scenario.sites.filter((s) => s.kind === 'blood_bank').map((s) => s.id);
    const submitted: string[] = [];
    const fingerprint = (): Record<string, string> =>
      Object.fromEntries(Object.entries({
        requests: loop.lifecycle.allRequests(),
        couriers: loop.lifecycle.allCouriers(),
        offers: submitted.flatMap((id) => (loop.status(id)?.legs ?? []).flatMap((l) => loop.lifecycle.offersOf(l.id))),
        parents: submitted.map((id) => loop.status(id)),
        indexed: scenario.couriers.map((c) => couriers.get(c.id)!.status),
        lots: banks.map((b) => sites.lots(b)),
        occupancy: scenario.sites.map((s) => sites.get(s.id)!.occupancy),
      }).map(([k, v]) => [k, JSON.stringify(v)]));
    let now = T0;
    let next = 0;
    const undone = new Map<string, number>();
    for (let step = 0; step < 2_500; step++) {
      now += rng.int(1_500);
      const takeBack = rng.chance(0.35);
      const before = takeBack ? fingerprint() : undefined;
      const u = rng.next();
      let verb = 'none';
      if (u < 0.2 && next < scenario.requests.length) {
        const sub = submissionOf(scenario.requests[next++], now);
        verb = loop.submit(sub, now).ok ? `submit:${sub.kind}` : 'submit:refused';
        if (verb !== 'submit:refused') submitted.push(sub.id);
      } else if (u < 0.4) {
        verb = loop.tick(now).length > 0 ? 'tick:offers' : 'tick';
      } else if (u < 0.6) {
        const live = loop.lifecycle.liveOffers();
        if (live.length > 0) {
          const o = rng.pick(live);
          verb = (rng.chance(0.7) ? loop.accept(o.id, o.courierId, now) : loop.decline(o.id, o.courierId, now)).ok ? 'respond' : 'respond:refused';
        }
      } else if (u < 0.75) {
        const carried = loop.lifecycle.allRequests().filter((r) => r.status === 'assigned' || r.status === 'picked_up');
        if (carried.length > 0) {
          const r = rng.pick(carried);
          verb = loop.progress(r.id, r.courierId!, r.status === 'assigned' ? 'picked_up' : 'delivered', now).ok ? `progress:${r.status}` : 'progress:refused';
        }
      } else if (u < 0.82 && submitted.length > 0) {
        verb = loop.cancel(rng.pick(submitted), now, 'requester').ok ? 'cancel' : 'cancel:refused';
      } else if (u < 0.9) {
        verb = 'expire';
        loop.expire(now);
      } else {
        const c = rng.pick(scenario.couriers);
        verb = loop.setCourierStatus(c.id, rng.chance(0.6) ? 'available' : 'offline', now).ok ? 'status' : 'status:refused';
      }
      const { events, rollback } = loop.drainTransition();
      if (events.length > 0 && before !== undefined) {
        if (verb.startsWith('submit:') && verb !== 'submit:refused') submitted.pop();
        rollback();
        rollback(); // a second run changes nothing more
        const after = fingerprint();
        for (const k of Object.keys(before)) if (after[k] !== before[k]) throw new Error(`step ${step}: ${verb} rolled back, ${k} differs: ${firstDifference(before[k], after[k])}`);
        undone.set(verb, (undone.get(verb) ?? 0) + 1);
      }
      const problems = loop.checkInvariants();
      if (problems.length > 0) throw new Error(`step ${step} (${verb}): ${problems.slice(0, 5).join('; ')}`);
    }
    // every kind of state change was taken back somewhere in the walk
    for (const k of ['submit:delivery', 'submit:blood', 'submit:rescue', 'tick:offers', 'respond', 'progress:assigned', 'progress:picked_up', 'cancel', 'status']) {
      expect(undone.get(k) ?? 0, k).toBeGreaterThan(0);
    }
  });
});
