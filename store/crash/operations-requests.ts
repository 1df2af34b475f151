/**
 * The request side of the random operations: creates (keyed and not, refused on purpose, retried with the same
 * key and body, another body, another principal), cancels, a courier's progress, reads.
 */
import type { Prng } from '../../fixtures/prng.js';
import type { CrashState } from './crash-state.js';
import { round6, sameJson } from './equality.js';
import { type CreateAttempt, type LegModel, type Op, type RequestModel, describeOp, legFacts, newRequest } from './model.js';
import { BLOOD_TYPES, CENTER, HOSPITALS, RESTAURANTS, SPREAD } from './world.js';

/** Sends requests and what follows them, and keeps the model's requests and legs as the answers say. */
export class RequestOperations {
  constructor(private readonly state: CrashState) {}

  /** POST a random delivery, rescue or blood request (half of them with an Idempotency-Key). */
  createRequest(rng: Prng): Promise<unknown> {
    const who = rng.chance(0.7) ? rng.pick(this.state.requesters) : this.state.dispatcher;
    const n = this.state.opCount + 1;
    const reference = `ref-${this.state.seed}-${n}`;
    const kind = rng.pick(['delivery', 'delivery', 'rescue', 'blood', 'blood'] as const);
    const point = (): { lat: number; lng: number } => ({ lat: round6(CENTER.lat + rng.range(-SPREAD, SPREAD)), lng: round6(CENTER.lng + rng.range(-SPREAD, SPREAD)) });
    const urgency = rng.pick(['routine', 'urgent', 'emergency'] as const);
    let body: Record<string, unknown>;
    let expected = [201];
    if (kind === 'delivery') {
      body = { kind, reference, urgency, dropoff: point(), ...(rng.chance(0.5) ? { pickupSiteId: rng.pick(RESTAURANTS.slice(0, 2)) } : { pickup: point() }) };
    } else if (kind === 'rescue') {
      const own = rng.chance(0.5);
      body = { kind, reference, urgency, pickup: point(), ...(own ? { dropoff: point() } : {}) };
      if (!own) expected = [201, 422]; // every recipient may be closed (E_NO_RECIPIENT)
    } else {
      const red = rng.chance(0.75);
      body = {
        kind, reference, urgency, product: red ? 'red_cells' : 'plasma', bloodType: red ? rng.pick(['O+', 'A+', 'B+', 'AB+', 'O-']) : rng.pick(BLOOD_TYPES), units: 1 + rng.int(3),
        ...(rng.chance(0.7) ? { hospitalSiteId: rng.pick(HOSPITALS) } : { dropoff: point() }),
      };
      expected = [201, 422]; // stock runs out between restocks (E_NO_STOCK)
    }
    const key = rng.chance(0.5) ? `key-${this.state.seed}-${n}` : undefined;
    return this.create({ who, body, reference, ...(key !== undefined ? { key } : {}) }, [...expected, 429]);
  }

  /** POST a create that must be refused: no stock, an unknown site, or a client-chosen id. */
  createRefused(rng: Prng): Promise<unknown> {
    const who = rng.chance(0.7) ? rng.pick(this.state.requesters) : this.state.dispatcher;
    const reference = `ref-${this.state.seed}-${this.state.opCount + 1}`;
    const at = { lat: CENTER.lat, lng: CENTER.lng };
    const choice = rng.int(3);
    // platelets are never stocked: E_NO_STOCK; an unknown pickup site: E_UNKNOWN_SITE; a client id: E_VALIDATION
    const body = choice === 0
      ? { kind: 'blood', reference, hospitalSiteId: HOSPITALS[0], product: 'platelets', bloodType: 'A+', units: 2, urgency: 'urgent' }
      : choice === 1
        ? { kind: 'delivery', reference, pickupSiteId: `no-such-site-${this.state.opCount + 1}`, dropoff: at }
        : { kind: 'delivery', reference, id: `r_mine_${this.state.opCount + 1}`, pickup: at, dropoff: at };
    const key = rng.chance(0.5) ? `key-${this.state.seed}-${this.state.opCount + 1}` : undefined;
    return this.create({ who, body, reference, refusal: true, ...(key !== undefined ? { key } : {}) }, [[422], [404], [400]][choice]);
  }

  /** POST a create, recorded before it is sent. */
  private async create(a: Omit<CreateAttempt, 'op'>, expected: readonly number[]): Promise<void> {
    const op = this.state.begin(`POST /v1/requests as ${a.who.role}:${a.who.sub}${a.key ? ` key ${a.key}` : ''} ${JSON.stringify(a.body)}`);
    const attempt: CreateAttempt = { ...a, op };
    this.state.creates.push(attempt);
    const reply = await this.state.send(op, a.who, 'POST', '/v1/requests', a.body, expected, a.key ? { 'idempotency-key': a.key } : {});
    if (reply?.status === 201) this.acceptCreated(attempt, reply.body, op);
  }

  /** A 201 names a request: the model now holds it, with its legs and (blood) the units its plan reserved. */
  private acceptCreated(a: CreateAttempt, body: any, op: Op): void {
    const id = String(body?.id);
    a.id ??= id;
    a.reply ??= body;
    let req = this.state.requests.get(id);
    if (req === undefined) {
      req = newRequest(id, String(body?.kind), describeOp(op), this.state.cycle);
      this.state.requests.set(id, req);
    }
    req.create ??= a;
    req.origin = describeOp(op);
    req.legIds = (body?.legs ?? []).map((l: { id: string }) => l.id);
    for (const legId of req.legIds!) this.state.leg(req, legId);
    for (const s of (body?.plan?.sources ?? []) as { siteId: string; count: number }[]) req.sources.set(s.siteId, (req.sources.get(s.siteId) ?? 0) + s.count);
    if (body?.kind !== a.body.kind || (a.body.reference !== undefined && body?.reference !== a.body.reference)) {
      this.state.violate(op, `the answer to echo kind ${String(a.body.kind)} and reference ${String(a.body.reference)}`, JSON.stringify(body).slice(0, 300));
    }
  }

  /**
   * Retries a keyed create: the same body answers the same request (the same reply), another body 422; the same
   * key from another principal is that principal's own, a new request.
   */
  retryCreate(rng: Prng): Promise<unknown> | undefined {
    const keyed = this.state.creates.filter((c) => c.key !== undefined && c.id !== undefined && c.op.outcome === 'acked');
    if (keyed.length === 0) return undefined;
    const a = rng.pick(keyed);
    const r = rng.next();
    if (r < 0.15) {
      // a principal that never sent this key
      const used = new Set(this.state.creates.filter((c) => c.key === a.key).map((c) => c.who.sub));
      const who = [this.state.dispatcher, ...this.state.requesters].find((w) => !used.has(w.sub));
      if (who === undefined) return undefined;
      const reference = `${a.reference}-by-${who.sub}-${this.state.opCount + 1}`;
      const created = this.create({ who, body: { ...a.body, reference }, reference, key: a.key }, [201, 422, 429]);
      const mine = this.state.creates[this.state.creates.length - 1]; // pushed before create's first await
      return created.then(() => {
        if (mine.op.code === 'E_IDEMPOTENCY_MISMATCH' || (mine.id !== undefined && mine.id === a.id)) {
          this.state.violate(mine.op, `key ${a.key} of ${a.who.role}:${a.who.sub} is no key of ${who.role}:${who.sub}: a request of its own`, `${String(mine.op.status)} ${mine.op.code ?? mine.id}`);
        }
      });
    }
    if (r < 0.4) {
      const other = { ...a.body, reference: `${a.reference}-changed-${this.state.opCount + 1}` };
      const op = this.state.begin(`POST /v1/requests retry of op #${a.op.n} with key ${a.key} and ANOTHER body`);
      this.state.creates.push({ op, who: a.who, body: other, reference: String(other.reference), key: a.key, refusal: true });
      return this.state.send(op, a.who, 'POST', '/v1/requests', other, [422], { 'idempotency-key': a.key! }).then((reply) => {
        if (reply !== undefined && reply.status === 422 && reply.body?.error?.code !== 'E_IDEMPOTENCY_MISMATCH') this.state.violate(op, '422 E_IDEMPOTENCY_MISMATCH', JSON.stringify(reply.body));
      });
    }
    return this.replay(a);
  }

  private async replay(a: CreateAttempt): Promise<void> {
    const op = this.state.begin(`POST /v1/requests retry of op #${a.op.n} with key ${a.key} and the same body`);
    const reply = await this.state.send(op, a.who, 'POST', '/v1/requests', a.body, [201], { 'idempotency-key': a.key! });
    if (reply?.status !== 201) return;
    if (!reply.replayed) this.state.violate(op, `the first answer replayed (idempotent-replayed: true, request ${a.id})`, `a new answer for ${String(reply.body?.id)}`);
    if (reply.body?.id !== a.id) this.state.violate(op, `the same request ${a.id}`, String(reply.body?.id));
    else if (!sameJson(reply.body, a.reply)) this.state.violate(op, `the same reply as the first answer ${JSON.stringify(a.reply).slice(0, 400)}`, JSON.stringify(reply.body).slice(0, 400));
  }

  /** After a restart: every keyed create whose answer was lost is sent again; a 201 names the one request it made. */
  async retryLostCreates(): Promise<void> {
    for (const a of this.state.creates) {
      if (a.key === undefined || a.id !== undefined || a.op.outcome !== 'unknown' || a.refusal) continue;
      const op = this.state.begin(`POST /v1/requests retry after restart of op #${a.op.n} (answer lost) with key ${a.key}`);
      const reply = await this.state.send(op, a.who, 'POST', '/v1/requests', a.body, [201, 422, 429], { 'idempotency-key': a.key });
      if (reply?.status === 201) this.acceptCreated(a, reply.body, op);
    }
  }

  /** Cancel an open request, as its requester or a dispatcher. */
  cancelRequest(rng: Prng, open: RequestModel[]): Promise<unknown> | undefined {
    const pool = open.filter((r) => r.create !== undefined);
    if (pool.length === 0) return undefined;
    // oldest first more often: keeps the number of open requests bounded
    const req = rng.chance(0.5) ? pool[rng.int(Math.min(pool.length, 10))] : rng.pick(pool);
    const owner = req.create!.who;
    const who = owner.role === 'requester' && rng.chance(0.6) ? owner : this.state.dispatcher;
    const op = this.state.begin(`POST /v1/requests/${req.id}/cancel as ${who.role}:${who.sub}`);
    req.cancels.push({ op, who });
    req.touched = this.state.cycle;
    // 409: already ended, or (requester) already picked up
    return this.state.send(op, who, 'POST', `/v1/requests/${req.id}/cancel`, undefined, [200, 409]);
  }

  /** Moves on a leg the model holds as assigned or picked up (also ones from before a restart). */
  progressSome(rng: Prng): Promise<unknown> | undefined {
    const candidates: { req: RequestModel; leg: LegModel; courier: string }[] = [];
    for (const req of this.state.openRequests()) {
      for (const leg of req.legs.values()) {
        const f = legFacts(req, leg);
        if (f.acceptedBy !== undefined && !f.deliveredMaybe && !f.cancelMaybe) candidates.push({ req, leg, courier: f.acceptedBy });
      }
    }
    if (candidates.length === 0) return undefined;
    const c = rng.pick(candidates);
    const f = legFacts(c.req, c.leg);
    return this.progress(c.req, c.leg, c.courier, f.pickedMaybe ? 'delivered' : 'picked_up');
  }

  /** POST picked_up or delivered on `leg`, as `courier`. */
  progress(req: RequestModel, leg: LegModel, courier: string, status: 'picked_up' | 'delivered'): Promise<unknown> | undefined {
    return this.state.locked(`leg:${leg.id}`, async () => {
      const f = legFacts(req, leg);
      const op = this.state.begin(`POST /v1/requests/${req.id}/progress {status:${status}} by ${courier} (leg ${leg.id})`);
      leg.progress.push({ op, courier, status });
      req.touched = this.state.cycle;
      // certain (acknowledged accept and pickup, nothing unanswered, no cancel): it must be taken
      const certain = f.acceptedBy === courier && !f.cancelMaybe && !f.deliveredMaybe && (status === 'picked_up' ? !f.pickedMaybe : f.pickedAcked !== undefined);
      await this.state.send(op, this.state.driverWho(courier), 'POST', `/v1/requests/${req.id}/progress`, { status }, certain ? [200] : [200, 403, 404, 409]);
    });
  }

  /** A read: nearby couriers, or one request. */
  readSome(rng: Prng): Promise<unknown> | undefined {
    const known = [...this.state.requests.values()];
    if (known.length === 0 || rng.chance(0.3)) {
      const op = this.state.begin('GET /v1/nearby kind=courier');
      return this.state.send(op, rng.pick([this.state.dispatcher, this.state.admin, ...this.state.requesters]), 'GET', `/v1/nearby?lat=${CENTER.lat}&lng=${CENTER.lng}&kind=courier&k=20`, undefined, [200]);
    }
    const req = rng.pick(known);
    const op = this.state.begin(`GET /v1/requests/${req.id}`);
    return this.state.send(op, this.state.dispatcher, 'GET', `/v1/requests/${req.id}`, undefined, [200]);
  }
}
