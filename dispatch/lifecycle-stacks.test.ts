import { describe, expect, it } from 'vitest';
import { checkInvariants } from './lifecycle-invariants.js';
import { type LifecycleEvent, RequestLifecycle } from './request-lifecycle.js';

const T0 = 1_700_000_000_000;

/** Requests r1..r3 pending, couriers c1 and c2 available. */
function setup(): RequestLifecycle {
  const lc = new RequestLifecycle();
  for (const id of ['r1', 'r2', 'r3']) lc.addRequest({ id, kind: 'delivery', urgency: 'routine' }, T0);
  lc.setCourierStatus('c1', 'available', T0);
  lc.setCourierStatus('c2', 'available', T0);
  return lc;
}

function ok<T extends { ok: boolean }>(res: T): Extract<T, { ok: true }> {
  if (!res.ok) throw new Error(`expected ok, got ${JSON.stringify(res)}`);
  return res as Extract<T, { ok: true }>;
}

function courierStatuses(events: readonly LifecycleEvent[]): string[] {
  return events.flatMap((e) => (e.type === 'courier.status' ? [e.status] : []));
}

describe('RequestLifecycle stacks', () => {
  it('offers a stack as one offer per request sharing a stackId and expiry; accepting one assigns them all', () => {
    const lc = setup();
    const stack = ok(lc.offerStack([{ requestId: 'r1', details: { stop: 1 } }, { requestId: 'r2', details: { stop: 2 } }], 'c1', T0));
    expect(stack.offers.map((o) => o.requestId)).toEqual(['r1', 'r2']);
    expect(stack.offers[0].stackId).toBe(stack.offers[0].id);
    expect(stack.offers[1].stackId).toBe(stack.offers[0].id);
    expect(stack.offers[1].expiresAt).toBe(stack.offers[0].expiresAt);
    expect(stack.events.filter((e) => e.type === 'offer.created').map((e) => (e as { stackId?: string }).stackId)).toEqual([stack.offers[0].id, stack.offers[0].id]);
    expect(courierStatuses(stack.events)).toEqual(['offered']);
    expect(lc.courier('c1')!.offerIds).toEqual(stack.offers.map((o) => o.id));

    const accepted = ok(lc.accept(stack.offers[1].id, 'c1', T0 + 1000));
    expect(accepted.assignment.requestId).toBe('r2');
    expect(accepted.assignments.map((a) => a.requestId).sort()).toEqual(['r1', 'r2']);
    expect(lc.request('r1')!.status).toBe('assigned');
    expect(lc.request('r2')!.status).toBe('assigned');
    expect(courierStatuses(accepted.events)).toEqual(['busy']);
    expect(lc.courier('c1')!.requestIds).toEqual(['r1', 'r2']);
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('keeps the courier busy until the last stop of its stack is delivered', () => {
    const lc = setup();
    const [first] = ok(lc.offerStack([{ requestId: 'r1' }, { requestId: 'r2' }], 'c1', T0)).offers;
    ok(lc.accept(first.id, 'c1', T0));
    ok(lc.progress('r1', 'c1', 'picked_up', T0 + 1));
    ok(lc.progress('r2', 'c1', 'picked_up', T0 + 2));
    expect(courierStatuses(ok(lc.progress('r1', 'c1', 'delivered', T0 + 3)).events)).toEqual([]);
    expect(lc.courier('c1')!.status).toBe('busy');
    expect(courierStatuses(ok(lc.progress('r2', 'c1', 'delivered', T0 + 4)).events)).toEqual(['available']);
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('declining one offer of a stack declines the whole stack, and no stop of it is offered to that courier again', () => {
    const lc = setup();
    const stack = ok(lc.offerStack([{ requestId: 'r1' }, { requestId: 'r2' }], 'c1', T0)).offers;
    const declined = ok(lc.decline(stack[0].id, 'c1', T0 + 10));
    expect(declined.events.filter((e) => e.type === 'offer.declined').map((e) => (e as { requestId: string }).requestId)).toEqual(['r1', 'r2']);
    expect(courierStatuses(declined.events)).toEqual(['available']);
    expect(lc.excludedCouriers('r1')).toEqual(['c1']);
    expect(lc.excludedCouriers('r2')).toEqual(['c1']);
    expect(lc.offerStack([{ requestId: 'r2' }, { requestId: 'r3' }], 'c1', T0 + 20)).toEqual({ ok: false, reason: 'declined-before' });
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('expires a stack together, at its one expiry', () => {
    const lc = setup();
    const stack = ok(lc.offerStack([{ requestId: 'r1' }, { requestId: 'r2' }, { requestId: 'r3' }], 'c1', T0)).offers;
    expect(ok(lc.expire(stack[0].expiresAt)).requestIds).toEqual(['r1', 'r2', 'r3']);
    expect(lc.courier('c1')!.status).toBe('available');
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('a cancelled stop leaves the rest of the stack with the courier, offered or carried', () => {
    const lc = setup();
    const stack = ok(lc.offerStack([{ requestId: 'r1' }, { requestId: 'r2' }], 'c1', T0)).offers;
    ok(lc.cancel('r1', T0 + 1));
    expect(lc.courier('c1')!.status).toBe('offered');
    expect(lc.courier('c1')!.offerIds).toEqual([stack[1].id]);
    const accepted = ok(lc.accept(stack[1].id, 'c1', T0 + 2));
    expect(accepted.assignments.map((a) => a.requestId)).toEqual(['r2']);
    // the revoked first offer cannot be answered any more
    expect(lc.accept(stack[0].id, 'c1', T0 + 3)).toEqual({ ok: false, reason: 'offer-revoked' });

    const more = ok(lc.offerStack([{ requestId: 'r3' }], 'c2', T0 + 4)).offers;
    ok(lc.accept(more[0].id, 'c2', T0 + 5));
    ok(lc.cancel('r2', T0 + 6));
    expect(lc.courier('c1')!.status).toBe('available');
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('refuses a whole stack when one request cannot be offered, changing nothing', () => {
    const lc = setup();
    ok(lc.cancel('r3', T0));
    const before = JSON.stringify({ c: lc.allCouriers(), r: lc.allRequests(), live: lc.liveOffers(), seq: lc.lastSeq });
    expect(lc.offerStack([{ requestId: 'r1' }, { requestId: 'r3' }], 'c1', T0)).toEqual({ ok: false, reason: 'request-not-pending' });
    expect(lc.offerStack([{ requestId: 'r1' }, { requestId: 'ghost' }], 'c1', T0)).toEqual({ ok: false, reason: 'unknown-request' });
    expect(JSON.stringify({ c: lc.allCouriers(), r: lc.allRequests(), live: lc.liveOffers(), seq: lc.lastSeq })).toBe(before);
    expect(() => lc.offerStack([{ requestId: 'r1' }, { requestId: 'r1' }], 'c1', T0)).toThrow(/twice/);
  });

  it('offers en route only when asked: a busy courier keeps its load and stays busy while it holds the offer', () => {
    const lc = setup();
    ok(lc.accept(ok(lc.offer('r1', 'c1', T0)).offer.id, 'c1', T0));
    expect(lc.offer('r2', 'c1', T0 + 1)).toEqual({ ok: false, reason: 'courier-busy' });
    const enRoute = ok(lc.offer('r2', 'c1', T0 + 1, { enRoute: true }, undefined, { busy: true }));
    expect(courierStatuses(enRoute.events)).toEqual([]);
    expect(lc.courier('c1')!.status).toBe('busy');
    // a declined en-route offer leaves it busy with what it carries
    expect(courierStatuses(ok(lc.decline(enRoute.offer.id, 'c1', T0 + 2)).events)).toEqual([]);
    expect(lc.courier('c1')!.requestIds).toEqual(['r1']);
    const again = ok(lc.offer('r3', 'c1', T0 + 3, undefined, undefined, { busy: true }));
    ok(lc.accept(again.offer.id, 'c1', T0 + 4));
    expect(lc.courier('c1')!.requestIds).toEqual(['r1', 'r3']);
    // going off shift is refused while it carries anything
    expect(lc.setCourierStatus('c1', 'offline', T0 + 5)).toEqual({ ok: false, reason: 'courier-busy' });
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('gives back an accepted assignment past its deadline only when restoring it', () => {
    const lc = new RequestLifecycle();
    lc.addRequest({ id: 'late', kind: 'delivery', urgency: 'routine', deadline: T0 + 1000 }, T0);
    lc.setCourierStatus('c1', 'available', T0);
    expect(lc.offer('late', 'c1', T0 + 2000)).toEqual({ ok: false, reason: 'past-deadline' });
    const restored = ok(lc.offer('late', 'c1', T0 + 2000, undefined, 'offer-from-before', { restore: true }));
    expect(restored.offer.id).toBe('offer-from-before');
    ok(lc.accept(restored.offer.id, 'c1', T0 + 2000));
    expect(lc.request('late')!.status).toBe('assigned');
  });
});
