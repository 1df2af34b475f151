/**
 * Crash recovery: the engine and the dispatch state rebuilt from what the store committed.
 *
 *   Store.loadState() ─► StoredState
 *        │
 *        ├─► fences, cell speeds, sites (profiles only, no stock yet), couriers (profile, position, status)
 *        ├─► open requests, oldest first, replayed through DispatchLoop.submit with their stored submission:
 *        │     blood: before each one only ITS reserved lots are on the shelves of ITS banks, so allocation
 *        │     reserves exactly what the store says it held (a leg with none left gets one placeholder unit,
 *        │     taken off the shelf at once, so the leg keeps its id and bank); declines stay excluded
 *        ├─► live assignments: offered and accepted under the stored offer id (courier busy), then picked_up when stored so
 *        ├─► inventory: the stored lots; units reserved above stay reserved (SiteIndex.setInventory keeps them)
 *        ├─► donors last (no call-out fires during the replay)
 *        └─► offers live at the crash are NOT re-made: their requests stay pending and are dispatched again,
 *            their couriers are available; `expiry` is the transition that records this in the store
 *
 * Event numbering continues above the store's: `seqBase` + the lifecycle's own seq (see dispatch-journal.ts).
 * The dependency direction holds: store → dispatch → engine; nothing here knows HTTP.
 */
import { CellSpeeds } from '../engine/cell-speeds.js';
import type { CourierStatus } from '../engine/courier-attributes.js';
import type { FenceEvent } from '../engine/courier-index.js';
import { type EngineIndexes, createEngineIndexes } from '../engine/engine-indexes.js';
import { GeofenceIndex } from '../engine/geofence-index.js';
import type { InventoryLot, SiteIndex } from '../engine/site-index.js';
import type { BloodProduct, BloodType } from '../engine/blood-types.js';
import type { DispatchLoop, RequestSubmission } from '../dispatch/dispatch-loop.js';
import type { LatLng } from '../dispatch/dispatch-request.js';
import type { OpenDispatchState, RequestRow, ReservationRow, StoredState, Transition } from './store.js';

/** What the API's request book needs to answer GET /v1/requests/{id} and Idempotency-Key retries again. */
export interface RecoveredRequest {
  id: string;
  kind: RequestSubmission['kind'];
  owner: string;
  /** The creator's role (ownership is role and sub); 'requester' for rows from before roles were stored. */
  ownerRole: string;
  reference?: string;
  urgency: string;
  createdAt: number;
  pickup: LatLng;
  dropoff: LatLng;
  legs: string[];
  idempotencyKey?: string;
  /** The plan as first answered (for an Idempotency-Key replay). */
  plan?: Record<string, unknown>;
}

/** What the store keeps in a parent request row's `payload` (written by dispatch-journal.ts). */
export interface RequestPayload {
  /** The submission, with the dropoff the engine chose for a rescue filled in. */
  submission: RequestSubmission;
  /** Where the map draws it: the first bank for blood, else the submission's pickup. */
  pickup: LatLng;
  dropoff: LatLng;
  legs: string[];
  plan?: Record<string, unknown>;
}

/** Figures and anomalies of one recovery. */
export interface RecoveryReport {
  couriers: number;
  sites: number;
  donors: number;
  fences: number;
  requests: number;
  legs: number;
  assignments: number;
  /** Units held again for live legs. */
  reservedUnits: number;
  offersExpired: number;
  /** Requests the store had open that could not be rebuilt (failed in `expiry`), with why. */
  dropped: { id: string; reason: string }[];
  ms: number;
}

/** The result: engine, loop, book entries, the transition to commit, and where event numbering goes on. */
export interface Recovered {
  engine: EngineIndexes;
  loop: DispatchLoop;
  requests: RecoveredRequest[];
  report: RecoveryReport;
  /** Offers live at the crash expired, dropped requests failed; commit before serving (undefined when nothing changed). */
  expiry: Transition | undefined;
  /** Add to lifecycle event seqs from now on: stored seqs stay unique and increasing. */
  seqBase: number;
}

/** How to build what recovery fills. */
export interface RecoveryOptions {
  now: number;
  /** Fence crossings of the rebuilt CourierIndex (api: FenceFeed.push). */
  onFenceEvent?: (event: FenceEvent) => void;
  /** Builds the (empty) dispatch loop over the rebuilt indexes. */
  createLoop: (engine: EngineIndexes) => DispatchLoop;
}

/** Rebuilds the engine and dispatch state from a stored state; never throws for one bad request (it is dropped and reported). */
export function recover(state: StoredState, options: RecoveryOptions): Recovered {
  const started = performance.now();
  const { now } = options;
  const fences = new GeofenceIndex();
  for (const f of state.geofences) fences.put(f.id, { kind: f.kind, geometry: f.geometry as never });
  const engine = createEngineIndexes({ fences, speeds: restoreSpeeds(state), onFenceEvent: options.onFenceEvent, initialCapacity: Math.max(1024, state.couriers.length) });
  const { couriers, sites, donors } = engine;

  for (const s of state.sites) {
    sites.upsert(s.id, { kind: s.kind, name: s.name, lat: s.lat, lng: s.lng, capacity: s.capacity, occupancy: s.occupancy, open: s.open });
  }
  for (const c of state.couriers) {
    couriers.upsert(c.id, { vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity });
    // a timestamp ahead of the clock (written by an older build that took any) would make every later ping stale
    if (c.lat !== undefined && c.lng !== undefined) couriers.move(c.id, c.lat, c.lng, Math.min(c.lastPingAt ?? now, now));
    // an offer does not survive a crash, and 'busy' comes back only with a live assignment below
    couriers.setStatus(c.id, c.status === 'offline' ? 'offline' : 'available');
  }

  const loop = options.createLoop(engine);
  const dropped: RecoveryReport['dropped'] = [];
  const { requests, legs, assignments } = replayRequests(state, engine, loop, now, dropped);
  for (const [siteId, lots] of state.inventory) {
    if (!sites.has(siteId)) continue;
    sites.setInventory(siteId, lots.map((l) => ({ product: l.product, bloodType: l.bloodType, count: l.count, expiresAt: l.expiresAt })));
  }
  for (const d of state.donors) donors.upsert(d.id, { bloodType: d.bloodType, lat: d.lat, lng: d.lng, available: d.available, lastDonation: d.lastDonation });
  loop.drainEvents(); // the replay's events are what the store already holds

  const liveLegs = new Set(requests.flatMap((r) => r.legs));
  const reservedUnits = state.reservations.filter((r) => liveLegs.has(r.requestId)).reduce((n, r) => n + r.count, 0);
  const report: RecoveryReport = {
    couriers: couriers.size, sites: sites.size, donors: donors.size, fences: fences.size,
    requests: requests.length, legs, assignments, reservedUnits,
    offersExpired: state.offers.length, dropped, ms: performance.now() - started,
  };
  // +1: the expiry transition below takes seqBase + lastSeq, so even with nothing replayed it is above the store's
  const seqBase = state.lastEventSeq + 1;
  return { engine, loop, requests, report, expiry: expiryTransition(state, loop, dropped, seqBase, now), seqBase };
}

/**
 * Replays the stored open requests of `state` into `loop` over `engine` (their couriers must be in it), oldest
 * first: recovery at start, and a cluster core taking a region (`state` then holds that region's rows only).
 * Requests that cannot be rebuilt go to `dropped`; the loop's events are left for the caller to drain.
 */
export function replayRequests(state: OpenDispatchState, engine: EngineIndexes, loop: DispatchLoop, now: number, dropped: RecoveryReport['dropped']): { requests: RecoveredRequest[]; legs: number; assignments: number } {
  // each blood request is rebuilt on the banks it reserved, with no other bank stocked: a bank stocked since would
  // win the allocation and the leg would not be rebuilt (a restart replays before loading stock; a cluster core's
  // copy has every bank's stock). The shelves are put back once done, in the same turn.
  return withBareShelves(engine.sites, () => replayAll(state, engine, loop, now, dropped));
}

function replayAll(state: OpenDispatchState, engine: EngineIndexes, loop: DispatchLoop, now: number, dropped: RecoveryReport['dropped']): { requests: RecoveredRequest[]; legs: number; assignments: number } {
  const requests: RecoveredRequest[] = [];
  const replay = new Replay(state, engine, loop, now, dropped);
  let legs = 0;
  for (const parent of parentsOldestFirst(state.requests)) {
    const rebuilt = replay.request(parent);
    if (rebuilt === undefined) continue;
    requests.push(rebuilt);
    legs += rebuilt.legs.length;
  }
  return { requests, legs, assignments: replay.assignments };
}

/** Runs `fn` (synchronous) with every site's shelf empty, then puts every shelf back as it was. */
function withBareShelves<T>(sites: SiteIndex, fn: () => T): T {
  const saved = new Map<string, Parameters<SiteIndex['setStock']>[1]>();
  for (const id of sites.ids()) {
    const lots = sites.lots(id);
    if (lots.length === 0) continue;
    saved.set(id, lots.map((l) => ({ product: l.product, bloodType: l.bloodType, expiresAt: l.expiresAt, count: l.available + l.reserved, reserved: l.reserved })));
    sites.setInventory(id, []);
  }
  try {
    return fn();
  } finally {
    for (const [id, lots] of saved) if (sites.has(id)) sites.setStock(id, lots);
  }
}

/** Replays one stored parent request (and its legs) into the loop. */
class Replay {
  assignments = 0;
  private readonly legsOf = new Map<string, RequestRow[]>();
  private readonly reservationsOf = new Map<string, ReservationRow[]>();
  private readonly declinedBy = new Map<string, string[]>();
  private readonly assignmentOf = new Map<string, { courierId: string; offerId: string | undefined; details: Record<string, unknown> | undefined }>();

  constructor(
    state: OpenDispatchState,
    private readonly engine: EngineIndexes,
    private readonly loop: DispatchLoop,
    private readonly now: number,
    private readonly dropped: RecoveryReport['dropped'],
  ) {
    for (const r of state.requests) if (r.parentId !== undefined && r.parentId !== r.id) push(this.legsOf, r.parentId, r);
    for (const r of state.reservations) push(this.reservationsOf, r.requestId, r);
    for (const a of state.assignments) this.assignmentOf.set(a.requestId, { courierId: a.courierId, offerId: a.offerId, details: a.offerDetails });
    for (const d of state.declines) push(this.declinedBy, d.requestId, d.courierId);
  }

  request(parent: RequestRow): RecoveredRequest | undefined {
    const payload = parent.payload as RequestPayload | undefined;
    if (payload?.submission === undefined) {
      this.dropped.push({ id: parent.id, reason: 'no stored submission' });
      return undefined;
    }
    const legRows = this.legsOf.get(parent.id) ?? [parent];
    const placeholders = payload.submission.kind === 'blood' ? this.stageBlood(payload.submission, legRows) : [];
    const res = this.loop.submit({ ...payload.submission } as RequestSubmission, this.now);
    // a placeholder only made allocation give its bank a leg: it leaves the shelf (released, it would be a phantom
    // unit later requests could take, and it stays when the bank has no stored stock to replace its shelf)
    for (const p of placeholders) this.engine.sites.issueUnits(p.siteId, p.lot, 1);
    if (!res.ok) {
      this.dropped.push({ id: parent.id, reason: res.reason });
      return undefined;
    }
    const wanted = new Set(legRows.map((l) => l.id));
    for (const leg of res.legs) {
      if (!wanted.has(leg)) {
        this.loop.cancel(leg, this.now, 'recovery'); // a bank the store did not list for this request
        continue;
      }
      this.restoreLeg(leg, legRows.find((l) => l.id === leg)!);
      for (const courierId of this.declinedBy.get(leg) ?? []) this.loop.lifecycle.restoreExclusion(leg, courierId);
    }
    const missing = [...wanted].filter((id) => !res.legs.includes(id));
    if (missing.length > 0) this.dropped.push({ id: parent.id, reason: `legs not rebuilt: ${missing.join(', ')}` });
    const s = payload.submission;
    return {
      id: parent.id, kind: s.kind, owner: parent.requesterId ?? s.requesterId, ownerRole: parent.requesterRole ?? 'requester', urgency: s.urgency, createdAt: s.createdAt,
      ...(parent.reference !== undefined ? { reference: parent.reference } : {}),
      pickup: payload.pickup, dropoff: payload.dropoff, legs: res.legs.filter((l) => wanted.has(l)),
      ...(parent.idempotencyKey !== undefined ? { idempotencyKey: parent.idempotencyKey } : {}),
      ...(payload.plan !== undefined ? { plan: payload.plan } : {}),
    };
  }

  /**
   * Puts exactly this request's reserved lots on its banks' shelves (everything else there is reserved
   * already or not loaded yet), so allocation picks them; a leg with nothing left gets a placeholder unit.
   */
  private stageBlood(s: RequestSubmission & { kind: 'blood' }, legRows: RequestRow[]): { siteId: string; lot: LotKeyLike }[] {
    const placeholders: { siteId: string; lot: LotKeyLike }[] = [];
    for (const leg of legRows) {
      const siteId = bankOf(leg.id);
      if (siteId === undefined || !this.engine.sites.has(siteId)) continue;
      const held = this.reservationsOf.get(leg.id) ?? [];
      const lots: InventoryLot[] = this.engine.sites.lots(siteId).map((l) => ({ product: l.product, bloodType: l.bloodType, count: l.reserved, expiresAt: l.expiresAt }));
      for (const r of held) lots.push({ product: r.product as BloodProduct, bloodType: r.bloodType as BloodType, count: r.count, expiresAt: r.expiresAt });
      if (held.length === 0) {
        const lot = { product: s.blood.product, bloodType: placeholderType(s.blood.bloodType), expiresAt: PLACEHOLDER_EXPIRY };
        lots.push({ ...lot, count: 1 });
        placeholders.push({ siteId, lot });
      }
      this.engine.sites.setInventory(siteId, lots);
    }
    return placeholders;
  }

  private restoreLeg(legId: string, row: RequestRow): void {
    const a = this.assignmentOf.get(legId);
    if (a === undefined || (row.status !== 'assigned' && row.status !== 'picked_up')) return; // pending, or offered at the crash
    const couriers = this.engine.couriers;
    if (!couriers.has(a.courierId)) {
      this.dropped.push({ id: legId, reason: `assigned courier ${a.courierId} is not stored` });
      return;
    }
    const before = couriers.get(a.courierId)!.status;
    couriers.setStatus(a.courierId, 'available');
    if (!this.reassign(legId, a.courierId, a.offerId, a.details)) {
      // the courier is as it was: busy with what was restored before, or as stored
      couriers.setStatus(a.courierId, this.loop.lifecycle.courier(a.courierId)?.status ?? before);
      this.dropped.push({ id: legId, reason: `assignment to ${a.courierId} not restored` });
      return;
    }
    this.assignments++;
    if (row.status === 'picked_up') this.loop.progress(legId, a.courierId, 'picked_up', this.now);
  }

  /** The leg goes back to its courier: under the offer it accepted when the store has its id (rows from before it was kept get a new one). */
  private reassign(legId: string, courierId: string, offerId: string | undefined, details: Record<string, unknown> | undefined): boolean {
    if (offerId !== undefined) return this.loop.restoreAssignment(legId, courierId, offerId, this.now, details);
    const plan = { assignments: [{ requestId: legId, courierId, pickupEta: 0, dropoffEta: 0, lateness: 0, cost: 0 }], unassigned: [], totalCost: 0, totalPickupEta: 0, solveMs: 0 };
    const [offer] = this.loop.applyPlan(plan, this.now);
    return offer !== undefined && this.loop.accept(offer.id, courierId, this.now).ok;
  }
}

/** Far in the future, so the placeholder unit is never "expiring before arrival". */
const PLACEHOLDER_EXPIRY = 4_102_444_800_000; // 2100-01-01

type LotKeyLike = { product: BloodProduct; bloodType: BloodType; expiresAt: number };

/** The transition that records what recovery changed: live offers expired (their legs pending again), dropped requests failed. */
export function expiryTransition(state: Pick<StoredState, 'offers' | 'requests' | 'assignments' | 'reservations'>, loop: DispatchLoop, dropped: RecoveryReport['dropped'], seqBase: number, now: number): Transition | undefined {
  if (state.offers.length === 0 && dropped.length === 0) return undefined;
  const droppedIds = new Set(dropped.map((d) => d.id));
  const requestStatus: NonNullable<Transition['requestStatus']> = [];
  for (const o of state.offers) {
    const live = loop.lifecycle.request(o.requestId);
    if (live !== undefined) requestStatus.push({ id: o.requestId, status: live.status });
  }
  const failed = state.requests.filter((r) => droppedIds.has(r.id) || (r.parentId !== undefined && droppedIds.has(r.parentId)));
  for (const r of failed) requestStatus.push({ id: r.id, status: 'failed' });
  const failedIds = new Set(failed.map((r) => r.id));
  const busy = new Set(state.assignments.map((a) => a.courierId));
  const courierStatus = state.offers.filter((o) => !busy.has(o.courierId)).map((o) => ({ id: o.courierId, status: 'available' as CourierStatus }));
  return {
    // one above everything stored and everything the replay numbered, below what the loop numbers next
    seq: seqBase + loop.lifecycle.lastSeq,
    at: now,
    requestStatus,
    offerStatus: state.offers.map((o) => ({ id: o.id, status: 'expired' as const })),
    assignmentsEnded: state.assignments.filter((a) => failedIds.has(a.requestId)).map((a) => ({ requestId: a.requestId })),
    reservationsReleased: state.reservations.filter((r) => failedIds.has(r.requestId)),
    courierStatus,
    events: [{ seq: seqBase + loop.lifecycle.lastSeq, at: now, type: 'recovery.expired', payload: { offers: state.offers.map((o) => o.id), failed: [...failedIds] } }],
  };
}

/** The learned cell speeds stored (vehicle speeds alone when there are none or they do not load). */
export function restoreSpeeds(state: Pick<StoredState, 'cellSpeeds'>): CellSpeeds {
  const base = new CellSpeeds();
  if (state.cellSpeeds.length === 0) return base;
  const json = base.toJSON();
  json.cells = state.cellSpeeds.filter((c) => c.samples >= 1).map((c) => [c.cell, c.mps, Math.round(c.samples)]);
  try {
    return CellSpeeds.fromJSON(json);
  } catch {
    return base; // speeds are an optimisation: a bad row must not stop the start
  }
}

/** Parent rows (or single-leg requests), oldest first so blood allocation sees stock in the order it was taken. */
function parentsOldestFirst(rows: readonly RequestRow[]): RequestRow[] {
  return rows.filter((r) => r.parentId === undefined || r.parentId === r.id).sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
}

/** The bank of a blood leg id (`<requestId>/<siteId>`, as bloodPickupLegs names them). */
/** The bank of a blood leg (`<requestId>/<siteId>`), or undefined for a request that is its own leg. */
export function bankOf(legId: string): string | undefined {
  const slash = legId.lastIndexOf('/');
  return slash < 0 ? undefined : legId.slice(slash + 1);
}

/** A type every recipient of this request may receive: its own, or O− when unknown. */
function placeholderType(recipient: string): BloodType {
  return (recipient === 'unknown' ? 'O-' : recipient) as BloodType;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
