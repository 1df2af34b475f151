/**
 * Fleet onboarding and fleet lists through the real server (`node dist/api/main.js` on its embedded store, in a
 * child process, so the client does not share its thread), each against its baseline in the same run:
 *
 *   1. PUT /v1/couriers: 100,000 couriers in batches of 10,000, one after the other (target < 10 s)
 *      baseline: PUT /v1/couriers/{id}, one courier per call, on 16 connections, for a sample, extrapolated
 *   2. GET /v1/couriers?limit=100 pages walked by cursor over the whole fleet: latency median / p99 while the
 *      fleet is quiet (baseline), then while writers run at a steady pace (position batches of 5,000 at
 *      --ping-rate pings/s, bulk profile upserts of 1,000 at --upsert-rate couriers/s)
 *
 *   npm run bench:fleet [-- --couriers 100000 --batch 10000 --sample 2000 --pages 300 --ping-rate 100000 --upsert-rate 5000]
 *
 * Rate limits are raised for the run (they are not what is measured); what a batch costs in tokens under the
 * default limits is checked by api/fleet.e2e.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Authenticator } from '../api/auth.js';
import { startServerProcess } from '../api/server-process.js';
import { median, parseArgs, quantile, report } from './bench-report.js';

const args = parseArgs(process.argv.slice(2));
const COURIERS = Number(args.get('couriers') ?? 100_000);
const BATCH = Number(args.get('batch') ?? 10_000);
const SAMPLE = Number(args.get('sample') ?? 2_000);
const PAGES = Number(args.get('pages') ?? 300);
/** Writes while pages are read: a 100,000 fleet pinging once a second, and 5,000 profile changes a second. */
const PING_RATE = Number(args.get('ping-rate') ?? 100_000);
const UPSERT_RATE = Number(args.get('upsert-rate') ?? 5_000);
const PING_BATCH = 5_000;
const UPSERT_BATCH = 1_000;
/** Connections the one-per-call baseline uses: its best case on 2 cores, well past where more stop helping. */
const BASELINE_CONNECTIONS = 16;
const PAGE_LIMIT = 100;
const SECRET = 'fleet-bench-secret-fleet-bench-secret-0123';
const VEHICLES = ['bike', 'car', 'van'] as const;
const CENTRE = { lat: 51.5074, lng: -0.1278 };

await main();

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gd-fleet-bench-'));
  const srv = await startServerProcess({
    DATA_DIR: dir, JWT_SECRET: SECRET, SEED_CITY: 'none', LOG_LEVEL: 'warn',
    RATE_PER_SEC: '1000000', RATE_BURST: '1000000', GATEWAY_INGEST_PER_SEC: '100000000', GATEWAY_INGEST_BURST: '100000000',
  });
  const token = new Authenticator({ secret: SECRET, algorithm: 'HS256' }, []).signToken({ sub: 'bench', role: 'admin' }, 3600);
  const http = client(srv.base, token);
  try {
    process.stderr.write(`fleet bench: ${COURIERS} couriers in batches of ${BATCH}, baseline sample ${SAMPLE}, ${PAGES} pages\n`);
    const bulkSeconds = await onboard(http);
    const perCallRate = await onePerCall(http);
    const extrapolated = COURIERS / perCallRate;
    report({
      bench: 'fleet.bulk-upsert', n: COURIERS, value: bulkSeconds, unit: 's', batch: BATCH, target: '< 10 s',
      baseline: `PUT /v1/couriers/{id} × ${SAMPLE} on ${BASELINE_CONNECTIONS} connections, extrapolated`, baselineValue: extrapolated, ratio: extrapolated / bulkSeconds,
    });
    const quiet = await walkPages(http, PAGES);
    const stop = startWriters(http);
    const busy = await walkPages(http, PAGES);
    const writes = await stop();
    for (const [name, sample] of [['quiet', quiet], ['under-writes', busy]] as const) {
      report({ bench: `fleet.list-page.${name}`, n: sample.length, value: median(sample), unit: 'ms median', p99: Number(quantile(sample, 0.99).toFixed(2)), limit: PAGE_LIMIT, fleet: COURIERS });
    }
    report({ bench: 'fleet.list-page.writes-meanwhile', n: writes.calls, value: writes.couriers / writes.seconds, unit: 'couriers upserted/s', pingsPerSec: Math.round(writes.pings / writes.seconds) });
  } finally {
    await srv.stop().catch(() => srv.kill());
    rmSync(dir, { recursive: true, force: true });
  }
}

/** PUTs the whole fleet in batches, one after the other; seconds taken. */
async function onboard(http: Client): Promise<number> {
  const started = performance.now();
  for (let from = 0; from < COURIERS; from += BATCH) {
    const items = [];
    for (let i = from; i < Math.min(COURIERS, from + BATCH); i++) items.push(profile(`f-${String(i).padStart(7, '0')}`, i));
    const r = await http('PUT', '/v1/couriers', items);
    if (r.status !== 200 || r.body.accepted !== items.length) throw new Error(`bulk upsert: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  }
  return (performance.now() - started) / 1000;
}

/** The baseline: one courier per PUT on several connections; couriers per second. */
async function onePerCall(http: Client): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    for (let i = next++; i < SAMPLE; i = next++) {
      const { id, ...body } = profile(`s-${String(i).padStart(7, '0')}`, i);
      const r = await http('PUT', `/v1/couriers/${id}`, body);
      if (r.status !== 200) throw new Error(`single upsert: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: BASELINE_CONNECTIONS }, worker));
  return SAMPLE / ((performance.now() - started) / 1000);
}

/** Walks the fleet by cursor, `pages` pages (from the start again at the end); each page's latency in ms. */
async function walkPages(http: Client, pages: number): Promise<number[]> {
  const out: number[] = [];
  let cursor: string | undefined;
  for (let p = 0; p < pages; p++) {
    const started = performance.now();
    const r = await http('GET', `/v1/couriers?limit=${PAGE_LIMIT}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    out.push(performance.now() - started);
    if (r.status !== 200 || r.body.items.length === 0) throw new Error(`list page: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    cursor = r.body.next;
  }
  return out;
}

/** Writers while pages are read: profile upserts and position batches, each at its steady pace. */
function startWriters(http: Client): () => Promise<{ calls: number; couriers: number; pings: number; seconds: number }> {
  let running = true;
  const started = performance.now();
  const done = { calls: 0, couriers: 0, pings: 0 };
  let round = 0;
  const upserts = (async () => {
    for (let due = performance.now(); running; due += (UPSERT_BATCH / UPSERT_RATE) * 1000) {
      await sleepUntil(due);
      const from = (round++ * 1000) % COURIERS;
      const items = Array.from({ length: UPSERT_BATCH }, (_, k) => profile(`f-${String(from + k).padStart(7, '0')}`, from + k + round));
      await http('PUT', '/v1/couriers', items);
      done.calls++;
      done.couriers += items.length;
    }
  })();
  const pings = (async () => {
    let ts = Date.now();
    for (let due = performance.now(); running; due += (PING_BATCH / PING_RATE) * 1000) {
      await sleepUntil(due);
      ts = Math.max(ts + 1, Date.now());
      const items = Array.from({ length: PING_BATCH }, () => {
        const i = Math.floor(Math.random() * COURIERS);
        return { id: `f-${String(i).padStart(7, '0')}`, lat: CENTRE.lat + (Math.random() - 0.5) * 0.2, lng: CENTRE.lng + (Math.random() - 0.5) * 0.3, ts };
      });
      await http('POST', '/v1/locations', items);
      done.calls++;
      done.pings += items.length;
    }
  })();
  return async () => {
    running = false;
    await Promise.all([upserts, pings]);
    return { ...done, seconds: (performance.now() - started) / 1000 };
  };
}

/** Waits until performance.now() reaches `at` (at once when a writer has fallen behind its pace). */
function sleepUntil(at: number): Promise<void> {
  const wait = at - performance.now();
  return wait > 0 ? new Promise((r) => setTimeout(r, wait)) : Promise.resolve();
}

type Client = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>;

function client(base: string, token: string): Client {
  return async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
  };
}

function profile(id: string, i: number): { id: string; vehicle: (typeof VEHICLES)[number]; capabilities: string[]; capacity: number } {
  return { id, vehicle: VEHICLES[i % 3], capabilities: i % 4 === 0 ? ['cold_chain'] : [], capacity: 1 + (i % 6) };
}
