/**
 * Which legs make up which request, and the status a blood parent derives from its legs. The one owner of
 * leg ↔ parent: the dispatch loop writes it, the API's request book and the store's journal ask it
 * (`loop.parents.parentOf(legId)`).
 *
 *   DispatchLoop.submit ─► add(parent, legs) ─────────────── taken back with the submit (undo log)
 *   leg transition ─────► refresh(event) ─► derived status changed? ─► blood.status event
 *   DispatchLoop.forgetEnded ─► forget(parentId) ─► parentOf still answers until the drain after next,
 *                               so the journal builds the rows of events drained with (or after) the forget
 *
 * A blood request served by several banks is one parent with one leg per bank (`<requestId>/<siteId>`);
 * a delivery or rescue is its own single leg (leg id = request id).
 */
import type { LifecycleEvent, RequestStatus } from './lifecycle-events.js';
import type { RequestLifecycle } from './request-lifecycle.js';
import { type RequestKind, isTerminal } from './request-vocabulary.js';
import type { Leg } from './submission-legs.js';
import type { UndoLog } from './undo-log.js';

/** A blood parent's derived status changed; `seq` is that of the leg transition that caused it. */
export interface BloodStatusEvent {
  readonly seq: number;
  readonly at: number;
  readonly type: 'blood.status';
  readonly requestId: string;
  readonly status: RequestStatus;
  readonly previous: RequestStatus;
}

/** A request in memory: its legs and last derived status. */
export interface RequestParent {
  readonly id: string;
  readonly kind: RequestKind;
  readonly legIds: readonly string[];
  /** Last derived status (blood parents emit blood.status on change). */
  readonly status: RequestStatus;
}

/** A request as a requester or dispatcher sees it. */
export interface RequestSummary {
  id: string;
  kind: RequestKind;
  status: RequestStatus;
  legs: { id: string; status: RequestStatus; courierId: string | undefined; offerId: string | undefined; siteId: string | undefined }[];
}

/** Where legs' states are read: the loop's lifecycle. */
export type LegStates = Pick<RequestLifecycle, 'request' | 'assignmentOf'>;

/** What the book and the journal may ask (read-only). */
export type ParentLookup = Pick<RequestParents, 'parentOf' | 'legsOf'>;

/** The requests in memory and their legs; every change is recorded in the loop's undo log. */
export class RequestParents {
  private readonly parents = new Map<string, Parent>();
  private readonly legs = new Map<string, Leg>();
  /** Leg or request id → parent id, of parents forgotten since the last drain. */
  private forgotten = new Map<string, string>();
  /** The same, of parents forgotten before the last drain: dropped at the next one. */
  private forgottenBefore = new Map<string, string>();

  constructor(private readonly undo: UndoLog) {}

  /** The id of the request a leg (or the request itself) belongs to; undefined when unknown. */
  parentOf(legOrRequestId: string): string | undefined {
    const leg = this.legs.get(legOrRequestId);
    if (leg !== undefined) return leg.parentId;
    if (this.parents.has(legOrRequestId)) return legOrRequestId;
    return this.forgotten.get(legOrRequestId) ?? this.forgottenBefore.get(legOrRequestId);
  }

  /** The leg ids of a request in memory, or undefined. */
  legsOf(parentId: string): readonly string[] | undefined {
    return this.parents.get(parentId)?.legIds;
  }

  /** The leg meant by a leg id, or by a request id whose leg `carries` picks; the id itself when none. */
  legCarried(legOrRequestId: string, carries: (legId: string) => boolean): string {
    if (this.legs.has(legOrRequestId)) return legOrRequestId;
    return this.parents.get(legOrRequestId)?.legIds.find(carries) ?? legOrRequestId;
  }

  /** The request, or undefined when it is not in memory. */
  get(parentId: string): RequestParent | undefined {
    return this.parents.get(parentId);
  }

  /** The leg, or undefined when it is not in memory. */
  leg(legId: string): Leg | undefined {
    return this.legs.get(legId);
  }

  /** True when a request or a leg with this id is in memory. */
  has(id: string): boolean {
    return this.parents.has(id) || this.legs.has(id);
  }

  /** Every request in memory. */
  all(): IterableIterator<RequestParent> {
    return this.parents.values();
  }

  /** Every leg in memory. */
  allLegs(): IterableIterator<Leg> {
    return this.legs.values();
  }

  /** A request in memory with its legs' states and its derived status, or undefined. */
  summary(parentId: string, states: LegStates): RequestSummary | undefined {
    const parent = this.parents.get(parentId);
    if (parent === undefined) return undefined;
    const legs = parent.legIds.map((id) => {
      const r = states.request(id);
      // the live offer while offered, else the offer that was accepted
      const offerId = r?.offerId ?? states.assignmentOf(id)?.offerId;
      return { id, status: r?.status ?? 'cancelled', courierId: r?.courierId, offerId, siteId: this.legs.get(id)?.siteId };
    });
    return { id: parent.id, kind: parent.kind, status: deriveStatus(legs.map((l) => l.status)), legs };
  }

  /** The requests whose every leg ended at or before `cutoff` (a leg the lifecycle no longer knows keeps its request). */
  endedBefore(cutoff: number, states: LegStates): RequestParent[] {
    const ended: RequestParent[] = [];
    for (const parent of this.parents.values()) {
      const views = parent.legIds.map((id) => states.request(id));
      if (views.some((v) => v === undefined || !isTerminal(v.status))) continue;
      if (Math.max(...views.map((v) => v!.updatedAt)) > cutoff) continue;
      ended.push(parent);
    }
    return ended;
  }

  /** Registers a submitted request and its legs. */
  add(id: string, kind: RequestKind, legs: readonly Leg[]): RequestParent {
    const parent: Parent = { id, kind, legIds: legs.map((l) => l.id), status: 'pending' };
    this.parents.set(id, parent);
    this.undo.record(() => this.parents.delete(id));
    for (const leg of legs) {
      this.legs.set(leg.id, leg);
      this.undo.record(() => this.legs.delete(leg.id));
    }
    return parent;
  }

  /** Drops an ended request and its legs; parentOf answers for them until the drain after next. */
  forget(parentId: string): void {
    const parent = this.parents.get(parentId);
    if (parent === undefined) return;
    for (const id of parent.legIds) {
      this.legs.delete(id);
      this.forgotten.set(id, parentId);
    }
    this.parents.delete(parentId);
    this.forgotten.set(parentId, parentId);
  }

  /** The loop's events were drained: forgotten parents of the drain before are dropped for good. */
  drained(): void {
    if (this.forgotten.size === 0 && this.forgottenBefore.size === 0) return;
    this.forgottenBefore = this.forgotten;
    this.forgotten = new Map();
  }

  /** After a leg's transition: the blood parent's status event when its derived status changed. */
  refresh(e: LifecycleEvent & { requestId: string }, statusOf: (legId: string) => RequestStatus | undefined): BloodStatusEvent | undefined {
    const leg = this.legs.get(e.requestId);
    if (leg === undefined || leg.parentId === leg.id) return undefined;
    const parent = this.parents.get(leg.parentId)!;
    const status = deriveStatus(parent.legIds.map((id) => statusOf(id) ?? 'cancelled'));
    if (status === parent.status) return undefined;
    const previous = parent.status;
    parent.status = status;
    this.undo.record(() => {
      parent.status = previous;
    });
    return Object.freeze({ seq: e.seq, at: e.at, type: 'blood.status', requestId: parent.id, status, previous });
  }
}

/**
 * A parent's status from its legs' statuses: the least advanced live leg; cancelled when all are
 * cancelled; failed when none is live and one failed.
 */
export function deriveStatus(legs: readonly RequestStatus[]): RequestStatus {
  let best: RequestStatus | undefined;
  for (const s of legs) if (s !== 'cancelled' && s !== 'failed' && (best === undefined || RANK[s] < RANK[best])) best = s;
  if (best !== undefined) return best;
  return legs.length > 0 && legs.every((s) => s === 'cancelled') ? 'cancelled' : 'failed';
}

const RANK: Readonly<Record<RequestStatus, number>> = { pending: 0, offered: 1, assigned: 2, picked_up: 3, delivered: 4, cancelled: 5, failed: 5 };

interface Parent {
  id: string;
  kind: RequestKind;
  legIds: string[];
  status: RequestStatus;
}
