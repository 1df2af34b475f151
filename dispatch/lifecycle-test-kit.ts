/**
 * What the RequestLifecycle suites share (request-lifecycle.test.ts, lifecycle-random-walk.test.ts): a test clock,
 * reservations to hand over, the ones released, and everything observable of a lifecycle as one string.
 */
import type { LifecycleEvent, RequestLifecycle, ReservationRef } from './request-lifecycle.js';

/** The suites' epoch ms. */
export const T0 = 1_700_000_000_000;

/** A reservation of `count` A+ red cells at `siteId`, expiring a day after T0. */
export function ref(siteId: string, count = 2): ReservationRef {
  return { siteId, product: 'red_cells', bloodType: 'A+', expiresAt: T0 + 86_400_000, count };
}

/** Every reservation the events released, in order. */
export function released(events: readonly LifecycleEvent[]): ReservationRef[] {
  return events.flatMap((e) => (e.type === 'reservation.released' ? [...e.reservations] : []));
}

/** Everything observable, to show that a refused call changed nothing. */
export function snapshot(lc: RequestLifecycle): string {
  const requests = lc.allRequests().map((r) => ({ ...r, excluded: lc.excludedCouriers(r.id), assignment: lc.assignmentOf(r.id), offers: lc.offersOf(r.id) }));
  return JSON.stringify({ seq: lc.lastSeq, requests, couriers: lc.allCouriers(), live: lc.liveOffers() });
}
