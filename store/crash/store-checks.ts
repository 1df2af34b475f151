/**
 * Checks in the store itself, after a clean stop (SIGTERM): the stopped server's DATA_DIR opened directly —
 * stock and reservations add up, one live assignment per leg and courier, one request per reference, every
 * entity, request, leg and offer as the acknowledged operations left it.
 */
import { Prng, streamSeed } from '../../fixtures/prng.js';
import { openPGlite } from '../pglite-store.js';
import { SqlStore } from '../sql-store.js';
import type { SqlDriver, SqlSession } from '../sql.js';
import type { StoredRequest, StoredState } from '../store.js';
import type { CrashState } from './crash-state.js';
import { near, sameGeometry, sameSet } from './equality.js';
import { type RequestModel, describeOp, legFacts, legProblem, lotKey, mayHave, pingLog } from './model.js';
import { BANKS, CENTER, MAX_CARRIED, RADIUS_M, STOCK_VIEWS } from './world.js';

/** The model checked against the store the server left behind. */
export class StoreChecks {
  private lastStoreCheck = 0;

  constructor(private readonly state: CrashState) {}

  /** Units on hand per bank as GET /v1/nearby shows them, for recipients whose compatible types are exactly known. */
  async stockShown(): Promise<Map<string, number>> {
    const shown = new Map<string, number>();
    for (const [product, recipient] of STOCK_VIEWS) {
      const reply = await this.state.get(`/v1/nearby?lat=${CENTER.lat}&lng=${CENTER.lng}&kind=site&siteKind=blood_bank&k=100&radius=${RADIUS_M}&product=${product}&bloodType=${encodeURIComponent(recipient)}&units=1`);
      for (const h of reply.body?.results ?? []) shown.set(`${h.id}|${product}|${recipient}`, h.units);
    }
    return shown;
  }

  /** Opens the stopped server's store and checks its invariants and every entity and request the model holds (a sample of the untouched ones). */
  async checkStore(final: boolean, shown: Map<string, number>): Promise<void> {
    const audit = await StoreAudit.open(this.state.dataDir);
    try {
      const state = await audit.loadState();
      const issued = await audit.issuedUnits();
      const references = await audit.references();
      this.checkStockShown(state, shown);
      this.checkLots(state, issued);
      this.checkLiveRows(state);
      this.checkReferences(references);
      this.checkStoredEntities(state);
      // every request touched since the last store check, and a sample of the rest (all of them after the last kill)
      const rng = new Prng(streamSeed(this.state.seed, 70_000 + this.state.cycle));
      const all = [...this.state.requests.values()];
      const touched = all.filter((r) => final || r.touched >= this.lastStoreCheck);
      const chosen = [...touched, ...rng.shuffle(all.filter((r) => !touched.includes(r))).slice(0, 400)];
      this.lastStoreCheck = this.state.cycle;
      for (const req of chosen) {
        const stored = await audit.getRequest(req.id);
        if (stored === undefined) this.state.violate(req.origin, `request ${req.id} in the store (getRequest)`, 'missing');
        else this.checkStoredRequest(req, stored);
      }
    } finally {
      await audit.close();
    }
  }

  /** What the server showed on hand just before its clean stop is what the store holds: count − reserved, lot by lot. */
  private checkStockShown(state: StoredState, shown: Map<string, number>): void {
    for (const bank of BANKS) {
      for (const [product, recipient, types] of STOCK_VIEWS) {
        const stored = (state.inventory.get(bank) ?? []).filter((l) => l.product === product && types.includes(l.bloodType)).reduce((n, l) => n + l.count - l.reserved, 0);
        const got = shown.get(`${bank}|${product}|${recipient}`) ?? 0;
        if (got !== stored) {
          this.state.violate(`store check (cycle ${this.state.cycle})`, `${bank}'s ${product} for ${recipient} on hand in memory (GET /v1/nearby) = in the store (count − reserved): ${stored}`, String(got));
        }
      }
    }
  }

  private checkLots(state: StoredState, issued: { siteId: string; product: string; bloodType: string; expiresAt: number; count: number; issuedAt: number }[]): void {
    const held = new Map<string, number>();
    for (const r of state.reservations) held.set(lotKey(r.siteId, r), (held.get(lotKey(r.siteId, r)) ?? 0) + r.count);
    for (const [siteId, lots] of state.inventory) {
      for (const lot of lots) {
        const key = lotKey(siteId, lot);
        const want = held.get(key) ?? 0;
        if (lot.reserved !== want) this.state.violate(`store check (cycle ${this.state.cycle})`, `lot ${key} reserved = the units its held reservations hold (${want})`, String(lot.reserved));
        if (lot.reserved > lot.count) this.state.violate(`store check (cycle ${this.state.cycle})`, `lot ${key} reserved ≤ count (${lot.count})`, String(lot.reserved));
        held.delete(key);
      }
    }
    for (const [key, n] of held) this.state.violate(`store check (cycle ${this.state.cycle})`, `held reservations only on listed lots`, `${n} units held on ${key}, which the store does not list`);
    for (const [bank, h] of this.state.inventories) {
      const c = h.candidates();
      const lots = state.inventory.get(bank) ?? [];
      const keys = new Set<string>([...c.values.flatMap((v) => v.map((l) => lotKey(bank, l))), ...lots.map((l) => lotKey(bank, l))]);
      for (const key of keys) {
        const count = lots.find((l) => lotKey(bank, l) === key)?.count ?? 0;
        const out = issued.filter((u) => lotKey(u.siteId, u) === key);
        // a write may have landed anywhere between its sending and its answer (or the kill): issues in that window may count either way
        const fits = c.values.some((lots2, i) => {
          const op = c.ops[i];
          const written = lots2.find((l) => lotKey(bank, l) === key)?.count ?? 0;
          const from = op?.sentAt ?? 0;
          const to = op === undefined ? 0 : op.outcome === 'acked' ? op.doneAt : Infinity;
          const after = (t: number): number => out.filter((u) => u.issuedAt > t).reduce((n, u) => n + u.count, 0);
          return count >= written - after(from - 5) && count <= written - after(to + 5);
        });
        if (!fits) {
          this.state.violate(describeOp(h.last()!), `lot ${key} holding what was written (${c.values.map((v) => v.find((l) => lotKey(bank, l) === key)?.count ?? 0).join(' or ')}) less the ${out.reduce((n, u) => n + u.count, 0)} units issued since`, String(count));
        }
      }
    }
  }

  private checkLiveRows(state: StoredState): void {
    const at = `store check (cycle ${this.state.cycle})`;
    const perRequest = new Map<string, number>();
    const perCourier = new Map<string, string[]>();
    for (const a of state.assignments) {
      perRequest.set(a.requestId, (perRequest.get(a.requestId) ?? 0) + 1);
      perCourier.set(a.courierId, [...(perCourier.get(a.courierId) ?? []), a.requestId]);
    }
    for (const [id, n] of perRequest) if (n > 1) this.state.violate(at, `one live assignment per request (PRODUCT §3)`, `${n} for ${id}`);
    for (const [c, legs] of perCourier) if (legs.length > MAX_CARRIED) this.state.violate(at, `at most ${MAX_CARRIED} live legs per courier (a stack and one en route)`, `${c} carries ${legs.join(', ')}`);
    const offers = new Map<string, StoredState['offers']>();
    const offersPerLeg = new Map<string, number>();
    for (const o of state.offers) {
      offers.set(o.courierId, [...(offers.get(o.courierId) ?? []), o]);
      offersPerLeg.set(o.requestId, (offersPerLeg.get(o.requestId) ?? 0) + 1);
    }
    // several live offers to one courier are one stack: every one carries the same stack of legs
    const stackOf = (o: StoredState['offers'][number]): string | undefined => (o.details?.stack as { legId: string }[] | undefined)?.map((l) => l.legId).join(',');
    for (const [c, held] of offers) {
      if (held.length > 1 && !held.every((o) => stackOf(o) !== undefined && stackOf(o) === stackOf(held[0]))) this.state.violate(at, `a courier's live offers are one stack (PRODUCT §2, §3)`, `${c} holds ${held.map((o) => o.id).join(', ')}`);
    }
    for (const [leg, n] of offersPerLeg) if (n > 1) this.state.violate(at, `one live offer per leg`, `${n} for ${leg}`);
    for (const o of state.offers) {
      if (perCourier.has(o.courierId) && o.details?.enRoute === undefined) this.state.violate(at, `no live offer but an en-route one to a courier carrying a leg`, `${o.courierId} holds offer ${o.id} and carries ${perCourier.get(o.courierId)!.join(', ')}`);
    }
  }

  private checkReferences(rows: { id: string; reference: string }[]): void {
    const byRef = new Map<string, string[]>();
    for (const r of rows) byRef.set(r.reference, [...(byRef.get(r.reference) ?? []), r.id]);
    const seen = new Set<string>();
    for (const a of this.state.creates) {
      if (seen.has(a.reference)) continue;
      seen.add(a.reference);
      const ids = byRef.get(a.reference) ?? [];
      const attempts = this.state.creates.filter((x) => x.reference === a.reference);
      const named = attempts.find((x) => x.id !== undefined);
      if (a.refusal || attempts.every((x) => x.op.outcome === 'refused')) {
        if (ids.length > 0) this.state.violate(describeOp(a.op), `no request with reference ${a.reference} (the create was refused: nothing half-applied)`, ids.join(', '));
      } else if (named !== undefined) {
        if (ids.length !== 1 || ids[0] !== named.id) this.state.violate(describeOp(named.op), `exactly one request with reference ${a.reference}: ${named.id}`, ids.join(', ') || 'none');
      } else if (ids.length > 1) {
        this.state.violate(describeOp(a.op), `at most one request with reference ${a.reference} (its answer was lost)`, ids.join(', '));
      }
    }
  }

  private checkStoredEntities(state: StoredState): void {
    const at = `store check (cycle ${this.state.cycle})`;
    for (const [id, h] of this.state.profiles) {
      const c = h.candidates();
      const row = state.couriers.find((x) => x.id === id);
      if (row === undefined) {
        if (!c.absentOk) this.state.violate(describeOp(h.last()!), `courier ${id} in the store`, 'missing');
        continue;
      }
      if (!c.values.some((p) => p.vehicle === row.vehicle && p.capacity === row.capacity && sameSet(p.capabilities, row.capabilities))) {
        this.state.violate(describeOp(h.last()!), `courier ${id}'s profile as last acknowledged or later unanswered`, JSON.stringify({ vehicle: row.vehicle, capabilities: row.capabilities, capacity: row.capacity }));
      }
    }
    for (const [id, h] of this.state.sites) {
      const c = h.candidates();
      const row = state.sites.find((x) => x.id === id);
      if (row === undefined) {
        if (!c.absentOk) this.state.violate(describeOp(h.last()!), `site ${id} in the store`, 'missing');
      } else if (!c.values.some((v) => v.name === row.name && v.open === row.open && near(v.lat, row.lat) && near(v.lng, row.lng))) {
        this.state.violate(describeOp(h.last()!), `site ${id} as last acknowledged or later unanswered`, JSON.stringify({ name: row.name, open: row.open, lat: row.lat, lng: row.lng }));
      }
    }
    for (const r of this.state.refusedSites) if (state.sites.some((s) => s.id === r.id)) this.state.violate(describeOp(r.op), `no site ${r.id} in the store`, 'there');
    for (const [id, h] of this.state.donors) {
      const c = h.candidates();
      const row = state.donors.find((x) => x.id === id);
      if (row === undefined) {
        if (!c.absentOk) this.state.violate(describeOp(h.last()!), `donor ${id} in the store`, 'missing');
      } else if (!c.values.some((v) => v.bloodType === row.bloodType && v.available === row.available && near(v.lat, row.lat) && near(v.lng, row.lng) && row.lastDonation.whole_blood === v.lastDonationAt)) {
        this.state.violate(describeOp(h.last()!), `donor ${id} as last acknowledged or later unanswered`, JSON.stringify(row));
      }
    }
    for (const [id, h] of this.state.fences) {
      const c = h.candidates();
      const row = state.geofences.find((x) => x.id === id);
      const geometry = row === undefined ? undefined : row.geometry.type === 'Feature' ? row.geometry.geometry : row.geometry;
      if (row === undefined) {
        if (!c.absentOk) this.state.violate(describeOp(h.last()!), `fence ${id} in the store`, 'missing');
      } else if (!c.values.some((v) => v.kind === row.kind && sameGeometry(v.geometry.coordinates, geometry?.coordinates))) {
        this.state.violate(describeOp(h.last()!), `fence ${id} as last acknowledged or later unanswered`, JSON.stringify(row).slice(0, 200));
      }
    }
    for (const [id, list] of this.state.pings) {
      const durable = list.filter((p) => p.durable).pop();
      const row = state.couriers.find((x) => x.id === id);
      if (durable === undefined || row === undefined) continue;
      const later = list.slice(list.indexOf(durable)).filter((p) => mayHave(p.op));
      if (!later.some((p) => near(p.lat, row.lat ?? NaN) && near(p.lng, row.lng ?? NaN))) {
        this.state.violate(describeOp(durable.op), `courier ${id} stored at this ping's position or a later one`, `${row.lat},${row.lng} (last ping stored at ${String(row.lastPingAt)}); pings: ${pingLog(list)}`);
      }
    }
  }

  private checkStoredRequest(req: RequestModel, stored: StoredRequest): void {
    const at = `store check of ${req.id} (cycle ${this.state.cycle})`;
    const r = stored.request;
    if (req.create !== undefined) {
      const who = req.create.who;
      if (r.requesterId !== who.sub || (r.requesterRole !== undefined && r.requesterRole !== who.role)) this.state.violate(req.origin, `owner ${who.role}:${who.sub}`, `${r.requesterRole}:${r.requesterId}`);
      if (r.reference !== req.create.reference) this.state.violate(req.origin, `reference ${req.create.reference}`, String(r.reference));
    }
    const legs = stored.legs.length > 0 ? stored.legs : [r];
    for (const leg of legs) {
      const f = legFacts(req, req.legs.get(leg.id));
      const live = stored.assignments.filter((a) => a.requestId === leg.id && a.endedAt === undefined);
      const problem = legProblem(f, leg.status, live[0]?.courierId ?? [...stored.assignments].reverse().find((a) => a.requestId === leg.id)?.courierId);
      if (problem !== undefined) this.state.violate(at, `stored leg ${leg.id}: ${problem}`, leg.status);
      const accepted = req.legs.get(leg.id)?.accepts.find((a) => a.op.outcome === 'acked');
      if (accepted !== undefined && live.length === 1 && live[0].courierId === accepted.courier && live[0].offerId !== accepted.offerId) {
        this.state.violate(describeOp(accepted.op), `the stored assignment of ${leg.id} under the offer that was accepted (${accepted.offerId})`, String(live[0].offerId));
      }
      const shouldLive = leg.status === 'assigned' || leg.status === 'picked_up';
      if (live.length !== (shouldLive ? 1 : 0)) this.state.violate(at, `${shouldLive ? 'one live assignment' : 'no live assignment'} for stored leg ${leg.id} (${leg.status})`, `${live.length}`);
      if (req.kind !== 'blood' && req.create?.body.kind !== 'blood') continue;
      const site = leg.id.slice(leg.id.lastIndexOf('/') + 1);
      const planned = req.sources.get(site);
      if (planned === undefined) continue;
      const rows = stored.reservations.filter((x) => x.requestId === leg.id);
      const heldNow = rows.filter((x) => x.releasedAt === undefined && x.issuedAt === undefined).reduce((n, x) => n + x.count, 0);
      const issuedNow = rows.filter((x) => x.issuedAt !== undefined).reduce((n, x) => n + x.count, 0);
      const holds = leg.status === 'pending' || leg.status === 'offered' || leg.status === 'assigned';
      const carriedOff = leg.status === 'picked_up' || leg.status === 'delivered';
      if (heldNow !== (holds ? planned : 0)) this.state.violate(req.origin, `leg ${leg.id} (${leg.status}) holding ${holds ? planned : 0} units at ${site}`, `${heldNow} held`);
      if (carriedOff ? issuedNow !== planned : issuedNow !== 0 && !(leg.status === 'cancelled' && issuedNow === planned)) {
        this.state.violate(req.origin, `leg ${leg.id} (${leg.status}) with ${carriedOff ? planned : 0} units issued`, `${issuedNow} issued`);
      }
    }
    this.checkStoredOffers(req, stored);
  }

  /** Every offer a driver was sent is stored once, as sent; acknowledged answers to it are stored, refused ones not. */
  private checkStoredOffers(req: RequestModel, stored: StoredRequest): void {
    for (const seen of req.offersSeen) {
      const rows = stored.offers.filter((o) => o.id === seen.offerId);
      if (rows.length !== 1 || rows[0].requestId !== seen.legId || rows[0].courierId !== seen.courier) {
        this.state.violate(seen.where, `offer ${seen.offerId} stored exactly once under ${req.id}, for leg ${seen.legId} to ${seen.courier} (its frame was sent once it was stored)`, JSON.stringify(rows.map((o) => ({ leg: o.requestId, courier: o.courierId, status: o.status }))));
      }
    }
    for (const leg of req.legs.values()) {
      for (const [list, status] of [[leg.accepts, 'accepted'], [leg.declines, 'declined']] as const) {
        for (const a of list) {
          const row = stored.offers.find((o) => o.id === a.offerId && o.requestId === leg.id);
          if (a.op.outcome === 'acked' && row?.status !== status) this.state.violate(describeOp(a.op), `offer ${a.offerId} stored as ${status}`, String(row?.status ?? 'missing'));
          if (a.op.outcome === 'refused' && row?.status === status) this.state.violate(describeOp(a.op), `offer ${a.offerId} not ${status} (the answer was refused)`, `${status} in the store`);
        }
      }
    }
  }
}

/** The Store over the stopped server's DATA_DIR, plus the two reads only an audit needs (references, issued units). */
class StoreAudit extends SqlStore {
  readonly kind = 'pglite' as const;

  static async open(dataDir: string): Promise<StoreAudit> {
    const db = await openPGlite(dataDir);
    const session = (s: { query<R>(text: string, params?: unknown[]): Promise<{ rows: R[] }>; exec(script: string): Promise<unknown> }): SqlSession => ({
      query: async <R>(text: string, params?: unknown[]) => (await s.query<R>(text, params)).rows,
      exec: async (script: string) => {
        await s.exec(script);
      },
    });
    const driver: SqlDriver = { ...session(db), transaction: (fn) => db.transaction((tx) => fn(session(tx))), close: () => db.close() };
    return new StoreAudit(driver);
  }

  /** Every request row carrying a client reference (parents only carry one). */
  references(): Promise<{ id: string; reference: string }[]> {
    return this.db.query('SELECT id, reference FROM requests WHERE reference IS NOT NULL');
  }

  /** Every reservation taken off the shelf, with when. */
  issuedUnits(): Promise<{ siteId: string; product: string; bloodType: string; expiresAt: number; count: number; issuedAt: number }[]> {
    return this.db.query(`SELECT site_id AS "siteId", product, blood_type AS "bloodType", round(extract(epoch FROM expires_at) * 1000)::float8 AS "expiresAt",
      count, round(extract(epoch FROM issued_at) * 1000)::float8 AS "issuedAt" FROM reservations WHERE issued_at IS NOT NULL`);
  }
}
