/**
 * What the API remembers about requests beyond the dispatch loop: who created each one (ownership), where
 * it goes (for the map), which leg belongs to which request, and Idempotency-Key replies.
 *
 *   POST /v1/requests ─ Idempotency-Key seen for this requester? ─► the stored reply, unchanged
 *                     └ new ─► DispatchLoop.submit ─► record(owner, legs) + remember(key, reply)
 *   lifecycle event (leg id) ─► parentOf(leg) ─► owner's track streams, dispatcher watches
 */

/** A request as the API knows it. */
export interface BookedRequest {
  id: string;
  kind: 'delivery' | 'rescue' | 'blood';
  owner: string;
  urgency: string;
  createdAt: number;
  pickup: { lat: number; lng: number };
  dropoff: { lat: number; lng: number };
  legs: string[];
}

/** A reply kept for Idempotency-Key retries. */
export interface StoredReply {
  status: number;
  body: unknown;
}

/** Idempotency keys kept per requester (oldest evicted first): a day of retries for a busy hospital desk. */
export const IDEMPOTENCY_KEYS_PER_REQUESTER = 1000;
/** Requesters whose keys are kept (least recently active evicted first), so many requesters cannot grow memory. */
export const IDEMPOTENCY_REQUESTERS = 10_000;

/** Requests by id and by leg, with a bounded LRU of idempotent replies per requester. */
export class RequestBook {
  private readonly byId = new Map<string, BookedRequest>();
  private readonly legToParent = new Map<string, string>();
  /** requester → (key → reply); Map iteration order is insertion order, so re-inserting marks recent use. */
  private readonly replies = new Map<string, Map<string, StoredReply>>();
  private counter = 0;

  constructor(private readonly limits = { perRequester: IDEMPOTENCY_KEYS_PER_REQUESTER, requesters: IDEMPOTENCY_REQUESTERS }) {}

  /** A fresh request id (`r<n>-<random>`): unguessable enough that ids leak nothing about volume. */
  nextId(): string {
    return `r${(++this.counter).toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  }

  /** Records an accepted request and its legs. */
  record(r: BookedRequest): void {
    this.byId.set(r.id, r);
    for (const leg of r.legs) this.legToParent.set(leg, r.id);
  }

  /** Forgets a request and its legs (its Idempotency-Key reply stays until evicted). */
  forget(id: string): void {
    const r = this.byId.get(id);
    if (r === undefined) return;
    this.byId.delete(id);
    for (const leg of r.legs) this.legToParent.delete(leg);
  }

  /** The request, or undefined. */
  get(id: string): BookedRequest | undefined {
    return this.byId.get(id);
  }

  /** The request a leg (or the request itself) belongs to. */
  parentOf(legOrRequestId: string): BookedRequest | undefined {
    const parent = this.legToParent.get(legOrRequestId) ?? legOrRequestId;
    return this.byId.get(parent);
  }

  /** The stored reply of an earlier call with this key, or undefined. */
  replay(requester: string, key: string): StoredReply | undefined {
    const keys = this.replies.get(requester);
    const hit = keys?.get(key);
    if (keys === undefined || hit === undefined) return undefined;
    this.touch(requester, keys);
    keys.delete(key);
    keys.set(key, hit);
    return hit;
  }

  /** Stores the reply for a key, evicting the least recently used key and requester beyond the limits. */
  remember(requester: string, key: string, reply: StoredReply): void {
    const keys = this.replies.get(requester) ?? new Map<string, StoredReply>();
    this.touch(requester, keys);
    keys.set(key, reply);
    if (keys.size > this.limits.perRequester) keys.delete(keys.keys().next().value as string);
    if (this.replies.size > this.limits.requesters) this.replies.delete(this.replies.keys().next().value as string);
  }

  /** Number of requests recorded. */
  get size(): number {
    return this.byId.size;
  }

  private touch(requester: string, keys: Map<string, StoredReply>): void {
    this.replies.delete(requester);
    this.replies.set(requester, keys);
  }
}
