/**
 * How a request looks to the people watching it, read from the request book, the dispatch loop and the
 * courier index: the map's request entry (dispatchers), the track frame (requesters), and the full view
 * the create answer and GET /v1/requests/{id} share — also for a request only the store still holds.
 */
import type { DispatchLoop, RequestSummary } from '../dispatch/dispatch-loop.js';
import { driveSeconds } from '../dispatch/travel-time.js';
import { stopOrder } from '../dispatch/en-route.js';
import type { StoredRequest } from '../store/store.js';
import type { RequestPayload } from '../store/recovery.js';
import type { CourierIndex, CourierView } from '../engine/courier-index.js';
import type { BookedRequest, RequestBook } from './request-book.js';
import type { WatchRequest } from './watch-session.js';

/** Where request views are read from. */
export interface RequestViewSources {
  book: RequestBook;
  loop: DispatchLoop;
  couriers: CourierIndex;
}

/** A requester's `{ t:'request' }` frame: status, and while a courier carries it, its position and ETA. */
// a type alias (not an interface) so it passes where a frame record is expected
export type TrackFrame = {
  t: 'request';
  id: string;
  status: string;
  courier?: { lat: number; lng: number };
  eta?: number;
};

/** A request's state for the map, or undefined when the API does not know it. */
export function watchRequestOf(src: RequestViewSources, id: string): WatchRequest | undefined {
  const booked = src.book.get(id);
  const summary = src.loop.status(id);
  if (booked === undefined || summary === undefined) return undefined;
  const r: WatchRequest = { id, kind: booked.kind, status: summary.status, pickup: booked.pickup, dropoff: booked.dropoff };
  const carried = summary.legs.find((l) => l.courierId !== undefined && l.status !== 'cancelled' && l.status !== 'failed');
  if (carried?.courierId !== undefined) {
    r.courierId = carried.courierId;
    // how the courier came to carry it: in a stack, or en route after its trip (the accepted offer says)
    const offer = carried.offerId === undefined ? undefined : src.loop.lifecycle.offerById(carried.offerId);
    if (offer?.stackId !== undefined) r.stackId = offer.stackId;
    if (offer?.details?.enRoute !== undefined && carried.status === 'assigned') r.enRoute = true;
  }
  return r;
}

/** The track frame of a request (also the live part of GET /v1/requests/{id}), or undefined when unknown. */
export function trackFrameOf(src: RequestViewSources, id: string): TrackFrame | undefined {
  const booked = src.book.get(id);
  const summary = src.loop.status(id);
  if (booked === undefined || summary === undefined) return undefined;
  const frame: TrackFrame = { t: 'request', id, status: summary.status };
  const leg = summary.legs.find((l) => l.courierId !== undefined && (l.status === 'assigned' || l.status === 'picked_up'));
  const c = leg?.courierId === undefined ? undefined : src.couriers.get(leg.courierId);
  if (leg !== undefined && c !== undefined && !Number.isNaN(c.lat)) {
    frame.courier = { lat: c.lat, lng: c.lng };
    frame.eta = Math.round(remainingSeconds(src, c, stopsAhead(src, leg.courierId!, leg.id, booked, c)));
  }
  return frame;
}

type Point = { lat: number; lng: number };

/**
 * Where the courier drives before this leg reaches its dropoff, in order: what it carries from before first when
 * it took this leg en route, then its stack's stops as offered (or the leg's own pickup and dropoff), each only
 * while still ahead (a pickup until picked up, a dropoff until delivered).
 */
function stopsAhead(src: RequestViewSources, courierId: string, legId: string, booked: BookedRequest, from: Point): Point[] {
  const lc = src.loop.lifecycle;
  const ahead = (id: string, action: 'pickup' | 'dropoff'): boolean => {
    const status = lc.request(id)?.status;
    return action === 'pickup' ? status === 'assigned' : status === 'assigned' || status === 'picked_up';
  };
  const accepted = (id: string) => {
    const a = lc.assignmentOf(id);
    return a === undefined ? undefined : lc.offerById(a.offerId);
  };
  const mine = accepted(legId);
  const own = src.loop.leg(legId) ?? booked;
  const stops = (mine?.details?.stops as { legId: string; action: 'pickup' | 'dropoff'; at: Point }[] | undefined) ?? [
    { legId, action: 'pickup' as const, at: own.pickup },
    { legId, action: 'dropoff' as const, at: own.dropoff },
  ];
  const points: Point[] = [];
  if (mine?.details?.enRoute !== undefined) {
    // the trip it is on first, in the order dispatch timed it (en-route.ts stopOrder)
    const pickups: { at: Point }[] = [];
    const dropoffs: { at: Point }[] = [];
    for (const id of lc.courier(courierId)?.requestIds ?? []) {
      const other = src.loop.leg(id);
      if (id === legId || other === undefined || stops.some((s) => s.legId === id)) continue;
      if (ahead(id, 'pickup')) pickups.push({ at: other.pickup });
      if (ahead(id, 'dropoff')) dropoffs.push({ at: other.dropoff });
    }
    for (const stop of stopOrder(from, pickups, dropoffs)) points.push(stop.at);
  }
  for (const s of stops) {
    if (!ahead(s.legId, s.action)) continue;
    points.push(s.at);
    if (s.legId === legId && s.action === 'dropoff') break;
  }
  return points;
}

// Seconds of driving through `stops` from where the courier is, timed as dispatch times every route: the loop's
// policy, the courier's vehicle, the learned speed where each stretch starts.
function remainingSeconds(src: RequestViewSources, c: CourierView, stops: readonly Point[]): number {
  const drive = { policy: src.loop.policy, vehicle: c.vehicle, speeds: src.loop.speeds };
  let seconds = 0;
  let from: Point = c;
  stops.forEach((to, i) => {
    seconds += driveSeconds(from, to, i === 0 ? { ...drive, fromCell: c.cell } : drive);
    from = to;
  });
  return seconds;
}

/** The view of a request in the create answer and GET /v1/requests/{id}: the same fields either way. */
export interface RequestView {
  id: string;
  kind: string;
  status: string;
  urgency: string;
  createdAt: number;
  reference?: string;
  pickup: { lat: number; lng: number };
  dropoff: { lat: number; lng: number };
  legs: { id: string; status: string; courierId?: string; offerId?: string; siteId?: string }[];
  assignment?: { courierId: string; offerId?: string };
  courier?: { lat: number; lng: number };
  eta?: number;
  /** Sources (banks, lots with product/type/expiry/count), recipient, shortfall, call-out, dueAt. */
  plan: Record<string, unknown>;
}

/** A live request as `role` may see it (requesters see how many donors were called, never who). */
export function liveRequestView(src: RequestViewSources, r: BookedRequest, summary: RequestSummary | undefined, role: string): RequestView {
  const live = trackFrameOf(src, r.id);
  const legs = (summary?.legs ?? []).map((l) => ({ id: l.id, status: l.status, ...defined({ courierId: l.courierId, offerId: l.offerId, siteId: l.siteId }) }));
  const assigned = legs.find((l) => l.courierId !== undefined && (l.status === 'assigned' || l.status === 'picked_up'));
  return {
    id: r.id, kind: r.kind, status: summary?.status ?? 'pending', urgency: r.urgency, createdAt: r.createdAt,
    ...(r.reference !== undefined ? { reference: r.reference } : {}),
    pickup: r.pickup, dropoff: r.dropoff, legs,
    ...(assigned ? { assignment: { courierId: assigned.courierId!, ...defined({ offerId: assigned.offerId }) } } : {}),
    ...(live?.courier ? { courier: live.courier } : {}),
    ...(live?.eta !== undefined ? { eta: live.eta } : {}),
    plan: planFor(role, r.plan ?? {}),
  };
}

/** A request only the store holds (ended and gone from memory, or from before a restart). */
export function storedRequestView(s: StoredRequest, role: string): RequestView {
  const r = s.request;
  const payload = (r.payload ?? {}) as Partial<RequestPayload>;
  const rows = s.legs.length > 0 ? s.legs : [r];
  const legs = rows.map((leg) => {
    const a = [...s.assignments].reverse().find((x) => x.requestId === leg.id);
    const slash = leg.id.lastIndexOf('/');
    return {
      id: leg.id, status: leg.status,
      ...defined({ courierId: a?.courierId, offerId: a?.offerId, siteId: r.kind === 'blood' && slash >= 0 ? leg.id.slice(slash + 1) : undefined }),
    };
  });
  const live = s.assignments.find((a) => a.endedAt === undefined && legs.some((l) => l.id === a.requestId && (l.status === 'assigned' || l.status === 'picked_up')));
  const here = payload.pickup ?? payload.dropoff ?? { lat: 0, lng: 0 };
  return {
    id: r.id, kind: r.kind, status: r.status, urgency: r.urgency, createdAt: r.createdAt,
    ...(r.reference !== undefined ? { reference: r.reference } : {}),
    pickup: here, dropoff: payload.dropoff ?? here, legs,
    ...(live ? { assignment: { courierId: live.courierId, ...defined({ offerId: live.offerId }) } } : {}),
    plan: planFor(role, payload.plan ?? {}),
  };
}

/** The plan as `role` may see it: a requester learns how many donors a call-out reached, not who they are. */
export function planFor(role: string, plan: Record<string, unknown>): Record<string, unknown> {
  const callout = plan.callout as { waves?: { radius: number; donorIds: string[] }[]; called?: number; target?: number; enough?: boolean } | undefined;
  if (callout === undefined || role === 'dispatcher' || role === 'admin') return plan;
  const waves = (callout.waves ?? []).map((w) => ({ radius: w.radius, donors: w.donorIds.length }));
  return { ...plan, callout: { called: callout.called, target: callout.target, enough: callout.enough, waves } };
}

function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const k in o) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
