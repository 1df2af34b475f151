/**
 * The deliverer on its own: signatures (against an independent digest), the envelope, and workers over an
 * in-memory outbox with a real loopback receiver — address checks at delivery time, back-off ended by a URL
 * change, stop during a retry wait.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeliveryRecord, OutboxEvent, WebhookRow } from '../store/webhook-store.js';
import { createLogger } from './log.js';
import { WebhookDeliverer, envelopeOf, signWebhook } from './webhook-deliverer.js';
import { type WebhookReceiver, startWebhookReceiver, verifySignature } from './webhook-receiver.js';

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


describe('WebhookDeliverer against a receiver that answers with an endless body', () => {
  it('counts the 2xx as delivered and closes the connection after 64 KiB instead of reading on', async () => {
    let written = 0;
    let closed = false;
    const server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024);
      const pump = (): void => {
        while (!closed && written < 512 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => { closed = true; });
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const store = memoryStore([{ outboxSeq: 1, at: 1, type: 'request.created', requestId: 'r1', payload: {} }],
      [{ id: 'h', url: `http://127.0.0.1:${port}/hook`, events: ['request.*'], secret: SECRET, cursor: 0, createdAt: 0, updatedAt: 0 }]);
    const deliverer = new WebhookDeliverer(store, { allowPrivate: true, timeoutMs: 5000, backoffMinMs: 20, backoffMaxMs: 40, pollMs: 50, logger: createLogger('silent') });
    try {
      await deliverer.start();
      for (let i = 0; i < 100 && store.cursors.get('h') !== 1; i++) await new Promise((r) => setTimeout(r, 50));
      expect(store.cursors.get('h')).toBe(1);
      for (let i = 0; i < 40 && !closed; i++) await new Promise((r) => setTimeout(r, 25));
      expect(closed).toBe(true);
      // what the socket buffers took before the close, far short of the half gigabyte on offer
      expect(written).toBeLessThan(32 * 1024 * 1024);
    } finally {
      await deliverer.stop();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('webhook signatures', () => {
  it('sign HMAC-SHA256(secret, t + "." + body) in hex, matching an independent openssl digest', () => {
    // printf '%s' '1700000000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac 'whsec-0123456789abcdef'
    expect(signWebhook('whsec-0123456789abcdef', 1_700_000_000_000, '{"id":"evt_1"}')).toBe('t=1700000000000,v1=1f3df885c2513c6cbd18fadc00b5279fcabcefd8df1f6e48c2cebfb3e212fdda');
  });

  it('verify only with the same secret, time and body', () => {
    const header = signWebhook('s'.repeat(16), 5, '{"a":1}');
    expect(verifySignature('s'.repeat(16), header, '{"a":1}')).toBe(true);
    expect(verifySignature('t'.repeat(16), header, '{"a":1}')).toBe(false);
    expect(verifySignature('s'.repeat(16), header, '{"a":2}')).toBe(false);
    expect(verifySignature('s'.repeat(16), header.replace('t=5', 't=6'), '{"a":1}')).toBe(false);
    expect(verifySignature('s'.repeat(16), undefined, '{"a":1}')).toBe(false);
  });
});

describe('envelopeOf', () => {
  it('names the event by its outbox seq and puts request and courier ids into data', () => {
    expect(envelopeOf({ outboxSeq: 42, at: 7, type: 'offer.created', requestId: 'r1', courierId: 'c1', payload: { offerId: 'o1' } }))
      .toEqual({ id: 'evt_42', type: 'offer.created', at: 7, seq: 42, data: { offerId: 'o1', requestId: 'r1', courierId: 'c1' } });
  });
});


describe('WebhookDeliverer workers', () => {
  const receivers: WebhookReceiver[] = [];
  let deliverer: WebhookDeliverer | undefined;
  afterEach(async () => {
    await deliverer?.stop();
    for (const r of receivers.splice(0)) await r.close();
  });

  it('a URL change ends a long back-off wait and delivers to the new URL', async () => {
    const old = await startWebhookReceiver(SECRET);
    const fresh = await startWebhookReceiver(SECRET);
    receivers.push(old, fresh);
    old.answer = () => ({ status: 500 });
    const hook: WebhookRow = { id: 'h', url: old.url, events: ['*'], secret: SECRET, cursor: 0, createdAt: 0, updatedAt: 0 };
    const store = memoryStore([{ outboxSeq: 1, at: 1, type: 'stock.low', payload: { siteId: 'b1' } }], [hook]);
    deliverer = new WebhookDeliverer(store, { allowPrivate: true, timeoutMs: 1000, backoffMinMs: 60_000, backoffMaxMs: 60_000, pollMs: 50, logger: createLogger('silent') });
    await deliverer.start();
    await new Promise((r) => setTimeout(r, 150));
    expect(old.received.map((d) => d.status)).toEqual([500]); // now waiting 30–60 s
    deliverer.upsert({ ...hook, url: fresh.url, updatedAt: 1 });
    await new Promise((r) => setTimeout(r, 150));
    expect(fresh.accepted().map((d) => d.data)).toEqual([{ siteId: 'b1' }]);
    expect(store.cursors.get('h')).toBe(1);
  });

  it('stop() ends a worker waiting on a hung receiver at once, recording nothing as delivered', async () => {
    const hung = await startWebhookReceiver(SECRET);
    receivers.push(hung);
    hung.answer = () => ({ status: 200, delayMs: 10_000 });
    const store = memoryStore([{ outboxSeq: 1, at: 1, type: 'stock.low', payload: {} }], [{ id: 'h', url: hung.url, events: ['*'], secret: SECRET, cursor: 0, createdAt: 0, updatedAt: 0 }]);
    const d = new WebhookDeliverer(store, { allowPrivate: true, timeoutMs: 30_000, backoffMinMs: 10, backoffMaxMs: 10, pollMs: 50, logger: createLogger('silent') });
    await d.start();
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    await d.stop();
    expect(performance.now() - started).toBeLessThan(500);
    expect(store.log.filter((r) => r.deliveredAt !== undefined)).toEqual([]);
    expect(store.cursors.get('h') ?? 0).toBe(0);
  });
});

describe('WebhookDeliverer with WEBHOOK_CONCURRENCY above 1', () => {
  let receiver: WebhookReceiver;
  let deliverer: WebhookDeliverer | undefined;
  afterEach(async () => {
    await deliverer?.stop();
    await receiver.close();
  });

  it('posts several requests at once yet keeps each request in order, through failures, and ends with the cursor at the last event', async () => {
    receiver = await startWebhookReceiver(SECRET);
    // seeded delays and a 500 on the first attempt of every fifth event
    let x = 7;
    const rand = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    receiver.answer = ({ id, n }) => ({ status: n === 1 && Number(id.slice(4)) % 5 === 0 ? 500 : 204, delayMs: Math.floor(rand() * 8) });
    const types = ['request.created', 'offer.created', 'request.assigned'];
    const events: OutboxEvent[] = [];
    for (const type of types) for (let r = 0; r < 20; r++) events.push({ outboxSeq: events.length + 1, at: 1, type, requestId: `r${r}`, payload: {} });
    const store = memoryStore(events, [{ id: 'h', url: receiver.url, events: ['*'], secret: SECRET, cursor: 0, createdAt: 0, updatedAt: 0 }]);
    deliverer = new WebhookDeliverer(store, { allowPrivate: true, timeoutMs: 1000, backoffMinMs: 5, backoffMaxMs: 20, pollMs: 50, concurrency: 8, logger: createLogger('silent') });
    await deliverer.start();
    const deadline = Date.now() + 5000;
    while (receiver.accepted().length < events.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(receiver.accepted()).toHaveLength(events.length);
    for (let r = 0; r < 20; r++) {
      // every attempt of a request's events, in arrival order: never an event of a later type before an earlier one's 2xx
      const mine = receiver.received.filter((d) => d.data.requestId === `r${r}`);
      const order = mine.map((d) => types.indexOf(d.type));
      expect(order, `r${r}`).toEqual([...order].sort((a, b) => a - b));
      expect(mine.filter((d) => d.status === 204).map((d) => d.type), `r${r}`).toEqual(types);
    }
    const seqs = receiver.accepted().map((d) => d.seq);
    expect(seqs).not.toEqual([...seqs].sort((a, b) => a - b)); // several were in flight at once
    await new Promise((r) => setTimeout(r, 300));
    expect(store.cursors.get('h')).toBe(events.length);
    expect(store.log.filter((l) => l.status === 500).length).toBe(12);
  });
});
