/**
 * One publish of the dispatch loop's events as the rows the store writes in one transaction.
 *
 *   events (lifecycle + blood.status) ─► TransitionBuilder.add ─► build() ─► Transition
 *        request.created ─► the parent row (submission payload, owner, reference, Idempotency-Key reply) + leg rows
 *        offer.* / request.* / courier.status / reservation.released ─► status, offer, assignment, reservation rows
 *
 * Events beyond the lifecycle ride in the same transaction, without a lifecycle seq (the outbox numbers them):
 * `donor.callout` with a created blood request whose plan calls donors, `stock.low` when its reservations take a
 * bank's product and type below the configured level (dispatch/stock-low.ts).
 *
 * Transition seq = seqBase + the seq of its last lifecycle event, so numbering continues above what the store
 * held at start (recovery.ts) and a retried transition is applied once (the store ignores a seen seq).
 */
import type { DispatchEvent, DispatchLoop } from '../dispatch/dispatch-loop.js';
import type { DonorCallout } from '../dispatch/donor-callout.js';
import { type AvailableLot, availableByType, keyOf, stockLowEvents } from '../dispatch/stock-low.js';
import type { RequestPayload } from './recovery.js';
import type { IdempotencyRow, OfferRow, RequestRow, ReservationRow, Transition } from './store.js';

/** What the journal knows of a request beyond its events (registered before the submit's events publish). */
export interface JournalRequest extends RequestPayload {
  id: string;
  requesterId: string;
  /** Role of the principal that created it: ownership is role and sub together. */
  requesterRole?: string;
  /** The client's own reference (≤ 128 chars). */
  reference?: string;
  /** The Idempotency-Key it was created under, with the first answer (stored in the same transaction). */
  idempotency?: Omit<IdempotencyRow, 'requestId' | 'createdAt'>;
}

/** Where the builder finds a leg's parent registration. */
export interface RequestRegistry {
  parent(legId: string): JournalRequest | undefined;
}

/** Optional event sources of a transition. */
export interface BuilderOptions {
  /** stock.low: where availability is read after the change (memory already holds it) and the level. */
  stock?: { sites: { has(id: string): boolean; lots(id: string): AvailableLot[] }; level: number };
}

/** Collects one publish's events into the fields of a Transition. */
export class TransitionBuilder {
  private readonly requests: RequestRow[] = [];
  private readonly idempotency: IdempotencyRow[] = [];
  private readonly status = new Map<string, NonNullable<Transition['requestStatus']>[number]>();
  private readonly offers: OfferRow[] = [];
  private readonly offerStatus: NonNullable<Transition['offerStatus']> = [];
  private readonly ended: { requestId: string }[] = [];
  private readonly started: NonNullable<Transition['assignmentsStarted']> = [];
  private readonly made: ReservationRow[] = [];
  private readonly released: ReservationRow[] = [];
  private readonly issued: ReservationRow[] = [];
  private readonly couriers = new Map<string, NonNullable<Transition['courierStatus']>[number]>();
  private readonly events: NonNullable<Transition['events']> = [];
  private readonly written = new Set<string>();
  private seq = 0;
  private at = 0;

  constructor(private readonly registry: RequestRegistry, private readonly loop: DispatchLoop, private readonly seqBase: number, private readonly options: BuilderOptions = {}) {}

  /** The transition of these events, or undefined when they hold no state change worth storing. */
  static build(registry: RequestRegistry, loop: DispatchLoop, seqBase: number, events: readonly DispatchEvent[], options: BuilderOptions = {}): Transition | undefined {
    const b = new TransitionBuilder(registry, loop, seqBase, options);
    for (const e of events) b.add(e);
    return b.build();
  }

  add(e: DispatchEvent): void {
    this.seq = Math.max(this.seq, e.seq);
    this.at = e.at;
    if (e.type === 'blood.status') {
      this.setStatus(e.requestId, e.status);
      return; // derived: its seq is its leg event's
    }
    const { seq, at, type, ...rest } = e as DispatchEvent & Record<string, unknown>;
    const requestId = (e as { requestId?: string }).requestId;
    const courierId = (e as { courierId?: string }).courierId;
    delete rest.requestId;
    delete rest.courierId;
    this.events.push({ seq: this.seqBase + seq, at, type, requestId, courierId, payload: rest });
    switch (e.type) {
      case 'request.created':
        this.created(e.requestId, e.at);
        break;
      case 'request.offered':
      case 'request.pending':
        this.setStatus(e.requestId, e.type === 'request.offered' ? 'offered' : 'pending');
        break;
      case 'request.assigned':
        this.setStatus(e.requestId, 'assigned');
        this.started.push({ requestId: e.requestId, courierId: e.courierId, offerId: e.offerId, createdAt: e.at });
        break;
      case 'request.picked_up':
        this.setStatus(e.requestId, 'picked_up');
        this.issued.push(...this.heldBy(e.requestId));
        break;
      case 'request.delivered':
      case 'request.cancelled':
      case 'request.failed':
        this.setStatus(e.requestId, e.type.slice('request.'.length) as 'delivered' | 'cancelled' | 'failed');
        this.ended.push({ requestId: e.requestId });
        break;
      case 'offer.created':
        this.offers.push({ id: e.offerId, requestId: e.requestId, courierId: e.courierId, status: 'live', createdAt: e.at, expiresAt: e.expiresAt, ...(e.details ? { details: { ...e.details } } : {}) });
        break;
      case 'offer.accepted':
      case 'offer.declined':
      case 'offer.expired':
      case 'offer.revoked':
        this.offerStatus.push({ id: e.offerId, status: e.type.slice('offer.'.length) as 'accepted' | 'declined' | 'expired' | 'revoked' });
        break;
      case 'courier.status':
        this.couriers.set(e.courierId, { id: e.courierId, status: e.status });
        break;
      case 'reservation.released':
        this.released.push(...e.reservations.map((r) => ({ requestId: e.requestId, siteId: r.siteId, product: r.product, bloodType: r.bloodType, expiresAt: r.expiresAt, count: r.count })));
        break;
    }
  }

  build(): Transition | undefined {
    if (this.events.length === 0 && this.status.size === 0) return undefined;
    this.stockLow();
    const t: Transition = { seq: this.seqBase + this.seq, at: this.at };
    if (this.requests.length > 0) t.requests = this.requests;
    if (this.idempotency.length > 0) t.idempotency = this.idempotency;
    if (this.status.size > 0) t.requestStatus = [...this.status.values()];
    if (this.offers.length > 0) t.offers = this.offers;
    if (this.offerStatus.length > 0) t.offerStatus = this.offerStatus;
    if (this.ended.length > 0) t.assignmentsEnded = this.ended;
    if (this.started.length > 0) t.assignmentsStarted = this.started;
    if (this.made.length > 0) t.reservationsMade = this.made;
    if (this.released.length > 0) t.reservationsReleased = this.released;
    if (this.issued.length > 0) t.reservationsIssued = this.issued;
    if (this.couriers.size > 0) t.courierStatus = [...this.couriers.values()];
    if (this.events.length > 0) t.events = this.events;
    return t;
  }

  private created(legId: string, at: number): void {
    const parent = this.registry.parent(legId);
    const leg = this.loop.lifecycle.request(legId);
    if (parent !== undefined && !this.written.has(parent.id)) {
      this.written.add(parent.id);
      const s = parent.submission;
      const payload: RequestPayload = { submission: s, pickup: parent.pickup, dropoff: parent.dropoff, legs: parent.legs, ...(parent.plan ? { plan: parent.plan } : {}) };
      this.requests.push({
        id: parent.id, kind: s.kind, urgency: s.urgency, status: 'pending', createdAt: s.createdAt, updatedAt: at, requesterId: parent.requesterId,
        ...(parent.requesterRole !== undefined ? { requesterRole: parent.requesterRole } : {}),
        ...(parent.reference !== undefined ? { reference: parent.reference } : {}),
        ...(parent.idempotency !== undefined ? { idempotencyKey: parent.idempotency.key } : {}),
        payload: payload as unknown as Record<string, unknown>,
      });
      if (parent.idempotency !== undefined) this.idempotency.push({ ...parent.idempotency, requestId: parent.id, createdAt: s.createdAt });
      this.callout(parent.id, parent.plan?.callout as DonorCallout | undefined, at);
    }
    if (parent === undefined || legId !== parent.id) {
      this.requests.push({
        id: legId, kind: leg?.kind ?? 'delivery', urgency: leg?.urgency ?? 'routine', status: 'pending', createdAt: leg?.createdAt ?? at, updatedAt: at,
        ...(parent !== undefined ? { parentId: parent.id, requesterId: parent.requesterId } : {}),
      });
    }
    this.made.push(...this.heldBy(legId));
  }

  /** donor.callout: counts and donor ids per wave, nothing about the donors themselves. */
  private callout(requestId: string, callout: DonorCallout | undefined, at: number): void {
    if (callout === undefined || callout.called === 0) return;
    const waves = callout.waves.map((w) => ({ radius: w.radius, donorIds: [...w.donorIds] }));
    this.events.push({ at, type: 'donor.callout', requestId, payload: { called: callout.called, target: callout.target, enough: callout.enough, waves } });
  }

  /** stock.low for each bank product and type this transition's reservations took below the level. */
  private stockLow(): void {
    const stock = this.options.stock;
    if (stock === undefined || this.made.length === 0) return;
    const taken = new Map<string, Map<string, number>>();
    for (const r of this.made) {
      const bySite = taken.get(r.siteId) ?? taken.set(r.siteId, new Map()).get(r.siteId)!;
      bySite.set(keyOf(r.product, r.bloodType), (bySite.get(keyOf(r.product, r.bloodType)) ?? 0) + r.count);
    }
    for (const [siteId, units] of taken) {
      if (!stock.sites.has(siteId)) continue;
      const after = availableByType(stock.sites.lots(siteId));
      const before = new Map([...units].map(([key, n]) => [key, (after.get(key) ?? 0) + n]));
      this.events.push(...stockLowEvents(siteId, before, after, stock.level, this.at));
    }
  }

  private heldBy(legId: string): ReservationRow[] {
    const r = this.loop.lifecycle.request(legId);
    return (r?.reservations ?? []).map((x) => ({ requestId: legId, siteId: x.siteId, product: x.product, bloodType: x.bloodType, expiresAt: x.expiresAt, count: x.count }));
  }

  private setStatus(id: string, status: NonNullable<Transition['requestStatus']>[number]['status']): void {
    this.status.delete(id); // re-insert: the last status wins and keeps its place after earlier ones
    this.status.set(id, { id, status });
  }
}
