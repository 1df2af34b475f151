/**
 * What leg transitions do to the SiteIndex's shelves and beds, each change recorded in the loop's undo log so
 * a commit the store refuses puts the stock back exactly.
 *
 *   submit (allocation reserved lots) ─► allocated(legs) ─── taken back: the reservations are released
 *   request.picked_up ────► issue(leg) ─────── the reserved units leave the shelf (issueUnits)
 *   reservation.released ─► release(leg) ───── cancel / failure before pickup: back on the shelf, once;
 *                                              after pickup ignored (the units are in the courier's box)
 *   request.delivered ────► fillRecipient(leg) a rescue's recipient takes the load (occupancy)
 */
import type { BloodProduct, BloodType } from '../engine/blood-types.js';
import type { SiteIndex } from '../engine/site-index.js';
import { releaseAllocation } from './blood-allocation.js';
import type { RequestStatus, ReservationRef } from './lifecycle-events.js';
import type { Leg } from './submission-legs.js';
import type { UndoLog } from './undo-log.js';

/** Units moved since construction. */
export interface StockCounters {
  unitsIssued: number;
  unitsReleased: number;
  /** Reserved units the SiteIndex no longer held when released or issued (e.g. an expired lot removed). */
  unitsMissing: number;
}

/** The stock side of the dispatch loop: reservations issued, released and taken back; recipients filled. */
export class StockEffects {
  readonly counters: StockCounters = { unitsIssued: 0, unitsReleased: 0, unitsMissing: 0 };
  private readonly anomalies: string[] = [];

  constructor(private readonly sites: SiteIndex, private readonly undo: UndoLog) {}

  /** A submit reserved these legs' units: records how to release them should the submit be taken back. */
  allocated(legs: readonly Leg[]): void {
    const held = legs.filter((l) => l.held);
    if (held.length === 0) return;
    this.undo.record(() => {
      for (const leg of held) releaseAllocation(this.sites, leg.reservations);
    });
  }

  /** The leg was picked up: its reserved units leave the shelf. */
  issue(leg: Leg): void {
    if (!leg.held) return;
    leg.held = false;
    const issued: ReservationRef[] = [];
    for (const r of leg.reservations) {
      if (this.sites.has(r.siteId) && this.sites.issueUnits(r.siteId, lotOf(r), r.count)) {
        this.counters.unitsIssued += r.count;
        issued.push(r);
      } else this.counters.unitsMissing += r.count;
    }
    this.undo.record(() => {
      leg.held = true;
      for (const r of issued) if (this.sites.has(r.siteId)) this.sites.returnUnits(r.siteId, lotOf(r), r.count);
    });
  }

  /** The lifecycle released the leg's reservations: back on the shelf unless picked up already. */
  release(leg: Leg, refs: readonly ReservationRef[]): void {
    if (leg.releasedOnce) this.anomalies.push(`reservations of leg ${leg.id} were released twice`);
    const was = { releasedOnce: leg.releasedOnce, held: leg.held };
    leg.releasedOnce = true;
    if (!leg.held) {
      this.undo.record(() => Object.assign(leg, was));
      return; // picked up already: the units are in the courier's box
    }
    leg.held = false;
    const { released, failed } = releaseAllocation(this.sites, refs);
    this.counters.unitsReleased += released;
    this.counters.unitsMissing += failed.reduce((n, r) => n + r.count, 0);
    const back = refs.filter((r) => !failed.includes(r));
    this.undo.record(() => {
      Object.assign(leg, was);
      for (const r of back) if (this.sites.has(r.siteId)) this.sites.reserveUnits(r.siteId, lotOf(r), r.count);
    });
  }

  /** The leg was delivered: a rescue's recipient site takes its load. */
  fillRecipient(leg: Leg): void {
    const siteId = leg.recipientSiteId;
    if (siteId === undefined || !this.sites.has(siteId)) return;
    const before = this.sites.get(siteId)!.occupancy;
    this.sites.setOccupancy(siteId, before + (leg.dispatch.load ?? 1));
    this.undo.record(() => {
      if (this.sites.has(siteId)) this.sites.setOccupancy(siteId, before);
    });
  }

  /**
   * Broken stock invariants as sentences: reserved units in the SiteIndex = units held by live legs (so none
   * is reserved twice or leaked), a leg holds exactly while it is not yet picked up or ended, and no
   * reservation was released twice.
   */
  check(legs: Iterable<Leg>, statusOf: (legId: string) => RequestStatus | undefined): string[] {
    const problems: string[] = [];
    const held = new Map<string, number>();
    const banks = new Set<string>();
    for (const leg of legs) {
      for (const r of leg.reservations) banks.add(r.siteId);
      const status = statusOf(leg.id);
      const shouldHold = status === 'pending' || status === 'offered' || status === 'assigned';
      if (leg.held !== shouldHold && leg.reservations.length > 0) problems.push(`leg ${leg.id} is ${String(status)} but ${leg.held ? 'holds' : 'does not hold'} its reservations`);
      if (!leg.held) continue;
      for (const r of leg.reservations) held.set(lotKey(r.siteId, r), (held.get(lotKey(r.siteId, r)) ?? 0) + r.count);
    }
    for (const siteId of banks) {
      if (!this.sites.has(siteId)) continue;
      for (const lot of this.sites.lots(siteId)) {
        const key = lotKey(siteId, lot);
        const want = held.get(key) ?? 0;
        held.delete(key);
        if (lot.reserved !== want) problems.push(`lot ${key} has ${lot.reserved} units reserved but live legs hold ${want}`);
      }
    }
    for (const [key, n] of held) if (n > 0) problems.push(`live legs hold ${n} units of lot ${key}, which the SiteIndex no longer lists`);
    problems.push(...this.anomalies);
    return problems;
  }
}

function lotOf(r: ReservationRef): { product: BloodProduct; bloodType: BloodType; expiresAt: number } {
  return { product: r.product as BloodProduct, bloodType: r.bloodType as BloodType, expiresAt: r.expiresAt };
}

function lotKey(siteId: string, lot: { product: string; bloodType: string; expiresAt: number }): string {
  return `${siteId}|${lot.product}|${lot.bloodType}|${lot.expiresAt}`;
}
