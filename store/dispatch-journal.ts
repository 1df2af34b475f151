/**
 * The dispatch loop's transitions, committed to the store in order before anyone is told about them.
 *
 *   DispatchPump.publish() ─► record(events) ─► transitionOf(events) ─► queue ─► store.commitTransition (one at a time)
 *        │                                                                  │ ok   ─► attempt + done resolve
 *        │                                                                  │ fail ─► attempt rejects (HTTP 503), the
 *        │                                                                  │         transition stays first in line and is
 *        │                                                                  │         retried after a capped back-off
 *        └─► frames to sockets wait for `done` (so an `assigned` frame is never ahead of its commit)
 *
 * Transition seq = seqBase + the seq of its last lifecycle event, so numbering continues above what the
 * store held at start (recovery.ts) and a retried transition is applied once (the store ignores a seen seq).
 */
import type { DispatchEvent, DispatchLoop } from '../dispatch/dispatch-loop.js';
import type { RequestPayload } from './recovery.js';
import type { OfferRow, RequestRow, ReservationRow, Store, Transition } from './store.js';

/** What the journal knows of a request beyond its events (registered before the submit's events publish). */
export interface JournalRequest extends RequestPayload {
  id: string;
  requesterId: string;
  idempotencyKey?: string;
}

/** One recorded transition's fate: `attempt` settles after the first try (rejects when it failed), `done` once it is in. */
export interface Recorded {
  attempt: Promise<void>;
  done: Promise<void>;
  /** Changes an assignment, a request's life or a reservation: whoever is told must hear after the commit. */
  durable: boolean;
}

/** Back-off after a failed commit: doubles from 100 ms to at most 5 s, so a database back within seconds costs seconds. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

/** Orders and commits the loop's transitions. */
export class DispatchJournal {
  private readonly queue: Entry[] = [];
  private readonly requests = new Map<string, JournalRequest>();
  private readonly parentOfLeg = new Map<string, string>();
  private running = false;
  private healthy = true;
  private failures = 0;
  private committedCount = 0;

  constructor(
    private readonly store: Pick<Store, 'commitTransition'>,
    private readonly loop: DispatchLoop,
    private readonly seqBase: number,
    private readonly onHealthChange?: (healthy: boolean, cause?: unknown) => void,
  ) {}

  /** Registers a request's submission before its events are recorded (its row carries it for recovery). */
  describe(request: JournalRequest): void {
    this.requests.set(request.id, request);
    for (const leg of request.legs) this.parentOfLeg.set(leg, request.id);
  }

  /** Queues the transition of these events; resolves nothing and commits nothing when none changes state. */
  record(events: readonly DispatchEvent[]): Recorded {
    const t = this.transitionOf(events);
    if (t === undefined) return { attempt: Promise.resolve(), done: Promise.resolve(), durable: false };
    return this.commit(t);
  }

  /** Commits a prepared transition (recovery's expiry) in line with the others. */
  commit(t: Transition): Recorded {
    const entry = new Entry(t);
    this.queue.push(entry);
    void this.run();
    return { attempt: entry.attempt.promise, done: entry.done.promise, durable: isDurable(t) };
  }

  /** False while the last commit failed (until one succeeds). */
  isHealthy(): boolean {
    return this.healthy;
  }

  /** Transitions waiting (the one being tried included). */
  get backlog(): number {
    return this.queue.length;
  }

  /** Transitions committed since start. */
  get committed(): number {
    return this.committedCount;
  }

  /** Resolves once everything recorded so far is committed. */
  async settled(): Promise<void> {
    const last = this.queue.at(-1);
    if (last !== undefined) await last.done.promise;
  }

  /** The transition of one publish, or undefined when it holds no state change worth storing. */
  transitionOf(events: readonly DispatchEvent[]): Transition | undefined {
    const b = new TransitionBuilder(this, this.loop, this.seqBase);
    for (const e of events) b.add(e);
    return b.build();
  }

  /** @internal the request a leg belongs to, and its registration. */
  parent(legId: string): JournalRequest | undefined {
    return this.requests.get(this.parentOfLeg.get(legId) ?? legId);
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const entry = this.queue[0];
        try {
          await this.store.commitTransition(entry.t);
        } catch (err) {
          this.failures++;
          this.setHealthy(false, err);
          for (const e of this.queue) e.fail(err);
          await sleep(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(10, this.failures - 1)));
          continue;
        }
        this.queue.shift();
        this.failures = 0;
        this.committedCount++;
        this.setHealthy(true);
        entry.succeed();
        this.forgetTerminal(entry.t);
      }
    } finally {
      this.running = false;
    }
  }

  private setHealthy(healthy: boolean, cause?: unknown): void {
    if (healthy === this.healthy) return;
    this.healthy = healthy;
    this.onHealthChange?.(healthy, cause);
  }

  /** Registrations of finished requests are dropped so memory follows the open requests only. */
  private forgetTerminal(t: Transition): void {
    for (const s of t.requestStatus ?? []) {
      if (s.status !== 'delivered' && s.status !== 'cancelled' && s.status !== 'failed') continue;
      const parent = this.requests.get(s.id);
      if (parent === undefined) continue;
      this.requests.delete(s.id);
      for (const leg of parent.legs) this.parentOfLeg.delete(leg);
    }
  }
}

/** Collects one publish's events into the fields of a Transition. */
class TransitionBuilder {
  private readonly requests: RequestRow[] = [];
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

  constructor(private readonly journal: DispatchJournal, private readonly loop: DispatchLoop, private readonly seqBase: number) {}

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
    const t: Transition = { seq: this.seqBase + this.seq, at: this.at };
    if (this.requests.length > 0) t.requests = this.requests;
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
    const parent = this.journal.parent(legId);
    const leg = this.loop.lifecycle.request(legId);
    if (parent !== undefined && !this.written.has(parent.id)) {
      this.written.add(parent.id);
      const s = parent.submission;
      const payload: RequestPayload = { submission: s, pickup: parent.pickup, dropoff: parent.dropoff, legs: parent.legs, ...(parent.plan ? { plan: parent.plan } : {}) };
      this.requests.push({
        id: parent.id, kind: s.kind, urgency: s.urgency, status: 'pending', createdAt: s.createdAt, updatedAt: at, requesterId: parent.requesterId,
        ...(parent.idempotencyKey !== undefined ? { idempotencyKey: parent.idempotencyKey } : {}),
        payload: payload as unknown as Record<string, unknown>,
      });
    }
    if (parent === undefined || legId !== parent.id) {
      this.requests.push({
        id: legId, kind: leg?.kind ?? 'delivery', urgency: leg?.urgency ?? 'routine', status: 'pending', createdAt: leg?.createdAt ?? at, updatedAt: at,
        ...(parent !== undefined ? { parentId: parent.id, requesterId: parent.requesterId } : {}),
      });
    }
    this.made.push(...this.heldBy(legId));
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

/** True when the transition is one PRODUCT's acknowledgement rule covers (not just offers coming and going). */
export function isDurable(t: Transition): boolean {
  if (t.requests || t.assignmentsStarted || t.assignmentsEnded || t.reservationsMade || t.reservationsReleased || t.reservationsIssued) return true;
  return (t.requestStatus ?? []).some((s) => s.status !== 'offered' && s.status !== 'pending');
}

class Entry {
  readonly attempt = deferred();
  readonly done = deferred();
  private tried = false;

  constructor(readonly t: Transition) {}

  fail(err: unknown): void {
    if (this.tried) return;
    this.tried = true;
    this.attempt.reject(err);
  }

  succeed(): void {
    this.tried = true;
    this.attempt.resolve();
    this.done.resolve();
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // a failed attempt nobody awaits is not an unhandled rejection
  return { promise, resolve, reject };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
