/**
 * WebSocket ingest: C connections to /v1/stream streaming pings at a paced rate, as a fleet gateway (batches,
 * MessagePack or JSON) or as drivers (one `loc` frame per ping on each driver's own socket).
 *
 *   RatePacer (pings/s) ─► whole frames due ─► PingCursor ─► encode ─► next connection with room ─► ws.send
 *                                                                     (bufferedAmount > 1 MB = full: skip it)
 *
 * Sends are counted when ws has written them (bufferedAmount drained), not when queued, so a slow server shows
 * as a lower send rate instead of client memory growth. Server frames are counted by `t`; errors are sampled.
 */
import WebSocket from 'ws';
import { LatencyRecorder } from './latency.js';
import { decodeMsgpack, encodeJsonBatch, encodeJsonSingle, encodeMsgpackBatch, type IngestMode, type PingCursor, type PingItem } from './ping-frames.js';
import { RatePacer } from './rate-pacer.js';

/** How a socket authenticates: a JWT (sent as ?access_token=) or a machine API key (X-API-Key header). */
export type Credential = { token: string } | { apiKey: string };

/** One connection's credentials and the pings it sends. */
export interface PingerLane {
  credential: Credential;
  cursor: PingCursor;
}

/** What an ingest phase sends. */
export interface IngestOptions {
  /** http(s) base URL of the server. */
  url: string;
  mode: IngestMode;
  /** One lane per connection; gateway modes may share one cursor across lanes. */
  lanes: PingerLane[];
  /** Pings per frame in batch modes (1 in json-single). */
  batch: number;
  /** Target pings per second (Infinity: as fast as the sockets drain). */
  rate: number;
  durationMs: number;
  maxPings: number;
}

/** What an ingest phase did. */
export interface IngestResult {
  mode: IngestMode;
  connections: number;
  sentPings: number;
  sentFrames: number;
  bytes: number;
  /** From the first send until every socket drained. */
  elapsedMs: number;
  /** Pings the schedule wanted but full sockets held back. */
  behind: number;
  /** Server frames received, by `t`. */
  received: Map<string, number>;
  errorSample?: string;
  /** Sockets the server closed during the phase. */
  closedEarly: number;
  /** Time from a frame's send to an `ack` frame, when the server acks (matched in order per connection). */
  ackLatency: LatencyRecorder;
  /** Sum of `accepted` over ack frames (the server's own count of applied pings). */
  ackAccepted: number;
  /** From the first send to the last ack frame; the phase waits (up to ACK_WAIT_MS) for the acks of what it sent. */
  ackedMs?: number;
  /** performance.now() of the last ack frame (internal: ackedMs is what to read). */
  lastAckAt?: number;
  /** Error frames by code (E_RATE_LIMITED means the server's limits, not its speed, set the pace). */
  errorCodes: Map<string, number>;
}

// Per-socket send buffer ceiling: ~30,000 MessagePack pings queued; beyond it the socket counts as full
const HIGH_WATER_BYTES = 1 << 20;
const CONNECT_TIMEOUT_MS = 5_000;
const DRAIN_TIMEOUT_MS = 10_000;
// How long a phase waits after draining for the acks of the frames it sent
const ACK_WAIT_MS = 5_000;
// How many sockets open at once during setup: enough to be quick, few enough not to trip SYN backlogs
const CONNECT_PARALLELISM = 64;

/** Opens one /v1/stream socket per lane; rejects with the server's answer when one cannot connect. */
export async function openSockets(url: string, credentials: readonly Credential[]): Promise<WebSocket[]> {
  const base = `${url.replace(/^http/, 'ws').replace(/\/$/, '')}/v1/stream`;
  const sockets: WebSocket[] = new Array(credentials.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < credentials.length) {
      const c = credentials[next++];
      const i = next - 1;
      sockets[i] = 'token' in c ? await openOne(`${base}?access_token=${encodeURIComponent(c.token)}`, {}) : await openOne(base, { 'x-api-key': c.apiKey });
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(CONNECT_PARALLELISM, credentials.length) }, worker));
  } catch (e) {
    for (const ws of sockets) ws?.terminate();
    throw e;
  }
  return sockets;
}

/** Runs one ingest phase to its count or deadline, drains, closes the sockets and returns the figures. */
export async function runIngest(o: IngestOptions): Promise<IngestResult> {
  const sockets = await openSockets(o.url, o.lanes.map((l) => l.credential));
  const perFrame = o.mode === 'json-single' ? 1 : o.batch;
  const result: IngestResult = {
    mode: o.mode, connections: sockets.length, sentPings: 0, sentFrames: 0, bytes: 0, elapsedMs: 0, behind: 0,
    received: new Map(), closedEarly: 0, ackLatency: new LatencyRecorder(), ackAccepted: 0, errorCodes: new Map(),
  };
  const sentAt = sockets.map(() => [] as number[]);
  sockets.forEach((ws, i) => watchReplies(ws, result, sentAt[i]));

  const items: PingItem[] = [];
  const start = performance.now();
  const deadline = start + o.durationMs;
  const pacer = new RatePacer(o.rate, start);
  const unpaced = !Number.isFinite(o.rate);
  let rr = 0;
  while (result.sentPings < o.maxPings && performance.now() < deadline) {
    const due = Math.min(pacer.due(performance.now()), o.maxPings - result.sentPings);
    let frames = unpaced ? Math.min(sockets.length, Math.ceil(due / perFrame)) : Math.floor(due / perFrame);
    let sentThisTick = 0;
    // round-robin over sockets with room; one full pass without room ends the tick (backpressure)
    for (let misses = 0; frames > 0 && misses < sockets.length; rr = (rr + 1) % sockets.length) {
      const ws = sockets[rr];
      if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > HIGH_WATER_BYTES) {
        misses++;
        continue;
      }
      misses = 0;
      const frame = encodeFrame(o.mode, o.lanes[rr].cursor, perFrame, items);
      ws.send(frame);
      sentAt[rr].push(performance.now());
      if (sentAt[rr].length > 10_000) sentAt[rr].splice(0, 5_000); // a server that never acks must not grow this
      result.bytes += typeof frame === 'string' ? Buffer.byteLength(frame) : frame.byteLength;
      result.sentFrames++;
      result.sentPings += perFrame;
      sentThisTick += perFrame;
      frames--;
    }
    if (!unpaced) {
      pacer.take(sentThisTick);
      if (frames > 0) {
        result.behind += frames * perFrame;
        pacer.take(frames * perFrame); // skipped, not owed
      }
    }
    if (sockets.every((ws) => ws.readyState !== WebSocket.OPEN)) break;
    await (sentThisTick === 0 ? sleep(Math.min(5, Math.max(1, pacer.waitMs(performance.now())))) : yieldToIo());
  }
  await drain(sockets);
  result.elapsedMs = performance.now() - start;
  // every batch frame is answered (an ack, or an error frame for a refused one): wait for those answers
  // (a driver's single `loc` is not acked)
  const answerBy = o.mode === 'json-single' ? 0 : performance.now() + ACK_WAIT_MS;
  while (answered(result) < result.sentFrames && performance.now() < answerBy && sockets.some((ws) => ws.readyState === WebSocket.OPEN)) await sleep(2);
  if (result.lastAckAt !== undefined) result.ackedMs = result.lastAckAt - start;
  result.behind += pacer.behind;
  result.closedEarly = sockets.filter((ws) => ws.readyState !== WebSocket.OPEN).length;
  await closeAll(sockets);
  return result;
}

function encodeFrame(mode: IngestMode, cursor: PingCursor, perFrame: number, items: PingItem[]): Uint8Array | string {
  cursor.take(perFrame, items);
  if (mode === 'msgpack') return encodeMsgpackBatch(items);
  if (mode === 'json-batch') return encodeJsonBatch(items);
  return encodeJsonSingle(items[0]);
}

// frames the server has answered so far
function answered(result: IngestResult): number {
  return (result.received.get('ack') ?? 0) + (result.received.get('error') ?? 0);
}

function watchReplies(ws: WebSocket, result: IngestResult, sentAt: number[]): void {
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    let msg: { t?: unknown; code?: unknown; message?: unknown; accepted?: unknown } | undefined;
    try {
      msg = (isBinary ? decodeMsgpack(data) : JSON.parse(data.toString('utf8'))) as typeof msg;
    } catch {
      msg = undefined;
    }
    const t = typeof msg?.t === 'string' ? msg.t : '(unparsed)';
    result.received.set(t, (result.received.get(t) ?? 0) + 1);
    if (t === 'ack') {
      result.lastAckAt = performance.now();
      const at = sentAt.shift();
      if (at !== undefined) result.ackLatency.record(performance.now() - at);
      if (typeof msg?.accepted === 'number') result.ackAccepted += msg.accepted;
    }
    if (t === 'error') {
      const code = String(msg?.code);
      result.errorCodes.set(code, (result.errorCodes.get(code) ?? 0) + 1);
      result.errorSample ??= `${code}: ${String(msg?.message)}`;
    }
  });
  ws.on('error', () => {}); // surfaced as a close; counted in closedEarly
}

function openOne(url: string, headers: Record<string, string>): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: CONNECT_TIMEOUT_MS, headers });
    const shown = url.replace(/access_token=[^&]+/, 'access_token=…');
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      reject(new Error(`WebSocket ${shown}: server answered HTTP ${res.statusCode} instead of upgrading (token role/expiry?)`));
      ws.terminate();
    });
    ws.once('error', (e) => reject(new Error(`WebSocket ${shown}: ${e.message}`)));
  });
}

async function drain(sockets: WebSocket[]): Promise<void> {
  const until = performance.now() + DRAIN_TIMEOUT_MS;
  while (performance.now() < until && sockets.some((ws) => ws.readyState === WebSocket.OPEN && ws.bufferedAmount > 0)) await sleep(2);
}

async function closeAll(sockets: WebSocket[]): Promise<void> {
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve();
          const timer = setTimeout(() => (ws.terminate(), resolve()), 2_000);
          ws.once('close', () => (clearTimeout(timer), resolve()));
          ws.close(1000, 'load run done');
        }),
    ),
  );
}

function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
