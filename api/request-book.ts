/**
 * What the API remembers about requests beyond the dispatch loop: who created each one (ownership), where
 * it goes (for the map), the plan it was answered with, which leg belongs to which request, and how many
 * each principal holds open.
 *
 *   POST /v1/requests ─► DispatchLoop.submit ─► record(owner, legs, plan) (forgotten again if the store refuses)
 *   lifecycle event (leg id) ─► parentOf(leg): the loop's parents name the request ─► owner's track streams,
 *                                                                                   dispatcher watches
 *   GET /v1/requests/{id} ─► get(id), or the store once the request has left memory
 */
import type { RequestKind } from '../dispatch/dispatch-request.js';
import type { LatLng } from '../dispatch/dispatch-request.js';
import type { ParentLookup } from '../dispatch/request-parents.js';
import type { RecoveredRequest } from '../store/recovery.js';

/** A request rebuilt from the store, as the book keeps it (recovery at start; a cluster core taking a region). */
export function bookedFrom(r: RecoveredRequest): BookedRequest {
  return {
    id: r.id, kind: r.kind, owner: r.owner, ownerRole: r.ownerRole, urgency: r.urgency, createdAt: r.createdAt, pickup: r.pickup, dropoff: r.dropoff, legs: r.legs,
    ...(r.reference !== undefined ? { reference: r.reference } : {}),
    ...(r.plan !== undefined ? { plan: r.plan } : {}),
  };
}

/** A request as the API knows it. */
export interface BookedRequest {
  id: string;
  kind: RequestKind;
  /** The creator's sub; ownership is `ownerRole` and `owner` together. */
  owner: string;
  ownerRole: string;
  urgency: string;
  createdAt: number;
  pickup: LatLng;
  dropoff: LatLng;
  legs: string[];
  /** The client's own reference. */
  reference?: string;
  /** The plan the create answer carried (sources, recipient, shortfall, call-out, dueAt). */
  plan?: Record<string, unknown>;
}

/** The key a principal's requests and Idempotency-Keys are scoped to. */
export function principalKey(role: string, sub: string): string {
  return `${role}:${sub}`;
}

/** Requests by id (by leg through the loop's parents), and the open ones per owner. */
export class RequestBook {
  private readonly byId = new Map<string, BookedRequest>();
  /** Owner key → ids recorded and not known to have ended (pruned when a bound is checked). */
  private readonly openByOwner = new Map<string, Set<string>>();

  /** `parents`: which request a leg belongs to (the dispatch loop's `parents`). */
  constructor(private readonly parents: Pick<ParentLookup, 'parentOf'>) {}

  /** Records an accepted request. */
  record(r: BookedRequest): void {
    this.byId.set(r.id, r);
    const key = principalKey(r.ownerRole, r.owner);
    let open = this.openByOwner.get(key);
    if (open === undefined) this.openByOwner.set(key, (open = new Set()));
    open.add(r.id);
  }

  /** Forgets a request. */
  forget(id: string): void {
    const r = this.byId.get(id);
    if (r === undefined) return;
    this.byId.delete(id);
    this.closeFor(r);
  }

  /** The request, or undefined. */
  get(id: string): BookedRequest | undefined {
    return this.byId.get(id);
  }

  /** The request a leg (or the request itself) belongs to. */
  parentOf(legOrRequestId: string): BookedRequest | undefined {
    return this.byId.get(this.parents.parentOf(legOrRequestId) ?? legOrRequestId);
  }

  /**
   * True when this owner already holds `limit` open requests. Only at the limit are its requests asked
   * `isOpen` one by one (ended ones leave the count), so the check is O(1) until then.
   */
  atLimit(role: string, sub: string, limit: number, isOpen: (id: string) => boolean): boolean {
    const key = principalKey(role, sub);
    const open = this.openByOwner.get(key);
    if (open === undefined || open.size < limit) return false;
    for (const id of open) if (!isOpen(id)) open.delete(id);
    if (open.size === 0) this.openByOwner.delete(key);
    return open.size >= limit;
  }

  /** Number of requests recorded. */
  /** The ids of the requests held. */
  ids(): IterableIterator<string> {
    return this.byId.keys();
  }

  get size(): number {
    return this.byId.size;
  }

  private closeFor(r: BookedRequest): void {
    const key = principalKey(r.ownerRole, r.owner);
    const open = this.openByOwner.get(key);
    open?.delete(r.id);
    if (open?.size === 0) this.openByOwner.delete(key);
  }
}
