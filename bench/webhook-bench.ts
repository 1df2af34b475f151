/**
 * Webhook delivery rate and lag while requests flow, against a same-run baseline.
 *
 *   [server: node dist/api/main.js, PGlite in a temp DATA_DIR] ◄── POST /v1/requests (closed loop, --concurrency)
 *        └─ deliverer ─► POST signed event ─► [loopback receiver in this process] ─► 204
 *   baseline: this process POSTs the same signed bodies straight to the receiver, one at a time (the ceiling of
 *             one in-order delivery stream); ratio = delivered events/s ÷ baseline POSTs/s
 *   also: POST /v1/requests rate and p99 with no webhook vs with one (the deliverer must not slow dispatch)
 *
 *   npm run bench:webhooks [-- --seconds 10 --concurrency 8]
 * Lag = receiver arrival − the event's `at` (set when the change was made, just before its commit).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Authenticator } from '../api/auth.js';
import { startServerProcess } from '../api/server-process.js';
import { signWebhook } from '../api/webhook-deliverer.js';
import { startWebhookReceiver } from '../api/webhook-receiver.js';
import { median, parseArgs, quantile, rateRatio, report } from './bench-report.js';

const args = parseArgs(process.argv.slice(2));
const SECONDS = Number(args.get('seconds') ?? 10);
const CONCURRENCY = Number(args.get('concurrency') ?? 8);
const JWT = 'webhook-bench-secret-0123456789-0123456789';
const HOOK_SECRET = 'whsec-bench-0123456789';

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'geodispatch-hooks-bench-'));
  const receiver = await startWebhookReceiver(HOOK_SECRET);
  const server = await startServerProcess({
    DATA_DIR: dataDir, SEED_CITY: 'none', JWT_SECRET: JWT, RATE_PER_SEC: '1000000', RATE_BURST: '1000000', OPEN_REQUESTS_PER_REQUESTER: '10000000',
    WEBHOOK_ALLOW_PRIVATE: '1', LOG_LEVEL: 'warn',
  });
  const auth = new Authenticator({ secret: JWT, algorithm: 'HS256' }, []);
  const admin = auth.signToken({ sub: 'ops', role: 'admin' }, 3600);
  const requester = auth.signToken({ sub: 'bench', role: 'requester' }, 3600);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY + 2 });
  try {
    process.stderr.write(`webhook bench: ${SECONDS} s per phase, ${CONCURRENCY} concurrent request creators, PGlite, 1 webhook (request.created)\n`);
    const base = await baseline(receiver.url, agent);
    report({ bench: 'webhook.baseline_post', n: base.n, value: base.rate, unit: 'posts/s', p50Ms: base.p50, p99Ms: base.p99 });

    const plain = await requestLoad(server.base, requester, agent);
    report({ bench: 'webhook.requests_without_hook', n: plain.n, value: plain.rate, unit: 'req/s', p50Ms: plain.p50, p99Ms: plain.p99 });

    const put = await send(agent, server.base, 'PUT', '/v1/webhooks/bench', admin, { url: receiver.url, events: ['request.created'], secret: HOOK_SECRET });
    if (put.status !== 200) throw new Error(`PUT webhook answered ${put.status}: ${put.body}`);
    receiver.received.length = 0;
    const started = Date.now();
    const hooked = await requestLoad(server.base, requester, agent);
    const loadEnded = Date.now();
    while (receiver.accepted().length < hooked.n && Date.now() - loadEnded < 120_000) await sleep(20);
    const delivered = receiver.accepted();
    const drainedAt = delivered.length > 0 ? delivered[delivered.length - 1].receivedAt : loadEnded;
    const during = delivered.filter((d) => d.receivedAt <= loadEnded).length;
    const lags = delivered.map((d) => d.receivedAt - d.at);
    report({ bench: 'webhook.requests_with_hook', n: hooked.n, value: hooked.rate, unit: 'req/s', p50Ms: hooked.p50, p99Ms: hooked.p99, baseline: 'no webhook', baselineValue: plain.rate, ratio: rateRatio(hooked.rate, plain.rate) });
    const rate = delivered.length / ((drainedAt - started) / 1000);
    report({ bench: 'webhook.delivered', n: delivered.length, value: rate, unit: 'events/s', duringLoad: during, drainMs: drainedAt - loadEnded, baseline: 'plain POST loop', baselineValue: base.rate, ratio: rateRatio(rate, base.rate) });
    report({ bench: 'webhook.lag_p50', n: lags.length, value: median(lags), unit: 'ms' });
    report({ bench: 'webhook.lag_p99', n: lags.length, value: quantile(lags, 0.99), unit: 'ms' });
    // the store grew during the hooked phase: the same load again without the webhook tells growth from webhook cost
    await send(agent, server.base, 'DELETE', '/v1/webhooks/bench', admin, undefined);
    const after = await requestLoad(server.base, requester, agent);
    report({ bench: 'webhook.requests_without_hook_after', n: after.n, value: after.rate, unit: 'req/s', p50Ms: after.p50, p99Ms: after.p99 });
    const bad = receiver.received.filter((d) => !d.signatureOk).length;
    if (bad > 0 || delivered.length !== hooked.n) throw new Error(`delivered ${delivered.length} of ${hooked.n} events, ${bad} bad signatures`);
  } finally {
    agent.destroy();
    await server.stop().catch(() => server.kill());
    await receiver.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Signed POSTs of event-sized bodies straight to the receiver, one at a time, for SECONDS. */
async function baseline(url: string, agent: http.Agent): Promise<{ n: number; rate: number; p50: number; p99: number }> {
  const times: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  for (let seq = 1; performance.now() < end; seq++) {
    const body = JSON.stringify({ id: `evt_${seq}`, type: 'request.created', at: Date.now(), seq, data: { requestId: `r_${seq.toString(16).padStart(24, '0')}`, kind: 'delivery', urgency: 'routine' } });
    const t0 = performance.now();
    const r = await post(agent, url, body, { 'x-geodispatch-signature': signWebhook(HOOK_SECRET, Date.now(), body), 'x-geodispatch-event-id': `evt_${seq}` });
    if (r.status >= 300) throw new Error(`receiver answered ${r.status}`);
    times.push(performance.now() - t0);
  }
  return { n: times.length, rate: times.length / SECONDS, p50: median(times), p99: quantile(times, 0.99) };
}

/** CONCURRENCY closed loops creating delivery requests for SECONDS. */
async function requestLoad(base: string, token: string, agent: http.Agent): Promise<{ n: number; rate: number; p50: number; p99: number }> {
  const times: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  const started = performance.now();
  let i = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < end) {
      const k = i++;
      const body = { kind: 'delivery', pickup: { lat: 51.5 + (k % 100) * 1e-4, lng: -0.12 }, dropoff: { lat: 51.51, lng: -0.13 } };
      const t0 = performance.now();
      const r = await send(agent, base, 'POST', '/v1/requests', token, body);
      if (r.status !== 201) throw new Error(`POST /v1/requests answered ${r.status}: ${r.body}`);
      times.push(performance.now() - t0);
    }
  }));
  return { n: times.length, rate: times.length / ((performance.now() - started) / 1000), p50: median(times), p99: quantile(times, 0.99) };
}

function send(agent: http.Agent, base: string, method: string, path: string, token: string, body: unknown): Promise<{ status: number; body: string }> {
  return post(agent, base + path, body === undefined ? '' : JSON.stringify(body), { authorization: `Bearer ${token}` }, method);
}

function post(agent: http.Agent, url: string, body: string, headers: Record<string, string>, method = 'POST'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
