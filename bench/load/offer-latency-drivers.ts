/**
 * The driver side of the offer-latency bench: one /v1/stream socket per courier (its own driver JWT), each
 * reacting to offers the way a working driver does, so the fleet stays in a steady state for the whole run.
 *
 *   offer frame ─► onOffer(requestId, arrival) ─► {t:"accept", offerId} on the same socket
 *   assigned    ─► 'complete': after tripMs, POST /v1/requests/{id}/progress picked_up, then delivered
 *                              (the courier is available again: PRODUCT §3 busy → available)
 *                  'hold':     nothing (the courier stays busy; the fleet must outnumber the run's requests)
 *   revoked / error frames ─► counted
 *
 * Progress POSTs go through their own keep-alive pool, so they never queue in front of the timed requests.
 */
import WebSocket from 'ws';
import { mintToken } from './dev-tokens.js';
import { HttpClient } from './http-client.js';
import { openSockets } from './ws-pingers.js';

/** How a driver answers an offer once it has accepted it. */
export type DriverAction = 'complete' | 'hold';

/** What the fleet needs. */
export interface DriverFleetOptions {
  url: string;
  courierIds: readonly string[];
  /** The server's JWT_SECRET: each courier gets its own driver token (`sub` = courier id). */
  jwtSecret: string;
  action: DriverAction;
  /** 'complete': ms from `assigned` to the pickup report (the delivery report follows its answer). */
  tripMs: number;
  /** Keep-alive connections for the progress POSTs. */
  httpConnections: number;
  /** Called for every offer frame, with its arrival (performance.now()). */
  onOffer: (requestId: string, at: number) => void;
}

/** What the drivers saw and did. */
export interface DriverCounts {
  offers: number;
  accepts: number;
  assigned: number;
  revoked: number;
  delivered: number;
  /** Error frames by code, and failed progress POSTs by status. */
  errors: Map<string, number>;
  /** Sockets the server closed before the fleet did. */
  closedEarly: number;
}

/** A connected fleet of drivers; `stop()` ends their trips, `close()` their sockets and HTTP pool. */
export class DriverFleet {
  readonly counts: DriverCounts = { offers: 0, accepts: 0, assigned: 0, revoked: 0, delivered: 0, errors: new Map(), closedEarly: 0 };
  private readonly trips = new Set<NodeJS.Timeout>();
  private readonly progress: HttpClient;
  private stopped = false;
  private closing = false;

  private constructor(
    private readonly o: DriverFleetOptions,
    private readonly sockets: WebSocket[],
    private readonly tokens: string[],
  ) {
    this.progress = new HttpClient(o.httpConnections);
    sockets.forEach((ws, i) => this.listen(ws, i));
  }

  /** Opens every courier's socket (rejects with the server's answer when one cannot connect). */
  static async connect(o: DriverFleetOptions): Promise<DriverFleet> {
    const tokens = o.courierIds.map((id) => mintToken(o.jwtSecret, id, 'driver'));
    const sockets = await openSockets(o.url, tokens.map((token) => ({ token })));
    return new DriverFleet(o, sockets, tokens);
  }

  /** Open sockets. */
  get size(): number {
    return this.sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  }

  /** Trips still under way (assigned, not yet reported delivered). */
  get onTrip(): number {
    return this.trips.size;
  }

  /** Stops reacting: no new accepts or trips; trips under way are dropped. */
  stop(): void {
    this.stopped = true;
    for (const t of this.trips) clearTimeout(t);
    this.trips.clear();
  }

  /** Stops, then drops every socket and the HTTP pool (the server is about to be stopped too). */
  close(): void {
    if (this.closing) return;
    this.stop();
    this.closing = true;
    for (const ws of this.sockets) ws.terminate();
    this.progress.close();
  }

  private listen(ws: WebSocket, i: number): void {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const at = performance.now();
      if (isBinary) return countError(this.counts, 'binary-frame');
      let m: { t?: unknown; offerId?: unknown; requestId?: unknown; code?: unknown };
      try {
        m = JSON.parse(data.toString('utf8')) as typeof m;
      } catch {
        return countError(this.counts, 'unparsed-frame');
      }
      if (m.t === 'offer' && typeof m.requestId === 'string') {
        this.counts.offers++;
        this.o.onOffer(m.requestId, at);
        if (!this.stopped && typeof m.offerId === 'string') {
          ws.send(JSON.stringify({ t: 'accept', offerId: m.offerId }));
          this.counts.accepts++;
        }
      } else if (m.t === 'assigned' && typeof m.requestId === 'string') {
        this.counts.assigned++;
        if (this.o.action === 'complete' && !this.stopped) this.trip(i, m.requestId);
      } else if (m.t === 'revoked') this.counts.revoked++;
      else if (m.t === 'error') countError(this.counts, String(m.code));
    });
    ws.on('close', () => {
      if (!this.closing) this.counts.closedEarly++;
    });
    ws.on('error', () => {}); // surfaced as a close
  }

  private trip(i: number, requestId: string): void {
    const t = setTimeout(() => {
      this.trips.delete(t);
      void this.report(i, requestId);
    }, this.o.tripMs);
    this.trips.add(t);
  }

  private async report(i: number, requestId: string): Promise<void> {
    const path = `${this.o.url}/v1/requests/${encodeURIComponent(requestId)}/progress`;
    const auth = { authorization: `Bearer ${this.tokens[i]}` };
    for (const status of ['picked_up', 'delivered'] as const) {
      if (this.stopped) return;
      const res = await this.progress.request('POST', path, { status }, auth).catch((e: NodeJS.ErrnoException) => ({ status: 0, body: e.code ?? e.message }));
      if (this.stopped) return; // the fleet was closed under it: not the server's failure
      if (res.status !== 200) return countError(this.counts, res.status === 0 ? `progress ${res.body}` : `progress HTTP ${res.status}`);
    }
    this.counts.delivered++;
  }
}

function countError(c: DriverCounts, code: string): void {
  c.errors.set(code, (c.errors.get(code) ?? 0) + 1);
}
