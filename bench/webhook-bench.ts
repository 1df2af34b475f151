/**
 * Webhook delivery rate and lag while requests flow, against a same-run baseline.
 *
 *   [server: node dist/api/main.js, PGlite in a temp DATA_DIR] ◄── POST /v1/requests (closed loop, --concurrency)
 *        └─ deliverer ─► POST signed event ─► [loopback receiver in this process] ─► 204
 *   baseline: this process POSTs the same signed bodies straight to the receiver, one at a time (the ceiling of
 *             one in-order delivery stream); ratio = delivered events/s ÷ baseline POSTs/s, both while requests
 *             flow (the deliverer keeps up: its rate is the request rate) and catching up a backlog with no load
 *   also: POST /v1/requests rate and p99 with no webhook vs with one, in alternating phases (the deliverer must
 *         not slow dispatch); each loop turn creates a request and cancels it
 *
 *   npm run bench:webhooks [-- --seconds 12 --rounds 3 --concurrency 8 --window 1 --events request.created --aa]
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
const SECONDS = Number(args.get('seconds') ?? 12);
const CONCURRENCY = Number(args.get('concurrency') ?? 8);
const ROUNDS = Number(args.get('rounds') ?? 3);
/** The webhook's subscription; `--events stock.low` (never fired here) measures the outbox reads alone. */
const EVENTS = (args.get('events') ?? 'request.created').split(',');
/** `--aa`: the "with" phases register no webhook (an A/A run: how far apart two identical phases land). */
const AA = args.has('aa');
/** `--window N`: WEBHOOK_CONCURRENCY of the server (POSTs in flight per webhook; default 1, strict order). */
const WINDOW = args.get('window') ?? '1';
const JWT = 'webhook-bench-secret-0123456789-0123456789';
const HOOK_SECRET = 'whsec-bench-0123456789';

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'geodispatch-hooks-bench-'));
  const receiver = await startWebhookReceiver(HOOK_SECRET);
  const server = await startServerProcess({
    DATA_DIR: dataDir, SEED_CITY: 'none', JWT_SECRET: JWT, RATE_PER_SEC: '1000000', RATE_BURST: '1000000', OPEN_REQUESTS_PER_REQUESTER: '10000000',
    // a fixed 8 s back-off (jittered to 4–8 s): the catch-up phase holds a backlog behind one refused delivery
    WEBHOOK_ALLOW_PRIVATE: '1', LOG_LEVEL: 'warn', WEBHOOK_BACKOFF_MIN_MS: '8000', WEBHOOK_BACKOFF_MAX_MS: '8000',
    WEBHOOK_CONCURRENCY: WINDOW,
  });
  const auth = new Authenticator({ secret: JWT, algorithm: 'HS256' }, []);
  const admin = auth.signToken({ sub: 'ops', role: 'admin' }, 3600);
  const requester = auth.signToken({ sub: 'bench', role: 'requester' }, 3600);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY + 2 });
  try {
    process.stderr.write(`webhook bench: ${SECONDS} s with and ${SECONDS} s without the webhook in ${ROUNDS} alternating rounds, ${CONCURRENCY} concurrent request creators, PGlite, 1 webhook (${EVENTS.join(',')}, WEBHOOK_CONCURRENCY=${WINDOW})\n`);
    const base = await baseline(receiver.url, agent);
    report({ bench: 'webhook.baseline_post', n: base.n, value: base.rate, unit: 'posts/s', p50Ms: base.p50, p99Ms: base.p99 });
    receiver.received.length = 0;

    // phases alternate without / with the webhook (ROUNDS each), so whatever drifts over the run (the store grows,
    // a neighbour takes the CPU) weighs on both sides alike; the webhook is re-registered for each hooked phase
    const plain: Load[] = [];
    const hooked: Load[] = [];
    let expected = 0;
    let lastLoadEnd = Date.now();
    let hookedMs = 0;
    for (let round = 0; round < ROUNDS; round++) {
      plain.push(await requestLoad(server.base, requester, agent, SECONDS / ROUNDS));
      const put = AA ? { status: 200, body: '' } : await send(agent, server.base, 'PUT', '/v1/webhooks/bench', admin, { url: receiver.url, events: EVENTS, secret: HOOK_SECRET });
      if (put.status !== 200) throw new Error(`PUT webhook answered ${put.status}: ${put.body}`);
      const t0 = Date.now();
      const load = await requestLoad(server.base, requester, agent, SECONDS / ROUNDS);
      hooked.push(load);
      expected += load.n;
      lastLoadEnd = Date.now();
      if (AA || !EVENTS.includes('request.created')) expected = 0;
      while (receiver.accepted().length < expected && Date.now() - lastLoadEnd < 120_000) await sleep(5);
      hookedMs += Date.now() - t0;
      await send(agent, server.base, 'DELETE', '/v1/webhooks/bench', admin, undefined);
    }
    const without = merge(plain);
    const withHook = merge(hooked);
    report({ bench: 'webhook.requests_without_hook', n: without.n, value: without.rate, unit: 'req/s', p50Ms: without.p50, p99Ms: without.p99 });
    report({ bench: 'webhook.requests_with_hook', n: withHook.n, value: withHook.rate, unit: 'req/s', p50Ms: withHook.p50, p99Ms: withHook.p99, baseline: 'no webhook (alternating phases)', baselineValue: without.rate, ratio: rateRatio(withHook.rate, without.rate) });
    const delivered = receiver.accepted();
    const lags = delivered.map((d) => d.receivedAt - d.at);
    // events/s over the hooked phases including the time to drain what was left when each ended
    const rate = delivered.length / (hookedMs / 1000);
    report({ bench: 'webhook.delivered', n: delivered.length, value: rate, unit: 'events/s', baseline: 'plain POST loop', baselineValue: base.rate, ratio: rateRatio(rate, base.rate) });
    report({ bench: 'webhook.lag_p50', n: lags.length, value: median(lags), unit: 'ms' });
    report({ bench: 'webhook.lag_p99', n: lags.length, value: quantile(lags, 0.99), unit: 'ms' });
    if (delivered.length !== expected) throw new Error(`delivered ${delivered.length} of ${expected} events`);

    // catch-up: the receiver refuses the first event once, a backlog builds behind it for 3 s of load, and once
    // the retry comes (4–8 s later, load over) the whole backlog goes out: the deliverer's rate with nothing else running
    if (!AA && EVENTS.includes('request.created')) {
      receiver.received.length = 0;
      let refused: string | undefined;
      receiver.answer = ({ id }) => (refused !== undefined ? { status: 204 } : ((refused = id), { status: 503 }));
      const put2 = await send(agent, server.base, 'PUT', '/v1/webhooks/bench', admin, { url: receiver.url, events: EVENTS, secret: HOOK_SECRET });
      if (put2.status !== 200) throw new Error(`PUT webhook answered ${put2.status}`);
      const backlog = await requestLoad(server.base, requester, agent, 3);
      const loadOver = Date.now();
      while (receiver.accepted().length < backlog.n && Date.now() - loadOver < 120_000) await sleep(5);
      const got = receiver.accepted();
      // from the refused event's retry on (with a window, events of other requests went out while it waited)
      const first = got.find((d) => d.id === refused)!.receivedAt;
      const last = got[got.length - 1].receivedAt;
      const after = got.filter((d) => d.receivedAt >= first).length;
      const catchUp = after / Math.max(0.001, (last - first) / 1000);
      report({ bench: 'webhook.catch_up', n: after, value: catchUp, unit: 'events/s', startedAfterLoadMs: first - loadOver, baseline: 'plain POST loop', baselineValue: base.rate, ratio: rateRatio(catchUp, base.rate) });
      if (got.length !== backlog.n) throw new Error(`caught up ${got.length} of ${backlog.n} events`);
    }
    const bad = receiver.received.filter((d) => !d.signatureOk).length;
    if (bad > 0) throw new Error(`${bad} bad signatures`);
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
  const seconds = Math.min(5, SECONDS);
  const end = performance.now() + seconds * 1000;
  for (let seq = 1; performance.now() < end; seq++) {
    const body = JSON.stringify({ id: `evt_${seq}`, type: 'request.created', at: Date.now(), seq, data: { requestId: `r_${seq.toString(16).padStart(24, '0')}`, kind: 'delivery', urgency: 'routine' } });
    const t0 = performance.now();
    const r = await post(agent, url, body, { 'x-geodispatch-signature': signWebhook(HOOK_SECRET, Date.now(), body), 'x-geodispatch-event-id': `evt_${seq}` });
    if (r.status >= 300) throw new Error(`receiver answered ${r.status}`);
    times.push(performance.now() - t0);
  }
  return { n: times.length, rate: times.length / seconds, p50: median(times), p99: quantile(times, 0.99) };
}

interface Load { n: number; rate: number; p50: number; p99: number; times: number[]; seconds: number }

function merge(loads: Load[]): Load {
  const times = loads.flatMap((l) => l.times);
  const seconds = loads.reduce((s, l) => s + l.seconds, 0);
  return { n: times.length, rate: times.length / seconds, p50: median(times), p99: quantile(times, 0.99), times, seconds };
}

/**
 * CONCURRENCY closed loops, each creating a delivery request and cancelling it, for `seconds`: two transitions per
 * loop turn (created, cancelled), and open requests stay few, so the phases see the same dispatch state.
 * Only the creates are timed.
 */
async function requestLoad(base: string, token: string, agent: http.Agent, seconds: number): Promise<Load> {
  const times: number[] = [];
  const end = performance.now() + seconds * 1000;
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
      const id = (JSON.parse(r.body) as { id: string }).id;
      const c = await send(agent, base, 'POST', `/v1/requests/${id}/cancel`, token, undefined);
      if (c.status !== 200) throw new Error(`cancel answered ${c.status}: ${c.body}`);
    }
  }));
  const took = (performance.now() - started) / 1000;
  return { n: times.length, rate: times.length / took, p50: median(times), p99: quantile(times, 0.99), times, seconds: took };
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
