/**
 * Webhooks survive a SIGKILL mid-delivery: the real server (`node dist/api/main.js`, PGlite in a temp DATA_DIR)
 * delivers to a slowish loopback receiver, is killed while deliveries are in flight, and is started again on the
 * same directory. Every acknowledged request's `request.created` must reach the receiver (re-deliveries allowed,
 * told apart by event id), and the first arrivals stay in outbox order.
 *
 *   [start] ─► PUT webhook ─► POST /v1/requests ×N ─► (receiver has some) SIGKILL ─► [restart] ─► receiver has all
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Authenticator } from './auth.js';
import { type ServerProcess, startServerProcess } from './server-process.js';
import { call, eventually } from './test-server.js';
import { startWebhookReceiver } from './webhook-receiver.js';

const SECRET = 'webhook-crash-secret-0123456789-0123456789';
const HOOK_SECRET = 'whsec-crash-0123456789';
const dataDir = mkdtempSync(join(tmpdir(), 'geodispatch-hooks-crash-'));
const auth = new Authenticator({ secret: SECRET, algorithm: 'HS256' }, []);
const servers: ServerProcess[] = [];

afterAll(async () => {
  for (const s of servers) await s.kill();
  rmSync(dataDir, { recursive: true, force: true });
});

const ENV = {
  DATA_DIR: dataDir, SEED_CITY: 'none', JWT_SECRET: SECRET, RATE_PER_SEC: '10000', RATE_BURST: '10000',
  WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_BACKOFF_MIN_MS: '50', WEBHOOK_BACKOFF_MAX_MS: '500', WEBHOOK_POLL_MS: '100',
};

async function start(): Promise<ServerProcess> {
  const s = await startServerProcess(ENV);
  servers.push(s);
  return s;
}

describe('webhook deliveries across a SIGKILL', () => {
  it('lose nothing: every acknowledged event reaches the receiver after a restart, first arrivals in order', async () => {
    const receiver = await startWebhookReceiver(HOOK_SECRET);
    receiver.answer = () => ({ status: 200, delayMs: 25 }); // slow enough that the kill lands mid-delivery
    const admin = auth.signToken({ sub: 'ops', role: 'admin' }, 3600);
    const requester = auth.signToken({ sub: 'shop', role: 'requester' }, 3600);

    const first = await start();
    const put = await call(first.base, 'PUT', '/v1/webhooks/crash-1', { token: admin, body: { url: receiver.url, events: ['request.created'], secret: HOOK_SECRET } });
    expect(put.status).toBe(200);
    const acked: string[] = [];
    for (let i = 0; i < 60; i++) {
      const r = await call(first.base, 'POST', '/v1/requests', { token: requester, body: { kind: 'delivery', pickup: { lat: 51.5 + i * 1e-4, lng: -0.12 }, dropoff: { lat: 51.51, lng: -0.13 } } });
      expect(r.status).toBe(201);
      acked.push(r.body.id);
    }
    await eventually(() => (receiver.received.length >= 10 ? true : undefined), 'some deliveries before the kill', 10_000);
    await first.kill();
    const beforeKill = receiver.accepted().length;
    expect(beforeKill).toBeLessThan(acked.length); // killed mid-stream, not after everything was out

    const second = await start();
    await eventually(() => (receiver.accepted().length >= acked.length ? true : undefined), `all ${acked.length} events after the restart (had ${receiver.accepted().length})`, 20_000);
    const firstArrivals = receiver.accepted();
    expect(firstArrivals.map((d) => d.data.requestId)).toEqual(acked);
    expect(firstArrivals.map((d) => d.seq)).toEqual(firstArrivals.map((d) => d.seq).sort((a, b) => a - b));
    expect(receiver.received.every((d) => d.signatureOk)).toBe(true);
    // re-deliveries (a 2xx not yet recorded when the kill came) are allowed; each carries the same event id
    const redelivered = receiver.received.length - firstArrivals.length;
    expect(redelivered).toBeGreaterThanOrEqual(0);
    await second.stop();
    await receiver.close();
  }, 90_000);
});
