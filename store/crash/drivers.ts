/**
 * The couriers' drivers on the stream (WebSocket): each reacts to its offers with a seeded choice — accept or
 * decline (over the socket or HTTP), or ignore it until it expires — then picks up and delivers what it carries.
 * Every frame is checked as it comes: no second live offer, no offer after an acknowledged decline, an
 * assignment only of what this courier accepted.
 */
import WebSocket from 'ws';
import { Prng, streamSeed } from '../../fixtures/prng.js';
import { sleep } from './client.js';
import type { CrashState } from './crash-state.js';
import { type LegModel, type Op, type RequestModel, describeOp, legFacts, newRequest } from './model.js';
import type { RequestOperations } from './operations-requests.js';
import { COURIERS } from './world.js';

/** The drivers of one cycle and their reactions. */
export class Drivers {
  private drivers = new Map<string, Driver>();

  constructor(
    private readonly state: CrashState,
    private readonly requestOps: RequestOperations,
  ) {}

  /** Connects every known courier's driver, each with its own seeded reactions for this cycle. */
  async connect(): Promise<void> {
    this.drivers = new Map();
    const ids = this.state.knownCouriers();
    await Promise.all(ids.map(async (id) => {
      const d = new Driver(id, new Prng(streamSeed(this.state.seed, 10_000 + this.state.cycle * 64 + COURIERS.indexOf(id))), (f) => this.onFrame(d, f));
      this.drivers.set(id, d);
      await d.connect(this.state.server!.ws, this.state.driverWho(id).token);
    }));
  }

  /** Closes every driver; its WebSocket answers still out are unknown. */
  close(): void {
    for (const d of this.drivers.values()) for (const op of d.close()) this.state.settleFrame(op, 'unknown');
  }

  private onFrame(d: Driver, f: any): void {
    if (f.t === 'offer') this.onOffer(d, f);
    else if (f.t === 'assigned') this.onAssigned(d, f);
    else if (f.t === 'revoked') {
      if (typeof f.offerId === 'string') d.outstanding.delete(f.offerId);
    } else if (f.t === 'error' && typeof f.offerId === 'string') {
      const op = d.wsOps.get(f.offerId);
      if (op !== undefined && op.outcome === 'pending') {
        d.wsOps.delete(f.offerId);
        this.state.settleFrame(op, 'refused', String(f.code));
      }
    }
  }

  private onOffer(d: Driver, f: { offerId: string; requestId: string; legId: string; expiresAt: number }): void {
    const where = `offer ${f.offerId} of leg ${f.legId} to ${d.id}`;
    let req = this.state.requests.get(f.requestId);
    if (req === undefined) {
      // its create's answer was lost, yet an offer is only sent once the request is stored: it must exist
      req = newRequest(f.requestId, 'unknown', `${where} (cycle ${this.state.cycle})`, this.state.cycle);
      this.state.requests.set(f.requestId, req);
    }
    const leg = this.state.leg(req, f.legId);
    req.offersSeen.push({ offerId: f.offerId, legId: f.legId, courier: d.id, where: `${where} (cycle ${this.state.cycle})` });
    const now = Date.now();
    for (const [other, expiresAt] of d.outstanding) {
      if (expiresAt > now) this.state.violate(where, `no second live offer while ${other} is unanswered and unexpired (a courier never holds two live offers)`, 'a second offer');
    }
    if (legFacts(req, leg).declinedBy.has(d.id)) {
      const decline = leg.declines.find((x) => x.courier === d.id && x.op.outcome === 'acked')!;
      this.state.violate(describeOp(decline.op), `leg ${leg.id} never offered to ${d.id} again after its acknowledged decline`, where);
    }
    d.outstanding.set(f.offerId, f.expiresAt);
    const r = d.rng.next();
    const delay = d.rng.range(20, 300);
    const viaWs = d.rng.chance(0.5);
    if (r < 0.6) d.later(delay, () => this.state.track(this.accept(d, req, leg, f.offerId, viaWs)));
    else if (r < 0.8) d.later(delay, () => this.state.track(this.decline(d, req, leg, f.offerId, viaWs)));
    // else: ignored, it expires
  }

  private async accept(d: Driver, req: RequestModel, leg: LegModel, offerId: string, viaWs: boolean): Promise<void> {
    d.outstanding.delete(offerId);
    const op = this.state.begin(`${viaWs ? 'WS ' : 'POST /v1/offers/…/'}accept offer ${offerId} (leg ${leg.id}) by ${d.id}`);
    leg.accepts.push({ op, courier: d.id, offerId });
    req.touched = this.state.cycle;
    if (viaWs) {
      // acknowledged by the `assigned` frame (sent once stored), refused by an `error` frame naming the offer
      d.wsOps.set(offerId, op);
      if (!d.send({ t: 'accept', offerId })) this.state.settleFrame(op, 'unknown');
      return;
    }
    // 404 / 409 / 410: expired, revoked or cancelled meanwhile
    const reply = await this.state.send(op, this.state.driverWho(d.id), 'POST', `/v1/offers/${offerId}/accept`, undefined, [200, 404, 409, 410]);
    if (reply?.status === 200) this.assigned(d, req, leg);
  }

  private async decline(d: Driver, req: RequestModel, leg: LegModel, offerId: string, viaWs: boolean): Promise<void> {
    d.outstanding.delete(offerId);
    const op = this.state.begin(`${viaWs ? 'WS ' : 'POST /v1/offers/…/'}decline offer ${offerId} (leg ${leg.id}) by ${d.id}`);
    leg.declines.push({ op, courier: d.id, offerId });
    if (viaWs) {
      // a stored decline sends no frame: it stays unknown unless an error frame refuses it
      d.wsOps.set(offerId, op);
      if (!d.send({ t: 'decline', offerId })) this.state.settleFrame(op, 'unknown');
      return;
    }
    await this.state.send(op, this.state.driverWho(d.id), 'POST', `/v1/offers/${offerId}/decline`, undefined, [200, 404, 409, 410]);
  }

  /**
   * An `assigned` frame: the answer to a WebSocket accept, the echo of an HTTP one, or a reconnecting driver's
   * catch-up. Whichever, it names a leg this courier accepted, under the offer it accepted.
   */
  private onAssigned(d: Driver, f: { offerId: string; requestId: string; legId: string }): void {
    const where = `assigned frame for offer ${f.offerId} (leg ${f.legId}) to ${d.id} (cycle ${this.state.cycle})`;
    const req = this.state.requests.get(f.requestId) ?? this.state.legOwner.get(f.legId);
    const leg = req?.legs.get(f.legId);
    const mine = leg?.accepts.filter((a) => a.courier === d.id && a.op.outcome !== 'refused') ?? [];
    if (req === undefined || leg === undefined || mine.length === 0) {
      this.state.violate(where, `an assignment only of a leg this courier accepted`, 'an assignment nobody asked for');
      return;
    }
    const same = mine.find((a) => a.offerId === f.offerId);
    if (same === undefined) {
      const acked = mine.find((a) => a.op.outcome === 'acked');
      if (acked !== undefined) this.state.violate(describeOp(acked.op), `the assignment of ${f.legId} to ${d.id} named by the offer that was accepted (${acked.offerId})`, where);
      return;
    }
    const op = d.wsOps.get(f.offerId);
    if (op !== undefined && op === same.op && op.outcome === 'pending') {
      d.wsOps.delete(f.offerId);
      this.state.settleFrame(op, 'acked');
      this.assigned(d, req, leg);
    } else if (same.op.outcome === 'refused') {
      this.state.violate(describeOp(same.op), 'a refused accept changes nothing', where);
    }
  }

  /** After an acknowledged accept the driver picks up and delivers, each step with a seeded delay (or not at all). */
  private assigned(d: Driver, req: RequestModel, leg: LegModel): void {
    if (!d.rng.chance(0.85)) return;
    d.later(d.rng.range(50, 400), () => this.state.track((async () => {
      await this.requestOps.progress(req, leg, d.id, 'picked_up');
      const picked = leg.progress.find((p) => p.status === 'picked_up' && p.courier === d.id && p.op.outcome === 'acked');
      if (picked !== undefined && d.rng.chance(0.85)) await sleep(d.rng.range(50, 400)).then(() => (d.closed ? undefined : this.requestOps.progress(req, leg, d.id, 'delivered')));
    })()));
  }
}

/** One driver on the stream: its offers, its unanswered WebSocket accepts/declines, its timers. */
class Driver {
  readonly outstanding = new Map<string, number>();
  readonly wsOps = new Map<string, Op>();
  closed = false;
  private ws: WebSocket | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly id: string,
    readonly rng: Prng,
    private readonly onFrame: (f: any) => void,
  ) {}

  connect(wsBase: string, token: string): Promise<void> {
    const ws = new WebSocket(`${wsBase}?access_token=${token}`);
    this.ws = ws;
    ws.on('message', (data) => {
      try {
        this.onFrame(JSON.parse(String(data)));
      } catch (err) {
        // a bug in the harness itself must not pass for a quiet socket
        setImmediate(() => {
          throw err;
        });
      }
    });
    ws.on('error', () => undefined); // the server is killed under it
    return new Promise((resolve) => {
      ws.once('open', () => resolve());
      ws.once('close', () => resolve());
    });
  }

  send(frame: unknown): boolean {
    if (this.closed || this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  later(ms: number, fn: () => void): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) fn();
    }, ms);
    this.timers.add(t);
  }

  /** Stops reacting; returns the WebSocket accepts and declines still unanswered (now unknown). */
  close(): Op[] {
    if (this.closed) return [];
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.ws?.terminate();
    const open = [...this.wsOps.values()].filter((op) => op.outcome === 'pending');
    this.wsOps.clear();
    return open;
  }
}
