/**
 * The invariants of PRODUCT.md §3 as a check any test (or a debug build) can run over a lifecycle:
 * one live offer (or one stack of them) per courier, one live assignment per request, statuses that agree with offers and
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
    const held = live.filter((o) => o.courierId === c.id);
    const n = liveByCourier.get(c.id) ?? 0;
    if (n > 1 && !held.every((o) => o.stackId !== undefined && o.stackId === held[0].stackId)) problems.push(`courier ${c.id} holds ${n} live offers that are not one stack`);
    if (c.offerIds.length !== n || !c.offerIds.every((id) => held.some((o) => o.id === id))) problems.push(`courier ${c.id} points at offers ${c.offerIds.join(',')}, which are not its ${n} live offers`);
    const carried = c.requestIds.filter((id) => {
      const a = lifecycle.assignmentOf(id);
      return a !== undefined && a.courierId === c.id && a.endedAt === undefined && isCarried(lifecycle.request(id)?.status);
    });
    if (carried.length !== c.requestIds.length) problems.push(`courier ${c.id} lists requests ${c.requestIds.join(',')} but carries only ${carried.join(',')}`);
    const expected = c.status === 'offline' ? 'offline' : carried.length > 0 ? 'busy' : n > 0 ? 'offered' : 'available';
    if (c.status !== expected) problems.push(`courier ${c.id} is ${c.status} with ${n} live offers and ${carried.length} carried requests`);
    if (c.status === 'offline' && (n > 0 || carried.length > 0)) problems.push(`courier ${c.id} is offline yet holds offers or requests`);
    for (const id of c.requestIds) carriers.set(id, [...(carriers.get(id) ?? []), c.id]);
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
