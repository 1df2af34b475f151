/**
 * A simulated day of dispatch on a generated fixture city, run three times over the same request stream:
 * policy 'greedy' (the baseline), 'batched' (the shipped planner: min-cost over a 2 s window, stacks, en route,
 * cold-chain couriers priced) and 'unpriced' (the same planner with `scarcity: false`, the price's baseline).
 *
 *   requests (by createdAt) ──► DispatchLoop.submit at createdAt ── emergency or greedy? ──► tick at once
 *        │                                                                                      │ offers
 *   every simulated second: courier actions due ─► expire(t) ─► tick(t) ◄────────────────────────┘
 *        │
 *   courier model: answers 2–12 s after an offer (85 % accept, 10 % decline, 5 % silent → TTL expiry);
 *   drives straight-line distance × circuity at its vehicle speed to the pickup (waits for readyAt), then to
 *   the dropoff, and is available again where it delivered. Blood lots are swept hourly: units past expiry
 *   (reserved or not) leave the shelf and count as lost.
 *
 *   dispatch.day.assignmentRate     share of requests whose every leg got a courier      (higher is better)
 *   dispatch.day.pickupEta.mean/p95 seconds from the accepted offer to the pickup        (lower is better)
 *   dispatch.day.emergencyToOffer.p50/p95  ms from submission to the first offer, per emergency leg
 *   dispatch.day.emergencyToOffer.p99      the same over emergency legs that had a capable courier free within
 *                                          the search radius, able to make the deadline, when submitted (target
 *                                          ≤ 50 ms; a leg never offered counts until the day's end)
 *   dispatch.day.coldChainToOffer.p95      the same over legs that need a cold-chain courier (blood, chilled rescue)
 *   dispatch.day.coldChainToPickup.mean/p95  seconds from submission to the pickup, per such leg (vs greedy and unpriced)
 *   dispatch.day.coldChainDrained          leg-minutes such legs waited while every cold-chain courier within the radius
 *                                          was busy and one of them carried only plain work (vs greedy and unpriced)
 *   dispatch.day.clickToDoor.mean          seconds from order to door, per delivery (what the price costs plain work)
 *   dispatch.day.timeToOffer.p50/p95       the same over every leg
 *   dispatch.day.bloodUnitsExpired  units that expired on a bank's shelf during the day
 *
 *   Peak hour (`--peak`): the busiest two hours of deliveries of a day planned for four times the orders per courier —
 *   more orders than free couriers — simulated alone (couriers start free where they are), then drained:
 *   dispatch.peak.deliveriesPerCourierHour  deliveries made ÷ (couriers × 2 h)              (higher is better)
 *   dispatch.peak.clickToDoor.p95           seconds from order to door, delivered orders   (lower is better)
 *   dispatch.peak.lateShare                 share of delivered orders past their deadline  (lower is better)
 *
 *   node dist/bench/dispatch-day.js [--quick] [--peak] [--seed 42 | --seeds 42,7,123] [--couriers N] [--requests N] [--step 1000]
 *   (--seeds: one day per seed, each figure the mean over the days; a single day's cold-chain figures swing by 2× between seeds)
 */
import { CourierIndex } from '../engine/courier-index.js';
import { DonorIndex } from '../engine/donor-index.js';
import { distanceMeters } from '../engine/geodesy.js';
import { SiteIndex } from '../engine/site-index.js';
import { DispatchLoop, type RequestSubmission } from '../dispatch/dispatch-loop.js';
import type { StackStop } from '../dispatch/offer-details.js';
import { DEFAULT_POLICY, type DispatchPolicy, type LatLng } from '../dispatch/dispatch-request.js';
import type { Offer } from '../dispatch/request-lifecycle.js';
import { generateScenario, type RequestFixture, type Scenario } from '../fixtures/city-scenario.js';
import { Prng } from '../fixtures/prng.js';
import { costRatio, median, parseArgs, quantile, rateRatio, report } from './bench-report.js';

const HOUR = 3_600_000;
/** Work still under way at midnight gets this long to finish before the figures are taken. */
const DRAIN_MS = 3 * HOUR;
/** Courier answers: a phone buzzes, the rider reads and taps within 2–12 s. */
const ANSWER_MS: [number, number] = [2_000, 12_000];
const ACCEPT = 0.85;
const DECLINE = 0.1; // the remaining 5 % never answer, so the offer expires after its TTL

const args = parseArgs(process.argv.slice(2));
const quick = args.has('quick');
const seed = Number(args.get('seed') ?? 42);
/** `--seeds 42,7,123`: one simulated day per seed, figures averaged over the days (a single day is noisy). */
const seeds = (args.get('seeds') ?? String(seed)).split(',').map(Number);
// quick: a busy small town (1,000 couriers, 6,000 requests); full: a city (5,000 couriers, 30,000 requests).
// About six requests per courier a day keeps the lunch and dinner peaks contended, where matching matters.
const peak = args.has('peak');
// the peak scenario: the same city and day of orders, a quarter of the couriers (about 24 orders per courier a day)
const courierCount = Number(args.get('couriers') ?? ((quick ? 1_000 : 5_000) / (peak ? 4 : 1)));
/** The peak: this long, its busiest window of delivery orders. */
const PEAK_MS = 2 * HOUR;
const requestCount = Number(args.get('requests') ?? (quick ? 6_000 : 30_000));
const stepMs = Number(args.get('step') ?? 1_000);

interface DayResult {
  requests: number;
  assigned: number;
  delivered: number;
  pickupEtas: number[];
  /** Seconds of driving to the pickup (the part of the pickup ETA a better match can shorten). */
  pickupDrives: number[];
  emergencyToOffer: number[];
  /** emergencyToOffer of the legs a capable courier was free for (within the radius) at submission. */
  emergencyServable: number[];
  toOffer: number[];
  /** toOffer of the legs that need a cold-chain courier (a leg never offered counts until the day's end). */
  coldChainToOffer: number[];
  /** Seconds from submission to the pickup, per leg needing a cold-chain courier (never picked up: until the day's end). */
  coldChainToPickup: number[];
  /** Seconds from order to door, and whether past the deadline, per delivered delivery. */
  clickToDoor: number[];
  late: number;
  /** Deliveries made before the simulated window ended (the peak's throughput; the drain after it excluded). */
  deliveredInWindow: number;
  /** Legs offered as part of a stack. */
  stackedLegs: number;
  /** Legs offered to a courier still on another trip. */
  enRouteLegs: number;
  unitsExpired: number;
  /**
   * Minutes cold-chain legs waited drained: sampled each simulated minute, a pending leg needing a cold-chain
   * courier counts when no such courier within the radius is free and at least one of them is carrying only
   * work that does not need one (the wait routine work caused).
   */
  coldChainDrained: number;
  offers: number;
  batches: number;
  wallMs: number;
}

/** One figure of one simulated day: the planner's value against a baseline's. */
interface DayFigure {
  bench: string;
  value: number;
  baseline: string;
  baselineValue: number;
  unit: string;
  higherIsBetter: boolean;
  n: number;
}

/**
 * Runs the day (one per seed of `--seeds`) under greedy, the shipped planner and the planner without the scarce-courier
 * price, and prints one JSON line per figure: a single day's value, or with several seeds the mean over the days.
 */
function main(): void {
  const days: DayFigure[][] = [];
  for (const daySeed of seeds) {
    const scenario = generateScenario({ seed: daySeed, couriers: courierCount, requests: requestCount });
    process.stderr.write(`dispatch day: seed ${daySeed}, ${scenario.couriers.length} couriers, ${scenario.requests.length} requests, ${scenario.sites.length} sites, step ${stepMs} ms\n`);
    if (peak) return peakHour(scenario);
    days.push(dayFigures(scenario));
  }
  days[0].forEach((f, k) => {
    const overDays = (pick: (d: DayFigure) => number): number => mean(days.map((d) => pick(d[k])));
    figure(f.bench, overDays((d) => d.value), overDays((d) => d.baselineValue), f.unit, f.higherIsBetter, f.n, f.baseline);
  });
}

/** One day under the three policies, as figures. */
function dayFigures(scenario: Scenario): DayFigure[] {
  // the baseline is greedy as it was: nearest ETA now, free couriers only
  const greedy = simulateDay(scenario, { ...DEFAULT_POLICY, mode: 'greedy', enRoute: false, scarcity: false });
  const batched = simulateDay(scenario, { ...DEFAULT_POLICY, mode: 'batched' });
  // the same planner with cold-chain couriers unpriced: what the price changes
  const unpriced = simulateDay(scenario, { ...DEFAULT_POLICY, mode: 'batched', scarcity: false });
  for (const [name, r] of [['greedy', greedy], ['batched', batched], ['unpriced', unpriced]] as const) {
    process.stderr.write(`  ${name}: ${r.assigned}/${r.requests} assigned, ${r.delivered} delivered, ${r.offers} offers, ${r.batches} batches, ${(r.wallMs / 1000).toFixed(1)} s wall\n`);
  }
  const n = scenario.requests.length;
  const cold = batched.coldChainToOffer.length;
  const emergencies = batched.emergencyToOffer.length;
  const rate = (r: DayResult): number => r.assigned / r.requests;
  const out: DayFigure[] = [];
  const add = (bench: string, of: (r: DayResult) => number, unit: string, higherIsBetter: boolean, count: number, baselines: readonly (readonly ['greedy' | 'unpriced', DayResult])[] = [['greedy', greedy]]): void => {
    for (const [baseline, base] of baselines) out.push({ bench, value: of(batched), baseline, baselineValue: of(base), unit, higherIsBetter, n: count });
  };
  const both = [['greedy', greedy], ['unpriced', unpriced]] as const;
  add('dispatch.day.assignmentRate', rate, 'share', true, n);
  add('dispatch.day.pickupEta.mean', (r) => mean(r.pickupEtas), 's', false, n);
  add('dispatch.day.pickupEta.p95', (r) => quantile(r.pickupEtas, 0.95), 's', false, n);
  add('dispatch.day.pickupDrive.mean', (r) => mean(r.pickupDrives), 's', false, n);
  add('dispatch.day.clickToDoor.mean', (r) => mean(r.clickToDoor), 's', false, batched.clickToDoor.length, both);
  add('dispatch.day.emergencyToOffer.p50', (r) => median(r.emergencyToOffer), 'ms', false, emergencies);
  add('dispatch.day.emergencyToOffer.p95', (r) => quantile(r.emergencyToOffer, 0.95), 'ms', false, emergencies, both);
  add('dispatch.day.emergencyToOffer.mean', (r) => mean(r.emergencyToOffer), 'ms', false, emergencies, both);
  add('dispatch.day.emergencyToOffer.p99', (r) => quantile(r.emergencyServable, 0.99), 'ms', false, batched.emergencyServable.length);
  add('dispatch.day.coldChainToOffer.p95', (r) => quantile(r.coldChainToOffer, 0.95), 'ms', false, cold, both);
  add('dispatch.day.coldChainToPickup.mean', (r) => mean(r.coldChainToPickup), 's', false, cold, both);
  add('dispatch.day.coldChainToPickup.p95', (r) => quantile(r.coldChainToPickup, 0.95), 's', false, cold, both);
  add('dispatch.day.coldChainDrained', (r) => r.coldChainDrained, 'leg-minutes', false, cold, both);
  add('dispatch.day.timeToOffer.p50', (r) => median(r.toOffer), 'ms', false, n);
  add('dispatch.day.timeToOffer.p95', (r) => quantile(r.toOffer, 0.95), 'ms', false, n);
  add('dispatch.day.bloodUnitsExpired', (r) => r.unitsExpired, 'units', false, n);
  return out;
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** The busiest PEAK_MS of delivery orders, simulated alone under both policies: the peak figures. */
function peakHour(scenario: Scenario): void {
  const times = scenario.requests.filter((r) => r.kind === 'delivery').map((r) => r.createdAt).sort((a, b) => a - b);
  let start = times[0] ?? scenario.dayStart;
  for (let i = 0, j = 0, best = 0; i < times.length; i++) {
    while (times[j] < times[i] - PEAK_MS) j++;
    if (i - j + 1 > best) [best, start] = [i - j + 1, times[i] - PEAK_MS];
  }
  const window = { start, end: start + PEAK_MS };
  const greedy = simulateDay(scenario, { ...DEFAULT_POLICY, mode: 'greedy', enRoute: false, scarcity: false }, window);
  const batched = simulateDay(scenario, { ...DEFAULT_POLICY, mode: 'batched', stacking: false, enRoute: false, scarcity: false }, window);
  const planner = simulateDay(scenario, { ...DEFAULT_POLICY, mode: 'batched' }, window);
  process.stderr.write(`  peak: ${new Date(window.start).toISOString()} +2 h, ${greedy.requests} orders for ${scenario.couriers.length} couriers; delivered within the peak: greedy ${greedy.deliveredInWindow}, batched ${batched.deliveredInWindow}, stacking ${planner.deliveredInWindow}; stacked legs ${planner.stackedLegs}, en-route legs ${planner.enRouteLegs}\n`);
  // throughput while the peak lasts: what was delivered before it ended, per courier-hour
  const perCourierHour = (r: DayResult): number => r.deliveredInWindow / (scenario.couriers.length * (PEAK_MS / HOUR));
  const n = greedy.requests;
  for (const [baseline, base] of [['greedy', greedy], ['batched', batched]] as const) {
    figure('dispatch.peak.deliveriesPerCourierHour', perCourierHour(planner), perCourierHour(base), 'deliveries', true, n, baseline);
    figure('dispatch.peak.clickToDoor.p95', quantile(planner.clickToDoor, 0.95), quantile(base.clickToDoor, 0.95), 's', false, n, baseline);
    figure('dispatch.peak.lateShare', planner.late / planner.clickToDoor.length, base.late / base.clickToDoor.length, 'share', false, n, baseline);
  }
}

function figure(bench: string, value: number, baselineValue: number, unit: string, higherIsBetter: boolean, count: number, baseline = 'greedy'): void {
  // equal figures (both 0 ms, say) are a tie, not a division by zero
  const ratio = value === baselineValue ? 1 : higherIsBetter ? rateRatio(value, baselineValue) : costRatio(value, baselineValue);
  report({ bench, n: count, value, unit, baseline, baselineValue, ratio, quick, seed: seeds.length === 1 ? seeds[0] : seeds.join(',') });
}

/** One day of the scenario under one policy; everything is rebuilt, so both runs start from the same state. */
function simulateDay(s: Scenario, policy: DispatchPolicy, window?: { start: number; end: number }): DayResult {
  const started = performance.now();
  const couriers = new CourierIndex({ initialCapacity: s.couriers.length });
  const sites = new SiteIndex();
  const donors = new DonorIndex();
  for (const c of s.couriers) {
    // fixture 'busy' couriers are busy with work outside this day's stream: on shift and free here
    couriers.upsert(c.id, { vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity, status: c.status === 'offline' ? 'offline' : 'available' });
    couriers.move(c.id, c.lat, c.lng, s.dayStart);
  }
  for (const d of s.donors) donors.upsert(d.id, d);
  const banks: string[] = [];
  for (const site of s.sites) {
    sites.upsert(site.id, site);
    if (site.inventory) {
      sites.setInventory(site.id, site.inventory);
      banks.push(site.id);
    }
  }
  sweepExpired(sites, banks, s.dayStart); // lots already out of date at dawn were never usable today
  const loop = new DispatchLoop({ couriers, sites, donors, policy });
  const rng = new Prng(s.seed ^ 0x5eed);
  const agenda = new Agenda(stepMs);
  let unitsExpired = 0;
  let coldChainDrained = 0;
  let offers = 0;
  let stackedLegs = 0;
  let enRouteLegs = 0;
  const drives = new Map<string, number>();

  // a courier answers an offer once: a stack's offers (one per leg, sharing a stackId) are answered together
  const onOffers = (made: Offer[]): void => {
    const answered = new Set<string>();
    for (const o of made) {
      offers++;
      if (o.stackId !== undefined) stackedLegs++;
      if (o.details?.enRoute !== undefined) enRouteLegs++;
      const key = o.stackId ?? o.id;
      if (answered.has(key)) continue;
      answered.add(key);
      const u = rng.next();
      if (u >= ACCEPT + DECLINE) continue;
      const at = o.createdAt + Math.round(rng.range(ANSWER_MS[0], ANSWER_MS[1]));
      agenda.add(at, () => (u < ACCEPT ? acceptAndDrive(o, at) : loop.decline(o.id, o.courierId, at)));
    }
  };
  // each courier drives its accepted stops in order; an en-route leg's stops join the end of the trip it is on
  const trips = new Map<string, StackStop[]>();
  const acceptAndDrive = (o: Offer, at: number): void => {
    const accepted = loop.accept(o.id, o.courierId, at);
    if (!accepted.ok) return;
    const stops = stopsOf(o, accepted.assignments.map((a) => a.requestId));
    const trip = trips.get(o.courierId);
    if (trip !== undefined) trip.push(...stops);
    else {
      trips.set(o.courierId, stops);
      driveNext(o.courierId, at);
    }
  };
  const driveNext = (courierId: string, from: number): void => {
    const trip = trips.get(courierId)!;
    const stop = trip.shift();
    if (stop === undefined) {
      trips.delete(courierId);
      return;
    }
    const travel = travelMs(couriers, courierId, stop.at, policy);
    if (stop.action === 'pickup') drives.set(stop.legId, travel);
    const arrive = Math.max(from + travel, stop.action === 'pickup' ? (loop.leg(stop.legId)?.readyAt ?? -Infinity) : -Infinity);
    agenda.add(arrive, () => {
      couriers.move(courierId, stop.at.lat, stop.at.lng, arrive);
      // a leg cancelled meanwhile refuses its progress; the courier drives on to the next stop
      loop.progress(stop.legId, courierId, stop.action === 'pickup' ? 'picked_up' : 'delivered', arrive);
      driveNext(courierId, arrive);
    });
  };

  // emergency legs a capable courier was free for, within the search radius, when they were submitted
  const servable = new Set<string>();
  const noteServable = (requestId: string, submittedAt: number): void => {
    for (const l of loop.status(requestId)?.legs ?? []) {
      const leg = loop.leg(l.id);
      if (leg === undefined) continue;
      const [free] = couriers.nearby(leg.pickup.lat, leg.pickup.lng, { k: 1, radius: policy.radius, status: 'available', minCapacity: leg.load ?? 1, ...(leg.capabilities ? { capability: leg.capabilities } : {}) });
      if (free === undefined) continue;
      // and it could make the leg's deadline (a bank too far from the hospital fails whoever drives)
      const metres = free.distance + distanceMeters(leg.pickup.lat, leg.pickup.lng, leg.dropoff.lat, leg.dropoff.lng);
      const arrive = submittedAt + (metres * policy.circuity * 1000) / policy.vehicleSpeed[couriers.get(free.id)!.vehicle];
      if (leg.deadline === undefined || arrive <= leg.deadline) servable.add(l.id);
    }
  };
  const requests = window === undefined ? s.requests : s.requests.filter((r) => r.createdAt >= window.start && r.createdAt < window.end);
  let next = 0;
  const from = window?.start ?? s.dayStart;
  const end = (window?.end ?? s.dayStart + 24 * HOUR) + DRAIN_MS;
  for (let t = from + stepMs; t <= end; t += stepMs) {
    agenda.run(t);
    for (; next < requests.length && requests[next].createdAt <= t; next++) {
      const at = Math.max(requests[next].createdAt, t - stepMs);
      const res = loop.submit(submissionOf(requests[next]), at);
      if (res.ok && requests[next].urgency === 'emergency') noteServable(requests[next].id, at);
      if (res.ok && res.dueAt <= at) onOffers(loop.tick(at));
    }
    if ((t - from) % 60_000 === 0) coldChainDrained += drainedLegs(loop, couriers, policy);
    loop.expire(t);
    onOffers(loop.tick(t));
    if ((t - s.dayStart) % HOUR === 0) unitsExpired += sweepExpired(sites, banks, t);
    loop.drainEvents(); // an API would stream these; here they are dropped so memory stays flat
  }
  return { ...collect(loop, requests, drives, servable, end, window?.end ?? end), unitsExpired, coldChainDrained, offers, stackedLegs, enRouteLegs, batches: loop.stats().batches, wallMs: performance.now() - started };
}

/** Per-request outcomes read back from the lifecycle once the day is over. */
function collect(loop: DispatchLoop, requests: readonly RequestFixture[], drives: ReadonlyMap<string, number>, servable: ReadonlySet<string>, end: number, windowEnd: number): Omit<DayResult, 'unitsExpired' | 'coldChainDrained' | 'offers' | 'stackedLegs' | 'enRouteLegs' | 'batches' | 'wallMs'> {
  const lc = loop.lifecycle;
  let assigned = 0;
  let delivered = 0;
  const pickupEtas: number[] = [];
  const pickupDrives: number[] = [];
  const emergencyToOffer: number[] = [];
  const emergencyServable: number[] = [];
  const toOffer: number[] = [];
  const coldChainToOffer: number[] = [];
  const coldChainToPickup: number[] = [];
  const clickToDoor: number[] = [];
  let late = 0;
  let deliveredInWindow = 0;
  for (const r of requests) {
    const summary = loop.status(r.id);
    if (summary === undefined) continue; // refused at submission (no stock, no recipient)
    if (summary.legs.every((l) => lc.assignmentOf(l.id) !== undefined)) assigned++;
    if (summary.status === 'delivered') delivered++;
    const doneAt = r.kind === 'delivery' && summary.status === 'delivered' ? lc.assignmentOf(summary.legs[0].id)?.deliveredAt : undefined;
    if (doneAt !== undefined) {
      clickToDoor.push((doneAt - r.createdAt) / 1000);
      if (doneAt <= windowEnd) deliveredInWindow++;
      if (r.deadline !== undefined && doneAt > r.deadline) late++;
    }
    for (const l of summary.legs) {
      const first = lc.offersOf(l.id)[0];
      if (servable.has(l.id)) emergencyServable.push((first?.createdAt ?? end) - r.createdAt);
      const a = lc.assignmentOf(l.id);
      if (loop.leg(l.id)?.capabilities?.includes('cold_chain')) {
        coldChainToOffer.push((first?.createdAt ?? end) - r.createdAt);
        coldChainToPickup.push(((a?.pickedUpAt ?? end) - r.createdAt) / 1000);
      }
      if (first !== undefined) {
        toOffer.push(first.createdAt - r.createdAt);
        if (r.urgency === 'emergency') emergencyToOffer.push(first.createdAt - r.createdAt);
      }
      if (a?.pickedUpAt === undefined) continue;
      pickupEtas.push((a.pickedUpAt - lc.offerById(a.offerId)!.createdAt) / 1000);
      pickupDrives.push(drives.get(l.id)! / 1000);
    }
  }
  return { requests: requests.length, assigned, delivered, pickupEtas, pickupDrives, emergencyToOffer, emergencyServable, toOffer, coldChainToOffer, coldChainToPickup, clickToDoor, late, deliveredInWindow };
}

/** Pending cold-chain legs with no cold-chain courier free within the radius while one of them carries only plain work. */
function drainedLegs(loop: DispatchLoop, couriers: CourierIndex, policy: DispatchPolicy): number {
  const lc = loop.lifecycle;
  const needsCold = (legId: string): boolean => loop.leg(legId)?.capabilities?.includes('cold_chain') === true;
  let drained = 0;
  for (const r of lc.pendingRequests()) {
    const leg = loop.leg(r.id);
    if (leg === undefined || !needsCold(r.id)) continue;
    let free = false;
    let onPlainWork = false;
    for (const n of couriers.nearby(leg.pickup.lat, leg.pickup.lng, { k: 1_000, radius: policy.radius, capability: ['cold_chain'] })) {
      const status = couriers.get(n.id)?.status;
      if (status === 'available') free = true;
      else if (status === 'busy') {
        const carried = lc.assignmentsOf(n.id);
        if (carried.length > 0 && !carried.some((a) => needsCold(a.requestId))) onPlainWork = true;
      }
    }
    if (!free && onPlainWork) drained++;
  }
  return drained;
}

/** Removes lots expired by `now` from each bank's shelf (reserved units too); returns the units lost. */
function sweepExpired(sites: SiteIndex, banks: readonly string[], now: number): number {
  let lost = 0;
  for (const id of banks) {
    const lots = sites.lots(id);
    if (!lots.some((l) => l.expiresAt <= now)) continue;
    const kept = [];
    for (const l of lots) {
      if (l.expiresAt <= now) lost += l.available + l.reserved;
      else kept.push({ product: l.product, bloodType: l.bloodType, expiresAt: l.expiresAt, count: l.available + l.reserved });
    }
    sites.setInventory(id, kept);
  }
  return lost;
}

/** The stops an accepted offer drives: a stack's in its planned order, else the leg's pickup then dropoff. */
function stopsOf(o: Offer, legIds: readonly string[]): StackStop[] {
  const planned = o.details?.stops as StackStop[] | undefined;
  if (planned !== undefined) return planned.filter((s) => legIds.includes(s.legId));
  const d = o.details as { pickup: LatLng; dropoff: LatLng; parentId: string };
  return [
    { legId: o.requestId, requestId: d.parentId, action: 'pickup', at: d.pickup, eta: 0 },
    { legId: o.requestId, requestId: d.parentId, action: 'dropoff', at: d.dropoff, eta: 0 },
  ];
}

/** Straight-line metres × circuity at the courier's vehicle speed: the same model the planner's ETAs use. */
function travelMs(couriers: CourierIndex, courierId: string, to: LatLng, policy: DispatchPolicy): number {
  const c = couriers.get(courierId)!;
  return Math.round((distanceMeters(c.lat, c.lng, to.lat, to.lng) * policy.circuity * 1000) / policy.vehicleSpeed[c.vehicle]);
}

function submissionOf(f: RequestFixture): RequestSubmission {
  const base = { id: f.id, urgency: f.urgency, createdAt: f.createdAt, requesterId: f.requesterId, deadline: f.deadline };
  if (f.kind === 'delivery') return { ...base, kind: 'delivery', pickup: f.pickup, dropoff: f.dropoff!, readyAt: f.readyAt, coldChain: f.coldChain };
  if (f.kind === 'rescue') return { ...base, kind: 'rescue', pickup: f.pickup, dropoff: f.dropoff, readyAt: f.readyAt, pickupBy: f.pickupBy, coldChain: f.coldChain };
  return { ...base, kind: 'blood', dropoff: f.dropoff!, blood: f.blood! };
}

/** Courier actions bucketed by simulation step; each runs at its own time, in time order within a step. */
class Agenda {
  private readonly buckets = new Map<number, { at: number; fn: () => void }[]>();
  private current = -Infinity;

  constructor(private readonly stepMs: number) {}

  add(at: number, fn: () => void): void {
    const key = Math.max(this.current, Math.ceil(at / this.stepMs));
    const bucket = this.buckets.get(key);
    if (bucket === undefined) this.buckets.set(key, [{ at, fn }]);
    else bucket.push({ at, fn });
  }

  /** Runs every action due by `t`, including ones added for this step while it runs. */
  run(t: number): void {
    const key = Math.ceil(t / this.stepMs);
    this.current = key;
    for (let bucket = this.buckets.get(key); bucket !== undefined && bucket.length > 0; bucket = this.buckets.get(key)) {
      this.buckets.delete(key);
      bucket.sort((a, b) => a.at - b.at);
      for (const a of bucket) a.fn();
    }
  }
}

main();
