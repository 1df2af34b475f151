/**
 * The API's side of the dispatch loop: a timer that drives it, and the verbs HTTP and WebSocket share.
 *
 *   timer (tickMs) ─┐
 *   kick() ─────────┴─► tick(now) ─► loop.expire(now)   (offers past OFFER_TTL, overdue legs fail)
 *                                 └► loop.dueAt() ≤ now and no batch in flight?
 *                                      └► takeBatch ─► planner (worker pool) ─await─► applyPlan ─► offers
 *   submit / accept / decline / cancel / progress / status ─► loop verb ─► publish()
 *   publish() ─► loop.drainEvents() ─► journal? (store commit) ─► sink (StreamHub: drivers, requesters, dispatchers)
 *                 frames of assignment-changing transitions wait for their commit; committed() is what HTTP awaits
 *
 * Emergencies (and every request in greedy mode) are due at once: submit kicks a tick on the next turn of
 * the event loop instead of waiting for the timer.
 */
import type { DispatchEvent, DispatchLoop, RequestSubmission, RequestSummary, SubmitResult } from '../dispatch/dispatch-loop.js';
import type { LatLng } from '../dispatch/dispatch-request.js';
import type { Planner } from '../workers/dispatch-pool.js';
import { ApiError } from './api-error.js';

/** Where published events go. */
export type EventSink = (events: readonly DispatchEvent[], now: number) => void;

/** Commits published transitions before they are acknowledged (store/dispatch-journal.ts). */
export interface TransitionJournal {
  /** `attempt` settles after the first commit try (rejects when it failed); `done` once committed; `durable`: frames must wait for it. */
  record(events: readonly DispatchEvent[]): { attempt: Promise<void>; done: Promise<void>; durable: boolean };
  /** Registers a submission (with where the map draws it) before its events are recorded. */
  describe(request: { id: string; requesterId: string; submission: RequestSubmission; pickup: LatLng; dropoff: LatLng; legs: string[]; plan?: Record<string, unknown>; idempotencyKey?: string }): void;
  isHealthy(): boolean;
}

/** How a submission is drawn and answered, computed from its plan (for the journal's request row). */
export interface SubmitView {
  pickup: LatLng;
  dropoff: LatLng;
  plan?: Record<string, unknown>;
  idempotencyKey?: string;
}

/** Default time an ended request stays in memory. */
export const DEFAULT_ENDED_RETENTION_MS = 3_600_000;
// sweeping ended requests once a minute keeps the sweep off the 50 ms tick path
const FORGET_EVERY_MS = 60_000;

/** What the pump needs; each part owned by the caller. */
export interface DispatchPumpDeps {
  loop: DispatchLoop;
  planner: Planner;
  sink: EventSink;
  clock: () => number;
  /** Timer period; 50 ms keeps offer expiry within a frame of OFFER_TTL and costs nothing when idle. */
  tickMs?: number;
  /** Called with (ms from submission to offer) for each offer. */
  onOfferLatency?: (ms: number) => void;
  /** Called after each batch with its planning time (ms) and the legs still waiting. */
  onPlanned?: (ms: number, pending: number) => void;
  /** Called with the error of a batch whose planning failed (its legs are handed back). */
  onPlanError?: (err: unknown) => void;
  /** When set, every publish is committed here first; frames of durable transitions wait for the commit. */
  journal?: TransitionJournal;
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
  /** Submission time per leg, for request → offer latency; deleted at the first offer. */
  private readonly submittedAt = new Map<string, number>();
  /** First commit attempt of the last publish (what an HTTP verb awaits before answering). */
  private lastAttempt: Promise<void> = Promise.resolve();
  /** Tail of frame deliveries waiting for commits, so frames never overtake each other. */
  private delivery: Promise<void> | undefined;

  constructor(deps: DispatchPumpDeps) {
    this.deps = deps;
  }

  /** Starts the timer. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.tick(), this.deps.tickMs ?? 50);
    this.timer.unref();
  }

  /** Stops the timer and waits for a batch being planned. */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.planning;
    await this.delivery;
  }

  /** Resolves when the transitions published so far are committed; rejects when the store refused (answer 503). */
  committed(): Promise<void> {
    return this.lastAttempt;
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

  /** Expires offers, fails overdue legs and starts a batch when one is due. Never throws. */
  tick(): void {
    const { loop, planner, clock } = this.deps;
    const now = clock();
    try {
      loop.expire(now);
      if (now >= this.nextForget) {
        this.nextForget = now + FORGET_EVERY_MS;
        const gone = loop.forgetEnded(now, this.deps.endedRetentionMs ?? DEFAULT_ENDED_RETENTION_MS);
        if (gone.length > 0) this.deps.onForget?.(gone);
      }
      const due = loop.dueAt();
      if (this.planning === undefined && due !== undefined && due <= now) {
        const batch = loop.takeBatch(now);
        if (batch !== undefined) {
          const started = performance.now();
          this.planning = planner(batch.snapshot, batch.requests, loop.policy, batch.now)
            .then(
              (plan) => {
                loop.applyPlan(plan, clock());
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

  /** Hands every event since the last publish to the sink. */
  publish(): void {
    const events = this.deps.loop.drainEvents();
    if (events.length === 0) return;
    const now = this.deps.clock();
    for (const e of events) {
      if (e.type !== 'offer.created') continue;
      const at = this.submittedAt.get(e.requestId);
      if (at === undefined) continue;
      this.submittedAt.delete(e.requestId);
      this.deps.onOfferLatency?.(now - at);
    }
    const journal = this.deps.journal;
    if (journal === undefined) {
      this.deliver(events, now);
      return;
    }
    const rec = journal.record(events);
    this.lastAttempt = rec.attempt;
    if (!rec.durable && this.delivery === undefined) {
      this.deliver(events, now); // offers need no commit first: one live at a crash just expires
      return;
    }
    const tail: Promise<void> = Promise.all([this.delivery, rec.durable ? rec.done : undefined]).then(() => this.deliver(events, this.deps.clock()));
    this.delivery = tail;
    void tail.finally(() => {
      if (this.delivery === tail) this.delivery = undefined;
    });
  }

  private deliver(events: readonly DispatchEvent[], now: number): void {
    try {
      this.deps.sink(events, now);
    } catch (err) {
      this.deps.onPlanError?.(err); // a broken socket write must not stop the loop
    }
  }

  /** Submits a request; the plan, or ApiError 409/422 with the loop's reason. `view` describes it for the journal. */
  submit(request: RequestSubmission, view?: (plan: SubmitResult & { ok: true }) => SubmitView): SubmitResult & { ok: true } {
    const now = this.deps.clock();
    if (this.deps.journal !== undefined && !this.deps.journal.isHealthy()) throw storeDown();
    const res = this.deps.loop.submit(request, now);
    if (!res.ok) {
      this.publish();
      if (res.reason === 'duplicate-request') throw new ApiError(409, 'E_DUPLICATE_REQUEST', `request '${request.id}' exists`);
      throw new ApiError(422, codeOf(res.reason), `request cannot be served: ${res.reason}${res.shortfall ? ` (short by ${res.shortfall} units)` : ''}`);
    }
    for (const leg of res.legs) this.submittedAt.set(leg, now);
    if (this.deps.journal !== undefined && view !== undefined) {
      const v = view(res);
      const submission = request.kind === 'rescue' ? { ...request, dropoff: v.dropoff } : request;
      this.deps.journal.describe({ id: request.id, requesterId: request.requesterId, submission, legs: res.legs, ...v });
    }
    this.publish();
    if (res.dueAt <= now) this.kick();
    return res;
  }

  /** A driver takes its offer. */
  accept(offerId: string, courierId: string): void {
    this.respond(this.deps.loop.accept(offerId, courierId, this.deps.clock()));
  }

  /** A driver turns its offer down. */
  decline(offerId: string, courierId: string): void {
    this.respond(this.deps.loop.decline(offerId, courierId, this.deps.clock()));
    this.kick();
  }

  /** Cancels a request. */
  cancel(requestId: string, by: string): void {
    this.respond(this.deps.loop.cancel(requestId, this.deps.clock(), by));
  }

  /** The assigned courier reports pickup or delivery. */
  progress(requestId: string, courierId: string, status: 'picked_up' | 'delivered'): void {
    this.respond(this.deps.loop.progress(requestId, courierId, status, this.deps.clock()));
    if (status === 'delivered') this.kick();
  }

  /** A courier comes on or goes off shift. */
  setCourierStatus(courierId: string, status: 'available' | 'offline'): void {
    this.respond(this.deps.loop.setCourierStatus(courierId, status, this.deps.clock()));
    if (status === 'available') this.kick();
  }

  /** A request's status and legs as the loop sees them. */
  summary(requestId: string): RequestSummary | undefined {
    return this.deps.loop.status(requestId);
  }

  private respond(res: { ok: true } | { ok: false; reason: string }): void {
    this.publish();
    if (!res.ok) throw refusal(res.reason);
  }
}

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

/** The store did not take a transition: nothing was acknowledged. */
export function storeDown(cause?: unknown): ApiError {
  return new ApiError(503, 'E_STORE_UNAVAILABLE', 'the store is unavailable; nothing was acknowledged, retry later', { cause });
}

function codeOf(reason: string): string {
  if (reason === 'no-compatible-stock-in-reach') return 'E_NO_STOCK';
  if (reason === 'no-open-recipient-with-room') return 'E_NO_RECIPIENT';
  return 'E_UNSERVABLE'; // none-before-deadline
}
