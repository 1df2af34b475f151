/**
 * A webhook receiver on loopback for tests and the benchmark: a real node:http server that checks each
 * delivery's signature, records it, and answers as told (status, delay), so a test can play a receiver that
 * fails, hangs or is down.
 *
 *   POST ─► read body ─► verify X-GeoDispatch-Signature ─► answer(delivery) → { status, delayMs } ─► record ─► reply
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One delivery as the receiver saw it. */
export interface ReceivedDelivery {
  id: string;
  type: string;
  seq: number;
  at: number;
  data: Record<string, unknown>;
  eventIdHeader: string | undefined;
  signatureOk: boolean;
  /** What the receiver answered. */
  status: number;
  /** When it arrived (ms). */
  receivedAt: number;
}

/** A running receiver. */
export interface WebhookReceiver {
  url: string;
  port: number;
  /** Every delivery, in arrival order (answered ones: the status says how). */
  received: ReceivedDelivery[];
  /** Deliveries answered 2xx, first arrival of each event id only. */
  accepted(): ReceivedDelivery[];
  /** How to answer the next deliveries (default 204 at once). */
  answer: (d: { id: string; n: number }) => { status: number; delayMs?: number };
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/** Verifies `t=<ms>,v1=<hex>` against the body with the shared secret (constant-time compare). */
export function verifySignature(secret: string, header: string | undefined, body: string): boolean {
  const parts = Object.fromEntries((header ?? '').split(',').map((kv) => kv.split('=', 2) as [string, string]));
  if (!parts.t || !parts.v1) return false;
  const want = createHmac('sha256', secret).update(`${parts.t}.${body}`).digest();
  const got = Buffer.from(parts.v1, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Starts a receiver on 127.0.0.1 (port 0 = any free one) checking signatures with `secret`. */
export async function startWebhookReceiver(secret: string, port = 0): Promise<WebhookReceiver> {
  const received: ReceivedDelivery[] = [];
  const attempts = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let parsed: { id: string; type: string; seq: number; at: number; data: Record<string, unknown> };
      try {
        parsed = JSON.parse(body);
      } catch {
        res.writeHead(400).end();
        return;
      }
      const n = (attempts.get(parsed.id) ?? 0) + 1;
      attempts.set(parsed.id, n);
      const { status, delayMs = 0 } = receiver.answer({ id: parsed.id, n });
      const reply = (): void => {
        received.push({
          ...parsed, eventIdHeader: req.headers['x-geodispatch-event-id'] as string | undefined,
          signatureOk: verifySignature(secret, req.headers['x-geodispatch-signature'] as string | undefined, body), status, receivedAt: Date.now(),
        });
        res.writeHead(status).end();
      };
      if (delayMs > 0) setTimeout(reply, delayMs);
      else reply();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const receiver: WebhookReceiver = {
    url: `http://127.0.0.1:${bound}/hook`,
    port: bound,
    received,
    accepted: () => {
      const seen = new Set<string>();
      return received.filter((d) => d.status >= 200 && d.status < 300 && !seen.has(d.id) && seen.add(d.id));
    },
    answer: () => ({ status: 204 }),
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  return receiver;
}
