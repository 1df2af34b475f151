/**
 * Requesters tracking their requests through a cluster edge: the owner of the request's region checks who asks
 * and answers the frame now; from then on the edge relays what the owner publishes on `request:{id}`.
 *
 *   track {requestId} ─► region in the id ─► owner: `track` (404 for another requester's) ─► { t:'request' } now
 *                     (a region the cluster no longer holds: the request's last word from PostgreSQL, once)
 *                     └► subscribe request:{id} once per edge ─► every socket tracking it
 *   every TRACK_REFRESH_MS ─► `track` again for each request tracked here (the owner forgets after TRACK_TTL_MS; a
 *                             new owner after a failover learns it this way)
 *   socket closed ─► leaves what it tracked; the last one out unsubscribes
 */
import { ApiError } from '../api/api-error.js';
import type { Principal } from '../api/auth.js';
import { MAX_TRACKS } from '../api/request-tracking.js';
import type { Socket, SocketState, StreamSockets } from '../api/stream-sockets.js';
import { type Bus, type BusHandler, decodeMessage } from './bus.js';
import { TRACK_REFRESH_MS, trackChannel } from './core-dispatch.js';
import { type ForwardedCall, type OwnerCommands, regionOfId } from './owner-commands.js';

export interface EdgeTrackingDeps {
  bus: Bus;
  commands: OwnerCommands;
  sockets: Pick<StreamSockets, 'send' | 'refuse'>;
  clock: () => number;
  onError: (err: unknown) => void;
}

/** The requests this edge's sockets track, each with one subscription. */
export class EdgeTracking {
  private readonly byRequest = new Map<string, { sockets: Set<Socket>; handler: BusHandler; region: string; principal: Principal }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: EdgeTrackingDeps) {}

  start(): void {
    this.timer ??= setInterval(() => this.refresh(), TRACK_REFRESH_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A `track` frame: the owner's answer is sent (or the error, naming the request), then the request's changes. */
  track(s: Socket, st: SocketState, requestId: string): void {
    const region = regionOfId(requestId);
    if (region === undefined) throw new ApiError(404, 'E_UNKNOWN_REQUEST', 'no such request');
    const tracks = (st.tracks ??= new Map());
    if (!tracks.has(requestId) && tracks.size >= MAX_TRACKS) throw new ApiError(400, 'E_TOO_MANY_TRACKS', `at most ${MAX_TRACKS} tracked requests per socket`);
    const call = { params: [requestId], body: undefined, idempotencyKey: undefined, now: this.deps.clock(), principal: st.principal };
    this.deps.commands.ownerOf(region).then(async (owner) => {
      if (owner !== null) return this.follow(s, st, requestId, region, call);
      // the cluster holds nothing open there (the request ended, or never was): its last word, as stored
      const core = await this.deps.commands.anyCore();
      if (core === undefined) throw new ApiError(503, 'E_REGION_UNAVAILABLE', 'no core is running; retry in a few seconds');
      const view = (await this.deps.commands.askCore(core, region, 'read', call)).body as { id: string; status: string };
      if (st.open) this.deps.sockets.send(s, { t: 'request', id: view.id, status: view.status });
    }).catch((err: unknown) => {
      if (st.open) this.deps.sockets.refuse(s, st, err, { requestId });
    });
  }

  /** Asks the owner to track the request and, once it answers, relays the request's frames to the socket. */
  private follow(s: Socket, st: SocketState, requestId: string, region: string, call: ForwardedCall): Promise<void> {
    const tracks = (st.tracks ??= new Map());
    return this.deps.commands.ask(region, 'track', call).then(
      (reply) => {
        if (!st.open) return;
        tracks.set(requestId, Number.NaN);
        this.join(s, requestId, region, st.principal);
        if (reply.body !== undefined && reply.body !== null) this.deps.sockets.send(s, reply.body as Record<string, unknown>);
      },
    );
  }

  /** A socket closed: it leaves every request it tracked. */
  untrack(s: Socket, st: SocketState): void {
    for (const id of st.tracks?.keys() ?? []) {
      const t = this.byRequest.get(id);
      if (t === undefined || !t.sockets.delete(s) || t.sockets.size > 0) continue;
      this.byRequest.delete(id);
      this.deps.bus.unsubscribe(trackChannel(id), t.handler).catch(this.deps.onError);
    }
  }

  private join(s: Socket, requestId: string, region: string, principal: Principal): void {
    const known = this.byRequest.get(requestId);
    if (known !== undefined) {
      known.sockets.add(s);
      return;
    }
    const sockets = new Set([s]);
    const handler: BusHandler = (_c, payload) => {
      const frame = decodeMessage(payload);
      if (frame !== undefined) for (const t of sockets) this.deps.sockets.send(t, frame);
    };
    this.byRequest.set(requestId, { sockets, handler, region, principal });
    this.deps.bus.subscribe(trackChannel(requestId), handler).catch(this.deps.onError);
  }

  /** Tells each owner again what is tracked here (a request that ended or moved away is simply not found). */
  private refresh(): void {
    for (const [id, t] of this.byRequest) {
      this.deps.commands.ask(t.region, 'track', { params: [id], body: undefined, idempotencyKey: undefined, now: this.deps.clock(), principal: t.principal }).catch(() => undefined);
    }
  }
}
