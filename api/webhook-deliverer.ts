/**
 * Webhook deliveries: each webhook reads the outbox (the events table, store/webhook-store.ts) after its
 * durable cursor and POSTs the events it subscribed to, one at a time in outbox order, signed; the cursor
 * moves only after the receiver answered 2xx and that answer is recorded. Off the request path: the journal
 * only pokes the deliverer after a commit and never waits for it.
 *
 *   journal commit ─► wake() ─┐    (or every WEBHOOK_POLL_MS)
 *                             ▼
 *   HookWorker (one per webhook, one request in flight) ─► readOutbox(after, filter, PAGE) ─► for each event:
 *        POST {id,type,at,seq,data} + X-GeoDispatch-Signature ─► 2xx ─► pending ─► recordDeliveries(…, cursor)
 *                                                   └─ non-2xx / timeout / refused ─► log the attempt,
 *                                                      wait min(max, min·2^(n−1)) × jitter, same event again
 *
 * At least once: a crash between a 2xx and its record re-delivers (receivers de-dup on the event id). In order:
 * a webhook's events go out one by one in outbox order, and a failing event holds the ones behind it (no event
 * is ever dropped after some number of attempts; DELETE the webhook to stop). Memory: one page per webhook.
 */
import { createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { DeliveryRecord, EventFilter, OutboxEvent, WebhookRow, WebhookStore } from '../store/webhook-store.js';
import { eventFilter } from '../store/webhook-store.js';
import type { Logger } from './log.js';
import { hostOf, isPrivateAddress, pinnedLookup } from './webhook-address.js';
import { isIP } from 'node:net';

/** How deliveries run; the times come from configuration (api/config.ts `webhooks`). */
export interface DelivererOptions {
  allowPrivate: boolean;
  timeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  pollMs: number;
  logger: Logger;
  /**
   * POSTs in flight per webhook (default 1: strictly in outbox order). Above 1, events of different requests
   * (couriers for fences, sites for stock) may arrive out of seq order; one request's never do.
   */
  concurrency?: number;
  /** Events read per outbox query (default 100). */
  pageSize?: number;
  clock?: () => number;
  random?: () => number;
  /** Told of every attempt: delivered (with ms from the event's time to the 2xx) or failed (to be retried). */
  onAttempt?: (delivered: boolean, lagMs: number) => void;
}

/** The store calls the deliverer makes. */
export type DelivererStore = Pick<WebhookStore, 'listWebhooks' | 'readOutbox' | 'recordDeliveries' | 'purgeDeliveries'>;

/** What a receiver gets as the body of each POST. */
export interface WebhookEnvelope {
  id: string;
  type: string;
  at: number;
  seq: number;
  data: Record<string, unknown>;
}

/** The signature header value: `t=<ms>,v1=<hex HMAC-SHA256(secret, t + "." + body)>`. */
export function signWebhook(secret: string, t: number, body: string): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/** The body a receiver gets for an outbox event. */
export function envelopeOf(e: OutboxEvent): WebhookEnvelope {
  const data: Record<string, unknown> = { ...e.payload };
  if (e.requestId !== undefined) data.requestId = e.requestId;
  if (e.courierId !== undefined) data.courierId = e.courierId;
  return { id: `evt_${e.outboxSeq}`, type: e.type, at: e.at, seq: e.outboxSeq, data };
}

/** Runs one worker per registered webhook. */
export class WebhookDeliverer {
  private readonly workers = new Map<string, HookWorker>();
  private purgeTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly store: DelivererStore, private readonly options: DelivererOptions) {}

  /** Loads the registered webhooks and starts delivering. */
  async start(): Promise<void> {
    for (const row of await this.store.listWebhooks()) this.upsert(row);
    this.purgeTimer = setInterval(() => void this.purge(), PURGE_EVERY_MS).unref();
  }

  /** A webhook stored (new or changed): its worker uses the new URL, events and secret from its next attempt. */
  upsert(row: WebhookRow): void {
    if (this.stopped) return;
    const worker = this.workers.get(row.id);
    if (worker !== undefined) return worker.update(row);
    const w = new HookWorker(row, this.store, this.options);
    this.workers.set(row.id, w);
    void w.run();
  }

  /** Whether a webhook is registered (has a worker). */
  has(id: string): boolean {
    return this.workers.has(id);
  }

  /** Webhooks registered. */
  get size(): number {
    return this.workers.size;
  }

  /** A webhook deleted: its worker stops (an attempt in flight is abandoned). */
  remove(id: string): void {
    this.workers.get(id)?.stop();
    this.workers.delete(id);
  }

  /** True when some registered webhook subscribes to this event type (fence crossings are only stored then). */
  wants(type: string): boolean {
    for (const w of this.workers.values()) if (w.wants(type)) return true;
    return false;
  }

  /** The event patterns the registered webhooks subscribe to (a cluster's hub tells its cores). */
  patterns(): string[] {
    return [...new Set([...this.workers.values()].flatMap((w) => w.patterns()))];
  }

  /** New events were committed: idle workers look now instead of at their next poll. */
  wake(): void {
    for (const w of this.workers.values()) w.poke();
  }

  /** Stops every worker, recording the successes not yet recorded; resolves once they are done. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.purgeTimer);
    const all = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(all.map((w) => w.stop()));
  }

  private async purge(): Promise<void> {
    try {
      await this.store.purgeDeliveries((this.options.clock ?? Date.now)() - DELIVERY_LOG_KEEP_MS);
    } catch (err) {
      this.options.logger.warn({ err }, 'purging the webhook delivery log failed; trying again later');
    }
  }
}

/** Delivered rows stay in the log a day: enough to answer "did they get it", small enough to keep. */
const DELIVERY_LOG_KEEP_MS = 86_400_000;
const PURGE_EVERY_MS = 3_600_000;
/** Successes recorded together (one transaction): at most this many re-deliveries after a crash. */
const RECORD_BATCH = 32;
/** …or after this long, so the log and the cursor stay fresh with a slow receiver. */
const RECORD_EVERY_MS = 200;
/** After a commit's poke, an idle worker waits this long so the commits right behind it are read in the same page. */
const LINGER_MS = 20;
/** A cursor moved only over events nobody here wants is saved at most this often (a crash costs a re-read, no re-delivery). */
const IDLE_CURSOR_SAVE_MS = 1_000;
/** A receiver's answer body is read and dropped; this much is kept for the log of a failure. */
const ERROR_BODY_BYTES = 200;
// A reply body is read only to keep the connection reusable (and its start for the log): past 64 KiB the
// connection is closed instead, so a receiver answering with gigabytes costs one socket, not the server's CPU.
const MAX_REPLY_BYTES = 64 * 1024;

/** One webhook's delivery loop. */
class HookWorker {
  private hook: WebhookRow;
  private filter: EventFilter;
  private scanFrom: number;
  private durable: number;
  private pending: DeliveryRecord[] = [];
  private pendingSince = 0;
  private stopped = false;
  private done: Promise<void> = Promise.resolve();
  private agent: http.Agent | undefined;
  private wakeIdle: (() => void) | undefined;
  private wakeAny: (() => void) | undefined;
  private generation = 0;
  private linger: NodeJS.Timeout | undefined;
  private savedAt = 0;
  /** A poke came while not idle: the next idle wait lasts only the linger. */
  private poked = false;
  private readonly clock: () => number;

  constructor(hook: WebhookRow, private readonly store: DelivererStore, private readonly options: DelivererOptions) {
    this.hook = hook;
    this.filter = eventFilter(hook.events);
    this.scanFrom = hook.cursor;
    this.durable = hook.cursor;
    this.clock = options.clock ?? Date.now;
  }

  update(row: WebhookRow): void {
    const moved = row.url !== this.hook.url;
    this.hook = { ...row, cursor: this.hook.cursor };
    this.filter = eventFilter(row.events);
    this.generation++;
    if (moved) this.dropAgent();
    this.wakeAny?.(); // a back-off wait for the old URL ends now
  }

  wants(type: string): boolean {
    return this.filter.exact.includes(type) || this.filter.prefixes.some((p) => type.startsWith(p));
  }

  patterns(): readonly string[] {
    return this.hook.events;
  }

  poke(): void {
    this.poked = true;
    // the commits of the next few ms are read together: one outbox read instead of one per commit under load
    if (this.wakeIdle !== undefined && this.linger === undefined) {
      this.linger = setTimeout(() => {
        this.linger = undefined;
        this.wakeIdle?.();
      }, LINGER_MS);
    }
  }

  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.linger);
    this.wakeAny?.();
    this.dropAgent();
    return this.done;
  }

  run(): Promise<void> {
    this.done = this.loop().catch((err: unknown) => this.options.logger.error({ err, webhook: this.hook.id }, 'webhook worker failed'));
    return this.done;
  }

  private async loop(): Promise<void> {
    let storeFailures = 0;
    while (!this.stopped) {
      try {
        this.poked = false;
        const page = await this.store.readOutbox(this.scanFrom, this.filter, this.options.pageSize ?? 100);
        if (page.events.length === 0) {
          this.scanFrom = page.scannedTo;
          // passing over events it does not want is saved at most once a second: a crash only re-reads them
          if (this.scanFrom > this.durable && this.clock() - this.savedAt >= IDLE_CURSOR_SAVE_MS) await this.record([], this.scanFrom);
          storeFailures = 0;
          await this.sleep(this.options.pollMs, 'idle');
          continue;
        }
        const all = (this.options.concurrency ?? 1) > 1 ? await this.deliverWindow(page.events) : await this.deliverInOrder(page.events);
        if (all) this.scanFrom = Math.max(this.scanFrom, page.scannedTo);
        await this.record(this.takePending(), this.scanFrom);
        storeFailures = 0;
      } catch (err) {
        // the store is down: start again from what it has recorded (re-delivering is allowed, skipping is not)
        this.pending = [];
        this.scanFrom = this.durable;
        this.options.logger.warn({ err, webhook: this.hook.id }, 'webhook outbox read or record failed; retrying');
        await this.sleep(this.backoff(++storeFailures), 'any');
      }
    }
    if (this.pending.length > 0) await this.record(this.takePending(), this.scanFrom).catch(() => undefined);
  }

  /** One event at a time, in outbox order; true when the whole page was delivered. */
  private async deliverInOrder(events: OutboxEvent[]): Promise<boolean> {
    for (const e of events) {
      if (this.stopped || !(await this.deliver(e))) return false;
      this.scanFrom = e.outboxSeq;
      await this.recordIfDue();
    }
    return true;
  }

  /**
   * Up to `concurrency` POSTs at once, never two of the same order key (request, else courier, else site) at once
   * or out of outbox order; the cursor follows the delivered prefix of the page. True when all were delivered.
   */
  private async deliverWindow(events: OutboxEvent[]): Promise<boolean> {
    const width = this.options.concurrency ?? 1;
    const n = events.length;
    const started = new Array<boolean>(n).fill(false);
    const delivered = new Array<boolean>(n).fill(false);
    const running = new Set<Promise<void>>();
    let prefix = 0;
    const start = (i: number): void => {
      started[i] = true;
      const p: Promise<void> = this.deliver(events[i]).then((ok) => {
        running.delete(p);
        delivered[i] = ok;
      });
      running.add(p);
    };
    while (prefix < n && !this.stopped) {
      // an event may start when no earlier event of its key is in flight or still waiting to start
      const blocked = new Set<string>();
      for (let i = prefix; i < n && running.size < width; i++) {
        const key = orderKey(events[i]);
        if (started[i]) {
          if (!delivered[i]) blocked.add(key);
          continue;
        }
        if (!blocked.has(key)) start(i);
        blocked.add(key);
      }
      if (running.size === 0) break;
      await Promise.race(running);
      while (prefix < n && delivered[prefix]) prefix++;
      if (prefix > 0) this.scanFrom = Math.max(this.scanFrom, events[prefix - 1].outboxSeq);
      await this.recordIfDue();
    }
    await Promise.all(running); // stopped: the POSTs in flight were aborted with the agent
    return prefix === n;
  }

  private async recordIfDue(): Promise<void> {
    if (this.pending.length >= RECORD_BATCH || (this.pending.length > 0 && this.clock() - this.pendingSince >= RECORD_EVERY_MS)) {
      await this.record(this.takePending(), this.scanFrom);
    }
  }

  /** Posts one event until a 2xx (true), or until stopped (false); every failed attempt is logged. */
  private async deliver(e: OutboxEvent): Promise<boolean> {
    for (let attempt = 1; !this.stopped; attempt++) {
      const generation = this.generation;
      const outcome = await this.post(e);
      if (this.stopped) return false;
      this.options.onAttempt?.(outcome.ok, this.clock() - e.at);
      if (outcome.ok) {
        if (this.pending.length === 0) this.pendingSince = this.clock();
        this.pending.push({ outboxSeq: e.outboxSeq, type: e.type, status: outcome.status, deliveredAt: this.clock(), at: this.clock() });
        return true;
      }
      const wait = this.backoff(attempt);
      const now = this.clock();
      await this.record([...this.takePending(), { outboxSeq: e.outboxSeq, type: e.type, status: outcome.status, error: outcome.error, nextAttemptAt: now + wait, at: now }], this.scanFrom);
      if (generation === this.generation) await this.sleep(wait, 'any');
    }
    return false;
  }

  private takePending(): DeliveryRecord[] {
    const out = this.pending;
    this.pending = [];
    return out;
  }

  private async record(records: DeliveryRecord[], cursor: number): Promise<void> {
    const moved = cursor > this.durable;
    if (records.length === 0 && !moved) return;
    await this.store.recordDeliveries(this.hook.id, records, moved ? cursor : undefined);
    if (moved) this.durable = Math.max(this.durable, cursor); // concurrent records (window) may finish out of order
    this.savedAt = this.clock();
  }

  /** min(max, min · 2^(attempt−1)), scaled by a random factor in [0.5, 1) so retries of many webhooks spread out. */
  private backoff(attempt: number): number {
    const { backoffMinMs, backoffMaxMs } = this.options;
    const base = Math.min(backoffMaxMs, backoffMinMs * 2 ** Math.min(30, attempt - 1));
    return Math.round(base * (0.5 + 0.5 * (this.options.random ?? Math.random)()));
  }

  private post(e: OutboxEvent): Promise<{ ok: boolean; status?: number; error?: string }> {
    const body = JSON.stringify(envelopeOf(e));
    const url = new URL(this.hook.url);
    const t = this.clock();
    const headers = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'user-agent': 'GeoDispatch-Webhooks/1',
      'x-geodispatch-signature': signWebhook(this.hook.secret, t, body),
      'x-geodispatch-event-id': `evt_${e.outboxSeq}`,
      'x-geodispatch-event-type': e.type,
    };
    // a literal address is never looked up, so pinnedLookup would not see it: checked here (the webhook may have
    // been stored while WEBHOOK_ALLOW_PRIVATE was on)
    const literal = hostOf(url);
    if (!this.options.allowPrivate && isIP(literal) !== 0 && isPrivateAddress(literal)) {
      return Promise.resolve({ ok: false, error: `E_WEBHOOK_URL_PRIVATE: ${literal} is a private address; refused` });
    }
    const client = url.protocol === 'https:' ? https : http;
    this.agent ??= new client.Agent({ keepAlive: true, maxSockets: Math.max(1, this.options.concurrency ?? 1) });
    return new Promise((resolve) => {
      let settled = false;
      const finish = (r: { ok: boolean; status?: number; error?: string }): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(r);
      };
      const req = client.request(url, { method: 'POST', headers, agent: this.agent, lookup: pinnedLookup(this.options.allowPrivate) }, (res) => {
        const status = res.statusCode ?? 0;
        let kept = '';
        let read = 0;
        const answered = (): { ok: boolean; status: number; error?: string } => (status >= 200 && status < 300 ? { ok: true, status } : { ok: false, status, error: `HTTP ${status}${kept ? `: ${kept}` : ''}` });
        res.on('data', (chunk: Buffer) => {
          if (kept.length < ERROR_BODY_BYTES) kept += chunk.toString('utf8', 0, ERROR_BODY_BYTES - kept.length);
          read += chunk.length;
          // the status is the answer: a receiver streaming a long reply must not cost this process its bandwidth
          if (read > MAX_REPLY_BYTES) {
            finish(answered());
            res.destroy();
          }
        });
        res.on('end', () => finish(answered()));
        res.on('error', (err) => finish({ ok: false, status, error: err.message }));
      });
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${this.options.timeoutMs} ms`)), this.options.timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, error: err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message }));
      req.end(body);
    });
  }

  /** Waits `ms`; 'idle' waits end early on poke() (new events), every wait on update() or stop(). */
  private sleep(ms: number, kind: 'idle' | 'any'): Promise<void> {
    if (this.stopped) return Promise.resolve();
    // commits came while reading: look again, but after the linger, or a busy outbox is re-read in a tight loop
    if (kind === 'idle' && this.poked) ms = Math.min(ms, LINGER_MS);
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this; // eslint-disable-line @typescript-eslint/no-this-alias
      function done(): void {
        clearTimeout(timer);
        self.wakeIdle = undefined;
        self.wakeAny = undefined;
        resolve();
      }
      this.wakeAny = done;
      if (kind === 'idle') this.wakeIdle = done;
    });
  }

  private dropAgent(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }
}

/** What delivery order is kept per: the request, else the courier (fences), else the site (stock), else the type. */
function orderKey(e: OutboxEvent): string {
  if (e.requestId !== undefined) return `r:${e.requestId}`;
  if (e.courierId !== undefined) return `c:${e.courierId}`;
  const site = e.payload.siteId;
  return typeof site === 'string' ? `s:${site}` : `t:${e.type}`;
}
