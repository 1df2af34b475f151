import { describe, expect, it } from 'vitest';
import { checkInvariants } from './lifecycle-invariants.js';
import { T0, ref, released, snapshot } from './lifecycle-test-kit.js';
import {
  DEFAULT_OFFER_TTL_MS,
  RequestLifecycle,
  type LifecycleEvent,
  type NewRequest,
  type Urgency,
} from './request-lifecycle.js';

function req(id: string, extra: Partial<NewRequest> = {}): NewRequest {
  return { id, kind: 'blood', urgency: 'urgent', ...extra };
}

/** A lifecycle with request r1 (two reservations) and available couriers c1, c2. */
function setup(options: { offerTtlMs?: number } = {}): RequestLifecycle {
  const lc = new RequestLifecycle(options);
  lc.addRequest(req('r1', { reservations: [ref('bank-1'), ref('bank-2', 1)] }), T0);
  lc.setCourierStatus('c1', 'available', T0);
  lc.setCourierStatus('c2', 'available', T0);
  return lc;
}

function offerId(lc: RequestLifecycle, requestId: string, courierId: string, now = T0): string {
  const res = lc.offer(requestId, courierId, now);
  if (!res.ok) throw new Error(`offer refused: ${res.reason}`);
  return res.offer.id;
}

function ok<T extends { ok: boolean }>(res: T): Extract<T, { ok: true }> {
  if (!res.ok) throw new Error(`expected ok, got ${JSON.stringify(res)}`);
  return res as Extract<T, { ok: true }>;
}

function types(events: readonly LifecycleEvent[]): string[] {
  return events.map((e) => (e.type === 'courier.status' ? `courier.status:${e.status}` : e.type));
}

describe('RequestLifecycle happy paths', () => {
  it('an offer accepted, picked up and delivered moves request and courier through every state', () => {
    const lc = setup();
    const offered = ok(lc.offer('r1', 'c1', T0 + 10, { eta: 120 }));
    expect(offered.offer).toMatchObject({ requestId: 'r1', courierId: 'c1', createdAt: T0 + 10, expiresAt: T0 + 10 + 15_000, status: 'live', details: { eta: 120 } });
    expect(types(offered.events)).toEqual(['offer.created', 'request.offered', 'courier.status:offered']);
    expect(lc.request('r1')!.status).toBe('offered');
    expect(lc.liveOfferOf('c1')!.id).toBe(offered.offer.id);

    const accepted = ok(lc.accept(offered.offer.id, 'c1', T0 + 20));
    expect(types(accepted.events)).toEqual(['offer.accepted', 'request.assigned', 'courier.status:busy']);
    expect(accepted.assignment).toEqual({ requestId: 'r1', courierId: 'c1', offerId: offered.offer.id, assignedAt: T0 + 20, pickedUpAt: undefined, deliveredAt: undefined, endedAt: undefined });
    expect(lc.courier('c1')).toMatchObject({ status: 'busy', requestId: 'r1', offerId: undefined });
    expect(lc.offerById(offered.offer.id)).toMatchObject({ status: 'accepted', closedAt: T0 + 20 });

    expect(types(ok(lc.progress('r1', 'c1', 'picked_up', T0 + 30)).events)).toEqual(['request.picked_up']);
    expect(types(ok(lc.progress('r1', 'c1', 'delivered', T0 + 40)).events)).toEqual(['request.delivered', 'courier.status:available']);
    expect(lc.request('r1')).toMatchObject({ status: 'delivered', courierId: 'c1', released: [] });
    expect(lc.assignmentOf('r1')).toMatchObject({ pickedUpAt: T0 + 30, deliveredAt: T0 + 40, endedAt: T0 + 40 });
    expect(lc.courier('c1')).toMatchObject({ status: 'available', requestId: undefined });
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('every event carries the next sequence number and the time it happened', () => {
    const events: LifecycleEvent[] = [];
    const lc = new RequestLifecycle({ onEvent: (e) => events.push(e) });
    lc.addRequest(req('r1'), T0);
    lc.setCourierStatus('c1', 'available', T0 + 1);
    const id = offerId(lc, 'r1', 'c1', T0 + 2);
    lc.accept(id, 'c1', T0 + 3);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(events.map((e) => e.at)).toEqual([T0, T0 + 1, T0 + 2, T0 + 2, T0 + 2, T0 + 3, T0 + 3, T0 + 3]);
    expect(lc.lastSeq).toBe(8);
    expect(events[0]).toEqual({ seq: 1, at: T0, type: 'request.created', requestId: 'r1', kind: 'blood', urgency: 'urgent', deadline: undefined });
    expect(checkInvariants(lc, events)).toEqual([]);
  });

  it('a declined offer returns the request to pending and excludes the courier from re-offers', () => {
    const lc = setup();
    const id = offerId(lc, 'r1', 'c1');
    const declined = ok(lc.decline(id, 'c1', T0 + 5));
    expect(types(declined.events)).toEqual(['offer.declined', 'request.pending', 'courier.status:available']);
    expect(declined.events[1]).toMatchObject({ requestId: 'r1', courierId: 'c1', offerId: id, cause: 'declined' });
    expect(lc.request('r1')!.status).toBe('pending');
    expect(lc.courier('c1')!.status).toBe('available');
    expect(lc.excludedCouriers('r1')).toEqual(['c1']);
    expect(lc.offer('r1', 'c1', T0 + 6)).toEqual({ ok: false, reason: 'declined-before' });
    expect(ok(lc.offer('r1', 'c2', T0 + 6)).offer.courierId).toBe('c2');
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('a declining courier is still free to take offers of other requests', () => {
    const lc = setup();
    lc.addRequest(req('r2'), T0);
    lc.decline(offerId(lc, 'r1', 'c1'), 'c1', T0 + 1);
    expect(ok(lc.offer('r2', 'c1', T0 + 2)).offer.requestId).toBe('r2');
    expect(lc.excludedCouriers('r2')).toEqual([]);
  });

  it('an offer is live until just before expiresAt and expires at exactly expiresAt', () => {
    const lc = setup();
    const id = offerId(lc, 'r1', 'c1', T0);
    const expiresAt = T0 + DEFAULT_OFFER_TTL_MS;
    expect(ok(lc.expire(expiresAt - 1))).toEqual({ ok: true, events: [], requestIds: [] });
    expect(lc.offerById(id)!.status).toBe('live');
    const expired = ok(lc.expire(expiresAt));
    expect(expired.requestIds).toEqual(['r1']);
    expect(types(expired.events)).toEqual(['offer.expired', 'request.pending', 'courier.status:available']);
    expect(expired.events[1]).toMatchObject({ cause: 'expired' });
    expect(lc.offerById(id)).toMatchObject({ status: 'expired', closedAt: expiresAt });
    expect(lc.request('r1')!.status).toBe('pending');
    expect(lc.excludedCouriers('r1')).toEqual(['c1']);
    expect(lc.liveOfferOf('c1')).toBeUndefined();
    expect(ok(lc.expire(expiresAt + 1)).events).toEqual([]);
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('accepting at exactly expiresAt is refused as offer-expired and changes nothing until expire runs', () => {
    const lc = setup({ offerTtlMs: 1000 });
    const id = offerId(lc, 'r1', 'c1', T0);
    expect(ok(lc.accept(id, 'c1', T0 + 999)).events).toHaveLength(3);

    const lc2 = setup({ offerTtlMs: 1000 });
    const id2 = offerId(lc2, 'r1', 'c1', T0);
    const before = snapshot(lc2);
    expect(lc2.accept(id2, 'c1', T0 + 1000)).toEqual({ ok: false, reason: 'offer-expired' });
    expect(lc2.decline(id2, 'c1', T0 + 1000)).toEqual({ ok: false, reason: 'offer-expired' });
    expect(snapshot(lc2)).toBe(before);
    lc2.expire(T0 + 1000);
    expect(lc2.accept(id2, 'c1', T0 + 1000)).toEqual({ ok: false, reason: 'offer-expired' });
  });

  it('expire takes every due offer, oldest first, and returns their requests for re-dispatch', () => {
    const lc = setup({ offerTtlMs: 100 });
    lc.addRequest(req('r2'), T0);
    lc.addRequest(req('r3'), T0);
    lc.setCourierStatus('c3', 'available', T0);
    offerId(lc, 'r2', 'c2', T0 + 10);
    offerId(lc, 'r1', 'c1', T0);
    offerId(lc, 'r3', 'c3', T0 + 50);
    expect(ok(lc.expire(T0 + 110)).requestIds).toEqual(['r1', 'r2']);
    expect(lc.request('r3')!.status).toBe('offered');
    expect(lc.pendingRequests().map((r) => r.id)).toEqual(['r1', 'r2']);
  });

  it('OFFER_TTL defaults to 15 s and is configurable', () => {
    expect(DEFAULT_OFFER_TTL_MS).toBe(15_000);
    expect(new RequestLifecycle().offerTtlMs).toBe(15_000);
    expect(ok(setup({ offerTtlMs: 30_000 }).offer('r1', 'c1', T0)).offer.expiresAt).toBe(T0 + 30_000);
  });

  it.each([
    ['pending', [] as string[], undefined],
    ['offered', ['offer.revoked', 'courier.status:available'], 'c1'],
    ['assigned', ['courier.status:available'], 'c1'],
    ['picked_up', ['courier.status:available'], 'c1'],
  ] as const)('cancel of a %s request releases its reservations once and frees the courier', (state, courierEvents, courierId) => {
    const lc = setup();
    if (state !== 'pending') {
      const id = offerId(lc, 'r1', 'c1');
      if (state !== 'offered') lc.accept(id, 'c1', T0 + 1);
      if (state === 'picked_up') lc.progress('r1', 'c1', 'picked_up', T0 + 2);
    }
    const res = ok(lc.cancel('r1', T0 + 3, 'dispatcher-7'));
    const expected = state === 'offered'
      ? ['offer.revoked', 'courier.status:available', 'request.cancelled', 'reservation.released']
      : ['request.cancelled', ...courierEvents, 'reservation.released'];
    expect(types(res.events)).toEqual(expected);
    expect(res.events.find((e) => e.type === 'request.cancelled')).toMatchObject({ requestId: 'r1', courierId, by: 'dispatcher-7' });
    expect(released(res.events).map((r) => r.siteId)).toEqual(['bank-1', 'bank-2']);
    expect(res.events.find((e) => e.type === 'reservation.released')).toMatchObject({ cause: 'cancelled' });
    expect(lc.request('r1')).toMatchObject({ status: 'cancelled', cancelledBy: 'dispatcher-7', offerId: undefined });
    expect(lc.request('r1')!.released).toHaveLength(2);
    expect(lc.courier('c1')).toMatchObject({ status: 'available', offerId: undefined, requestId: undefined });
    expect(lc.cancel('r1', T0 + 4)).toEqual({ ok: false, reason: 'request-terminal' });
    expect(lc.fail('r1', T0 + 4, 'late')).toEqual({ ok: false, reason: 'request-terminal' });
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('a revoked offer is not an exclusion and cannot be accepted afterwards', () => {
    const lc = setup();
    const id = offerId(lc, 'r1', 'c1');
    lc.cancel('r1', T0 + 1);
    expect(lc.offerById(id)!.status).toBe('revoked');
    expect(lc.excludedCouriers('r1')).toEqual([]);
    expect(lc.accept(id, 'c1', T0 + 2)).toEqual({ ok: false, reason: 'offer-revoked' });
  });

  it('cancel of a delivered request is refused and releases nothing', () => {
    const lc = setup();
    lc.accept(offerId(lc, 'r1', 'c1'), 'c1', T0);
    lc.progress('r1', 'c1', 'picked_up', T0);
    lc.progress('r1', 'c1', 'delivered', T0);
    expect(lc.cancel('r1', T0 + 1)).toEqual({ ok: false, reason: 'request-terminal' });
    expect(lc.request('r1')!.released).toEqual([]);
  });

  it('fail of a pending request releases its reservations with the reason', () => {
    const lc = setup();
    const res = ok(lc.fail('r1', T0 + 1, 'no-feasible-courier'));
    expect(types(res.events)).toEqual(['request.failed', 'reservation.released']);
    expect(res.events[0]).toMatchObject({ requestId: 'r1', reason: 'no-feasible-courier', courierId: undefined });
    expect(res.events[1]).toMatchObject({ cause: 'failed' });
    expect(released(res.events).map((r) => r.siteId)).toEqual(['bank-1', 'bank-2']);
    expect(lc.request('r1')).toMatchObject({ status: 'failed', failReason: 'no-feasible-courier' });
  });

  it('fail of an offered request revokes the offer; fail of an assigned one is refused', () => {
    const lc = setup();
    lc.addRequest(req('r2'), T0);
    offerId(lc, 'r1', 'c1');
    expect(types(ok(lc.fail('r1', T0 + 1, 'no-source')).events)).toEqual(['offer.revoked', 'courier.status:available', 'request.failed', 'reservation.released']);
    lc.accept(offerId(lc, 'r2', 'c2'), 'c2', T0 + 1);
    expect(lc.fail('r2', T0 + 2, 'no-source')).toEqual({ ok: false, reason: 'request-assigned' });
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('failOverdue fails only pending requests whose deadline has passed', () => {
    const lc = new RequestLifecycle();
    lc.addRequest(req('due', { deadline: T0 + 100, reservations: [ref('b')] }), T0);
    lc.addRequest(req('at-deadline', { deadline: T0 + 200 }), T0);
    lc.addRequest(req('no-deadline'), T0);
    lc.addRequest(req('offered', { deadline: T0 + 100 }), T0);
    lc.setCourierStatus('c1', 'available', T0);
    offerId(lc, 'offered', 'c1');
    const res = ok(lc.failOverdue(T0 + 200));
    expect(res.requestIds).toEqual(['due']);
    expect(types(res.events)).toEqual(['request.failed', 'reservation.released']);
    expect(lc.request('due')).toMatchObject({ status: 'failed', failReason: 'deadline-passed' });
    expect(lc.request('at-deadline')!.status).toBe('pending');
    expect(lc.request('offered')!.status).toBe('offered');
    expect(ok(lc.failOverdue(T0 + 201)).requestIds).toEqual(['at-deadline']);
  });

  it('a request past its deadline cannot be offered', () => {
    const lc = new RequestLifecycle();
    lc.addRequest(req('r1', { deadline: T0 + 10 }), T0);
    lc.setCourierStatus('c1', 'available', T0);
    expect(lc.offer('r1', 'c1', T0 + 11)).toEqual({ ok: false, reason: 'past-deadline' });
    expect(lc.offer('r1', 'c1', T0 + 10).ok).toBe(true);
  });

  it('reservations attached to a live request are released with it; attached after cancellation they are released at once', () => {
    const lc = setup();
    expect(ok(lc.attachReservations('r1', [ref('bank-3')], T0)).events).toEqual([]);
    const cancelled = ok(lc.cancel('r1', T0 + 1));
    expect(released(cancelled.events).map((r) => r.siteId)).toEqual(['bank-1', 'bank-2', 'bank-3']);
    const late = ok(lc.attachReservations('r1', [ref('bank-4')], T0 + 2));
    expect(types(late.events)).toEqual(['reservation.released']);
    expect(released(late.events).map((r) => r.siteId)).toEqual(['bank-4']);
    expect(lc.request('r1')!.released.map((r) => r.siteId)).toEqual(['bank-1', 'bank-2', 'bank-3', 'bank-4']);
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('reservations cannot be attached to a delivered or unknown request', () => {
    const lc = setup();
    lc.accept(offerId(lc, 'r1', 'c1'), 'c1', T0);
    lc.progress('r1', 'c1', 'picked_up', T0);
    lc.progress('r1', 'c1', 'delivered', T0);
    expect(lc.attachReservations('r1', [ref('x')], T0)).toEqual({ ok: false, reason: 'request-terminal' });
    expect(lc.attachReservations('nope', [ref('x')], T0)).toEqual({ ok: false, reason: 'unknown-request' });
  });

  it('a caller mutating the refs it passed does not change what is released', () => {
    const lc = new RequestLifecycle();
    const mine = { ...ref('bank-1', 3) };
    lc.addRequest(req('r1', { reservations: [mine] }), T0);
    mine.count = 99;
    expect(released(ok(lc.cancel('r1', T0)).events)[0].count).toBe(3);
  });

  it('pendingRequests orders emergency, then urgent, then routine, oldest first within each', () => {
    const lc = new RequestLifecycle();
    const add = (id: string, urgency: Urgency, at: number): void => void lc.addRequest(req(id, { urgency }), at);
    add('routine-old', 'routine', T0);
    add('urgent-new', 'urgent', T0 + 5);
    add('emergency-new', 'emergency', T0 + 9);
    add('urgent-old', 'urgent', T0 + 1);
    add('emergency-old', 'emergency', T0 + 2);
    add('routine-same-ms-a', 'routine', T0 + 3);
    add('routine-same-ms-b', 'routine', T0 + 3);
    expect(lc.pendingRequests().map((r) => r.id)).toEqual([
      'emergency-old', 'emergency-new', 'urgent-old', 'urgent-new', 'routine-old', 'routine-same-ms-a', 'routine-same-ms-b',
    ]);
  });

  it('setCourierStatus registers an unknown courier and ignores repeats', () => {
    const lc = new RequestLifecycle();
    const res = ok(lc.setCourierStatus('c9', 'offline', T0));
    expect(res.events).toEqual([{ seq: 1, at: T0, type: 'courier.status', courierId: 'c9', status: 'offline', previous: undefined }]);
    expect(ok(lc.setCourierStatus('c9', 'offline', T0)).events).toEqual([]);
    expect(types(ok(lc.setCourierStatus('c9', 'available', T0)).events)).toEqual(['courier.status:available']);
    expect(lc.courier('c9')!.status).toBe('available');
  });

  it('going offline revokes a live offer and returns the request to pending without excluding the courier', () => {
    const lc = setup();
    const id = offerId(lc, 'r1', 'c1');
    const res = ok(lc.setCourierStatus('c1', 'offline', T0 + 1));
    expect(types(res.events)).toEqual(['offer.revoked', 'request.pending', 'courier.status:available', 'courier.status:offline']);
    expect(res.events[1]).toMatchObject({ cause: 'revoked', offerId: id });
    expect(lc.request('r1')!.status).toBe('pending');
    expect(lc.excludedCouriers('r1')).toEqual([]);
    expect(lc.offer('r1', 'c1', T0 + 2)).toEqual({ ok: false, reason: 'courier-offline' });
    expect(checkInvariants(lc)).toEqual([]);
  });

  it('a busy courier cannot go offline, and setting it available changes nothing', () => {
    const lc = setup();
    lc.accept(offerId(lc, 'r1', 'c1'), 'c1', T0);
    expect(lc.setCourierStatus('c1', 'offline', T0 + 1)).toEqual({ ok: false, reason: 'courier-busy' });
    expect(ok(lc.setCourierStatus('c1', 'available', T0 + 1)).events).toEqual([]);
    expect(lc.courier('c1')!.status).toBe('busy');
  });

  it('forget drops a terminal request and its offers, and refuses a live one', () => {
    const lc = setup();
    const id = offerId(lc, 'r1', 'c1');
    expect(lc.forget('r1')).toEqual({ ok: false, reason: 'request-not-terminal' });
    lc.cancel('r1', T0);
    expect(lc.forget('r1')).toEqual({ ok: true });
    expect(lc.request('r1')).toBeUndefined();
    expect(lc.offerById(id)).toBeUndefined();
    expect(lc.forget('r1')).toEqual({ ok: false, reason: 'unknown-request' });
    expect(checkInvariants(lc)).toEqual([]);
  });
});

describe('RequestLifecycle refusals', () => {
  it('an offer needs a pending request and an available courier without a live offer', () => {
    const lc = setup();
    lc.addRequest(req('r2'), T0);
    lc.addRequest(req('r3'), T0);
    lc.setCourierStatus('off', 'offline', T0);
    offerId(lc, 'r1', 'c1');
    expect(lc.offer('r1', 'c2', T0)).toEqual({ ok: false, reason: 'request-not-pending' });
    expect(lc.offer('r2', 'c1', T0)).toEqual({ ok: false, reason: 'courier-has-offer' });
    expect(lc.offer('r2', 'off', T0)).toEqual({ ok: false, reason: 'courier-offline' });
    lc.accept(offerId(lc, 'r2', 'c2'), 'c2', T0);
    expect(lc.offer('r3', 'c2', T0)).toEqual({ ok: false, reason: 'courier-busy' });
    expect(lc.offer('nope', 'c2', T0)).toEqual({ ok: false, reason: 'unknown-request' });
    expect(lc.offer('r3', 'nobody', T0)).toEqual({ ok: false, reason: 'unknown-courier' });
  });

  it('another courier cannot accept or decline an offer, and the offer stays live', () => {
    const lc = setup();
    const id = offerId(lc, 'r1', 'c1');
    const before = snapshot(lc);
    expect(lc.accept(id, 'c2', T0 + 1)).toEqual({ ok: false, reason: 'not-offer-owner' });
    expect(lc.decline(id, 'c2', T0 + 1)).toEqual({ ok: false, reason: 'not-offer-owner' });
    expect(lc.accept(id, 'stranger', T0 + 1)).toEqual({ ok: false, reason: 'not-offer-owner' });
    expect(snapshot(lc)).toBe(before);
    expect(lc.accept(id, 'c1', T0 + 1).ok).toBe(true);
  });

  it('only the assigned courier can report progress, and only in order', () => {
    const lc = setup();
    lc.addRequest(req('r2'), T0);
    expect(lc.progress('r2', 'c1', 'picked_up', T0)).toEqual({ ok: false, reason: 'request-not-assigned' });
    lc.accept(offerId(lc, 'r1', 'c1'), 'c1', T0);
    const before = snapshot(lc);
    expect(lc.progress('r1', 'c2', 'picked_up', T0 + 1)).toEqual({ ok: false, reason: 'not-assigned-courier' });
    expect(lc.progress('r1', 'c1', 'delivered', T0 + 1)).toEqual({ ok: false, reason: 'out-of-order' });
    expect(snapshot(lc)).toBe(before);
    lc.progress('r1', 'c1', 'picked_up', T0 + 1);
    expect(lc.progress('r1', 'c1', 'picked_up', T0 + 2)).toEqual({ ok: false, reason: 'out-of-order' });
    expect(lc.progress('r1', 'c2', 'delivered', T0 + 2)).toEqual({ ok: false, reason: 'not-assigned-courier' });
    lc.progress('r1', 'c1', 'delivered', T0 + 2);
    expect(lc.progress('r1', 'c1', 'delivered', T0 + 3)).toEqual({ ok: false, reason: 'request-terminal' });
    expect(lc.progress('nope', 'c1', 'delivered', T0 + 3)).toEqual({ ok: false, reason: 'unknown-request' });
  });

  it('an answered offer cannot be answered again', () => {
    const lc = setup();
    const id = offerId(lc, 'r1', 'c1');
    lc.decline(id, 'c1', T0 + 1);
    expect(lc.accept(id, 'c1', T0 + 2)).toEqual({ ok: false, reason: 'offer-closed' });
    expect(lc.decline(id, 'c1', T0 + 2)).toEqual({ ok: false, reason: 'offer-closed' });
  });

  it('unknown ids are values, not throws', () => {
    const lc = setup();
    expect(lc.accept('offer-404', 'c1', T0)).toEqual({ ok: false, reason: 'unknown-offer' });
    expect(lc.decline('offer-404', 'c1', T0)).toEqual({ ok: false, reason: 'unknown-offer' });
    expect(lc.cancel('r404', T0)).toEqual({ ok: false, reason: 'unknown-request' });
    expect(lc.fail('r404', T0, 'x')).toEqual({ ok: false, reason: 'unknown-request' });
    expect(lc.request('r404')).toBeUndefined();
    expect(lc.courier('c404')).toBeUndefined();
    expect(lc.offerById('offer-404')).toBeUndefined();
    expect(lc.assignmentOf('r404')).toBeUndefined();
    expect(lc.excludedCouriers('r404')).toEqual([]);
    expect(lc.addRequest(req('r1'), T0)).toEqual({ ok: false, reason: 'duplicate-request' });
  });

  it('programmer mistakes throw with the fix in the message', () => {
    expect(() => new RequestLifecycle({ offerTtlMs: 0 })).toThrow(/offerTtlMs must be a positive finite/);
    const lc = setup();
    expect(() => lc.expire(Number.NaN)).toThrow(/now must be a finite time/);
    expect(() => lc.addRequest({ id: 'x', kind: 'pizza' as never, urgency: 'routine' }, T0)).toThrow(/kind must be one of/);
    expect(() => lc.addRequest({ id: 'x', kind: 'blood', urgency: 'toString' as never }, T0)).toThrow(/urgency must be/);
    expect(() => lc.setCourierStatus('c1', 'busy' as never, T0)).toThrow(/'available' or 'offline'/);
    expect(() => lc.fail('r1', T0, '')).toThrow(/non-empty reason/);
    expect(() => lc.attachReservations('r1', [{ ...ref('b'), count: 0 }], T0)).toThrow(/positive integer count/);
  });

  it('the onEvent listener sees each event after the state has settled', () => {
    const seen: string[] = [];
    const lc: RequestLifecycle = new RequestLifecycle({ onEvent: (e) => seen.push(`${e.type}@${lc.request('r1')?.status ?? '-'}`) });
    lc.addRequest(req('r1'), T0);
    lc.setCourierStatus('c1', 'available', T0);
    lc.offer('r1', 'c1', T0);
    expect(seen).toEqual(['request.created@pending', 'courier.status@pending', 'offer.created@offered', 'request.offered@offered', 'courier.status@offered']);
  });
});

describe('checkInvariants', () => {
  it('reports a courier whose status disagrees with its offers and a request whose reservations were not released', () => {
    const lc = setup();
    offerId(lc, 'r1', 'c1');
    lc.addRequest(req('r2', { reservations: [ref('b')] }), T0);
    lc.cancel('r2', T0);
    const internals = lc as unknown as { couriers: Map<string, { status: string }>; requests: Map<string, { released: number }> };
    internals.couriers.get('c1')!.status = 'available';
    internals.requests.get('r2')!.released = 0;
    expect(checkInvariants(lc)).toEqual([
      'courier c1 is available with 1 live offers and 0 carried requests',
      'request r2 is cancelled with 0 of 1 reservations released',
    ]);
  });

  it('reports events whose seq does not increase', () => {
    const lc = setup();
    const events = [...ok(lc.offer('r1', 'c1', T0)).events];
    expect(checkInvariants(lc, [events[1], events[0]])).toEqual([`event seq ${events[0].seq} follows ${events[1].seq}`]);
  });
});
