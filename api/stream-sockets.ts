/**
 * The sockets of `/v1/stream`: who may open one, how many each principal holds, and what a frame must pass
 * before a handler sees it.
 *
 *   upgrade ─► draining? instance full? ─ 503 ─► HTTP reply, no socket
 *          ─► authenticate (?access_token= / Authorization / X-API-Key) ─ 401/403 ─► HTTP reply
 *          ─► sockets of this principal at its bound? ─► 429 E_TOO_MANY_SOCKETS ; else res.upgrade(SocketState)
 *   message ─► admit: size limit, then the principal's token bucket (a flood costs a counter, not a parse)
 *          ─► decode (JSON text / MessagePack binary; remembers which) ─► a string `t`? ─► handle
 *   refused ─► { t:'error', code, message }; FLOOD_STRIKES floods or garbage in a row ─► close (1008)
 *   send    ─► `seq` stamped per connection, encoded as the client last wrote (JSON / MessagePack)
 */
import type uWS from '@trufflesuite/uws-js-unofficial';
import type { HttpResponse, WebSocket, WebSocketBehavior } from '@trufflesuite/uws-js-unofficial';
import { Packr } from 'msgpackr';
import { ApiError, toErrorReply, wsErrorFrame } from './api-error.js';
import type { Principal } from './auth.js';
import { decodeBody, isAborted, markAborted, sendReply } from './http-body.js';
import { BODY_TOKEN_BYTES } from './http-routes.js';
import { principalKey } from './request-book.js';
import type { StreamDeps } from './stream.js';
import type { WatchSession } from './watch-session.js';

/** Refused or garbage frames in a row before a socket is closed (1008): a buggy client gets a few chances, a hostile one not many. */
export const FLOOD_STRIKES = 20;

/** Per-connection state (uWS user data). */
export interface SocketState {
  principal: Principal;
  seq: number;
  binary: boolean;
  open: boolean;
  strikes: number;
  watch: WatchSession | undefined;
  overSince: number | undefined;
  /** Tracked request id → ts of the courier position last sent; made on the first `track` (most sockets never track). */
  tracks: Map<string, number> | undefined;
}

/** A `/v1/stream` socket. */
export type Socket = WebSocket<SocketState>;

/** Acts on an admitted, decoded frame of type `t`; throws to refuse it. */
export type FrameHandler = (s: Socket, st: SocketState, t: string, frame: unknown) => void;

/** What the socket registry works with; each part owned by the caller. */
export interface StreamSocketDeps extends Pick<StreamDeps, 'config' | 'auth' | 'limits' | 'metrics' | 'logger' | 'clock' | 'draining'> {
  /** Where admitted frames go. */
  handle: FrameHandler;
}

/** Every open socket and the per-principal bound; admits, decodes and answers frames. */
export class StreamSockets {
  private readonly deps: StreamSocketDeps;
  private readonly sockets = new Set<Socket>();
  /** Open sockets per principal (role:sub), for the per-principal bound. */
  private readonly perPrincipal = new Map<string, number>();

  constructor(deps: StreamSocketDeps) {
    this.deps = deps;
  }

  /** Open sockets. */
  get size(): number {
    return this.sockets.size;
  }

  /**
   * The uWS behaviour of `/v1/stream` with the configured limits: upgrades and frames through this registry, opens
   * and closes to the owner (one process's hub, or a cluster edge's stream), after the registry has seen them.
   */
  behavior(opened: (s: Socket) => void, closed: (s: Socket) => void): WebSocketBehavior<SocketState> {
    const { ws } = this.deps.config;
    return {
      maxPayloadLength: ws.maxPayloadBytes,
      // uWS drops sends beyond this; watch deltas stop well before it (they check the limit), offers rarely reach it
      maxBackpressure: ws.maxBackpressureBytes * 2,
      idleTimeout: ws.idleTimeoutSec,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => this.upgrade(res, req, context),
      open: opened,
      message: (s, message, isBinary) => this.message(s, message, isBinary),
      close: closed,
    };
  }

  /** The uWS `upgrade` handler: authenticates, bounds, and upgrades or answers over HTTP. */
  upgrade(res: HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
    res.onAborted(() => markAborted(res));
    // everything from req is copied now: it is invalid after this function returns
    const key = req.getHeader('sec-websocket-key');
    const protocol = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const authorization = req.getHeader('authorization') || undefined;
    const apiKey = req.getHeader('x-api-key') || undefined;
    const accessToken = new URLSearchParams(req.getQuery() ?? '').get('access_token') ?? undefined;
    const accept = req.getHeader('accept') || undefined;
    try {
      if (this.deps.draining()) throw new ApiError(503, 'E_DRAINING', 'server is shutting down; reconnect to another instance');
      if (this.sockets.size >= this.deps.config.ws.maxSockets) throw new ApiError(503, 'E_TOO_MANY_SOCKETS', 'too many open sockets on this instance');
      const principal = this.deps.auth.authenticate({ authorization, apiKey, accessToken }, this.deps.clock());
      const bound = principal.role === 'dispatcher' || principal.role === 'admin' ? this.deps.config.ws.socketsPerDispatcher : this.deps.config.ws.socketsPerPrincipal;
      if ((this.perPrincipal.get(principalKey(principal.role, principal.sub)) ?? 0) >= bound) {
        throw new ApiError(429, 'E_TOO_MANY_SOCKETS', `at most ${bound} open sockets per ${principal.role}; close one first`);
      }
      const state: SocketState = { principal, seq: 0, binary: false, open: true, strikes: 0, watch: undefined, overSince: undefined, tracks: undefined };
      if (isAborted(res)) return;
      res.cork(() => res.upgrade(state, key, protocol, extensions, context));
    } catch (err) {
      const { status, code, message } = toErrorReply(err);
      if (status >= 500 && !(err instanceof ApiError)) this.deps.logger.error({ err }, 'upgrade failed');
      sendReply(res, status, { error: { code, message } }, accept);
    }
  }

  /** Registers an opened socket (and counts it against its principal); returns its state. */
  opened(s: Socket): SocketState {
    const st = s.getUserData();
    this.sockets.add(s);
    const key = principalKey(st.principal.role, st.principal.sub);
    this.perPrincipal.set(key, (this.perPrincipal.get(key) ?? 0) + 1);
    this.deps.metrics.openSockets.inc({ role: st.principal.role });
    return st;
  }

  /** Forgets a closed socket; false when it was not registered (nothing else to clean up). */
  closed(s: Socket): boolean {
    const st = s.getUserData();
    st.open = false;
    if (!this.sockets.delete(s)) return false;
    const key = principalKey(st.principal.role, st.principal.sub);
    const n = (this.perPrincipal.get(key) ?? 1) - 1;
    if (n > 0) this.perPrincipal.set(key, n);
    else this.perPrincipal.delete(key);
    this.deps.metrics.openSockets.dec({ role: st.principal.role });
    return true;
  }

  /** The uWS `message` handler: admit, decode, hand to the frame handler, or refuse. */
  message(s: Socket, message: ArrayBuffer, isBinary: boolean): void {
    const st = s.getUserData();
    st.binary = isBinary;
    try {
      this.admit(st, message.byteLength);
      // decoded before the callback returns: uWS neuters `message` afterwards
      const frame = decodeBody(Buffer.from(message), isBinary ? 'application/msgpack' : 'application/json');
      const t = typeof frame === 'object' && frame !== null && !Array.isArray(frame) ? (frame as { t?: unknown }).t : undefined;
      if (typeof t !== 'string') throw new ApiError(400, 'E_VALIDATION', 'a frame is an object with a string `t`');
      this.deps.handle(s, st, t, frame);
      st.strikes = 0;
    } catch (err) {
      this.refuse(s, st, err);
    }
  }

  /** Answers a refused frame with an error frame; floods and garbage count towards closing the socket. */
  refuse(s: Socket, st: SocketState, err: unknown, extra?: Record<string, unknown>): void {
    const reply = toErrorReply(err);
    if (reply.status >= 500 && reply.code === 'E_INTERNAL') this.deps.logger.error({ err }, 'stream frame failed');
    this.send(s, { ...wsErrorFrame(err), ...extra });
    if (STRIKE_CODES.has(reply.code) && ++st.strikes >= FLOOD_STRIKES) safeEnd(s, 1008, 'too many refused frames');
  }

  /** Sends a server frame with the next `seq`, in the encoding the client writes; a no-op once closed. */
  send(s: Socket, frame: Record<string, unknown>): void {
    const st = s.getUserData();
    if (!st.open) return;
    frame.seq = ++st.seq;
    try {
      if (st.binary) s.send(packr.pack(frame), true);
      else s.send(JSON.stringify(frame), false);
    } catch (err) {
      this.deps.logger.debug({ err }, 'send on a closing socket');
    }
  }

  /** Closes every socket with `code` (1001 going away on shutdown). */
  closeAll(code: number, reason: string): void {
    for (const s of [...this.sockets]) {
      try {
        s.end(code, reason);
      } catch {
        // already closed
      }
    }
  }

  /** Rate and size limits, checked before a frame is decoded: drivers pay from the ingest bucket, gateways from theirs. */
  private admit(st: SocketState, bytes: number): void {
    const { limits, clock, config } = this.deps;
    const p = st.principal;
    if (p.role !== 'admin' && bytes > config.ws.maxFrameBytes) {
      throw new ApiError(413, 'E_FRAME_TOO_LARGE', `frames are at most ${config.ws.maxFrameBytes} bytes`);
    }
    const bucket = p.role === 'driver' ? limits.ingest : p.role === 'admin' ? limits.gateway : limits.general;
    // a frame pays for its size as an HTTP body does, so nobody spends a whole budget on parsing (gateways pay per ping below)
    const cost = p.role === 'admin' ? 1 : Math.max(1, Math.ceil(bytes / BODY_TOKEN_BYTES));
    const verdict = bucket.take(`ws:${principalKey(p.role, p.sub)}`, clock(), cost);
    if (!verdict.ok) throw new ApiError(429, 'E_RATE_LIMITED', `too many frames; retry after ${verdict.retryAfterSec} s`);
  }
}

/** Closes a socket unless it is already closed. */
export function safeEnd(s: Socket, code: number, reason: string): void {
  if (!s.getUserData().open) return;
  try {
    s.end(code, reason);
  } catch {
    // closed meanwhile
  }
}

/** Codes of frames that count towards closing a socket: floods and garbage, not outcomes such as E_STALE. */
const STRIKE_CODES = new Set(['E_RATE_LIMITED', 'E_FRAME_TOO_LARGE', 'E_BAD_JSON', 'E_VALIDATION', 'E_UNKNOWN_FRAME', 'E_FORBIDDEN']);

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
