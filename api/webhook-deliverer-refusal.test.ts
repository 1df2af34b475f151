/**
 * The deliverer checks addresses again at delivery time: a webhook stored while private addresses were allowed
 * (or whose name now resolves inside) is refused on every attempt when they are not, and the refusal is logged.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from './log.js';
import { WebhookDeliverer } from './webhook-deliverer.js';
import { type WebhookReceiver, startWebhookReceiver } from './webhook-receiver.js';
import type { DeliveryRecord, OutboxEvent, WebhookRow } from '../store/webhook-store.js';

const SECRET = 'whsec-refusal-0123456789';

/** An outbox of given events and a delivery log, in memory. */
function memoryStore(events: OutboxEvent[], hooks: WebhookRow[]) {
  const log: DeliveryRecord[] = [];
  const cursors = new Map<string, number>();
  return {
    log, cursors,
    listWebhooks: async () => hooks,
    readOutbox: async (after: number, _f: unknown, limit: number) => {
      const page = events.filter((e) => e.outboxSeq > after).slice(0, limit);
      return { events: page, scannedTo: page.length === limit ? page[page.length - 1].outboxSeq : Math.max(after, events.at(-1)?.outboxSeq ?? 0) };
    },
    recordDeliveries: async (id: string, records: DeliveryRecord[], cursor?: number) => {
      log.push(...records);
      if (cursor !== undefined) cursors.set(id, cursor);
    },
    purgeDeliveries: async () => 0,
  };
}

describe('WebhookDeliverer address checks at delivery time', () => {
  let receiver: WebhookReceiver;
  let deliverer: WebhookDeliverer | undefined;
  afterEach(async () => {
    await deliverer?.stop();
    await receiver.close();
  });

  it.each(['127.0.0.1', 'localhost'])('refuses %s without WEBHOOK_ALLOW_PRIVATE, logs why, and never reaches the receiver', async (host) => {
    receiver = await startWebhookReceiver(SECRET);
    const events = [{ outboxSeq: 1, at: 1, type: 'request.created', requestId: 'r1', payload: {} }];
    const hook: WebhookRow = { id: 'h', url: `http://${host}:${receiver.port}/hook`, events: ['request.*'], secret: SECRET, cursor: 0, createdAt: 0, updatedAt: 0 };
    const store = memoryStore(events, [hook]);
    deliverer = new WebhookDeliverer(store, { allowPrivate: false, timeoutMs: 1000, backoffMinMs: 20, backoffMaxMs: 40, pollMs: 50, logger: createLogger('silent') });
    await deliverer.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received).toEqual([]);
    expect(store.log.length).toBeGreaterThan(1);
    expect(store.log.every((r) => r.deliveredAt === undefined && /E_WEBHOOK_URL_PRIVATE|private address/.test(r.error ?? ''))).toBe(true);
    expect(store.cursors.get('h') ?? 0).toBe(0);
  });

  it('delivers the same webhook when private addresses are allowed, and moves the cursor', async () => {
    receiver = await startWebhookReceiver(SECRET);
    const events = [1, 2, 3].map((n) => ({ outboxSeq: n, at: n, type: 'request.created', requestId: `r${n}`, payload: {} }));
    const store = memoryStore(events, [{ id: 'h', url: `http://localhost:${receiver.port}/hook`, events: ['request.*'], secret: SECRET, cursor: 0, createdAt: 0, updatedAt: 0 }]);
    deliverer = new WebhookDeliverer(store, { allowPrivate: true, timeoutMs: 1000, backoffMinMs: 20, backoffMaxMs: 40, pollMs: 50, logger: createLogger('silent') });
    await deliverer.start();
    await new Promise((r) => setTimeout(r, 400));
    expect(receiver.accepted().map((d) => d.seq)).toEqual([1, 2, 3]);
    expect(store.cursors.get('h')).toBe(3);
  });
});
