/**
 * The webhook registry of PRODUCT §4, admin only, stored before acknowledged.
 *
 *   PUT /v1/webhooks/{id} {url, events[], secret} ─► id, body ─► checkWebhookUrl (DNS: no private addresses)
 *        ─► journal.write(store.putWebhook) ─► stored ─► deliverer.upsert ─► 200 (never the secret)
 *   GET /v1/webhooks/{id}/deliveries?before=&limit= ─► the delivery log, newest event first
 *   DELETE /v1/webhooks/{id} ─► journal.write(store.deleteWebhook) ─► deliverer.remove ─► 204 (404 when unknown)
 */
import type { WebhookRow, WebhookStore } from '../store/webhook-store.js';
import { ApiError } from './api-error.js';
import { entityId, type EntityWriter } from './entity-routes.js';
import type { AddRoute } from './http-routes.js';
import type { WebhookBody } from './schemas.js';
import { checkWebhookUrl } from './webhook-address.js';

/** Where stored webhooks go to be delivered (api/webhook-deliverer.ts). */
export interface WebhookSink {
  upsert(row: WebhookRow): void;
  remove(id: string): void;
  has(id: string): boolean;
  readonly size: number;
}

/** What the webhook routes need, each part owned by the caller. */
export interface WebhookDeps {
  writer: EntityWriter;
  webhooks: {
    log: Pick<WebhookStore, 'listDeliveries'>;
    sink: WebhookSink;
    allowPrivate: boolean;
    /** Webhooks at most (WEBHOOK_MAX); a new one past it is refused. */
    max: number;
  };
}

/** Delivery log rows per page by default, and at most. */
const LOG_PAGE_DEFAULT = 50;
const LOG_PAGE_MAX = 500;

/** Registers PUT / DELETE /v1/webhooks/{id} and GET /v1/webhooks/{id}/deliveries on `add`. */
export function registerWebhookRoutes(add: AddRoute, deps: WebhookDeps): void {
  const { writer, webhooks } = deps;

  add('put', '/v1/webhooks/:id', {
    roles: ['admin'],
    body: 'webhook',
    run: async ({ params, body, now }) => {
      const id = entityId(params[0]);
      if (!webhooks.sink.has(id) && webhooks.sink.size >= webhooks.max) {
        throw new ApiError(409, 'E_WEBHOOK_LIMIT', `${webhooks.max} webhooks are registered, the most this server takes (WEBHOOK_MAX): delete one first`);
      }
      const b = body as WebhookBody;
      const url = await checkWebhookUrl(b.url, webhooks.allowPrivate);
      const events = [...new Set(b.events)];
      let stored: WebhookRow | undefined;
      await writer.write(async (store) => {
        stored = await store.putWebhook({ id, url: url.href, events, secret: b.secret, at: now });
      }, () => webhooks.sink.upsert(stored!)).acknowledged;
      return { status: 200, body: webhookView(stored!) };
    },
  });

  add('del', '/v1/webhooks/:id', {
    roles: ['admin'],
    run: async ({ params }) => {
      const id = entityId(params[0]);
      let existed = false;
      await writer.write(async (store) => {
        existed = await store.deleteWebhook(id);
      }, () => webhooks.sink.remove(id)).acknowledged;
      if (!existed) throw new ApiError(404, 'E_UNKNOWN_WEBHOOK', `webhook '${id}' is not registered`);
      return { status: 204 };
    },
  });

  add('get', '/v1/webhooks/:id/deliveries', {
    roles: ['admin'],
    run: async ({ params, query }) => {
      const id = entityId(params[0]);
      const { before, limit } = pageOf(query);
      const rows = await webhooks.log.listDeliveries(id, before, limit);
      if (rows === undefined) throw new ApiError(404, 'E_UNKNOWN_WEBHOOK', `webhook '${id}' is not registered`);
      const next = rows.length === limit ? String(rows[rows.length - 1].seq) : undefined;
      return { status: 200, body: { items: rows, ...(next !== undefined ? { next } : {}) } };
    },
  });
}

/** A webhook as replies show it: everything but the secret. */
export function webhookView(row: WebhookRow): Record<string, unknown> {
  return { id: row.id, url: row.url, events: row.events, createdAt: row.createdAt, updatedAt: row.updatedAt };
}

/** `before` (the `next` of the previous page: an event seq) and `limit` from the query string. */
function pageOf(query: string): { before: number | undefined; limit: number } {
  const q = new URLSearchParams(query);
  const rawBefore = q.get('before') ?? q.get('cursor');
  const rawLimit = q.get('limit');
  const before = rawBefore === null ? undefined : Number(rawBefore);
  const limit = rawLimit === null ? LOG_PAGE_DEFAULT : Number(rawLimit);
  if (before !== undefined && (!Number.isSafeInteger(before) || before < 1)) throw new ApiError(400, 'E_VALIDATION', 'before: the `next` of a previous page (a positive integer)');
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > LOG_PAGE_MAX) throw new ApiError(400, 'E_VALIDATION', `limit: an integer from 1 to ${LOG_PAGE_MAX}`);
  return { before, limit };
}
