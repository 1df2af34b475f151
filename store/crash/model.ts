/**
 * What the crash property knows: every operation sent and what its answer proved, the writes of each entity,
 * the requests and legs as acknowledged operations left them — and what a leg may look like given all that.
 */
import type { Role } from '../../api/auth.js';

/** What an operation's answer proved: pending (in flight), acked (2xx), refused (4xx, 503), unknown (no answer, 504). */
export type Outcome = 'pending' | 'acked' | 'refused' | 'unknown';

/** One operation sent to the server and what its answer proved. */
export interface Op {
  n: number;
  cycle: number;
  what: string;
  sentAt: number;
  doneAt: number;
  outcome: Outcome;
  status?: number;
  code?: string;
}

/** May this operation have taken effect? (acknowledged, or no answer) */
export const mayHave = (op: Op): boolean => op.outcome === 'acked' || op.outcome === 'unknown' || op.outcome === 'pending';

/** An operation and its answer, for messages. */
export function describeOp(op: Op): string {
  const answer = op.outcome === 'unknown' ? 'no answer (unknown)' : op.outcome === 'pending' ? 'in flight' : [op.status, op.code, `(${op.outcome})`].filter((x) => x !== undefined).join(' ');
  return `op #${op.n} ${op.what} → ${answer}`;
}

/** Writes of one entity, sent one at a time: what it may hold is the last acknowledged value or a later unanswered one. */
export class History<V> {
  readonly writes: { op: Op; value: V }[] = [];

  constructor(private readonly initial?: V) {}

  add(op: Op, value: V): void {
    this.writes.push({ op, value });
  }

  /** Values it may hold now, the write each comes from, and whether it may not exist at all. */
  candidates(): { values: V[]; ops: (Op | undefined)[]; absentOk: boolean } {
    let i = this.writes.length - 1;
    while (i >= 0 && this.writes[i].op.outcome !== 'acked') i--;
    const values: V[] = [];
    const ops: (Op | undefined)[] = [];
    if (i >= 0) {
      values.push(this.writes[i].value);
      ops.push(this.writes[i].op);
    } else if (this.initial !== undefined) {
      values.push(this.initial);
      ops.push(undefined);
    }
    for (let j = i + 1; j < this.writes.length; j++) {
      if (!mayHave(this.writes[j].op)) continue;
      values.push(this.writes[j].value);
      ops.push(this.writes[j].op);
    }
    return { values, ops, absentOk: i < 0 && this.initial === undefined };
  }

  /** The last write's op (for messages). */
  last(): Op | undefined {
    return this.writes[this.writes.length - 1]?.op;
  }
}

/** A principal and its token. */
export interface Who {
  role: Role;
  sub: string;
  token: string;
}

/** A courier's profile as written (PUT /v1/couriers/:id). */
export interface CourierProfile {
  vehicle: 'bike' | 'car' | 'van';
  capabilities: string[];
  capacity: number;
}

/** A site as written (PUT /v1/sites/:id). */
export interface SiteValue {
  kind: string;
  name: string;
  lat: number;
  lng: number;
  open: boolean;
  capacity?: number;
}

/** One lot of a bank's stock as written (PUT /v1/sites/:id/inventory). */
export interface Lot {
  product: string;
  bloodType: string;
  count: number;
  expiresAt: number;
}

/** A donor as written (PUT /v1/donors/:id). */
export interface DonorValue {
  bloodType: string;
  lat: number;
  lng: number;
  available: boolean;
  lastDonationAt?: number;
}

/** A geofence as written (PUT /v1/geofences/:id). */
export interface FenceValue {
  kind: string;
  geometry: { type: 'Polygon'; coordinates: number[][][] };
}

/** A courier's position as sent, and whether it must have survived. */
export interface Ping {
  op: Op;
  lat: number;
  lng: number;
  ts: number;
  /** Acknowledged long enough before a kill (2× POSITION_FLUSH_MS) or before a clean stop: it must survive. */
  durable: boolean;
  /** The kill it had to survive (absent: a clean stop). */
  killAt?: number;
}

/** A create as sent: the reference is unique to it (and its retries), so the store can be searched for it. */
export interface CreateAttempt {
  op: Op;
  who: Who;
  body: Record<string, unknown>;
  reference: string;
  key?: string;
  /** Set once a 201 named it (first answer or a retry). */
  id?: string;
  /** The first 201 body, which a keyed retry must repeat. */
  reply?: unknown;
  /** Expected to be refused (unknown site, no stock, a body with `id`). */
  refusal?: boolean;
}

/** The answers drivers sent to one leg's offers, and its progress. */
export interface LegModel {
  id: string;
  accepts: { op: Op; courier: string; offerId: string }[];
  declines: { op: Op; courier: string; offerId: string }[];
  progress: { op: Op; courier: string; status: 'picked_up' | 'delivered' }[];
}

/** A request as the model knows it: its create, its legs, cancels and the offers drivers saw. */
export interface RequestModel {
  id: string;
  kind: string;
  /** Undefined for a request known only from an offer frame (its create's answer was lost). */
  create: CreateAttempt | undefined;
  /** Leg ids from the create answer (undefined when only seen in offers). */
  legIds: string[] | undefined;
  legs: Map<string, LegModel>;
  /** Blood: units the plan reserved at each bank. */
  sources: Map<string, number>;
  cancels: { op: Op; who: Who }[];
  /** Offers of its legs as drivers received them (a frame is only sent once the offer is stored). */
  offersSeen: { offerId: string; legId: string; courier: string; where: string }[];
  touched: number;
  checked: number;
  /** Known to have ended (a cache of what the acknowledged operations say; never true again false). */
  ended: boolean;
  /** The operation that proves it exists (its 201, or the offer frame that named it). */
  origin: string;
}

/** What the model knows of one leg, as the checks use it. */
export interface LegFacts {
  acceptedBy: string | undefined;
  acceptOp: Op | undefined;
  mayCarry: Set<string>;
  declinedBy: Set<string>;
  pickedAcked: Op | undefined;
  pickedMaybe: boolean;
  deliveredAcked: Op | undefined;
  deliveredMaybe: boolean;
  cancelAcked: Op | undefined;
  cancelMaybe: boolean;
}

/** What the acknowledged and unanswered operations say of one leg. */
export function legFacts(req: RequestModel, leg: LegModel | undefined): LegFacts {
  const accepts = leg?.accepts ?? [];
  const acked = accepts.find((a) => a.op.outcome === 'acked');
  const progress = leg?.progress ?? [];
  const picked = progress.filter((p) => p.status === 'picked_up');
  const delivered = progress.filter((p) => p.status === 'delivered');
  return {
    acceptedBy: acked?.courier,
    acceptOp: acked?.op,
    mayCarry: new Set(accepts.filter((a) => mayHave(a.op)).map((a) => a.courier)),
    declinedBy: new Set((leg?.declines ?? []).filter((d) => d.op.outcome === 'acked').map((d) => d.courier)),
    pickedAcked: picked.find((p) => p.op.outcome === 'acked')?.op,
    pickedMaybe: picked.some((p) => mayHave(p.op)),
    deliveredAcked: delivered.find((p) => p.op.outcome === 'acked')?.op,
    deliveredMaybe: delivered.some((p) => mayHave(p.op)),
    cancelAcked: req.cancels.find((c) => c.op.outcome === 'acked')?.op,
    cancelMaybe: req.cancels.some((c) => mayHave(c.op)),
  };
}

/** Why a leg may not be in `status` carried by `courier`, given what was acknowledged; undefined when it may. */
export function legProblem(f: LegFacts, status: string, courier: string | undefined): string | undefined {
  switch (status) {
    case 'pending':
    case 'offered':
      if (f.acceptedBy !== undefined) return `never back to ${status} after ${f.acceptedBy}'s acknowledged accept`;
      if (f.cancelAcked) return `cancelled (the cancel was acknowledged), not ${status}`;
      if (f.pickedAcked || f.deliveredAcked) return `picked up or delivered (acknowledged), not ${status}`;
      return undefined;
    case 'assigned':
    case 'picked_up':
      if (f.cancelAcked) return `cancelled (the cancel was acknowledged), not ${status}`;
      if (f.deliveredAcked) return `delivered (acknowledged), not ${status}`;
      if (courier === undefined) return `a courier on a leg that is ${status}`;
      if (f.acceptedBy !== undefined && courier !== f.acceptedBy) return `carried by ${f.acceptedBy} (acknowledged accept), not by ${courier}`;
      if (!f.mayCarry.has(courier)) return `carried only by a courier whose accept was acknowledged or unanswered, not by ${courier}`;
      if (status === 'assigned' && f.pickedAcked) return 'picked_up (acknowledged), never back to assigned';
      if (status === 'picked_up' && !f.pickedMaybe) return 'picked_up only after a pickup that was sent and not refused';
      return undefined;
    case 'delivered':
      return f.deliveredMaybe ? undefined : 'delivered only after a delivery that was sent and not refused';
    case 'cancelled':
      if (!f.cancelMaybe) return 'cancelled only after a cancel that was sent and not refused';
      if (f.deliveredAcked) return 'delivered (acknowledged), not cancelled';
      return undefined;
    case 'failed':
      return f.acceptedBy !== undefined ? `never failed after ${f.acceptedBy}'s acknowledged accept` : undefined;
    default:
      return `a known status, not '${status}'`;
  }
}

/** A parent's status from its legs (PRODUCT §3): the least advanced live leg; cancelled when all are; else failed. */
export function deriveStatus(legs: readonly string[]): string {
  const rank: Record<string, number> = { pending: 0, offered: 1, assigned: 2, picked_up: 3, delivered: 4 };
  let best: string | undefined;
  for (const s of legs) if (s in rank && (best === undefined || rank[s] < rank[best])) best = s;
  if (best !== undefined) return best;
  return legs.length > 0 && legs.every((s) => s === 'cancelled') ? 'cancelled' : 'failed';
}

/** A request the model has just learnt of (from a 201 or an offer frame). */
export function newRequest(id: string, kind: string, origin: string, cycle: number): RequestModel {
  return { id, kind, create: undefined, legIds: undefined, legs: new Map(), sources: new Map(), cancels: [], offersSeen: [], touched: cycle, checked: 0, ended: false, origin };
}

/** The write history of `id` in `map`, made on first use. */
export function history<V>(map: Map<string, History<V>>, id: string, initial?: V): History<V> {
  let h = map.get(id);
  if (h === undefined) map.set(id, (h = new History<V>(initial)));
  return h;
}

/** The last few pings of a courier, for messages. */
export function pingLog(list: readonly Ping[]): string {
  return list.slice(-6).map((p) => `#${p.op.n} cycle ${p.op.cycle} ${p.lat},${p.lng} ts ${p.ts} ${p.op.outcome} sent ${p.op.sentAt} answered ${p.op.doneAt}${p.durable ? ` durable${p.killAt ? ` (killed ${p.killAt - p.op.doneAt} ms after the answer)` : ' (clean stop)'}` : ''}`).join(' | ');
}

/** A lot's identity: site, product, type and expiry. */
export function lotKey(siteId: string, l: { product: string; bloodType: string; expiresAt: number }): string {
  return `${siteId}|${l.product}|${l.bloodType}|${l.expiresAt}`;
}
