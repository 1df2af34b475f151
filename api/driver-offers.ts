/**
 * The drivers' side of the stream: their pings in, their answers to offers, and offers and assignments out.
 *
 *   loc (driver)         ─► PositionIngest.one (ingest.ts: the path every ping takes)
 *   locs (admin gateway) ─► the rest of the batch pays per ping ─► PositionIngest.batch ─► { t:'ack', accepted, rejected }
 *   accept / decline     ─► DispatchPump ─► committed, or { t:'error', offerId } (store refused: nothing changed)
 *   driver connects      ─► replaces its older socket (4000) ─► the live offer and the carried leg again
 *   stored events        ─► hear ─► offer / assigned / revoked on the driver's one socket (offers counted by outcome)
 */
import type { DispatchEvent, DispatchLoop } from '../dispatch/dispatch-loop.js';
import { ApiError } from './api-error.js';
import type { Principal } from './auth.js';
import type { DispatchPump } from './dispatch-pump.js';
import type { PositionIngest } from './ingest.js';
import type { ApiMetrics } from './metrics.js';
import type { TokenBuckets } from './rate-limit.js';
import { type RequestBook, principalKey } from './request-book.js';
import { type Socket, type SocketState, type StreamSockets, safeEnd } from './stream-sockets.js';

/** What the driver side works with; each part owned by the caller. */
export interface DriverOfferDeps {
  ingest: PositionIngest;
  pump: DispatchPump;
  loop: DispatchLoop;
  book: RequestBook;
  /** The admin gateways' bucket: a `locs` batch pays per ping. */
  gateway: TokenBuckets;
  metrics: ApiMetrics;
  clock: () => number;
  sockets: Pick<StreamSockets, 'send' | 'refuse'>;
}

/** Drivers by courier id (one live socket each): their pings, their answers, the offers they hear. */
export class DriverOffers {
  private readonly deps: DriverOfferDeps;
  private readonly drivers = new Map<string, Socket>();

  constructor(deps: DriverOfferDeps) {
    this.deps = deps;
  }

  /** A driver's socket opened: it replaces the driver's older one and hears what it holds. */
  connected(s: Socket, courierId: string): void {
    const previous = this.drivers.get(courierId);
    this.drivers.set(courierId, s);
    // one live socket per driver: a reconnecting phone replaces its stale connection
    if (previous !== undefined && previous !== s) safeEnd(previous, 4000, 'replaced by a newer connection');
    this.catchUp(s, courierId);
  }

  /** A socket closed: forgotten if it was the driver's live one. */
  disconnected(s: Socket, courierId: string): void {
    if (this.drivers.get(courierId) === s) this.drivers.delete(courierId);
  }

  /** A driver's `loc`. */
  loc(courierId: string, m: { lat: number; lng: number; ts: number }): void {
    this.deps.ingest.one(courierId, m.lat, m.lng, m.ts);
  }

  /** A gateway's `locs`: acknowledged with what was accepted and what was rejected. */
  locs(s: Socket, p: Principal, items: unknown[]): void {
    // one token was paid on arrival; the rest of the batch pays per ping
    const verdict = items.length > 1 ? this.deps.gateway.take(`ws:${principalKey(p.role, p.sub)}`, this.deps.clock(), items.length - 1) : { ok: true as const };
    if (!verdict.ok) throw new ApiError(429, 'E_RATE_LIMITED', `too many pings; retry after ${verdict.retryAfterSec} s`);
    this.deps.sockets.send(s, { t: 'ack', ...this.deps.ingest.batch(items) });
  }

  /** A driver's `accept` / `decline`; a commit the store refuses comes back as an error frame naming the offer. */
  answer(s: Socket, st: SocketState, t: 'accept' | 'decline', offerId: string): void {
    const p = st.principal;
    const commit = t === 'accept' ? this.deps.pump.accept(offerId, p.sub) : this.deps.pump.decline(offerId, p.sub);
    commit.acknowledged.catch((err: unknown) => {
      if (st.open) this.deps.sockets.refuse(s, st, err, { offerId });
    });
  }

  /** A stored dispatch event: offer / assigned / revoked to the driver it concerns; offers counted by outcome. */
  hear(e: DispatchEvent): void {
    const out = driverFrame(e, (leg) => this.parentId(leg));
    if (out !== undefined) this.toDriver(out.courierId, out.frame);
    if (e.type === 'offer.created') this.deps.metrics.offersTotal.inc({ outcome: 'sent' });
    if (e.type === 'offer.accepted' || e.type === 'offer.declined' || e.type === 'offer.expired' || e.type === 'offer.revoked') {
      this.deps.metrics.offersTotal.inc({ outcome: e.type.slice('offer.'.length) });
    }
  }

  /** Sends a frame to the courier's socket, if it has one open. */
  private toDriver(courierId: string, frame: Record<string, unknown>): void {
    const s = this.drivers.get(courierId);
    if (s !== undefined) this.deps.sockets.send(s, frame);
  }

  private parentId(legId: string): string {
    return this.deps.book.parentOf(legId)?.id ?? legId;
  }

  /** A driver (re)connecting hears the offer it holds and the leg it carries: frames sent while it was away are not lost. */
  private catchUp(s: Socket, courierId: string): void {
    for (const frame of catchUpFrames(this.deps.loop, courierId, (leg) => this.parentId(leg))) this.deps.sockets.send(s, frame);
  }
}

/** The frame a driver hears of a stored dispatch event, and which driver: offer, assigned or revoked (else undefined). */
export function driverFrame(e: DispatchEvent, parentId: (legId: string) => string): { courierId: string; frame: Record<string, unknown> } | undefined {
  switch (e.type) {
    case 'offer.created':
      return { courierId: e.courierId, frame: offerFrame({ id: e.offerId, requestId: e.requestId, details: e.details, expiresAt: e.expiresAt, stackId: e.stackId }) };
    case 'request.assigned':
      return { courierId: e.courierId, frame: { t: 'assigned', offerId: e.offerId, requestId: parentId(e.requestId), legId: e.requestId } };
    case 'offer.expired':
    case 'offer.revoked':
      return { courierId: e.courierId, frame: { t: 'revoked', offerId: e.offerId, requestId: parentId(e.requestId), legId: e.requestId, reason: e.type === 'offer.expired' ? 'expired' : 'revoked' } };
    case 'request.cancelled':
      return e.courierId === undefined ? undefined : { courierId: e.courierId, frame: { t: 'revoked', requestId: parentId(e.requestId), legId: e.requestId, reason: 'cancelled' } };
    default:
      return undefined;
  }
}

/**
 * What one dispatch loop holds a courier on, as the courier view shows it: its (first) offer and leg, and every
 * one of them when it holds a stack or carries several legs; undefined when it holds nothing.
 */
export function courierHold(loop: DispatchLoop, courierId: string): { offerId?: string; requestId?: string; offerIds?: readonly string[]; requestIds?: readonly string[] } | undefined {
  const held = loop.lifecycle.courier(courierId);
  if (held === undefined || (held.offerIds.length === 0 && held.requestIds.length === 0)) return undefined;
  return {
    ...(held.offerId ? { offerId: held.offerId } : {}),
    ...(held.requestId ? { requestId: held.requestId } : {}),
    ...(held.offerIds.length > 1 ? { offerIds: held.offerIds } : {}),
    ...(held.requestIds.length > 1 ? { requestIds: held.requestIds } : {}),
  };
}

/** What a (re)connecting driver hears again from one dispatch loop: the offers it holds (one, or a stack's) and every leg it carries. */
export function catchUpFrames(loop: DispatchLoop, courierId: string, parentId: (legId: string) => string): Record<string, unknown>[] {
  const frames: Record<string, unknown>[] = [];
  const lifecycle = loop.lifecycle;
  const live = lifecycle.liveOffersOf(courierId);
  const open = new Set(live.map((o) => o.requestId));
  for (const offer of live) {
    const frame = offerFrame(offer);
    // a stack whose legs were cancelled since it was offered: the driver hears what is left of it
    if (Array.isArray(frame.stack)) frame.stack = (frame.stack as { legId: string }[]).filter((l) => open.has(l.legId));
    if (Array.isArray(frame.stops)) frame.stops = (frame.stops as { legId: string }[]).filter((l) => open.has(l.legId));
    frames.push(frame);
  }
  for (const a of lifecycle.assignmentsOf(courierId)) frames.push({ t: 'assigned', offerId: a.offerId, requestId: parentId(a.requestId), legId: a.requestId });
  return frames;
}

/**
 * The `{ t:'offer' }` frame of an offer: the parent request, the leg, where and when, and when it expires. An offer of
 * a stack also names its `stackId` and carries the whole stack (`stack`: its legs; `stops`: the order to drive them):
 * the driver gets one frame per leg, and answering any one answers the stack. An offer made en route says so
 * (`enRoute: { finishIn }`: seconds until the trip the driver is on ends; `eta` counts them).
 */
function offerFrame(o: { id: string; requestId: string; details: Readonly<Record<string, unknown>> | undefined; expiresAt: number; stackId?: string }): Record<string, unknown> {
  const d = o.details ?? {};
  const requestId = typeof d.parentId === 'string' ? d.parentId : o.requestId;
  const frame: Record<string, unknown> = { t: 'offer', offerId: o.id, requestId, legId: o.requestId, kind: d.kind, pickup: d.pickup, dropoff: d.dropoff, eta: d.eta, expiresAt: o.expiresAt };
  if (o.stackId !== undefined) Object.assign(frame, { stackId: o.stackId, stack: d.stack, stops: d.stops });
  if (d.enRoute !== undefined) frame.enRoute = d.enRoute;
  return frame;
}
