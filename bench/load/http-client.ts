/**
 * A small keep-alive HTTP/1.1 client over node:http and the two ways a load run drives it (and the peers):
 * closed loop (C requests always in flight) and open loop (a paced rate, with a cap on requests in flight).
 * Every loop is bounded by a count and a deadline, and stops by itself.
 */
import { Agent, request as httpRequest } from 'node:http';
import { LatencyRecorder } from './latency.js';
import { RatePacer } from './rate-pacer.js';

/** A finished HTTP exchange. */
export interface HttpResult {
  status: number;
  body: string;
}

/** How a bounded loop went: successes (2xx) with their latencies, failures by status or error code. */
export interface LoopResult {
  ok: number;
  failed: number;
  failures: Map<string, number>;
  latency: LatencyRecorder;
  elapsedMs: number;
  /** Open loop only: units the schedule wanted but the in-flight cap held back. */
  behind: number;
  /** A sample body of the first failure, for the report. */
  firstFailure?: string;
}

// 10 s per request: far beyond any healthy latency, short enough that a wedged server ends the run
const REQUEST_TIMEOUT_MS = 10_000;

/** Keep-alive HTTP client with one socket pool per run. */
export class HttpClient {
  private readonly agent: Agent;

  constructor(maxSockets: number, private readonly headers: Record<string, string> = {}) {
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  /** Sends one request; rejects on network errors and timeouts, resolves with any status. */
  request(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const h: Record<string, string> = { ...this.headers, ...headers };
      if (payload !== undefined) {
        h['content-type'] = 'application/json';
        h['content-length'] = String(Buffer.byteLength(payload));
      }
      const req = httpRequest(url, { method, agent: this.agent, headers: h, timeout: REQUEST_TIMEOUT_MS }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error(`timeout after ${REQUEST_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Closes idle sockets. */
  close(): void {
    this.agent.destroy();
  }
}

/** Bounds of a loop. */
export interface LoopBounds {
  /** Stop issuing after this many operations. */
  maxCount: number;
  /** Stop issuing after this long; in-flight operations are still awaited. */
  durationMs: number;
}

/** One operation: its index → a promise of the HTTP result (or of nothing, for non-HTTP peers: success). */
export type Operation = (i: number) => Promise<HttpResult | void>;

/** Runs `op` with `concurrency` always in flight until the count or the deadline is reached. */
export async function runClosedLoop(op: Operation, concurrency: number, bounds: LoopBounds): Promise<LoopResult> {
  const result = emptyResult();
  const start = performance.now();
  const deadline = start + bounds.durationMs;
  let issued = 0;
  const lane = async (): Promise<void> => {
    while (issued < bounds.maxCount && performance.now() < deadline) {
      await timed(op, issued++, result);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
  result.elapsedMs = performance.now() - start;
  return result;
}

/** Issues `op` at `rate` per second (never more than `maxInFlight` at once) until the count or the deadline. */
export async function runOpenLoop(op: Operation, rate: number, maxInFlight: number, bounds: LoopBounds): Promise<LoopResult> {
  const result = emptyResult();
  const start = performance.now();
  const deadline = start + bounds.durationMs;
  const pacer = new RatePacer(rate, start);
  let inFlight = 0;
  let issued = 0;
  const pending = new Set<Promise<void>>();
  while (issued < bounds.maxCount && performance.now() < deadline) {
    const now = performance.now();
    let due = Math.min(pacer.due(now), bounds.maxCount - issued);
    if (due > maxInFlight - inFlight) {
      result.behind += due - Math.max(0, maxInFlight - inFlight);
      pacer.take(due - Math.max(0, maxInFlight - inFlight)); // skipped, not owed: an open loop does not queue
      due = Math.max(0, maxInFlight - inFlight);
    }
    for (let j = 0; j < due; j++) {
      inFlight++;
      const p: Promise<void> = timed(op, issued++, result).finally(() => {
        inFlight--;
        pending.delete(p);
      });
      pending.add(p);
    }
    pacer.take(due);
    await sleep(Math.min(Math.max(1, pacer.waitMs(performance.now())), 20, Math.max(0, deadline - performance.now())));
  }
  await Promise.all(pending);
  result.behind += pacer.behind;
  result.elapsedMs = performance.now() - start;
  return result;
}

async function timed(op: Operation, i: number, result: LoopResult): Promise<void> {
  const t0 = performance.now();
  try {
    const res = await op(i);
    if (res === undefined || (res.status >= 200 && res.status < 300)) {
      result.latency.record(performance.now() - t0);
      result.ok++;
    } else fail(result, `HTTP ${res.status}`, res.body);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    fail(result, err.code ?? err.message, err.message);
  }
}

function fail(result: LoopResult, key: string, sample: string): void {
  result.failed++;
  result.failures.set(key, (result.failures.get(key) ?? 0) + 1);
  result.firstFailure ??= `${key}: ${sample.slice(0, 300)}`;
}

function emptyResult(): LoopResult {
  return { ok: 0, failed: 0, failures: new Map(), latency: new LatencyRecorder(), elapsedMs: 0, behind: 0 };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
