/**
 * Blood donors: nearly static points with a blood type, an availability flag and the time of their last
 * donation of each product. Answers "which eligible, compatible donors are nearest" for donor call-outs.
 *
 *   upsert ──► validate everything ──► slot (point-slots.ts) ──► type / availability / last donations
 *   nearby ──► nearest walk, filtered per slot by: available, recovery intervals passed, type in mask
 */
import { type AreaInput } from './area.js';
import {
  BLOOD_PRODUCTS,
  BLOOD_TYPES,
  type BloodProduct,
  type BloodType,
  type RecipientType,
  bloodTypeCode,
  compatibleDonorMask,
} from './blood-types.js';
import { EngineError, assertCoordinate } from './errors.js';
import { chord2ToMeters } from './geodesy.js';
import { type NearestBounds, PointSlots, growFloat64, growUint8 } from './point-slots.js';

/**
 * Days a donor must wait after donating each product (US rules, PRODUCT.md §2). Red cells by apheresis are
 * in practice double red cells (two units), which need 112 days; a single-unit collection would need 56,
 * and we take the longer wait so a call-out never reaches someone who may not donate yet.
 */
export const DEFAULT_DONATION_INTERVAL_DAYS: Readonly<Record<BloodProduct, number>> = Object.freeze({
  whole_blood: 56,
  red_cells: 112,
  platelets: 7,
  plasma: 28,
});

const DAY_MS = 86_400_000;
const PRODUCTS = BLOOD_PRODUCTS.length;

/** What an admin says about a donor. Times are milliseconds since the epoch. */
export interface DonorProfile {
  bloodType: BloodType;
  lat: number;
  lng: number;
  /** When the donor last gave each product; omitted products were never given (or long ago). */
  lastDonation?: Partial<Record<BloodProduct, number>>;
  available: boolean;
}

/** A donor as stored. */
export interface DonorRecord extends DonorProfile {
  id: string;
  lastDonation: Partial<Record<BloodProduct, number>>;
}

/** Filters of a donor `nearby` query; without `recipient` every available (and, given asOf, eligible) donor counts. */
export interface DonorNearbyOptions extends NearestBounds {
  /** Patient's type; requires `product`. */
  recipient?: RecipientType;
  product?: BloodProduct;
  /** Eligibility is judged at this time (ms); omitted → only the availability flag is checked. */
  asOf?: number;
  /** Unknown-type patient in an emergency: O− only. */
  emergency?: boolean;
}

/** One donor found by `nearby`. */
export interface DonorHit {
  id: string;
  lat: number;
  lng: number;
  /** Great-circle metres from the query point. */
  distance: number;
  bloodType: BloodType;
}

/** In-memory index of donors by position, type and eligibility. */
export class DonorIndex {
  private readonly points = new PointSlots();
  private readonly intervalMs = new Float64Array(PRODUCTS);
  private type = new Uint8Array(64);
  private available = new Uint8Array(64);
  /** PRODUCTS per slot, in BLOOD_PRODUCTS order; NaN = never donated. */
  private last = new Float64Array(64 * PRODUCTS).fill(NaN);
  private asOf = NaN;
  private mask = 0xff;

  constructor(options: { intervalsDays?: Partial<Record<BloodProduct, number>> } = {}) {
    for (let p = 0; p < PRODUCTS; p++) {
      const product = BLOOD_PRODUCTS[p];
      const days = options.intervalsDays?.[product] ?? DEFAULT_DONATION_INTERVAL_DAYS[product];
      if (typeof days !== 'number' || !(days >= 0) || days === Infinity) {
        throw new Error(`intervalsDays.${product} must be a finite number of days >= 0, got ${String(days)}`);
      }
      this.intervalMs[p] = days * DAY_MS;
    }
  }

  /** Number of donors. */
  get size(): number {
    return this.points.size;
  }

  /** True when the donor is indexed. */
  has(id: string): boolean {
    return this.points.slotOf.has(id);
  }

  /** Adds or replaces a donor; on a bad profile throws (E_BAD_COORDINATE, E_BAD_PROFILE, E_BAD_TIMESTAMP) and changes nothing. */
  upsert(id: string, profile: DonorProfile): void {
    if (typeof id !== 'string' || id === '') throw new EngineError('E_BAD_PROFILE', 'donor id must be a non-empty string');
    assertCoordinate(profile.lat, profile.lng);
    const type = donorTypeCode(profile.bloodType);
    if (typeof profile.available !== 'boolean') throw new EngineError('E_BAD_PROFILE', 'available must be true or false');
    const last = lastDonationTimes(profile.lastDonation);
    const slot = this.points.acquire(id);
    this.ensure(slot + 1);
    this.points.place(slot, profile.lat, profile.lng);
    this.type[slot] = type;
    this.available[slot] = profile.available ? 1 : 0;
    this.last.set(last, slot * PRODUCTS);
  }

  /** Removes a donor; returns false when unknown. */
  remove(id: string): boolean {
    return this.points.release(id) >= 0;
  }

  /** The stored donor, or undefined. */
  get(id: string): DonorRecord | undefined {
    const slot = this.points.slotOf.get(id);
    return slot === undefined ? undefined : this.record(slot);
  }

  /**
   * True when the donor is available and, for every product last donated, at least that product's recovery
   * interval has passed by `asOf` (asOf − lastDonation ≥ interval). The rule is deliberately conservative:
   * a recent donation of any product blocks every call-out until its own interval is over.
   */
  isEligible(donor: string | DonorRecord, asOf: number): boolean {
    if (typeof donor === 'string') {
      const slot = this.points.slotOf.get(donor);
      if (slot === undefined) throw new EngineError('E_UNKNOWN_DONOR', `no donor '${donor}'`);
      return this.eligibleSlot(slot, asOf);
    }
    if (!donor.available) return false;
    for (let p = 0; p < PRODUCTS; p++) {
      const t = donor.lastDonation?.[BLOOD_PRODUCTS[p]];
      if (t !== undefined && !(asOf - t >= this.intervalMs[p])) return false;
    }
    return true;
  }

  /** Eligible donors whose type suits the recipient and product, nearest first (ties by id). */
  nearby(lat: number, lng: number, options: DonorNearbyOptions = {}): DonorHit[] {
    if (options.recipient !== undefined && options.product === undefined) {
      throw new Error('nearby: a recipient needs a product (red_cells, plasma, platelets or whole_blood)');
    }
    if (options.asOf !== undefined && !Number.isFinite(options.asOf)) throw new Error(`asOf must be ms since the epoch, got ${String(options.asOf)}`);
    this.mask =
      options.recipient === undefined
        ? 0xff
        : compatibleDonorMask(options.recipient, options.product as BloodProduct, { emergency: options.emergency === true });
    this.asOf = options.asOf ?? NaN;
    const hits = this.points.nearest(lat, lng, options, this.accept);
    const out: DonorHit[] = new Array(hits.slots.length);
    for (let i = 0; i < hits.slots.length; i++) {
      const s = hits.slots[i];
      out[i] = {
        id: this.points.ids[s],
        lat: this.points.lat[s],
        lng: this.points.lng[s],
        distance: chord2ToMeters(hits.chord2s[i]),
        bloodType: BLOOD_TYPES[this.type[s]],
      };
    }
    return out;
  }

  /** Ids of all donors inside the area (order unspecified); throws E_BAD_GEOMETRY on a bad area. */
  within(area: AreaInput): string[] {
    return this.points.within(area).map((s) => this.points.ids[s]);
  }

  private readonly accept = (slot: number): boolean => {
    if (((this.mask >> this.type[slot]) & 1) === 0) return false;
    return Number.isNaN(this.asOf) ? this.available[slot] === 1 : this.eligibleSlot(slot, this.asOf);
  };

  private eligibleSlot(slot: number, asOf: number): boolean {
    if (this.available[slot] !== 1) return false;
    const o = slot * PRODUCTS;
    for (let p = 0; p < PRODUCTS; p++) {
      const t = this.last[o + p];
      // NaN (never donated) fails the comparison below, so test it explicitly
      if (!Number.isNaN(t) && !(asOf - t >= this.intervalMs[p])) return false;
    }
    return true;
  }

  private record(slot: number): DonorRecord {
    const lastDonation: Partial<Record<BloodProduct, number>> = {};
    for (let p = 0; p < PRODUCTS; p++) {
      const t = this.last[slot * PRODUCTS + p];
      if (!Number.isNaN(t)) lastDonation[BLOOD_PRODUCTS[p]] = t;
    }
    return {
      id: this.points.ids[slot],
      bloodType: BLOOD_TYPES[this.type[slot]],
      lat: this.points.lat[slot],
      lng: this.points.lng[slot],
      lastDonation,
      available: this.available[slot] === 1,
    };
  }

  private ensure(n: number): void {
    this.type = growUint8(this.type, n);
    this.available = growUint8(this.available, n);
    this.last = growFloat64(this.last, n * PRODUCTS, NaN);
  }
}

function donorTypeCode(type: unknown): number {
  try {
    return bloodTypeCode(type as string);
  } catch (cause) {
    throw new EngineError('E_BAD_PROFILE', `unknown donor blood type '${String(type)}' (one of ${BLOOD_TYPES.join(' ')})`, { cause });
  }
}

function lastDonationTimes(input: DonorProfile['lastDonation']): Float64Array {
  const out = new Float64Array(PRODUCTS).fill(NaN);
  if (input === undefined) return out;
  if (input === null || typeof input !== 'object') throw new EngineError('E_BAD_PROFILE', 'lastDonation must map products to times');
  for (const [product, t] of Object.entries(input)) {
    const p = (BLOOD_PRODUCTS as readonly string[]).indexOf(product);
    if (p < 0) throw new EngineError('E_BAD_PROFILE', `unknown product '${product}' in lastDonation (one of ${BLOOD_PRODUCTS.join(', ')})`);
    if (t === undefined) continue;
    if (typeof t !== 'number' || !Number.isFinite(t)) {
      throw new EngineError('E_BAD_TIMESTAMP', `lastDonation.${product} must be ms since the epoch, got ${String(t)}`);
    }
    out[p] = t;
  }
  return out;
}
