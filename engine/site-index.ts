/**
 * Static sites — blood banks, hospitals, restaurants, food banks, shelters — with their room (capacity less
 * occupancy) and their blood stock, kept as lots sorted first-expiring-first-out.
 *
 *   upsert / setOccupancy / setInventory ──► validate ──► slot (point-slots.ts) + per-slot attributes
 *   reserveUnits / releaseUnits / issueUnits ──► move units available → reserved → gone, per lot
 *   nearby ──► nearest walk, filtered per slot by kind, open, room, compatible unexpired stock
 */
import { type AreaInput } from './area.js';
import {
  BLOOD_PRODUCTS,
  BLOOD_TYPES,
  type BloodProduct,
  type BloodType,
  type RecipientType,
  bloodProductCode,
  bloodTypeCode,
  compatibleDonorMask,
} from './blood-types.js';
import { EngineError, assertCoordinate } from './errors.js';
import { chord2ToMeters } from './geodesy.js';
import { type NearestBounds, PointSlots, growFloat64, growUint8 } from './point-slots.js';

export const SITE_KINDS = ['blood_bank', 'hospital', 'restaurant', 'food_bank', 'shelter'] as const;
export type SiteKind = (typeof SITE_KINDS)[number];

/** What an admin says about a site. Omitted capacity means room is not tracked (unlimited). */
export interface SiteProfile {
  kind: SiteKind;
  name: string;
  lat: number;
  lng: number;
  /** People or units of food the site can take; omitted → unlimited. */
  capacity?: number;
  /** Current load; omitted on upsert keeps the previous value (0 for a new site). */
  occupancy?: number;
  /** Default true. */
  open?: boolean;
}

/** A site as stored. */
export interface SiteRecord {
  id: string;
  kind: SiteKind;
  name: string;
  lat: number;
  lng: number;
  capacity: number;
  occupancy: number;
  open: boolean;
}

/** Units of one product and type expiring at one time, as an inventory feed reports them. */
export interface InventoryLot {
  product: BloodProduct;
  bloodType: BloodType;
  /** Units on the shelf, reserved ones included. */
  count: number;
  /** ms since the epoch. */
  expiresAt: number;
}

/** Which lot a reservation names. */
export interface LotKey {
  product: BloodProduct;
  bloodType: BloodType;
  expiresAt: number;
}

/** A lot as held: units split into free and reserved. */
export interface StockLot extends LotKey {
  available: number;
  reserved: number;
}

/** Stock a site must hold to be returned by `nearby`. */
export interface StockFilter {
  product: BloodProduct;
  recipient: RecipientType;
  /** Compatible available units needed (default 1). */
  units?: number;
  /** Units expiring before this time (ms) do not count. */
  asOf: number;
  emergency?: boolean;
}

/** Filters of a site `nearby` query. */
export interface SiteNearbyOptions extends NearestBounds {
  kind?: SiteKind | readonly SiteKind[];
  open?: boolean;
  /** At least this much room. */
  room?: number;
  stock?: StockFilter;
}

/** One site found by `nearby`. */
export interface SiteHit {
  id: string;
  kind: SiteKind;
  name: string;
  lat: number;
  lng: number;
  /** Great-circle metres from the query point. */
  distance: number;
  /** Compatible available units, when stock was asked for. */
  units?: number;
}

/** In-memory index of sites by position, kind, room and blood stock. */
export class SiteIndex {
  private readonly points = new PointSlots();
  private kind = new Uint8Array(64);
  private open = new Uint8Array(64);
  private capacity = new Float64Array(64);
  private occupancy = new Float64Array(64);
  private names: string[] = [];
  private stock: Lot[][] = [];
  private kindMask = 0;
  private wantOpen = -1;
  private minRoom = -Infinity;
  private stockProduct = -1;
  private stockTypes = 0;
  private stockUnits = 0;
  private stockAsOf = 0;
  private unitsOf = new Map<number, number>();

  /** Number of sites. */
  get size(): number {
    return this.points.size;
  }

  /** True when the site is indexed. */
  has(id: string): boolean {
    return this.points.slotOf.has(id);
  }

  /** Every site id, in no particular order. */
  ids(): string[] {
    return [...this.points.slotOf.keys()];
  }

  /** Adds or replaces a site profile (stock kept); on bad input throws (E_BAD_COORDINATE, E_BAD_PROFILE) and changes nothing. */
  upsert(id: string, profile: SiteProfile): void {
    if (typeof id !== 'string' || id === '') throw new EngineError('E_BAD_PROFILE', 'site id must be a non-empty string');
    assertCoordinate(profile.lat, profile.lng);
    const kind = (SITE_KINDS as readonly string[]).indexOf(profile.kind);
    if (kind < 0) throw new EngineError('E_BAD_PROFILE', `unknown site kind '${String(profile.kind)}' (one of ${SITE_KINDS.join(', ')})`);
    if (typeof profile.name !== 'string') throw new EngineError('E_BAD_PROFILE', 'site name must be a string');
    const capacity = profile.capacity ?? Infinity;
    if (typeof capacity !== 'number' || !(capacity >= 0)) throw new EngineError('E_BAD_PROFILE', `capacity must be >= 0, got ${String(capacity)}`);
    if (profile.occupancy !== undefined) checkOccupancy(profile.occupancy);
    if (profile.open !== undefined && typeof profile.open !== 'boolean') throw new EngineError('E_BAD_PROFILE', 'open must be true or false');
    const isNew = !this.points.slotOf.has(id);
    const slot = this.points.acquire(id);
    this.ensure(slot + 1);
    this.points.place(slot, profile.lat, profile.lng);
    this.kind[slot] = kind;
    this.names[slot] = profile.name;
    this.capacity[slot] = capacity;
    if (profile.occupancy !== undefined || isNew) this.occupancy[slot] = profile.occupancy ?? 0;
    this.open[slot] = profile.open === false ? 0 : 1;
    if (isNew) this.stock[slot] = [];
  }

  /** Removes a site and its stock; returns false when unknown. */
  remove(id: string): boolean {
    const slot = this.points.release(id);
    if (slot < 0) return false;
    this.stock[slot] = [];
    this.names[slot] = '';
    return true;
  }

  /** The stored site, or undefined. */
  get(id: string): SiteRecord | undefined {
    const slot = this.points.slotOf.get(id);
    if (slot === undefined) return undefined;
    return {
      id,
      kind: SITE_KINDS[this.kind[slot]],
      name: this.names[slot],
      lat: this.points.lat[slot],
      lng: this.points.lng[slot],
      capacity: this.capacity[slot],
      occupancy: this.occupancy[slot],
      open: this.open[slot] === 1,
    };
  }

  /** Sets a site's current load (E_BAD_PROFILE when negative or not finite). */
  setOccupancy(id: string, occupancy: number): void {
    const slot = this.slot(id);
    checkOccupancy(occupancy);
    this.occupancy[slot] = occupancy;
  }

  /** Room left: capacity − occupancy, never below 0; 0 when closed; Infinity when capacity is not tracked. */
  room(id: string): number {
    return this.roomOf(this.slot(id));
  }

  /**
   * Replaces a site's lots with the counts and reserved units another writer stored (a cluster core's copy of stock
   * that several cores reserve from): reserved is taken as given (at most the count), not kept from before.
   */
  setStock(id: string, lots: readonly (InventoryLot & { reserved: number })[]): void {
    this.setInventory(id, lots);
    const slot = this.slot(id);
    const reservedOf = new Map(lots.map((l) => [lotKey(bloodProductCode(l.product), bloodTypeCode(l.bloodType), l.expiresAt), l.reserved]));
    for (const lot of this.stock[slot]) {
      const total = lot.available + lot.reserved;
      lot.reserved = Math.max(0, Math.min(total, Math.floor(reservedOf.get(lotKey(lot.product, lot.type, lot.expiresAt)) ?? 0)));
      lot.available = total - lot.reserved;
    }
  }

  /**
   * Replaces a site's stock. `count` is what is on the shelf, so units already reserved from a lot that is
   * still listed stay reserved (up to the new count); lots with equal keys are merged. On bad input throws
   * E_BAD_INVENTORY and leaves the old stock as it was.
   */
  setInventory(id: string, lots: readonly InventoryLot[]): void {
    const slot = this.slot(id);
    if (!Array.isArray(lots)) throw new EngineError('E_BAD_INVENTORY', 'inventory must be an array of lots');
    const next: Lot[] = [];
    const byKey = new Map<string, Lot>();
    for (const lot of lots) {
      if (lot === null || typeof lot !== 'object') throw new EngineError('E_BAD_INVENTORY', 'each lot must be {product, bloodType, count, expiresAt}');
      const product = bloodProductCode(lot.product);
      const type = bloodTypeCode(lot.bloodType);
      if (!Number.isInteger(lot.count) || lot.count < 0) throw new EngineError('E_BAD_INVENTORY', `count must be an integer >= 0, got ${String(lot.count)}`);
      if (typeof lot.expiresAt !== 'number' || !Number.isFinite(lot.expiresAt)) {
        throw new EngineError('E_BAD_INVENTORY', `expiresAt must be ms since the epoch, got ${String(lot.expiresAt)}`);
      }
      const key = lotKey(product, type, lot.expiresAt);
      const seen = byKey.get(key);
      if (seen !== undefined) seen.available += lot.count;
      else {
        const fresh = { product, type, expiresAt: lot.expiresAt, available: lot.count, reserved: 0 };
        byKey.set(key, fresh);
        next.push(fresh);
      }
    }
    for (const old of this.stock[slot]) {
      const kept = byKey.get(lotKey(old.product, old.type, old.expiresAt));
      if (kept === undefined || old.reserved === 0) continue;
      kept.reserved = Math.min(old.reserved, kept.available);
      kept.available -= kept.reserved;
    }
    next.sort(fefo);
    this.stock[slot] = next.filter((l) => l.available + l.reserved > 0);
  }

  /** The site's lots, first-expiring first. */
  lots(id: string): StockLot[] {
    return this.stock[this.slot(id)].map((l) => ({
      product: BLOOD_PRODUCTS[l.product],
      bloodType: BLOOD_TYPES[l.type],
      expiresAt: l.expiresAt,
      available: l.available,
      reserved: l.reserved,
    }));
  }

  /** Available units of a product among the given types (mask bit i = BLOOD_TYPES[i], or a list) not expiring before the time. */
  availableUnits(id: string, product: BloodProduct, types: number | readonly BloodType[], notExpiringBefore: number): number {
    const mask = typeof types === 'number' ? types : types.reduce((m, t) => m | (1 << bloodTypeCode(t)), 0);
    return this.unitsAt(this.slot(id), bloodProductCode(product), mask, notExpiringBefore);
  }

  /** Moves `count` units of one lot from available to reserved; false (nothing moved) when the lot has fewer free. */
  reserveUnits(id: string, lot: LotKey, count: number): boolean {
    const held = this.findLot(id, lot, count);
    if (held === undefined || held.available < count) return false;
    held.available -= count;
    held.reserved += count;
    return true;
  }

  /** Moves `count` reserved units of one lot back to available; false (nothing moved) when fewer are reserved. */
  releaseUnits(id: string, lot: LotKey, count: number): boolean {
    const held = this.findLot(id, lot, count);
    if (held === undefined || held.reserved < count) return false;
    held.reserved -= count;
    held.available += count;
    return true;
  }

  /** Takes `count` reserved units off the shelf (picked up); false (nothing taken) when fewer are reserved. */
  issueUnits(id: string, lot: LotKey, count: number): boolean {
    const slot = this.slot(id);
    const held = this.findLot(id, lot, count);
    if (held === undefined || held.reserved < count) return false;
    held.reserved -= count;
    if (held.available + held.reserved === 0) this.stock[slot] = this.stock[slot].filter((l) => l !== held);
    return true;
  }

  /** Puts `count` issued units of a lot back on the shelf as reserved (an issue taken back); an emptied lot is listed again. */
  returnUnits(id: string, lot: LotKey, count: number): void {
    const slot = this.slot(id);
    let held = this.findLot(id, lot, count);
    if (held === undefined) {
      held = { product: bloodProductCode(lot.product), type: bloodTypeCode(lot.bloodType), expiresAt: lot.expiresAt, available: 0, reserved: 0 };
      this.stock[slot] = [...this.stock[slot], held].sort(fefo);
    }
    held.reserved += count;
  }

  /** Sites matching every filter given, nearest first (ties by id). */
  nearby(lat: number, lng: number, options: SiteNearbyOptions = {}): SiteHit[] {
    this.prepare(options);
    const hits = this.points.nearest(lat, lng, options, this.accept);
    const out: SiteHit[] = new Array(hits.slots.length);
    for (let i = 0; i < hits.slots.length; i++) {
      const s = hits.slots[i];
      const hit: SiteHit = {
        id: this.points.ids[s],
        kind: SITE_KINDS[this.kind[s]],
        name: this.names[s],
        lat: this.points.lat[s],
        lng: this.points.lng[s],
        distance: chord2ToMeters(hits.chord2s[i]),
      };
      if (this.stockProduct >= 0) hit.units = this.unitsOf.get(s) as number;
      out[i] = hit;
    }
    this.unitsOf.clear();
    return out;
  }

  /** Ids of all sites inside the area (order unspecified); throws E_BAD_GEOMETRY on a bad area. */
  within(area: AreaInput): string[] {
    return this.points.within(area).map((s) => this.points.ids[s]);
  }

  private prepare(options: SiteNearbyOptions): void {
    const kinds = options.kind === undefined ? SITE_KINDS : typeof options.kind === 'string' ? [options.kind] : options.kind;
    let mask = 0;
    for (const k of kinds) {
      const i = (SITE_KINDS as readonly string[]).indexOf(k);
      if (i < 0) throw new Error(`unknown site kind '${k}' (one of ${SITE_KINDS.join(', ')})`);
      mask |= 1 << i;
    }
    this.kindMask = mask;
    this.wantOpen = options.open === undefined ? -1 : options.open ? 1 : 0;
    this.minRoom = options.room ?? -Infinity;
    this.unitsOf.clear();
    const stock = options.stock;
    if (stock === undefined) {
      this.stockProduct = -1;
      return;
    }
    const units = stock.units ?? 1;
    if (!Number.isInteger(units) || units < 0) throw new Error(`stock.units must be an integer >= 0, got ${String(units)}`);
    if (!Number.isFinite(stock.asOf)) throw new Error(`stock.asOf must be ms since the epoch, got ${String(stock.asOf)}`);
    this.stockProduct = bloodProductCode(stock.product);
    this.stockTypes = compatibleDonorMask(stock.recipient, stock.product, { emergency: stock.emergency === true });
    this.stockUnits = units;
    this.stockAsOf = stock.asOf;
  }

  private readonly accept = (slot: number): boolean => {
    if (((this.kindMask >> this.kind[slot]) & 1) === 0) return false;
    if (this.wantOpen >= 0 && this.open[slot] !== this.wantOpen) return false;
    if (this.minRoom > -Infinity && !(this.roomOf(slot) >= this.minRoom)) return false;
    if (this.stockProduct < 0) return true;
    const units = this.unitsAt(slot, this.stockProduct, this.stockTypes, this.stockAsOf);
    if (units < this.stockUnits) return false;
    this.unitsOf.set(slot, units);
    return true;
  };

  private roomOf(slot: number): number {
    if (this.open[slot] === 0) return 0;
    return Math.max(0, this.capacity[slot] - this.occupancy[slot]);
  }

  private unitsAt(slot: number, product: number, mask: number, notExpiringBefore: number): number {
    let n = 0;
    for (const l of this.stock[slot]) {
      if (l.product === product && l.expiresAt >= notExpiringBefore && ((mask >> l.type) & 1) === 1) n += l.available;
    }
    return n;
  }

  private findLot(id: string, key: LotKey, count: number): Lot | undefined {
    const slot = this.slot(id);
    if (!Number.isInteger(count) || count <= 0) throw new EngineError('E_BAD_INVENTORY', `count must be an integer > 0, got ${String(count)}`);
    const product = bloodProductCode(key.product);
    const type = bloodTypeCode(key.bloodType);
    return this.stock[slot].find((l) => l.product === product && l.type === type && l.expiresAt === key.expiresAt);
  }

  private slot(id: string): number {
    const slot = this.points.slotOf.get(id);
    if (slot === undefined) throw new EngineError('E_UNKNOWN_SITE', `no site '${id}'`);
    return slot;
  }

  private ensure(n: number): void {
    this.kind = growUint8(this.kind, n);
    this.open = growUint8(this.open, n);
    this.capacity = growFloat64(this.capacity, n);
    this.occupancy = growFloat64(this.occupancy, n);
  }
}

interface Lot {
  product: number;
  type: number;
  expiresAt: number;
  available: number;
  reserved: number;
}

function lotKey(product: number, type: number, expiresAt: number): string {
  return `${product}|${type}|${expiresAt}`;
}

// first-expiring first; equal expiry ordered by product then type so reads are deterministic
function fefo(a: Lot, b: Lot): number {
  return a.expiresAt - b.expiresAt || a.product - b.product || a.type - b.type;
}

function checkOccupancy(n: unknown): void {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw new EngineError('E_BAD_PROFILE', `occupancy must be a finite number >= 0, got ${String(n)}`);
}
