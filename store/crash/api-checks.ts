/**
 * Checks through the API after every restart: what the server shows (requests and their legs, nearby couriers,
 * sites, stock, donors, a dispatcher's fence snapshot) is what the acknowledged operations wrote, or what a
 * later unanswered one may have.
 */
import { Prng, streamSeed } from '../../fixtures/prng.js';
import { watchFences, type Reply } from './client.js';
import type { CrashState } from './crash-state.js';
import { near, sameGeometry } from './equality.js';
import { type DonorValue, type LegModel, type RequestModel, deriveStatus, describeOp, legFacts, legProblem, mayHave, pingLog } from './model.js';
import { BANKS, CENTER, COURIERS, DONOR_INTERVAL_MS, DURABLE_AFTER_MS, MAX_CARRIED, RADIUS_M, WHOLE_BLOOD_TYPES } from './world.js';

/** The model checked against the running server's answers. */
export class ApiChecks {
  constructor(private readonly state: CrashState) {}

  /** Everything the model says the restarted server must show: requests, couriers, sites and stock, donors, fences. */
  async checkThroughApi(all = false): Promise<void> {
    await this.checkRequests(all);
    await this.checkCouriers();
    await this.checkSites();
    await this.checkDonors();
    await this.checkFences();
  }

  private async checkRequests(all: boolean): Promise<void> {
    const rng = new Prng(streamSeed(this.state.seed, 50_000 + this.state.cycle));
    const list = [...this.state.requests.values()];
    const dirty = list.filter((r) => all || r.checked < r.touched || r.checked === 0);
    const rest = rng.shuffle(list.filter((r) => !dirty.includes(r))).slice(0, Math.max(0, this.state.opts.requestChecksPerCycle - dirty.length));
    const chosen = [...dirty, ...rest];
    // eight GETs in flight: the server answers from memory, the harness's turn-around is the cost
    const replies: Reply[] = [];
    for (let i = 0; i < chosen.length; i += 8) replies.push(...(await Promise.all(chosen.slice(i, i + 8).map((r) => this.state.get(`/v1/requests/${r.id}`)))));
    const carried = new Map<string, string[]>();
    chosen.forEach((req, i) => {
      req.checked = this.state.cycle;
      const reply = replies[i];
      if (reply.status !== 200) {
        this.state.violate(req.origin, `GET /v1/requests/${req.id} → 200 after the restart (it was acknowledged)`, `${reply.status} ${JSON.stringify(reply.body).slice(0, 200)}`);
        return;
      }
      this.checkRequestView(req, reply.body, carried);
    });
    this.state.lastChecked = chosen.length;
  }

  private checkRequestView(req: RequestModel, view: any, carried: Map<string, string[]>): void {
    const legs = (view.legs ?? []) as { id: string; status: string; courierId?: string }[];
    const at = `GET /v1/requests/${req.id} after the restart`;
    if (req.create !== undefined) {
      if (view.kind !== req.create.body.kind) this.state.violate(req.origin, `kind ${String(req.create.body.kind)}`, String(view.kind));
      if (view.reference !== req.create.reference) this.state.violate(req.origin, `reference ${req.create.reference}`, String(view.reference));
    }
    if (req.legIds !== undefined && JSON.stringify(legs.map((l) => l.id).sort()) !== JSON.stringify([...req.legIds].sort())) {
      this.state.violate(req.origin, `legs ${req.legIds.join(', ')} (exactly once each)`, legs.map((l) => l.id).join(', '));
    }
    const derived = deriveStatus(legs.map((l) => l.status));
    if (view.status !== derived) this.state.violate(at, `the request's status derived from its legs (${legs.map((l) => `${l.id}:${l.status}`).join(', ')}) = ${derived}`, String(view.status));
    for (const l of legs as { id: string; status: string; courierId?: string; offerId?: string }[]) {
      const leg = req.legs.get(l.id);
      const f = legFacts(req, leg);
      const problem = legProblem(f, l.status, l.courierId);
      const accepted = leg?.accepts.find((a) => a.op.outcome === 'acked');
      if (accepted !== undefined && (l.status === 'assigned' || l.status === 'picked_up') && l.courierId === accepted.courier && l.offerId !== accepted.offerId) {
        this.state.violate(describeOp(accepted.op), `leg ${l.id} carried under the offer that was accepted (${accepted.offerId})`, `offerId ${String(l.offerId)} (${at})`);
      }
      if (problem !== undefined) {
        const cause = f.cancelAcked ?? f.deliveredAcked ?? f.pickedAcked ?? f.acceptOp;
        this.state.violate(cause ? describeOp(cause) : req.origin, `leg ${l.id}: ${problem}`, `${l.status}${l.courierId ? ` with ${l.courierId}` : ''} (${at})`);
      }
      if ((l.status === 'assigned' || l.status === 'picked_up') && l.courierId !== undefined) {
        const legs = [...(carried.get(l.courierId) ?? []), l.id];
        if (legs.length > MAX_CARRIED) this.state.violate(at, `${l.courierId} carries ${MAX_CARRIED} live legs at most (a stack and one en route)`, legs.join(' and '));
        carried.set(l.courierId, legs);
      }
    }
  }

  private async checkCouriers(): Promise<void> {
    const all = await this.state.get(`/v1/nearby?lat=${CENTER.lat}&lng=${CENTER.lng}&kind=courier&k=1000&radius=${RADIUS_M}`);
    const cold = await this.state.get(`/v1/nearby?lat=${CENTER.lat}&lng=${CENTER.lng}&kind=courier&k=1000&radius=${RADIUS_M}&capability=cold_chain`);
    const hits = new Map<string, { lat: number; lng: number; status: string; vehicle: string }>((all.body?.results ?? []).map((h: any) => [h.id, h]));
    const coldIds = new Set<string>((cold.body?.results ?? []).map((h: any) => h.id));
    const open = this.state.openRequests();
    for (const id of COURIERS) {
      const profile = this.state.profiles.get(id)?.candidates();
      if (profile === undefined) continue;
      const hit = hits.get(id);
      const pings = this.state.pings.get(id) ?? [];
      const durable = pings.filter((p) => p.durable).pop();
      if (durable !== undefined) {
        const later = pings.slice(pings.indexOf(durable)).filter((p) => mayHave(p.op));
        if (hit === undefined) this.state.violate(describeOp(durable.op), `${id} at a position no older than this ping (acknowledged > ${DURABLE_AFTER_MS} ms before the kill)`, 'not listed by GET /v1/nearby');
        else if (!later.some((p) => near(p.lat, hit.lat) && near(p.lng, hit.lng))) {
          this.state.violate(describeOp(durable.op), `${id} at this ping's position or a later one (${later.map((p) => `${p.lat},${p.lng}`).join(' | ')})`, `${hit.lat},${hit.lng}; pings: ${pingLog(pings)}`);
        }
      }
      if (hit === undefined) continue;
      if (profile.absentOk && profile.values.length === 0) this.state.violate(`GET /v1/nearby after the restart`, `no courier ${id} (its profile writes were all refused)`, JSON.stringify(hit));
      if (!profile.values.some((p) => p.vehicle === hit.vehicle)) {
        this.state.violate(describeOp(this.state.profiles.get(id)!.last()!), `${id}'s vehicle one of ${profile.values.map((p) => p.vehicle).join(', ')}`, hit.vehicle);
      }
      const hasCold = profile.values.map((p) => p.capabilities.includes('cold_chain'));
      if (hasCold.every((x) => x === hasCold[0]) && hasCold.length > 0 && coldIds.has(id) !== hasCold[0]) {
        this.state.violate(describeOp(this.state.profiles.get(id)!.last()!), `${id} ${hasCold[0] ? 'listed' : 'not listed'} with capability=cold_chain`, coldIds.has(id) ? 'listed' : 'not listed');
      }
      this.checkCourierStatus(id, hit.status, open);
    }
  }

  private checkCourierStatus(id: string, status: string, open: readonly RequestModel[]): void {
    let carries: LegModel | undefined;
    let mayCarry = false;
    for (const req of open) {
      for (const leg of req.legs.values()) {
        const f = legFacts(req, leg);
        if (f.acceptedBy === id && !f.deliveredMaybe && !f.cancelMaybe) carries = leg;
        if (f.mayCarry.has(id) && !f.deliveredAcked && !f.cancelAcked) mayCarry = true;
      }
    }
    if (carries !== undefined && status !== 'busy') {
      const acc = carries.accepts.find((a) => a.op.outcome === 'acked')!;
      this.state.violate(describeOp(acc.op), `${id} busy (it carries leg ${carries.id})`, status);
    }
    const st = this.state.statuses.get(id)?.candidates();
    if (!mayCarry && st !== undefined && st.values.length > 0 && st.values.every((v) => v === 'offline') && status !== 'offline') {
      this.state.violate(st.ops[0] ? describeOp(st.ops[0]) : `courier ${id} created`, `${id} offline (its last acknowledged status, nothing later unanswered)`, status);
    }
  }

  private async checkSites(): Promise<void> {
    const reply = await this.state.get(`/v1/nearby?lat=${CENTER.lat}&lng=${CENTER.lng}&kind=site&k=1000&radius=${RADIUS_M}`);
    const hits = new Map<string, any>((reply.body?.results ?? []).map((h: any) => [h.id, h]));
    for (const [id, h] of this.state.sites) {
      const c = h.candidates();
      const hit = hits.get(id);
      const last = describeOp(h.last()!);
      if (hit === undefined) {
        if (!c.absentOk) this.state.violate(last, `site ${id} listed by GET /v1/nearby (acknowledged)`, 'missing');
        continue;
      }
      const ok = c.values.some((v) => v.kind === hit.siteKind && v.name === hit.name && near(v.lat, hit.lat) && near(v.lng, hit.lng));
      if (!ok) this.state.violate(last, `site ${id} as last acknowledged or later unanswered: ${c.values.map((v) => `${v.name}@${v.lat},${v.lng}`).join(' | ')}`, `${hit.siteKind} ${hit.name}@${hit.lat},${hit.lng}`);
    }
    for (const r of this.state.refusedSites) {
      if (hits.has(r.id)) this.state.violate(describeOp(r.op), `no site ${r.id} (its only write was refused)`, JSON.stringify(hits.get(r.id)));
    }
    for (const type of WHOLE_BLOOD_TYPES) {
      const stock = await this.state.get(`/v1/nearby?lat=${CENTER.lat}&lng=${CENTER.lng}&kind=site&siteKind=blood_bank&k=100&radius=${RADIUS_M}&product=whole_blood&bloodType=${encodeURIComponent(type)}&units=1`);
      const units = new Map<string, number>((stock.body?.results ?? []).map((h: any) => [h.id, h.units]));
      for (const bank of BANKS) {
        const inv = this.state.inventories.get(bank)?.candidates();
        if (inv === undefined) continue;
        const want = inv.values.map((lots) => lots.filter((l) => l.product === 'whole_blood' && l.bloodType === type).reduce((n, l) => n + l.count, 0));
        const got = units.get(bank) ?? 0;
        if (!want.includes(got)) this.state.violate(describeOp(this.state.inventories.get(bank)!.last()!), `${bank} with ${want.join(' or ')} units of whole_blood ${type} (never requested, so exactly as written)`, String(got));
      }
    }
  }

  private async checkDonors(): Promise<void> {
    const reply = await this.state.get(`/v1/nearby?lat=${CENTER.lat}&lng=${CENTER.lng}&kind=donor&k=1000&radius=${RADIUS_M}`);
    const hits = new Map<string, any>((reply.body?.results ?? []).map((h: any) => [h.id, h]));
    const now = Date.now();
    const visible = (v: DonorValue): boolean => v.available && (v.lastDonationAt === undefined || now - v.lastDonationAt >= DONOR_INTERVAL_MS);
    for (const [id, h] of this.state.donors) {
      const c = h.candidates();
      const hit = hits.get(id);
      const last = describeOp(h.last()!);
      const shown = c.values.filter(visible);
      if (hit === undefined) {
        if (!c.absentOk && shown.length === c.values.length) this.state.violate(last, `donor ${id} listed (available and eligible as acknowledged)`, 'missing');
        continue;
      }
      if (!shown.some((v) => v.bloodType === hit.bloodType && near(v.lat, hit.lat) && near(v.lng, hit.lng))) {
        this.state.violate(last, `donor ${id} hidden or as written: ${shown.map((v) => `${v.bloodType}@${v.lat},${v.lng}`).join(' | ') || 'hidden'}`, `${hit.bloodType}@${hit.lat},${hit.lng}`);
      }
    }
  }

  private async checkFences(): Promise<void> {
    const snapshot = await watchFences(this.state.server!.ws, this.state.dispatcher.token);
    const got = new Map<string, any>(snapshot.map((f: any) => [f.id, f]));
    for (const [id, h] of this.state.fences) {
      const c = h.candidates();
      const f = got.get(id);
      const last = describeOp(h.last()!);
      if (f === undefined) {
        if (!c.absentOk) this.state.violate(last, `fence ${id} in a dispatcher's snapshot (acknowledged)`, 'missing');
        continue;
      }
      if (!c.values.some((v) => v.kind === f.kind && sameGeometry(v.geometry.coordinates, f.geometry?.coordinates))) {
        this.state.violate(last, `fence ${id} as last acknowledged or later unanswered (${c.values.map((v) => v.kind).join(' | ')})`, `${f.kind} ${JSON.stringify(f.geometry).slice(0, 200)}`);
      }
    }
  }
}
