/**
 * The SQL of the webhook store (store/webhook-store.ts), the same text on PostgreSQL and PGlite, and the
 * functions SqlStore delegates to. Times are ms in TypeScript, timestamptz in the tables (as in store/sql.ts).
 */
import type { SqlDriver } from './sql.js';
import type { DeliveryRecord, DeliveryRow, EventFilter, LooseEvent, OutboxEvent, WebhookRow } from './webhook-store.js';

const ms = (col: string): string => `round(extract(epoch FROM ${col}) * 1000)::float8`;
const ts = (expr: string): string => `to_timestamp((${expr})::float8 / 1000.0)`;

/** Migration 5: outbox numbering on events, the webhook registry and its delivery log. */
export const WEBHOOKS_MIGRATION = `
-- every event gets a place in the outbox, in commit order; the lifecycle seq stays (unique) where there is one
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_pkey;
ALTER TABLE events ALTER COLUMN seq DROP DEFAULT, ALTER COLUMN seq DROP NOT NULL;
CREATE UNIQUE INDEX events_seq ON events (seq);
ALTER TABLE events ADD COLUMN outbox_seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;

CREATE TABLE webhooks (
  id text PRIMARY KEY,
  url text NOT NULL,
  events text[] NOT NULL,
  secret text NOT NULL,                  -- kept as given: it keys the HMAC of every delivery
  cursor bigint NOT NULL,                -- last outbox_seq delivered or passed over
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

-- one row per webhook and event attempted: the head of a webhook's queue collects its retries here
CREATE TABLE webhook_deliveries (
  webhook_id text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  outbox_seq bigint NOT NULL,
  type text NOT NULL,
  attempts integer NOT NULL,
  last_status integer,
  last_error text,
  next_attempt_at timestamptz,
  delivered_at timestamptz,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (webhook_id, outbox_seq)
);
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (delivered_at) WHERE delivered_at IS NOT NULL;
`;

const WEBHOOK_COLUMNS = `id, url, events, secret, cursor::float8 AS cursor, ${ms('created_at')} AS "createdAt", ${ms('updated_at')} AS "updatedAt"`;

/** $1 id, $2 url, $3 events (array literal), $4 secret, $5 at (ms). A new row starts at the newest event now. */
const PUT_WEBHOOK = `
INSERT INTO webhooks (id, url, events, secret, cursor, created_at, updated_at)
VALUES ($1::text, $2::text, $3::text::text[], $4::text, (SELECT COALESCE(max(outbox_seq), 0) FROM events), ${ts('$5')}, ${ts('$5')})
ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, events = EXCLUDED.events, secret = EXCLUDED.secret, updated_at = EXCLUDED.updated_at
RETURNING ${WEBHOOK_COLUMNS}`;

const DELETE_WEBHOOK = 'DELETE FROM webhooks WHERE id = $1::text RETURNING id';
const LIST_WEBHOOKS = `SELECT ${WEBHOOK_COLUMNS} FROM webhooks ORDER BY id`;

/**
 * $1 after, $2 exact names, $3 prefixes (LIKE patterns), $4 limit: the page (walking the outbox_seq primary key
 * from the cursor) and the newest outbox_seq, in ONE statement so both come from one snapshot on either store.
 */
const READ_OUTBOX = `
SELECT (SELECT COALESCE(max(outbox_seq), 0) FROM events)::float8 AS newest,
  COALESCE((SELECT json_agg(p ORDER BY p."outboxSeq") FROM (
    SELECT outbox_seq::float8 AS "outboxSeq", ${ms('at')} AS at, type, request_id AS "requestId", courier_id AS "courierId", payload
    FROM events
    WHERE outbox_seq > $1::float8::bigint AND (type = ANY($2::text::text[]) OR type LIKE ANY($3::text::text[]))
    ORDER BY outbox_seq LIMIT $4::int) p), '[]'::json) AS events`;

/** $1 webhook id, $2 records (JSON). attempts grows by one per recorded attempt. */
const RECORD_DELIVERIES = `
INSERT INTO webhook_deliveries (webhook_id, outbox_seq, type, attempts, last_status, last_error, next_attempt_at, delivered_at, updated_at)
SELECT $1::text, x."outboxSeq", x.type, 1, x.status, x.error,
  CASE WHEN x."nextAttemptAt" IS NULL THEN NULL ELSE ${ts('x."nextAttemptAt"')} END,
  CASE WHEN x."deliveredAt" IS NULL THEN NULL ELSE ${ts('x."deliveredAt"')} END, ${ts('x.at')}
FROM jsonb_to_recordset($2::text::jsonb) AS x("outboxSeq" bigint, type text, status int, error text, "nextAttemptAt" float8, "deliveredAt" float8, at float8)
WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.id = $1::text)
ON CONFLICT (webhook_id, outbox_seq) DO UPDATE SET attempts = webhook_deliveries.attempts + 1, last_status = EXCLUDED.last_status,
  last_error = EXCLUDED.last_error, next_attempt_at = EXCLUDED.next_attempt_at, delivered_at = EXCLUDED.delivered_at, updated_at = EXCLUDED.updated_at`;

/** $1 webhook id, $2 cursor: only ever forward. */
const ADVANCE_CURSOR = 'UPDATE webhooks SET cursor = GREATEST(cursor, $2::float8::bigint) WHERE id = $1::text';

/** $1 webhook id, $2 before (outbox_seq, exclusive), $3 limit. */
const LIST_DELIVERIES = `
SELECT outbox_seq::float8 AS seq, type, attempts, last_status AS "lastStatus", last_error AS "lastError",
  ${ms('next_attempt_at')} AS "nextAttemptAt", ${ms('delivered_at')} AS "deliveredAt", ${ms('updated_at')} AS "updatedAt"
FROM webhook_deliveries WHERE webhook_id = $1::text AND outbox_seq < $2::float8::bigint
ORDER BY outbox_seq DESC LIMIT $3::int`;

const PURGE_DELIVERIES = `
WITH d AS (DELETE FROM webhook_deliveries WHERE delivered_at < ${ts('$1')} RETURNING 1)
SELECT count(*)::int AS n FROM d`;

/**
 * Taken (to the end of its transaction) before a transaction inserts events: outbox_seq is an identity, handed out
 * at insert, so two writers committing at once (a cluster's cores, its hub) could commit a smaller outbox_seq after
 * a webhook's cursor passed a larger one, and that event would never be delivered. Holding this lock from before
 * the insert to the commit makes allocation order commit order. A cluster commit takes it after its fence and
 * stock checks (which lock only fence rows and lots, in one order) and before the rows it writes, so a transaction
 * waiting for it holds nothing the holder needs (no deadlock).
 */
export const OUTBOX_LOCK = 'SELECT pg_advisory_xact_lock(7260950011)';

/** $1 events (JSON): rows without a lifecycle seq. */
export const APPEND_EVENTS = `
INSERT INTO events (at, type, request_id, courier_id, payload)
SELECT ${ts('x.at')}, x.type, x."requestId", x."courierId", COALESCE(x.payload, '{}')
FROM jsonb_to_recordset($1::text::jsonb) AS x(at float8, type text, "requestId" text, "courierId" text, payload jsonb)`;

/** SqlStore's webhook methods, over its driver. */
export class WebhookSql {
  constructor(private readonly db: SqlDriver) {}

  async putWebhook(row: { id: string; url: string; events: string[]; secret: string; at: number }): Promise<WebhookRow> {
    const [stored] = await this.db.query<WebhookRow>(PUT_WEBHOOK, [row.id, row.url, textArray(row.events), row.secret, row.at]);
    return stored;
  }

  async deleteWebhook(id: string): Promise<boolean> {
    return (await this.db.query(DELETE_WEBHOOK, [id])).length > 0;
  }

  listWebhooks(): Promise<WebhookRow[]> {
    return this.db.query<WebhookRow>(LIST_WEBHOOKS);
  }

  async readOutbox(after: number, filter: EventFilter, limit: number): Promise<{ events: OutboxEvent[]; scannedTo: number }> {
    const likes = filter.prefixes.map((p) => p.replace(/[\\%_]/g, (c) => '\\' + c) + '%');
    const [row] = await this.db.query<{ newest: number; events: OutboxEvent[] | string }>(READ_OUTBOX, [after, textArray(filter.exact), textArray(likes), limit]);
    // json arrives parsed from pg, and as text or parsed from PGlite depending on the type's parser
    const events = (typeof row.events === 'string' ? JSON.parse(row.events) : row.events) as OutboxEvent[];
    for (const e of events) dropNulls(e);
    // a full page says nothing beyond its last event; a short one saw every match up to the newest event
    const scannedTo = events.length === limit ? events[events.length - 1].outboxSeq : row.newest;
    return { events, scannedTo: Math.max(after, scannedTo) };
  }

  async recordDeliveries(webhookId: string, records: DeliveryRecord[], cursor?: number): Promise<void> {
    if (records.length === 0 && cursor === undefined) return;
    await this.db.transaction(async (tx) => {
      if (records.length > 0) await tx.query(RECORD_DELIVERIES, [webhookId, JSON.stringify(records)]);
      if (cursor !== undefined) await tx.query(ADVANCE_CURSOR, [webhookId, cursor]);
    });
  }

  async listDeliveries(webhookId: string, before: number | undefined, limit: number): Promise<DeliveryRow[] | undefined> {
    return this.db.transaction(async (tx) => {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const hook = await tx.query('SELECT 1 FROM webhooks WHERE id = $1::text', [webhookId]);
      if (hook.length === 0) return undefined;
      const rows = await tx.query<DeliveryRow>(LIST_DELIVERIES, [webhookId, before ?? Number.MAX_SAFE_INTEGER, limit]);
      return rows.map(dropNulls);
    });
  }

  async purgeDeliveries(olderThan: number): Promise<number> {
    const rows = await this.db.query<{ n: number }>(PURGE_DELIVERIES, [olderThan]);
    return rows[0]?.n ?? 0;
  }

  async appendEvents(events: LooseEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.db.transaction(async (tx) => {
      await tx.query(OUTBOX_LOCK);
      await tx.query(APPEND_EVENTS, [JSON.stringify(events)]);
    });
  }
}

function textArray(values: readonly string[]): string {
  return '{' + values.map((v) => '"' + v.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"').join(',') + '}';
}

function dropNulls<T extends object>(row: T): T {
  for (const key of Object.keys(row) as (keyof T)[]) if (row[key] === null) delete row[key];
  return row;
}
