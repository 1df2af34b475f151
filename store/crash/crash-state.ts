/**
 * What one crash property run shares between its parts: the settings, the principals, the server now running,
 * the model (every write, create, request and leg as the answers left them), the operation counters, the
 * violations found so far, and the primitives that send an operation and settle what its answer proved.
 */
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Authenticator, type Role } from '../../api/auth.js';
import type { ServerProcess } from '../../api/server-process.js';
import { Prng, streamSeed } from '../../fixtures/prng.js';
import { http, type Reply } from './client.js';
import type { CrashRunOptions } from './crash-run.js';
import { round6 } from './equality.js';
import {
  type CourierProfile, type CreateAttempt, type DonorValue, type FenceValue, History, type LegModel, type Lot, type Op, type Ping, type RequestModel,
  type SiteValue, type Who, describeOp, legFacts, mayHave,
} from './model.js';
import { CENTER, COURIERS, REQUESTERS, SECRET, SITES, SPREAD } from './world.js';

/** A server process the harness started: when (what an earlier one acknowledged is not its to keep), and whether its exit is the harness's doing. */
export type HarnessServer = ServerProcess & { readonly startedAt: number; expectExit: boolean };

/** The run's options with every default filled in. */
/** One broken expectation. */
export interface Violation {
  seed: number;
  cycle: number;
  /** The operation the expectation comes from (or the check that found it). */
  op: string;
  expected: string;
  got: string;
}

/** A violation as one sentence: seed, cycle, operation, expectation, what was seen. */
export function describeViolation(v: Violation): string {
  return `seed ${v.seed}, cycle ${v.cycle}, ${v.op}: expected ${v.expected}; got ${v.got}`;
}

export type CrashSettings = Required<Omit<CrashRunOptions, 'log' | 'dataDir'>> & { log: (line: string) => void };

/** The shared state of one run; each part (operations, drivers, checks) takes it in its constructor. */
export class CrashState {
  readonly seed: number;
  readonly opts: CrashSettings;
  readonly keepDataDir: boolean;
  readonly dataDir: string;
  readonly auth = new Authenticator({ secret: SECRET, algorithm: 'HS256' }, []);
  readonly admin: Who;
  readonly dispatcher: Who;
  readonly requesters: Who[];
  server: HarnessServer | undefined;
  cycle = 0;
  opCount = 0;
  readonly counts = { acked: 0, refused: 0, unknown: 0 };
  /** Requests GET-checked after the last restart. */
  lastChecked = 0;
  readonly violations: Violation[] = [];
  private readonly reported = new Set<string>();
  /** Violations counted by kind (the expectation with its ids and numbers taken out). */
  readonly kinds = new Map<string, number>();
  readonly inFlight = new Set<Promise<unknown>>();
  private readonly busy = new Set<string>();

  // the model
  readonly profiles = new Map<string, History<CourierProfile>>();
  readonly statuses = new Map<string, History<'available' | 'offline'>>();
  readonly pings = new Map<string, Ping[]>();
  readonly sites = new Map<string, History<SiteValue>>();
  readonly inventories = new Map<string, History<Lot[]>>();
  /** Highest count ever sent per lot: stock only goes up, so no write drops a lot below what it holds reserved. */
  readonly lotHigh = new Map<string, Lot>();
  readonly donors = new Map<string, History<DonorValue>>();
  readonly fences = new Map<string, History<FenceValue>>();
  /** Ids written only with bodies that must be refused: they must never exist. */
  readonly refusedSites: { id: string; op: Op }[] = [];
  readonly creates: CreateAttempt[] = [];
  readonly requests = new Map<string, RequestModel>();
  readonly legOwner = new Map<string, RequestModel>();
  readonly sitePos = new Map<string, { lat: number; lng: number }>();
  readonly expiryBase: number;

  constructor(options: CrashRunOptions) {
    if (!(options.kills >= 1) || !Number.isInteger(options.kills)) throw new Error(`kills must be a positive integer, got ${String(options.kills)}`);
    this.seed = options.seed;
    this.opts = {
      seed: options.seed,
      kills: options.kills,
      storeCheckEvery: options.storeCheckEvery ?? 25,
      loadMs: options.loadMs ?? [300, 1500],
      maxInFlight: options.maxInFlight ?? 4,
      requestChecksPerCycle: options.requestChecksPerCycle ?? 300,
      maxViolations: options.maxViolations ?? 20,
      log: options.log ?? (() => undefined),
    };
    this.dataDir = options.dataDir ?? freshDataDir();
    this.keepDataDir = options.dataDir !== undefined;
    const who = (role: Role, sub: string): Who => ({ role, sub, token: this.auth.signToken({ sub, role }, 7 * 24 * 3600) });
    this.admin = who('admin', 'admin');
    this.dispatcher = who('dispatcher', 'dispatcher');
    this.requesters = REQUESTERS.map((s) => who('requester', s));
    // lots expire on whole hours from the start, so a lot's key is stable for the whole run
    this.expiryBase = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    const rng = new Prng(streamSeed(this.seed, 1));
    for (const s of SITES) this.sitePos.set(s.id, { lat: round6(CENTER.lat + rng.range(-SPREAD, SPREAD)), lng: round6(CENTER.lng + rng.range(-SPREAD, SPREAD)) });
  }

  full(): boolean {
    return this.kinds.size >= this.opts.maxViolations;
  }

  /**
   * Records a broken expectation once (found again after a later restart, it is not counted again); of each kind
   * (the expectation with its ids and numbers taken out) the first few are kept as examples, the rest counted.
   */
  violate(op: Op | string, expected: string, got: string): void {
    const what = typeof op === 'string' ? op : describeOp(op);
    const key = `${what}\u0000${expected}`;
    if (this.full() || this.reported.has(key)) return;
    this.reported.add(key);
    const kind = kindOf(expected);
    const n = (this.kinds.get(kind) ?? 0) + 1;
    this.kinds.set(kind, n);
    const v = { seed: this.seed, cycle: this.cycle, op: what, expected, got };
    if (n <= EXAMPLES_PER_KIND) this.violations.push(v);
    // a long soak names what it found when it finds it, not an hour later
    this.opts.log(`VIOLATION ${describeViolation(v)}`);
  }

  /** Violations found, by kind, most frequent first. */
  violationKinds(): { kind: string; count: number }[] {
    return [...this.kinds].map(([kind, count]) => ({ kind, count })).sort((a, b) => b.count - a.count);
  }

  /** A new operation, numbered and stamped as sent now. */
  begin(what: string): Op {
    return { n: ++this.opCount, cycle: this.cycle, what, sentAt: Date.now(), doneAt: 0, outcome: 'pending' };
  }

  /** Records what an HTTP answer (or its absence) proved, and checks its status against `expected`. */
  settle(op: Op, reply: Reply | undefined, expected: readonly number[]): Reply | undefined {
    op.doneAt = Date.now();
    if (reply === undefined) {
      op.outcome = 'unknown';
      this.counts.unknown++;
      return undefined;
    }
    op.status = reply.status;
    op.code = typeof reply.body?.error?.code === 'string' ? reply.body.error.code : undefined;
    // 503 E_STORE_UNAVAILABLE / 409 E_STORE_REFUSED change nothing; 504 E_COMMIT_UNCERTAIN may have been kept
    op.outcome = reply.status >= 200 && reply.status < 300 ? 'acked' : reply.status === 504 ? 'unknown' : reply.status < 500 || reply.status === 503 ? 'refused' : 'unknown';
    this.counts[op.outcome === 'acked' ? 'acked' : op.outcome === 'refused' ? 'refused' : 'unknown']++;
    if (!expected.includes(reply.status) && reply.status !== 503 && reply.status !== 504) {
      this.violate(op, `an answer in [${expected.join(', ')}]`, `${reply.status} ${JSON.stringify(reply.body).slice(0, 300)}`);
    }
    return reply;
  }

  /** Settles a WebSocket op from a frame (or the socket's end: unknown). */
  settleFrame(op: Op, outcome: 'acked' | 'refused' | 'unknown', code?: string): void {
    op.doneAt = Date.now();
    op.outcome = outcome;
    if (code !== undefined) op.code = code;
    this.counts[outcome]++;
  }

  /** Sends one HTTP operation and settles its op; undefined when no answer came (killed in flight). */
  async send(op: Op, who: Who, method: string, path: string, body: unknown, expected: readonly number[], headers: Record<string, string> = {}): Promise<Reply | undefined> {
    const reply = await http(this.server?.base, method, path, who.token, body, headers);
    return this.settle(op, reply, expected);
  }

  /** Counts `p` as in flight until it settles (the kill waits for all of them). */
  track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => undefined);
    return p;
  }

  /** Runs `fn` unless another operation on `key` is in flight (writes of one entity go one at a time). */
  async locked<T>(key: string, fn: () => Promise<T>): Promise<T | undefined> {
    if (this.busy.has(key)) return undefined;
    this.busy.add(key);
    try {
      return await fn();
    } finally {
      this.busy.delete(key);
    }
  }

  /** A GET that must be answered (the server is running). */
  async get(path: string, who: Who = this.dispatcher): Promise<Reply> {
    const reply = await http(this.server!.base, 'GET', path, who.token, undefined, {});
    if (reply === undefined) throw new Error(`GET ${path} got no answer from a running server (cycle ${this.cycle})`);
    return reply;
  }

  /** Courier `id`'s own driver token. */
  driverWho(id: string): Who {
    return { role: 'driver', sub: id, token: this.auth.signToken({ sub: id, role: 'driver' }, 7 * 24 * 3600) };
  }

  /** Couriers some profile write of which may have taken effect. */
  knownCouriers(): string[] {
    return COURIERS.filter((id) => this.profiles.get(id)?.writes.some((w) => mayHave(w.op)));
  }

  /** The model of leg `legId` of `req`, made on first sight. */
  leg(req: RequestModel, legId: string): LegModel {
    let leg = req.legs.get(legId);
    if (leg === undefined) {
      leg = { id: legId, accepts: [], declines: [], progress: [] };
      req.legs.set(legId, leg);
      this.legOwner.set(legId, req);
    }
    return leg;
  }

  /** Requests not known to have ended (once every leg's delivery or a cancel was acknowledged, that is for good). */
  openRequests(): RequestModel[] {
    const out: RequestModel[] = [];
    for (const r of this.requests.values()) {
      if (r.ended) continue;
      r.ended = r.legIds !== undefined && [...r.legs.values()].every((l) => {
        const f = legFacts(r, l);
        return f.deliveredAcked !== undefined || f.cancelAcked !== undefined;
      });
      if (!r.ended) out.push(r);
    }
    return out;
  }
}

/** Examples kept per kind of violation: the rest are counted. */
const EXAMPLES_PER_KIND = 3;

/** An expectation with its ids and numbers taken out: what kind of violation it is. */
function kindOf(expected: string): string {
  return expected
    .replace(/\br_[A-Za-z0-9_-]+(\/[A-Za-z0-9._:-]+)?/g, '<request>')
    .replace(/\b(o-[0-9a-f]+-\d+|offer-\d+)/g, '<offer>')
    .replace(/\b(bank|hosp|rest|fb|sh|bad-site|ghost-site|no-such-site)-\d+/g, '<site>')
    .replace(/\b(ref|key)-[\w-]+/g, '<$1>')
    .replace(/\b[cdf]\d+\b/g, '<id>')
    .replace(/-?\d+(\.\d+)?/g, 'N')
    .slice(0, 160);
}

/** A temp DATA_DIR: a copy of the test run's empty migrated store when there is one (~2 s first start, not ~10 s). */
function freshDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'geodispatch-crash-property-'));
  const template = process.env.TEST_PGLITE_TEMPLATE;
  if (template !== undefined) cpSync(template, dir, { recursive: true });
  return dir;
}
