/**
 * Requests and offers across the cluster (PRODUCT §7): an edge forwards each request call to the core that owns
 * the request's region, which runs the same verb as one process (api/request-routes.ts requestVerbs) over its
 * own dispatch and answers once PostgreSQL holds the change under its region's epoch.
 *
 *   edge: route checks (auth, role, body, limits) ─► region: the pickup's (create), named in the id (the rest)
 *         ─► lease holder of the region ─► publish core:{owner}:cmd {id, replyTo, region, verb, call}
 *   core: CommandResponder ─► run(region, verb, call) (503 when it does not hold the region) ─► replyTo {id, reply}
 *   edge: the reply as the HTTP answer; no reply in time ─► 503 (a create may have happened: retry it with the
 *         same Idempotency-Key, which finds it)
 *
 * Ids name their region, so any edge routes any later call without asking anyone: requests `r.{h3}.{random}`,
 * offers `o.{h3}.{boot}-{n}` (H3 cells are 15 hex digits).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { pack, unpack } from 'msgpackr';
import { ApiError, toErrorReply } from '../api/api-error.js';
import type { Principal } from '../api/auth.js';
import { JsonBytes } from '../api/http-body.js';
import type { Reply, RouteCall } from '../api/http-routes.js';
import { REQUEST_ROUTES, type RequestVerb } from '../api/request-routes.js';
import type { Bus, BusHandler } from './bus.js';
import { getResolution, isValidCell } from 'h3-js';
import type { OwnerDirectory } from './nearest-scatter.js';
import { REGION_RES, regionOf } from './regions.js';
import type { RequestCreateBody } from '../api/schemas.js';

/** The lease key of the hub (cluster/hub.ts): not an H3 cell, so no region is ever named so. */
export const HUB = 'hub';

/** The channel a core takes request commands on. */
export function commandChannel(core: string): string {
  return `core:${core}:cmd`;
}

/** A request id made in `region` (96 random bits after it). */
export function regionRequestId(region: string): string {
  return `r.${region}.${randomBytes(12).toString('base64url')}`;
}

/** The offer id prefix of a region's dispatch (boot: unique per taking of the region). */
export function regionOfferPrefix(region: string): string {
  return `o.${region}.${randomBytes(5).toString('hex')}-`;
}

/**
 * The region a new request belongs to: a delivery's or rescue's pickup, a blood request's dropoff (its hospital);
 * a point named by a site id is where `siteAt` says (undefined: no such site). Blood legs start at banks that may
 * lie in other regions; the request, its legs and their reservations are this region's owner's.
 */
export function regionOfCreate(b: RequestCreateBody, siteAt: (id: string) => { lat: number; lng: number } | undefined): string | undefined {
  const point = b.kind === 'blood' ? (b.dropoff ?? (b.hospitalSiteId === undefined ? undefined : siteAt(b.hospitalSiteId))) : (b.pickup ?? (b.kind === 'delivery' && b.pickupSiteId !== undefined ? siteAt(b.pickupSiteId) : undefined));
  return point === undefined ? undefined : regionOf(point.lat, point.lng);
}

const REGION_IN_ID = /^[ro]\.([0-9a-f]{15})\./;

/** The region a cluster request or offer id names, or undefined (not made by a cluster core: no such region cell). */
export function regionOfId(id: string): string | undefined {
  const cell = REGION_IN_ID.exec(id)?.[1];
  return cell !== undefined && isValidCell(cell) && getResolution(cell) === REGION_RES ? cell : undefined;
}

/**
 * The commands a core runs besides a request route's verbs, each with whether it only reads:
 * - `track`: a requester's socket following one request (the region's owner);
 * - `courierStatus`: a courier on or off shift, run by the core whose region its pings reach;
 * - `courierProfile`, `courierBatch`: couriers registered or changed, stored by any core and reloaded by the ones
 *   holding them; `courierDelete`: refused by the core holding the courier while it carries or is offered work;
 * - `courierRead`: its live view from the core holding it; with `{ stored: true }` any core's read of PostgreSQL;
 * - `hub`: a route of the hub (cluster/hub.ts), run by the core holding the hub lease; `siteAt`: where a site is;
 * - `mapRequests`: a core's open requests in a map's box (every live core asked, for a watch's snapshot).
 */
const CORE_VERBS = {
  track: true, courierStatus: false, courierProfile: false, courierBatch: false, courierDelete: false, courierRead: true, hub: false, siteAt: true, mapRequests: true,
} as const;

export type CommandVerb = RequestVerb | keyof typeof CORE_VERBS;

/** True for a verb that changes nothing (so an unanswered one is safe to ask again). */
function readsOnly(verb: CommandVerb, call: ForwardedCall): boolean {
  if (verb === 'hub') return call.route?.startsWith('get ') === true;
  return Object.hasOwn(CORE_VERBS, verb) ? CORE_VERBS[verb as keyof typeof CORE_VERBS] : REQUEST_ROUTES[verb as RequestVerb].method === 'get';
}

/** What crosses the bus of a route call (the parts a verb reads). */
export type ForwardedCall = Pick<RouteCall, 'params' | 'body' | 'idempotencyKey' | 'now'> & {
  principal: Principal;
  /** The query string, for the routes that read one (hub lists, nearby sites and donors). */
  query?: string;
  /** A hub call's route, as `method pattern` (cluster/hub.ts HUB_ROUTES). */
  route?: string;
};

interface Ask {
  id: string;
  replyTo: string;
  region: string;
  verb: CommandVerb;
  call: ForwardedCall;
}

/** A verb's answer: status and JSON text, or the error the verb threw. */
type Answer = { id: string; status: number; json?: string; headers?: Record<string, string> } | { id: string; error: { status: number; code: string; message: string } };

/** An edge's side: one call to the owner of a region, answered with the owner's reply (or an ApiError). */
export class OwnerCommands {
  private readonly replyTo: string;
  private readonly waiting = new Map<string, (a: Answer) => void>();
  private readonly handler: BusHandler;

  constructor(
    private readonly bus: Bus,
    edge: string,
    private readonly directory: OwnerDirectory,
    private readonly timeoutMs = 3_000,
  ) {
    this.replyTo = `edge:${edge}:cmd`;
    this.handler = (_channel, payload) => {
      let a: Answer;
      try {
        a = unpack(payload) as Answer;
      } catch {
        return;
      }
      this.waiting.get(a?.id)?.(a);
    };
  }

  async start(): Promise<void> {
    await this.bus.subscribe(this.replyTo, this.handler);
  }

  async stop(): Promise<void> {
    await this.bus.unsubscribe(this.replyTo, this.handler);
  }

  /** Calls `verb` on the owner of `region`; its answer, or 503 when no core holds the region or none answers. */
  async ask(region: string, verb: CommandVerb, call: ForwardedCall, timeoutMs = this.timeoutMs): Promise<Reply> {
    const owner = await this.ownerOf(region);
    if (typeof owner !== 'string') throw unavailable(`region ${region} has no owner right now (a core is taking it over); nothing was done, retry in a few seconds`);
    return this.askCore(owner, region, verb, call, timeoutMs);
  }

  /** The region's lease holder; undefined while it has none (a failover), null when the cluster does not know the region. */
  async ownerOf(region: string): Promise<string | undefined | null> {
    try {
      return (await this.directory.holders([region]))[0];
    } catch (err) {
      throw redisDown(err);
    }
  }

  /** A live core, any (for what PostgreSQL alone answers); undefined when none is alive. */
  async anyCore(): Promise<string | undefined> {
    const cores = await this.liveCores();
    return cores.length === 0 ? undefined : cores[Math.floor(Math.random() * cores.length)];
  }

  /** Every live core. */
  async liveCores(): Promise<string[]> {
    try {
      return await this.directory.liveCores();
    } catch (err) {
      throw redisDown(err);
    }
  }

  /** Calls `verb` on every live core at once: the replies of those that answered, and the cores that did not. */
  async askAll(verb: CommandVerb, call: ForwardedCall, timeoutMs = this.timeoutMs): Promise<{ replies: Reply[]; missing: string[] }> {
    const cores = await this.liveCores();
    const answers = await Promise.allSettled(cores.map((core) => this.askCore(core, '', verb, call, timeoutMs)));
    const replies: Reply[] = [];
    const missing: string[] = [];
    answers.forEach((a, i) => (a.status === 'fulfilled' ? replies.push(a.value) : missing.push(cores[i])));
    return { replies, missing };
  }

  /**
   * Calls `verb` on every live core at once, for a courier only one of them holds: the answer of the one that
   * does; undefined when every core said `notHeld`; another failure is thrown. `cores` is the live set asked.
   */
  async askHolder(verb: CommandVerb, call: ForwardedCall, notHeld: string, timeoutMs = this.timeoutMs): Promise<{ reply: Reply | undefined; cores: string[] }> {
    const cores = await this.liveCores();
    if (cores.length === 0) throw unavailable('no core is running; nothing was done, retry in a few seconds');
    const answers = await Promise.allSettled(cores.map((core) => this.askCore(core, '', verb, call, timeoutMs)));
    const done = answers.find((a): a is PromiseFulfilledResult<Reply> => a.status === 'fulfilled');
    if (done !== undefined) return { reply: done.value, cores };
    const failed = answers.map((a) => (a as PromiseRejectedResult).reason).find((e) => !(e instanceof ApiError && e.code === notHeld));
    if (failed !== undefined) throw failed;
    return { reply: undefined, cores };
  }

  /** Calls `verb` for `region` on the core named. */
  async askCore(owner: string, region: string, verb: CommandVerb, call: ForwardedCall, timeoutMs = this.timeoutMs): Promise<Reply> {
    const id = randomUUID();
    const answer = await new Promise<Answer | undefined>((resolve, reject) => {
      const timer = setTimeout(() => (this.waiting.delete(id), resolve(undefined)), timeoutMs);
      this.waiting.set(id, (a) => (clearTimeout(timer), this.waiting.delete(id), resolve(a)));
      this.bus.publish(commandChannel(owner), pack({ id, replyTo: this.replyTo, region, verb, call } satisfies Ask)).catch((err: unknown) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        reject(redisDown(err));
      });
    });
    if (answer === undefined) {
      const what = readsOnly(verb, call) ? 'nothing was changed' : 'the change may or may not have been made: read it back, or retry a create with the same Idempotency-Key';
      throw new ApiError(503, 'E_OWNER_TIMEOUT', `${region === '' ? 'the core asked' : `the owner of ${region === HUB ? 'the hub' : `region ${region}`}`} did not answer in ${timeoutMs / 1000} s; ${what}`);
    }
    if ('error' in answer) throw new ApiError(answer.error.status, answer.error.code, answer.error.message);
    return { status: answer.status, ...(answer.json === undefined ? {} : { body: JSON.parse(answer.json) as unknown }), ...(answer.headers ? { headers: answer.headers } : {}) };
  }
}

/** A core's side: runs the commands sent to it and answers each on the edge's reply channel. */
export class CommandResponder {
  private readonly handler: BusHandler;

  constructor(
    private readonly bus: Bus,
    private readonly core: string,
    run: (region: string, verb: CommandVerb, call: ForwardedCall) => Promise<Reply>,
    onError: (err: unknown) => void = () => undefined,
  ) {
    this.handler = (_channel, payload) => {
      let ask: Ask;
      try {
        ask = unpack(payload) as Ask;
      } catch (err) {
        onError(err);
        return;
      }
      const bad = badAsk(ask);
      if (bad !== undefined) {
        onError(new Error(`a command was ignored: ${bad}`));
        return;
      }
      const answer = (a: Answer): void => void this.bus.publish(ask.replyTo, pack(a)).catch(onError);
      Promise.resolve()
        .then(() => run(ask.region, ask.verb, ask.call))
        .then(
          (reply) => answer({ id: ask.id, status: reply.status, ...(reply.body === undefined ? {} : { json: jsonText(reply.body) }), ...(reply.headers ? { headers: reply.headers } : {}) }),
          (err: unknown) => answer({ id: ask.id, error: toErrorReply(err) }),
        );
    };
  }

  async start(): Promise<void> {
    await this.bus.subscribe(commandChannel(this.core), this.handler);
  }

  async stop(): Promise<void> {
    await this.bus.unsubscribe(commandChannel(this.core), this.handler);
  }
}

/** A reply body as JSON text (a handler may hand over JSON it encoded itself). */
function jsonText(body: unknown): string {
  return body instanceof JsonBytes ? Buffer.from(body.bytes.buffer, body.bytes.byteOffset, body.bytes.byteLength).toString('utf8') : JSON.stringify(body);
}

function badAsk(a: Ask): string | undefined {
  if (typeof a !== 'object' || a === null) return 'not an object';
  if (typeof a.id !== 'string' || typeof a.replyTo !== 'string' || !a.replyTo.startsWith('edge:')) return 'no id or edge reply channel';
  if (typeof a.region !== 'string' || !(Object.hasOwn(CORE_VERBS, a.verb) || Object.hasOwn(REQUEST_ROUTES, a.verb))) return 'no region or an unknown verb';
  const c = a.call;
  if (typeof c !== 'object' || c === null || !Array.isArray(c.params) || typeof c.now !== 'number' || typeof c.principal?.sub !== 'string' || typeof c.principal?.role !== 'string') return 'a malformed call';
  return undefined;
}

function redisDown(err: unknown): ApiError {
  return new ApiError(503, 'E_UNAVAILABLE', `the cluster's Redis is unreachable (${err instanceof Error ? err.message : String(err)}): nothing was done; retry`);
}

function unavailable(message: string): ApiError {
  return new ApiError(503, 'E_REGION_UNAVAILABLE', message);
}
