/**
 * Donor call-out: when compatible stock within reach is short, call eligible donors in expanding waves
 * around the hospital until enough have been asked (PRODUCT.md §1 `blood`, §2 eligibility).
 *
 *   shortfall × perUnit ──► wave radius r₁ ──► DonorIndex.nearby(eligible, compatible, nearest first)
 *                              │ not enough yet                     │ new ids only
 *                              ▼                                    ▼
 *                           wave radius r₂ … ──────────────────► { waves, called, target, enough }
 */
import type { BloodProduct, RecipientType } from '../engine/blood-types.js';
import type { DonorIndex } from '../engine/donor-index.js';
import type { LatLng, Urgency } from './dispatch-request.js';

/** Wave radii in metres: a walk or short ride (5 km), across town (15 km), the region (40 km). */
export const DEFAULT_CALLOUT_WAVES: readonly number[] = Object.freeze([5_000, 15_000, 40_000]);

/** Donors called per missing unit: only about one in three answers and can come in time. */
export const DEFAULT_DONORS_PER_UNIT = 3;

/** What the call-out is for. */
export interface CalloutNeed {
  hospital: LatLng;
  product: BloodProduct;
  recipient: RecipientType;
  /** Units the stock within reach could not cover. */
  shortfall: number;
  urgency: Urgency;
}

/** How the call-out runs. */
export interface CalloutOptions {
  /** Eligibility is judged at this time (ms). */
  now: number;
  /** Wave radii in metres, strictly increasing (default DEFAULT_CALLOUT_WAVES). */
  waves?: readonly number[];
  /** Donors to call per missing unit (default DEFAULT_DONORS_PER_UNIT). */
  perUnit?: number;
}

/** One wave: donors first called at this radius, nearest first. */
export interface CalloutWave {
  radius: number;
  donorIds: string[];
}

/** The call-out plan: waves in order, each holding only donors not called before. */
export interface DonorCallout {
  waves: CalloutWave[];
  /** Donors called over all waves. */
  called: number;
  /** shortfall × perUnit: how many donors the plan wanted to call. */
  target: number;
  /** True when `target` donors were called; false when the last wave ran out of eligible donors. */
  enough: boolean;
}

/**
 * Plans expanding waves of eligible, compatible donors (as of `now`, nearest first, nobody twice) until
 * shortfall × perUnit are called or the widest wave is exhausted. A shortfall of 0 calls nobody.
 */
export function planDonorCallout(donors: DonorIndex, need: CalloutNeed, options: CalloutOptions): DonorCallout {
  const radii = options.waves ?? DEFAULT_CALLOUT_WAVES;
  const perUnit = options.perUnit ?? DEFAULT_DONORS_PER_UNIT;
  checkInputs(need, options, radii, perUnit);
  const target = need.shortfall * perUnit;
  const waves: CalloutWave[] = [];
  const seen = new Set<string>();
  for (const radius of radii) {
    if (seen.size >= target) break;
    // Earlier waves were exhausted (or we would have stopped), so their donors are the nearest hits here:
    // k = target hits (the seen ones plus the still-wanted new ones) reaches every new donor we need.
    const hits = donors.nearby(need.hospital.lat, need.hospital.lng, {
      k: target,
      radius,
      recipient: need.recipient,
      product: need.product,
      asOf: options.now,
      emergency: need.urgency === 'emergency',
    });
    const donorIds: string[] = [];
    for (const hit of hits) {
      if (seen.size >= target) break;
      if (seen.has(hit.id)) continue;
      seen.add(hit.id);
      donorIds.push(hit.id);
    }
    waves.push({ radius, donorIds });
  }
  return { waves, called: seen.size, target, enough: seen.size >= target };
}

function checkInputs(need: CalloutNeed, options: CalloutOptions, radii: readonly number[], perUnit: number): void {
  if (!Number.isInteger(need.shortfall) || need.shortfall < 0) throw new Error(`shortfall must be an integer >= 0, got ${String(need.shortfall)}`);
  if (!Number.isInteger(perUnit) || perUnit < 1) throw new Error(`perUnit must be an integer >= 1, got ${String(perUnit)}`);
  if (!Number.isFinite(options.now)) throw new Error(`now must be ms since the epoch, got ${String(options.now)}`);
  for (let i = 0; i < radii.length; i++) {
    if (!(radii[i] > 0) || (i > 0 && !(radii[i] > radii[i - 1]))) {
      throw new Error(`waves must be strictly increasing radii in metres > 0, got [${radii.join(', ')}]`);
    }
  }
}
