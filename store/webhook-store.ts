/**
 * The webhook half of the store: the registry, each webhook's durable cursor, the delivery log, and the
 * outbox read. The outbox is the `events` table itself — every lifecycle event is already written there in
 * the transaction that made it — numbered by `outbox_seq` (migration 5) in commit order.
 *
 *   transition / admin write / fence batch ─► events (outbox_seq: identity, allocated in journal order)
 *   deliverer ─► readOutbox(after = cursor, patterns) ─► POST ─► 2xx ─► recordDeliveries(…, cursor) ─► cursor moves
 *
 * Why `outbox_seq` and not the lifecycle `seq`: events that are not lifecycle transitions (fence crossings,
 * stock.low after an inventory PUT) have no lifecycle seq, and borrowing one would collide with numbers the
 * lifecycle hands out later. Every transaction inserting events holds an advisory lock (webhook-sql.ts OUTBOX_LOCK)
 * from its insert to its commit, so however many writers there are (a cluster's cores and hub), identity values are
 * allocated in commit order and a cursor never jumps over a row committed later.
 */

/** A registered webhook as stored; `secret` never leaves the server in a reply. */
export interface WebhookRow {
  id: string;
  url: string;
  /** Event names (`fence.enter`) or prefixes (`request.*`). */
  events: string[];
  secret: string;
  /** The last outbox_seq delivered or passed over; deliveries continue after it. */
  cursor: number;
  createdAt: number;
  updatedAt: number;
}

/** One outbox event as the deliverer reads it. */
export interface OutboxEvent {
  /** Its place in the outbox (commit order): the `seq` receivers see. */
  outboxSeq: number;
  at: number;
  type: string;
  requestId?: string;
  courierId?: string;
  payload: Record<string, unknown>;
}

/** An event written outside a lifecycle transition (fence crossings): no lifecycle seq. */
export interface LooseEvent {
  at: number;
  type: string;
  requestId?: string;
  courierId?: string;
  payload?: Record<string, unknown>;
}

/** One attempt's outcome, recorded in the delivery log (one row per webhook and event). */
export interface DeliveryRecord {
  outboxSeq: number;
  type: string;
  /** HTTP status of the last attempt; absent when no answer came (timeout, refused connection). */
  status?: number;
  error?: string;
  /** When the next attempt is due (failures). */
  nextAttemptAt?: number;
  /** When a 2xx came back (successes). */
  deliveredAt?: number;
  at: number;
}

/** A delivery log row as GET /v1/webhooks/{id}/deliveries shows it. */
export interface DeliveryRow {
  seq: number;
  type: string;
  attempts: number;
  lastStatus?: number;
  lastError?: string;
  nextAttemptAt?: number;
  deliveredAt?: number;
  updatedAt: number;
}

/** Which event types a webhook wants: exact names and prefixes (`request.` for `request.*`). */
export interface EventFilter {
  exact: string[];
  prefixes: string[];
}

/** The store calls webhooks need (implemented by SqlStore over store/webhook-sql.ts). */
export interface WebhookStore {
  /** Inserts or updates a webhook; a new one starts after the newest event stored now (no replay of history). */
  putWebhook(row: { id: string; url: string; events: string[]; secret: string; at: number }): Promise<WebhookRow>;
  /** Deletes a webhook and its delivery log; false when there was none. */
  deleteWebhook(id: string): Promise<boolean>;
  /** Every webhook, by id. */
  listWebhooks(): Promise<WebhookRow[]>;
  /** Up to `limit` events after `after` matching the filter, oldest first, and how far the read looked (the newest outbox_seq then). */
  readOutbox(after: number, filter: EventFilter, limit: number): Promise<{ events: OutboxEvent[]; scannedTo: number }>;
  /** Upserts delivery log rows (attempts + 1 each) and, when given, moves the cursor forward to `cursor` — one transaction. */
  recordDeliveries(webhookId: string, records: DeliveryRecord[], cursor?: number): Promise<void>;
  /** The delivery log of a webhook, newest event first, `limit` rows with seq below `before`; undefined for an unknown webhook. */
  listDeliveries(webhookId: string, before: number | undefined, limit: number): Promise<DeliveryRow[] | undefined>;
  /** Deletes delivered log rows delivered before olderThan (ms); returns how many. */
  purgeDeliveries(olderThan: number): Promise<number>;
  /** Appends events that belong to no lifecycle transition (fence crossings), one statement. */
  appendEvents(events: LooseEvent[]): Promise<void>;
}

/** Splits subscription patterns into exact names and prefixes (`request.*` → `request.`). */
export function eventFilter(patterns: readonly string[]): EventFilter {
  const exact: string[] = [];
  const prefixes: string[] = [];
  for (const p of patterns) {
    if (p === '*') prefixes.push('');
    else if (p.endsWith('.*')) prefixes.push(p.slice(0, -1));
    else exact.push(p);
  }
  return { exact, prefixes };
}
