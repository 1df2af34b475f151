/**
 * Idempotency-Key on POST /v1/requests: scoped to the principal (role + sub), kept in the store for
 * IDEMPOTENCY_TTL_MS, so a retry gets the first answer whatever happened in between (a restart included).
 *
 *   POST with a key ─► a create with this key in flight? ─► wait for it, answer the same
 *                   └► known (memory cache, else store) ─┬ same body ─► the stored first answer (Idempotent-Replayed)
 *                                                        └ other body ─► 422 E_IDEMPOTENCY_MISMATCH
 *                   └► unknown ─► create(); its key row is committed in the same transaction as the request
 *
 * A create that failed (4xx, 5xx) leaves no key behind, so a retry tries again.
 */
import { createHash } from 'node:crypto';
import type { IdempotencyRow, Store } from '../store/store.js';
import { ApiError } from './api-error.js';
import { storeDown } from './dispatch-pump.js';
import { KeyFilter } from './key-filter.js';

/** A create's answer (what the route sends). */
export interface CreateReply {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** Longest Idempotency-Key: room for a UUID with a prefix, short enough to index. */
export const MAX_KEY_LENGTH = 128;
/** Keys remembered in memory (most recent first out of the store's way); older ones are read from the store. */
const CACHE_KEYS = 10_000;

/** The body's fingerprint: SHA-256 of its JSON with keys sorted at every level. */
export function bodyHash(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

/** Checks a header value: 1..128 visible ASCII characters. */
export function checkKey(key: string): string {
  if (!/^[\x21-\x7e]{1,128}$/.test(key)) throw new ApiError(400, 'E_VALIDATION', `Idempotency-Key is 1..${MAX_KEY_LENGTH} visible ASCII characters`);
  return key;
}

/** Keys read per page while the filter loads. */
const LOAD_PAGE = 10_000;

/**
 * Idempotency-Keys of every principal: in-flight creates, a bounded cache, and the store behind it. A filter of
 * the keys that may be stored (KeyFilter: every key of the last TTL, from the store at start, and every key a
 * create is attempted with, before the attempt) answers most new keys without reading the store, once loaded.
 * It holds because this process is the store's only writer of keys (GD_ROLE=all).
 */
export class IdempotencyKeys {
  private readonly inFlight = new Map<string, Promise<{ row: Pick<IdempotencyRow, 'bodyHash' | 'status' | 'reply'>; replayed: boolean }>>();
  private readonly cache = new Map<string, IdempotencyRow>();
  private readonly stored: KeyFilter;
  private loaded = false;

  constructor(
    private readonly store: Pick<Store, 'findIdempotency' | 'listIdempotencyKeys'>,
    private readonly ttlMs: number,
    private readonly clock: () => number,
  ) {
    this.stored = new KeyFilter(ttlMs, clock);
  }

  /**
   * Reads every key of the last TTL into the filter, a page at a time; until it is done (or when it fails,
   * left as it is) every unknown key is read from the store as before.
   */
  async load(): Promise<void> {
    let after: { principal: string; key: string } | undefined;
    for (;;) {
      const page = await this.store.listIdempotencyKeys(this.clock() - this.ttlMs, after, LOAD_PAGE);
      for (const k of page) this.stored.add(slotOf(k.principal, k.key));
      if (page.length < LOAD_PAGE) break;
      after = page[page.length - 1];
    }
    this.loaded = true;
  }

  /**
   * Answers a keyed create: the first answer when the key is known (422 when the body differs), else runs
   * `create`, which must store the key with its request (the journal does, in one transaction).
   */
  async run(principal: string, key: string, hash: string, create: () => Promise<CreateReply>): Promise<CreateReply> {
    const slot = slotOf(principal, key);
    let running = this.inFlight.get(slot);
    if (running === undefined) {
      running = this.resolve(principal, key, slot, hash, create);
      this.inFlight.set(slot, running);
      void running.then(
        () => this.inFlight.delete(slot),
        () => this.inFlight.delete(slot),
      );
    } else {
      const shared = await running;
      return this.answer(shared.row, hash, true);
    }
    const outcome = await running;
    return this.answer(outcome.row, hash, outcome.replayed);
  }

  /** Keys stored before this (ms) have expired: a create under one replaces its row (IdempotencyRow.replacesBefore). */
  expiredBefore(): number {
    return this.clock() - this.ttlMs;
  }

  /** Remembers a key committed with its request (called once the store holds it). */
  remember(row: IdempotencyRow): void {
    const slot = slotOf(row.principal, row.key);
    this.cache.delete(slot);
    this.cache.set(slot, row);
    if (this.cache.size > CACHE_KEYS) this.cache.delete(this.cache.keys().next().value as string);
  }

  private async resolve(principal: string, key: string, slot: string, hash: string, create: () => Promise<CreateReply>): Promise<{ row: Pick<IdempotencyRow, 'bodyHash' | 'status' | 'reply'>; replayed: boolean }> {
    const known = await this.find(principal, key, slot);
    if (known !== undefined) return { row: known, replayed: true };
    // before the attempt: whatever its outcome (stored, refused, unknown), a later lookup reads the store
    this.stored.add(slot);
    const reply = await create();
    return { row: { bodyHash: hash, status: reply.status, reply: reply.body }, replayed: false };
  }

  private async find(principal: string, key: string, slot: string): Promise<IdempotencyRow | undefined> {
    const notBefore = this.clock() - this.ttlMs;
    const cached = this.cache.get(slot);
    if (cached !== undefined && cached.createdAt >= notBefore) return cached;
    if (this.loaded && !this.stored.mayHave(slot)) return undefined;
    try {
      return await this.store.findIdempotency(principal, key, notBefore);
    } catch (err) {
      throw storeDown(err);
    }
  }

  private answer(row: Pick<IdempotencyRow, 'bodyHash' | 'status' | 'reply'>, hash: string, replayed: boolean): CreateReply {
    // keys from before body hashes were kept carry none: the key alone decides then
    if (row.bodyHash !== '' && row.bodyHash !== hash) {
      throw new ApiError(422, 'E_IDEMPOTENCY_MISMATCH', 'this Idempotency-Key was used with a different body; use a new key for a new request');
    }
    return { status: row.status, body: row.reply, ...(replayed ? { headers: { 'idempotent-replayed': 'true' } } : {}) };
  }
}

/** One key of one principal, as the in-flight map, the cache and the filter hold it. */
function slotOf(principal: string, key: string): string {
  return `${principal}\u0000${key}`;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
