/**
 * The API's side of the dispatch loop: a timer that drives it, and the verbs HTTP and WebSocket share.
 *
 *   timer (tickMs) ─┐
 *   kick() ─────────┴─► tick(now) ─► loop.expire(now)   (offers past OFFER_TTL, overdue legs fail)
 *                                 └► loop.dueAt() ≤ now and no batch in flight?
 *                                      └► takeBatch ─► planner (worker pool) ─await─► applyPlan ─► offers
 *   submit / accept / decline / cancel / progress / status ─► loop verb ─► publish() ─► Commit
 *   publish() ─► loop.drainTransition() ─► journal.record(events, rollback) ─► stored? ─► sink (drivers,
 *                requesters, dispatchers), in publish order; rolled back? ─► sink.rolledBack (nothing was said)
 *
 * Every verb is refused up front (503) while the store is unreachable, so memory never runs ahead of it, and
 * the tick pauses then (no offer is made that could not be stored). Emergencies (and every request in greedy
 * mode) are due at once: submit kicks a tick on the next turn of the event loop instead of waiting for the timer.
 */
import type { DispatchEvent, DispatchLoop, RequestSubmission, RequestSummary, SubmitPlan } from '../dispatch/dispatch-loop.js';
import type { Rollback } from '../dispatch/undo-log.js';
import type { Commit, JournalRequest } from '../store/dispatch-journal.js';
import type { Planner } from '../workers/dispatch-pool.js';
import { ApiError } from './api-error.js';

/** Where published events go once the store holds them. */
export interface EventSink {
  /** Events of a stored transition, in publish order. */
  deliver(events: readonly DispatchEvent[], now: number): void;
  /** Events whose changes were taken back out of memory (never delivered): views may need a refresh. */
  rolledBack(events: readonly DispatchEvent[]): void;
}

/** Commits published transitions before anyone hears of them (store/dispatch-journal.ts). */
export interface TransitionJournal {
  record(events: readonly DispatchEvent[], rollback: Rollback): Commit;
  /** Registers a submission (with where the map draws it) before its events are recorded. */
  describe(request: JournalRequest): void;
  isHealthy(): boolean;
}

/** How a submission is stored and answered, computed from its plan. */
export type SubmitView = Omit<JournalRequest, 'id' | 'requesterId' | 'submission' | 'legs'>;

/** Default time an ended request stays in memory. */
export const DEFAULT_ENDED_RETENTION_MS = 3_600_000;
// sweeping ended requests once a minute keeps the sweep off the 50 ms tick path
const FORGET_EVERY_MS = 60_000;
// the longest a due batch waits for the pace (paceAllows), however long taking the last one took
const MAX_PACE_MS = 20;
// a shutdown waits this long for frames whose commits are still out (a hung store must not hold it forever)
const STOP_WAIT_MS = 5_000;

/** What the pump needs; each part owned by the caller. */
export interface DispatchPumpDeps {
  loop: DispatchLoop;
  planner: Planner;
  journal: TransitionJournal;
  clock: () => number;
  /** Timer period; 50 ms keeps offer expiry within a frame of OFFER_TTL and costs nothing when idle. */
  tickMs?: number;
  /** Called with (ms from submission to offer on its way to the driver) for each offer. */
  onOfferLatency?: (ms: number) => void;
  /** Called after each batch with its planning time (ms) and the legs still waiting. */
  onPlanned?: (ms: number, pending: number) => void;
  /** Called with the error of a batch whose planning failed (its legs are handed back). */
  onPlanError?: (err: unknown) => void;
  /** Ended requests stay in memory this long (default 1 h: long enough for a requester to read the outcome). */
  endedRetentionMs?: number;
  /** Called with the ids of requests dropped from memory, so their owners (the request book) forget them too. */
  onForget?: (requestIds: readonly string[]) => void;
}

/** Drives a DispatchLoop from a timer and publishes what it does. */
export class DispatchPump {
  private readonly deps: DispatchPumpDeps;
  private nextForget = 0;
  private timer: NodeJS.Timeout | undefined;
  private kicked = false;
  private planning: Promise<void> | undefined;
  /** When the last batch was taken (performance.now()) and how long taking it took: the pace of the next. */
  private lastBatchAt = -Infinity;
  private lastTakeMs = 0;
  private paced: NodeJS.Timeout | undefined;
  /** Set by stop(): no tick runs after it, so a chain of kicks ends with the pump. */
  private stopped = false;
  /** Submission time per leg, for request → offer latency; deleted at the first offer. */
  private readonly submittedAt = new Map<string, number>();
  /** Tail of frame deliveries waiting for their commits, so frames never overtake each other. Never rejects. */
  private delivery: Promise<void> = Promise.resolve();
  /** Who hears stored events (the stream hub subscribes once it is built; the pump is built first because the hub calls its verbs). */
  private readonly sinks: EventSink[] = [];

  constructor(deps: DispatchPumpDeps) {
    this.deps = deps;
  }

  /** Starts the timer. */
  /** Stored events (and rolled-back ones) go to `sink` too, in publish order. */
  addSink(sink: EventSink): void {
    this.sinks.push(sink);
  }

  start(): void {
    this.stopped = false;
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.tick(), this.deps.tickMs ?? 50);
    this.timer.unref();
  }

  /** Stops the timer and waits for a batch being planned and for frames still waiting on the store (bounded). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (this.paced !== undefined) clearTimeout(this.paced);
    this.paced = undefined;
    await this.planning;
    await Promise.race([this.delivery, new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref())]);
  }

  /** Resolves when no batch is being planned. */
  async idle(): Promise<void> {
    while (this.planning !== undefined) await this.planning;
  }

  /** Runs a tick on the next turn of the event loop (once, however often it is called). */
  kick(): void {
    if (this.kicked) return;
    this.kicked = true;
    setImmediate(() => {
      this.kicked = false;
      this.tick();
    });
  }

  /** Expires offers, fails overdue legs and starts a batch when one is due. Never throws; pauses while the store is down. */
  tick(): void {
    const { loop, planner, clock, journal } = this.deps;
    if (this.stopped || !journal.isHealthy()) return;
    const now = clock();
    try {
      loop.expire(now);
      if (now >= this.nextForget) {
        this.nextForget = now + FORGET_EVERY_MS;
        const gone = loop.forgetEnded(now, this.deps.endedRetentionMs ?? DEFAULT_ENDED_RETENTION_MS);
        if (gone.length > 0) this.deps.onForget?.(gone);
      }
      this.publish();
      const due = loop.dueAt();
      if (this.planning === undefined && due !== undefined && due <= now && this.paceAllows()) {
        const took = performance.now();
        const batch = loop.takeBatch(now);
        this.lastBatchAt = took;
        this.lastTakeMs = performance.now() - took;
        if (batch !== undefined) {
          const started = performance.now();
          this.planning = planner(batch.snapshot, batch.requests, batch.policy, batch.now)
            .then(
              (plan) => {
                loop.applyPlan(plan, clock(), batch.policy);
                this.deps.onPlanned?.(performance.now() - started, loop.lifecycle.pendingRequests().length);
              },
              (err: unknown) => {
                loop.abandonBatch(batch, clock());
                this.deps.onPlanError?.(err);
              },
            )
            .catch((err: unknown) => this.deps.onPlanError?.(err))
            .finally(() => {
              this.planning = undefined;
              this.publish();
              const next = loop.dueAt();
              if (next !== undefined && next <= clock()) this.kick();
            });
        }
      }
    } catch (err) {
      this.deps.onPlanError?.(err);
    }
    this.publish();
  }

  /**
   * Taking a batch copies the couriers near its pickups (a few ms for a city of ten thousand): taken back to back,
   * one per request under load, those copies would fill the thread and starve the requests themselves. The next
   * batch starts no sooner than twice the last take's duration after the last one started (and never waits more
   * than MAX_PACE_MS), so at most about half the thread copies couriers, and legs arriving meanwhile share one
   * batch. With a fleet of a few hundred couriers the pace is a fraction of a millisecond. False: a kick is set.
   */
  private paceAllows(): boolean {
    const wait = Math.min(this.lastBatchAt + 2 * this.lastTakeMs, this.lastBatchAt + MAX_PACE_MS) - performance.now();
    if (wait <= 0) return true;
    if (this.paced === undefined) {
      this.paced = setTimeout(() => {
        this.paced = undefined;
        this.kick();
      }, Math.ceil(wait));
      this.paced.unref();
    }
    return false;
  }

  /** Hands the changes since the last publish to the journal; their frames follow once they are stored. */
  publish(): Commit {
    const { events, rollback } = this.deps.loop.drainTransition();
    if (events.length === 0) return NOTHING;
    const commit = this.deps.journal.record(events, rollback);
    this.delivery = this.delivery
      .then(() => commit.stored)
      .then(
        () => this.deliver(events),
        () => this.undelivered(events),
      );
    return commit;
  }

  /** Submits a request; the plan and its commit, or ApiError 409/422 with the loop's reason (nothing kept). */
  submit(request: RequestSubmission, view: (plan: SubmitPlan) => SubmitView): { plan: SubmitPlan; commit: Commit } {
    const now = this.deps.clock();
    this.refuseWhileDown();
    const res = this.deps.loop.submit(request, now);
    if (!res.ok) {
      this.publish();
      if (res.reason === 'duplicate-request') throw new ApiError(409, 'E_DUPLICATE_REQUEST', `request '${request.id}' exists`);
      throw new ApiError(422, codeOf(res.reason), `request cannot be served: ${res.reason}${res.shortfall ? ` (short by ${res.shortfall} units)` : ''}`);
    }
    for (const leg of res.legs) this.submittedAt.set(leg, now);
    let v: SubmitView;
    try {
      v = view(res);
    } catch (err) {
      this.deps.loop.drainTransition().rollback(); // never described, never stored: taken back at once
      throw err;
    }
    const submission = request.kind === 'rescue' ? { ...request, dropoff: v.dropoff } : request;
    this.deps.journal.describe({ ...v, id: request.id, requesterId: request.requesterId, submission, legs: res.legs });
    const commit = this.publish();
    if (res.dueAt <= now) this.kick();
    return { plan: res, commit };
  }

  /** A driver takes its offer. */
  accept(offerId: string, courierId: string): Commit {
    this.refuseWhileDown();
    return this.respond(this.deps.loop.accept(offerId, courierId, this.deps.clock()));
  }

  /** A driver turns its offer down. */
  decline(offerId: string, courierId: string): Commit {
    this.refuseWhileDown();
    const commit = this.respond(this.deps.loop.decline(offerId, courierId, this.deps.clock()));
    this.kick();
    return commit;
  }

  /** Cancels a request. */
  cancel(requestId: string, by: string): Commit {
    this.refuseWhileDown();
    return this.respond(this.deps.loop.cancel(requestId, this.deps.clock(), by));
  }

  /** The assigned courier reports pickup or delivery. */
  progress(requestId: string, courierId: string, status: 'picked_up' | 'delivered'): Commit {
    this.refuseWhileDown();
    const commit = this.respond(this.deps.loop.progress(requestId, courierId, status, this.deps.clock()));
    if (status === 'delivered') this.kick();
    return commit;
  }

  /** A courier comes on or goes off shift. */
  setCourierStatus(courierId: string, status: 'available' | 'offline'): Commit {
    this.refuseWhileDown();
    const commit = this.respond(this.deps.loop.setCourierStatus(courierId, status, this.deps.clock()));
    if (status === 'available') this.kick();
    return commit;
  }

  /** Many couriers come on or go off shift in one stored transition (a fleet's shift change); unknown and busy ones are skipped. */
  setCourierStatuses(courierIds: readonly string[], status: 'available' | 'offline'): Commit {
    this.refuseWhileDown();
    const now = this.deps.clock();
    for (const id of courierIds) this.deps.loop.setCourierStatus(id, status, now);
    const commit = this.publish();
    if (status === 'available') this.kick();
    return commit;
  }

  /** A request's status and legs as the loop sees them. */
  summary(requestId: string): RequestSummary | undefined {
    return this.deps.loop.status(requestId);
  }

  private respond(res: { ok: true } | { ok: false; reason: string }): Commit {
    const commit = this.publish();
    if (!res.ok) throw refusal(res.reason);
    return commit;
  }

  private refuseWhileDown(): void {
    if (!this.deps.journal.isHealthy()) throw storeDown();
  }

  private deliver(events: readonly DispatchEvent[]): void {
    const now = this.deps.clock();
    for (const e of events) {
      if (e.type !== 'offer.created') continue;
      const at = this.submittedAt.get(e.requestId);
      if (at === undefined) continue;
      this.submittedAt.delete(e.requestId);
      this.deps.onOfferLatency?.(now - at);
    }
    for (const sink of this.sinks) {
      try {
        sink.deliver(events, now);
      } catch (err) {
        this.deps.onPlanError?.(err); // a broken socket write must not stop the loop
      }
    }
  }

  private undelivered(events: readonly DispatchEvent[]): void {
    for (const sink of this.sinks) {
      try {
        sink.rolledBack(events);
      } catch (err) {
        this.deps.onPlanError?.(err);
      }
    }
    if (events.some((e) => e.type === 'request.created' || e.type === 'request.pending' || e.type === 'courier.status')) this.kick();
  }
}

const NOTHING: Commit = { acknowledged: Promise.resolve(), stored: Promise.resolve() };

/** THE mapping of dispatch refusals to API errors (statuses via toErrorReply). */
export function refusal(reason: string): ApiError {
  switch (reason) {
    case 'unknown-offer':
      return new ApiError(404, 'E_UNKNOWN_OFFER', 'no such offer');
    case 'unknown-request':
      return new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
    case 'unknown-courier':
      return new ApiError(404, 'E_UNKNOWN_COURIER', 'no such courier');
    case 'not-offer-owner':
    case 'not-assigned-courier':
      return new ApiError(403, 'E_FORBIDDEN', reason === 'not-offer-owner' ? 'this offer was made to another courier' : 'this request is assigned to another courier');
    case 'offer-expired':
      return new ApiError(410, 'E_OFFER_EXPIRED', 'the offer has expired');
    case 'offer-revoked':
    case 'offer-closed':
      return new ApiError(409, 'E_OFFER_CLOSED', `the offer is no longer open (${reason})`);
    default:
      return new ApiError(409, 'E_CONFLICT', `not possible now: ${reason}`);
  }
}

/** The store did not take a change: nothing was acknowledged. */
export function storeDown(cause?: unknown): ApiError {
  return new ApiError(503, 'E_STORE_UNAVAILABLE', 'the store is unavailable; nothing was acknowledged, retry later', { cause });
}

function codeOf(reason: string): string {
  if (reason === 'no-compatible-stock-in-reach') return 'E_NO_STOCK';
  if (reason === 'no-open-recipient-with-room') return 'E_NO_RECIPIENT';
  return 'E_UNSERVABLE'; // none-before-deadline
}
