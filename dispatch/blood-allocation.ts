/**
 * Blood allocation: which banks and which exact lots serve a hospital's need, reserved so no other request
 * can take the same units (PRODUCT.md §2, "type preference is worth minutes").
 *
 *   need ──► SiteIndex.nearby(blood_bank, open, radius, any compatible unexpired stock)
 *              │ per bank: ETA to the hospital (travel-time.ts: the configured policy, learned speeds);
 *              │           usable lots = compatible, product, expiresAt ≥ now + ETA
 *              ▼
 *            every set of ≤ maxBanks of the nearest banks, each scored with its best units (tier, then FEFO):
 *              1. cover as much of the need as any set can;
 *              2. among those, arrive within the urgency's slack of the fastest (routine 30 min, urgent 10,
 *                 emergency 3: `typeSlackSeconds`); a split counts as its slower leg;
 *              3. fewest O− units to a non-O− recipient, then fewest other non-identical units;
 *              4. then the quickest, then the fewest banks (legs)
 *              ▼
 *            SiteIndex.reserveUnits per lot ──► { sources (one pickup leg each), reservations, shortfall, callout? }
 *
 * So the universal reserve (O−) goes to another type only when nothing else compatible is within the slack, and
 * then as little of it as possible; a bank farther away is visited for identical units when the slack allows.
 */
import {
  BLOOD_TYPES,
  type BloodProduct,
  type BloodType,
  type RecipientType,
  compatibleDonorTypes,
  donorPreference,
} from '../engine/blood-types.js';
import type { CellSpeeds } from '../engine/cell-speeds.js';
import type { Capability } from '../engine/courier-attributes.js';
import type { DonorIndex } from '../engine/donor-index.js';
import type { SiteIndex } from '../engine/site-index.js';
import { DEFAULT_POLICY, type DispatchPolicy, type DispatchRequest, type LatLng, type Urgency } from './dispatch-request.js';
import { type DonorCallout, type CalloutOptions, planDonorCallout } from './donor-callout.js';
import type { ReservationRef } from './request-lifecycle.js';
import { PLANNING_VEHICLE, driveSeconds } from './travel-time.js';

/** Banks one request may be split across: each is a courier leg, and more than 3 rarely arrive together. */
export const DEFAULT_MAX_BANKS = 3;

/** Extra transit worth taking for better-matched units, by urgency (seconds; PRODUCT §2). */
export const DEFAULT_TYPE_SLACK_SECONDS: Readonly<Record<Urgency, number>> = Object.freeze({ routine: 1_800, urgent: 600, emergency: 180 });

/** Bank sets scored at most per allocation: the nearest banks by ETA are taken while the sets fit (C(20, ≤ 3) = 1,350). */
const MAX_BANK_SETS = 2_000;

/** Search radius for banks in metres: 50 km is about an hour by car, the longest a transfusion waits on transport. */
export const DEFAULT_BANK_RADIUS = 50_000;

/** A hospital's need for units of one product. */
export interface BloodNeed {
  requestId: string;
  hospital: LatLng;
  product: BloodProduct;
  recipient: RecipientType;
  /** Units wanted, an integer ≥ 1. */
  units: number;
  urgency: Urgency;
  /** Latest acceptable arrival at the hospital (ms); banks that cannot make it are skipped. */
  deadline?: number;
}

/** How the allocation runs. */
export interface AllocationOptions {
  now: number;
  /** The deployment's policy: its circuity and car speed time each bank's transit (default DEFAULT_POLICY). */
  policy?: Readonly<DispatchPolicy>;
  /** Learned cell speeds for that transit (default: the policy's car speed everywhere). */
  speeds?: CellSpeeds;
  /** Seconds from a bank to the hospital (default: driveSeconds by PLANNING_VEHICLE under `policy` and `speeds`). */
  transitSeconds?: (from: LatLng, to: LatLng) => number;
  /** At most this many banks (default DEFAULT_MAX_BANKS). */
  maxBanks?: number;
  /**
   * 'nearest': banks by ETA alone (the shortest covering run of them), type preference only ordering units inside
   * them — how blood was allocated before the policy above, kept as the benchmark's baseline. Default 'typed'.
   */
  bankChoice?: 'typed' | 'nearest';
  /** Extra seconds of transit accepted for better-matched units, by urgency (default: the policy's, else DEFAULT_TYPE_SLACK_SECONDS). */
  typeSlackSeconds?: Readonly<Record<Urgency, number>>;
  /** Banks within this many great-circle metres of the hospital (default DEFAULT_BANK_RADIUS). */
  radius?: number;
  /** When given and units are short, the result carries a donor call-out plan. */
  donors?: DonorIndex;
  /** Waves and donors per unit for that call-out. */
  callout?: Omit<CalloutOptions, 'now'>;
}

/** Units taken from one lot. */
export interface AllocatedLot {
  product: BloodProduct;
  bloodType: BloodType;
  expiresAt: number;
  count: number;
}

/** How a product travels: red cells and whole blood at 1–6 °C, plasma frozen, platelets at 20–24 °C. */
export type Transport = 'chilled' | 'frozen' | 'room';

/** One bank and the lots taken from it: one pickup leg. */
export interface BloodSource {
  siteId: string;
  lat: number;
  lng: number;
  /** Great-circle metres from the hospital. */
  distance: number;
  /** Seconds from the bank to the hospital. */
  etaSeconds: number;
  /** Lots in the order they were chosen (type preference, then expiry). */
  units: AllocatedLot[];
  /** Units over all lots. */
  count: number;
  transport: Transport;
  /** What the courier of this leg must carry (see `legCapabilities`). */
  capabilities: Capability[];
}

interface AllocationBody {
  requestId: string;
  /** Sources by ETA, nearest first. */
  sources: BloodSource[];
  /** Exactly what was reserved; hand to `releaseAllocation` or the request lifecycle. */
  reservations: ReservationRef[];
  /** Units allocated over all sources. */
  allocated: number;
}

/** Why nothing could be allocated. */
export type AllocationFailure = 'no-compatible-stock-in-reach' | 'none-before-deadline';

/** Result of `allocateBlood`: all units, some units (`partial`) or none; a call-out when short and donors were given. */
export type BloodAllocation =
  | (AllocationBody & { ok: true; shortfall: 0 })
  | (AllocationBody & { ok: 'partial'; shortfall: number; callout?: DonorCallout })
  | (AllocationBody & { ok: false; reason: AllocationFailure; shortfall: number; callout?: DonorCallout });

/**
 * Chooses banks and lots for a need (compatible types only, identical first, O− last, FEFO, never a unit
 * expiring before it arrives) and reserves them through `sites.reserveUnits`; nothing else is mutated.
 */
export function allocateBlood(sites: SiteIndex, need: BloodNeed, options: AllocationOptions): BloodAllocation {
  checkInputs(need, options);
  const emergency = need.urgency === 'emergency';
  const types = compatibleDonorTypes(need.recipient, need.product, { emergency });
  const tiers = preferenceTiers(need.recipient, need.product, types);
  const { banks, lateBanks } = usableBanks(sites, need, options, types, tiers);
  const slack = (options.typeSlackSeconds ?? options.policy?.bloodTypeSlack ?? DEFAULT_TYPE_SLACK_SECONDS)[need.urgency];
  const maxBanks = options.maxBanks ?? DEFAULT_MAX_BANKS;
  const { chosen, picks } = options.bankChoice === 'nearest' ? nearestBanks(banks, need.units, maxBanks) : bestBankSet(banks, need.units, maxBanks, slack);
  const sources = reserve(sites, need.product, chosen, picks);
  const reservations = sources.flatMap((s) => s.units.map((u) => ({ siteId: s.siteId, ...u })));
  const allocated = reservations.reduce((n, r) => n + r.count, 0);
  const shortfall = need.units - allocated;
  const body: AllocationBody = { requestId: need.requestId, sources, reservations, allocated };
  if (shortfall === 0) return { ...body, ok: true, shortfall: 0 };
  const callout =
    options.donors === undefined
      ? undefined
      : planDonorCallout(options.donors, { ...need, shortfall }, { ...options.callout, now: options.now });
  const short = callout === undefined ? {} : { callout };
  if (allocated > 0) return { ...body, ok: 'partial', shortfall, ...short };
  const reason: AllocationFailure = lateBanks > 0 ? 'none-before-deadline' : 'no-compatible-stock-in-reach';
  return { ...body, ok: false, reason, shortfall, ...short };
}

/** Hands reserved units back (cancel, failure, or a re-plan); returns units released and refs that no longer matched a reservation. */
export function releaseAllocation(sites: SiteIndex, reservations: readonly ReservationRef[]): { released: number; failed: ReservationRef[] } {
  let released = 0;
  const failed: ReservationRef[] = [];
  for (const r of reservations) {
    const key = { product: r.product as BloodProduct, bloodType: r.bloodType as BloodType, expiresAt: r.expiresAt };
    if (sites.has(r.siteId) && sites.releaseUnits(r.siteId, key, r.count)) released += r.count;
    else failed.push(r);
  }
  return { released, failed };
}

/**
 * Courier capabilities a leg needs: cold_chain for red cells, whole blood and plasma; platelets must stay at
 * 20–24 °C (refrigeration ruins them), so they travel in an insulated box, not a cold-chain one.
 */
export function legCapabilities(product: BloodProduct): Capability[] {
  return product === 'platelets' ? ['insulated'] : ['cold_chain'];
}

/** One pickup leg per source (bank → hospital), ready for matching; ids are `<requestId>/<siteId>`. */
export function bloodPickupLegs(allocation: BloodAllocation, need: BloodNeed, now: number): DispatchRequest[] {
  return allocation.sources.map((s) => {
    const leg: DispatchRequest = {
      id: `${need.requestId}/${s.siteId}`,
      kind: 'blood',
      urgency: need.urgency,
      createdAt: now,
      pickup: { lat: s.lat, lng: s.lng },
      dropoff: need.hospital,
      capabilities: s.capabilities,
      load: 1, // one transport box per leg, whatever the unit count
    };
    if (need.deadline !== undefined) leg.deadline = need.deadline;
    return leg;
  });
}

/** Transit under DEFAULT_POLICY with no learned speeds: what allocateBlood uses when given neither. */
export function defaultTransitSeconds(from: LatLng, to: LatLng): number {
  return driveSeconds(from, to, { policy: DEFAULT_POLICY, vehicle: PLANNING_VEHICLE });
}

interface UsableLot {
  bloodType: BloodType;
  expiresAt: number;
  available: number;
  tier: number;
  /** Position in compatibleDonorTypes: the tie-break between types of one tier. */
  order: number;
}

interface Bank {
  id: string;
  lat: number;
  lng: number;
  distance: number;
  etaSeconds: number;
  lots: UsableLot[];
  usable: number;
}

interface Pick {
  bank: number;
  lot: UsableLot;
  count: number;
}

// Banks in reach with at least one usable unit, by (ETA, distance, id); also counts banks lost to the deadline.
function usableBanks(
  sites: SiteIndex,
  need: BloodNeed,
  options: AllocationOptions,
  types: BloodType[],
  tiers: Map<BloodType, number>,
): { banks: Bank[]; lateBanks: number } {
  const transit = options.transitSeconds ?? bankTransit(options.policy ?? DEFAULT_POLICY, options.speeds);
  const hits = sites.nearby(need.hospital.lat, need.hospital.lng, {
    kind: 'blood_bank',
    open: true,
    radius: options.radius ?? DEFAULT_BANK_RADIUS,
    k: sites.size,
    stock: { product: need.product, recipient: need.recipient, units: 1, asOf: options.now, emergency: need.urgency === 'emergency' },
  });
  const banks: Bank[] = [];
  let lateBanks = 0;
  for (const hit of hits) {
    const etaSeconds = transit({ lat: hit.lat, lng: hit.lng }, need.hospital);
    if (!(etaSeconds >= 0)) throw new Error(`transitSeconds must return seconds >= 0, got ${String(etaSeconds)} for bank '${hit.id}'`);
    const arrival = options.now + etaSeconds * 1000;
    if (need.deadline !== undefined && arrival > need.deadline) {
      lateBanks++;
      continue;
    }
    const lots: UsableLot[] = [];
    let usable = 0;
    for (const l of sites.lots(hit.id)) {
      const tier = tiers.get(l.bloodType);
      // SiteIndex semantics: a unit counts when it does not expire before the arrival (expiresAt ≥ arrival)
      if (l.product !== need.product || tier === undefined || l.available === 0 || l.expiresAt < arrival) continue;
      lots.push({ bloodType: l.bloodType, expiresAt: l.expiresAt, available: l.available, tier, order: types.indexOf(l.bloodType) });
      usable += l.available;
    }
    if (usable > 0) banks.push({ id: hit.id, lat: hit.lat, lng: hit.lng, distance: hit.distance, etaSeconds, lots, usable });
  }
  banks.sort((a, b) => a.etaSeconds - b.etaSeconds || a.distance - b.distance || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { banks, lateBanks };
}

/** A set of banks with its best units and what they are worth. */
interface ScoredSet {
  banks: Bank[];
  picks: Pick[];
  covered: number;
  /** Seconds until the slowest of its legs arrives. */
  transit: number;
  /** Units taken per preference tier, worst tier first (O− reserve, other compatible, same ABO). */
  worse: number[];
}

/**
 * The set of at most maxBanks banks to take units from (see the header): every set of the nearest banks is
 * scored with its best units; a set with a bank it takes nothing from is left out (the smaller set says it).
 */
function bestBankSet(banks: Bank[], units: number, maxBanks: number, slack: number): { chosen: Bank[]; picks: Pick[] } {
  const candidates = banks.slice(0, candidateCount(banks.length, maxBanks));
  const sets: ScoredSet[] = [];
  forEachSubset(candidates.length, Math.min(maxBanks, candidates.length), (members) => {
    const set = members.map((i) => candidates[i]);
    const picks = pickUnits(set, units);
    if (new Set(picks.map((p) => p.bank)).size < set.length) return;
    const worse = [3, 2, 1].map((tier) => picks.reduce((n, p) => n + (p.lot.tier === tier ? p.count : 0), 0));
    sets.push({ banks: set, picks, covered: picks.reduce((n, p) => n + p.count, 0), transit: Math.max(...set.map((b) => b.etaSeconds)), worse });
  });
  if (sets.length === 0) return { chosen: [], picks: [] };
  const covered = Math.max(...sets.map((x) => x.covered));
  const full = sets.filter((x) => x.covered === covered);
  const fastest = Math.min(...full.map((x) => x.transit));
  const within = full.filter((x) => x.transit <= fastest + slack);
  within.sort((a, b) => compareWorse(a.worse, b.worse) || a.transit - b.transit || a.banks.length - b.banks.length);
  return { chosen: within[0].banks, picks: within[0].picks };
}

/** The shortest run of banks by ETA whose units cover the need (at most maxBanks), and their best units. */
function nearestBanks(banks: Bank[], units: number, maxBanks: number): { chosen: Bank[]; picks: Pick[] } {
  let total = 0;
  let n = 0;
  while (n < banks.length && n < maxBanks && total < units) total += banks[n++].usable;
  const chosen = banks.slice(0, n);
  return { chosen, picks: pickUnits(chosen, units) };
}

function compareWorse(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

// How many of the nearest banks fit MAX_BANK_SETS sets of at most maxBanks banks.
function candidateCount(available: number, maxBanks: number): number {
  let n = Math.min(available, maxBanks);
  while (n < available && subsetsUpTo(n + 1, maxBanks) <= MAX_BANK_SETS) n++;
  return n;
}

function subsetsUpTo(n: number, k: number): number {
  let total = 0;
  let c = 1;
  for (let i = 1; i <= Math.min(k, n); i++) {
    c = (c * (n - i + 1)) / i;
    total += c;
  }
  return total;
}

// Calls `visit` with every non-empty set of indices below n of at most k members, in index order (nearest first).
function forEachSubset(n: number, k: number, visit: (members: number[]) => void): void {
  const members: number[] = [];
  const walk = (from: number): void => {
    for (let i = from; i < n; i++) {
      members.push(i);
      visit(members);
      if (members.length < k) walk(i + 1);
      members.pop();
    }
  };
  walk(0);
}

// Every usable unit of the chosen banks ordered by (tier, expiry, bank ETA rank, type order); take the first `units`.
function pickUnits(banks: Bank[], units: number): Pick[] {
  const all: { bank: number; lot: UsableLot }[] = [];
  banks.forEach((b, bank) => b.lots.forEach((lot) => all.push({ bank, lot })));
  all.sort((x, y) => x.lot.tier - y.lot.tier || x.lot.expiresAt - y.lot.expiresAt || x.bank - y.bank || x.lot.order - y.lot.order);
  const picks: Pick[] = [];
  let left = units;
  for (const { bank, lot } of all) {
    if (left === 0) break;
    const count = Math.min(left, lot.available);
    picks.push({ bank, lot, count });
    left -= count;
  }
  return picks;
}

// Reserves every pick; on a refused reservation (the index changed under us) undoes the ones made and throws.
function reserve(sites: SiteIndex, product: BloodProduct, banks: Bank[], picks: Pick[]): BloodSource[] {
  const done: ReservationRef[] = [];
  const byBank: AllocatedLot[][] = banks.map(() => []);
  for (const p of picks) {
    const lot: AllocatedLot = { product, bloodType: p.lot.bloodType, expiresAt: p.lot.expiresAt, count: p.count };
    const bankId = banks[p.bank].id;
    if (!sites.reserveUnits(bankId, lot, p.count)) {
      releaseAllocation(sites, done);
      throw new Error(`allocateBlood: bank '${bankId}' refused ${p.count} units it listed as available; do not mutate the SiteIndex during an allocation`);
    }
    done.push({ siteId: bankId, ...lot });
    byBank[p.bank].push(lot);
  }
  const sources: BloodSource[] = [];
  banks.forEach((b, i) => {
    if (byBank[i].length === 0) return;
    const count = byBank[i].reduce((n, l) => n + l.count, 0);
    sources.push({
      siteId: b.id,
      lat: b.lat,
      lng: b.lng,
      distance: b.distance,
      etaSeconds: b.etaSeconds,
      units: byBank[i],
      count,
      transport: transportOf(product),
      capabilities: legCapabilities(product),
    });
  });
  return sources;
}

// Bank → hospital seconds under the configured policy and the learned speeds around the bank.
function bankTransit(policy: Readonly<DispatchPolicy>, speeds: CellSpeeds | undefined): (from: LatLng, to: LatLng) => number {
  const drive = { policy, vehicle: PLANNING_VEHICLE, speeds };
  return (from, to) => driveSeconds(from, to, drive);
}

function transportOf(product: BloodProduct): Transport {
  return product === 'platelets' ? 'room' : product === 'plasma' ? 'frozen' : 'chilled';
}

/**
 * Preference tier per donor type, lower first. Known recipient: identical 0; platelets same ABO 1; other
 * compatible 2; O− 3 as the universal reserve (not for plasma, where O is the least useful, nor platelets).
 * Unknown recipient: the order compatibleDonorTypes gives (O+ before O−; AB+ before AB− plasma).
 */
function preferenceTiers(recipient: RecipientType, product: BloodProduct, types: BloodType[]): Map<BloodType, number> {
  return new Map(types.map((t) => [t, donorPreference(recipient, t, product)]));
}

function checkInputs(need: BloodNeed, options: AllocationOptions): void {
  if (!Number.isInteger(need.units) || need.units < 1) throw new Error(`need.units must be an integer >= 1, got ${String(need.units)}`);
  if (!Number.isFinite(options.now)) throw new Error(`now must be ms since the epoch, got ${String(options.now)}`);
  const maxBanks = options.maxBanks ?? DEFAULT_MAX_BANKS;
  if (!Number.isInteger(maxBanks) || maxBanks < 1) throw new Error(`maxBanks must be an integer >= 1, got ${String(maxBanks)}`);
  if (need.deadline !== undefined && !Number.isFinite(need.deadline)) throw new Error(`deadline must be ms since the epoch, got ${String(need.deadline)}`);
  if (!(BLOOD_TYPES as readonly string[]).includes(need.recipient) && need.recipient !== 'unknown') {
    throw new Error(`recipient must be one of ${BLOOD_TYPES.join(' ')} or 'unknown', got '${String(need.recipient)}'`);
  }
}
