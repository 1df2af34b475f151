/**
 * The invariants of PRODUCT.md §3 as a check any test (or a debug build) can run over a lifecycle:
 * one live offer per courier, one live assignment per request, statuses that agree with offers and
 * assignments, reservations released exactly once, gap-free event numbering.
 */
import { type RequestLifecycle, type LifecycleEvent, isCarried } from './request-lifecycle.js';

/** Every broken invariant of §3, as sentences; empty when the lifecycle is consistent. Pass the events seen to check their numbering too. */
export function checkInvariants(lifecycle: RequestLifecycle, events: readonly LifecycleEvent[] = []): string[] {
  const problems: string[] = [];
  const live = lifecycle.liveOffers();
  const liveByCourier = countBy(live, (o) => o.courierId);
  const liveByRequest = countBy(live, (o) => o.requestId);
  const carriers = new Map<string, string[]>();
  for (const c of lifecycle.allCouriers()) {
    const n = liveByCourier.get(c.id) ?? 0;
    if (n > 1) problems.push(`courier ${c.id} holds ${n} live offers`);
    if ((c.status === 'offered') !== (n === 1)) problems.push(`courier ${c.id} is ${c.status} with ${n} live offers`);
    if (c.offerId !== undefined && !live.some((o) => o.id === c.offerId && o.courierId === c.id)) problems.push(`courier ${c.id} points at offer ${c.offerId}, which is not its live offer`);
    const a = c.requestId === undefined ? undefined : lifecycle.assignmentOf(c.requestId);
    const carrying = a !== undefined && a.courierId === c.id && a.endedAt === undefined && isCarried(lifecycle.request(a.requestId)?.status);
    if ((c.status === 'busy') !== carrying) problems.push(`courier ${c.id} is ${c.status} but ${carrying ? 'carries' : 'does not carry'} request ${String(c.requestId)}`);
    if (c.requestId !== undefined) carriers.set(c.requestId, [...(carriers.get(c.requestId) ?? []), c.id]);
  }
  for (const o of live) {
    if (o.status !== 'live') problems.push(`offer ${o.id} is listed live but is ${o.status}`);
    if (lifecycle.excludedCouriers(o.requestId).includes(o.courierId)) problems.push(`offer ${o.id} went to courier ${o.courierId}, excluded from request ${o.requestId}`);
  }
  for (const r of lifecycle.allRequests()) {
    const n = liveByRequest.get(r.id) ?? 0;
    const liveRecords = lifecycle.offersOf(r.id).filter((o) => o.status === 'live').length;
    if (n > 1 || liveRecords > 1) problems.push(`request ${r.id} has ${Math.max(n, liveRecords)} live offers`);
    if ((r.status === 'offered') !== (n === 1 && r.offerId !== undefined)) problems.push(`request ${r.id} is ${r.status} with ${n} live offers`);
    const holders = carriers.get(r.id) ?? [];
    if (holders.length > 1) problems.push(`request ${r.id} has ${holders.length} live assignments`);
    const a = lifecycle.assignmentOf(r.id);
    const assigned = a !== undefined && a.endedAt === undefined && holders.length === 1 && holders[0] === a.courierId;
    if (isCarried(r.status) !== assigned) problems.push(`request ${r.id} is ${r.status} but ${assigned ? 'has' : 'has no'} live assignment`);
    if (!isCarried(r.status) && holders.length > 0) problems.push(`request ${r.id} is ${r.status} yet courier ${holders[0]} carries it`);
    if (r.status === 'delivered' && (a === undefined || a.deliveredAt === undefined || a.pickedUpAt === undefined)) problems.push(`request ${r.id} is delivered without pickup and delivery times`);
    const mustRelease = r.status === 'cancelled' || r.status === 'failed';
    const releasedAll = r.released.length === r.reservations.length && r.released.every((ref, i) => ref === r.reservations[i]);
    if (mustRelease ? !releasedAll : r.released.length > 0) problems.push(`request ${r.id} is ${r.status} with ${r.released.length} of ${r.reservations.length} reservations released`);
  }
  for (let i = 1; i < events.length; i++) {
    if (!(events[i].seq > events[i - 1].seq)) problems.push(`event seq ${events[i].seq} follows ${events[i - 1].seq}`);
  }
  if (events.length > 0 && events[events.length - 1].seq > lifecycle.lastSeq) problems.push(`event seq ${events[events.length - 1].seq} is beyond lastSeq ${lifecycle.lastSeq}`);
  return problems;
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}
