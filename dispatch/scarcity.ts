/**
 * What a scarce capability costs work that does not need it (PRODUCT §2 "Scarce capabilities are priced"): a
 * cold-chain courier taking a plain delivery costs the expected wait it causes to cold-chain work nearby. The
 * price follows that work, batch by batch:
 *
 *   submit ── leg needs capability k ──► demand[k]: when and where such legs started, over the last windowSeconds
 *   takeBatch ─► supply[k]: free couriers with k in the batch's snapshot within policy.radius of such work
 *                (only they are priced: elsewhere a cold-chain courier is a plain courier)
 *            ─► need[k]  = demand[k] per second × horizonSeconds + legs needing k waiting now
 *            ─► price[k] = maxSeconds × min(1, need[k] ÷ supply[k])     (0 when nothing needs k, or nobody has it)
 *
 * Only work whose dropoff is out of reach of k's work pays (it takes the courier away; work ending nearby gives
 * it back soon) — pricing every job near the banks pushed cold-chain couriers away from them (bench/RESULTS.md).
 * So where no blood moves, a cold-chain courier is just a courier; where the next half hour's cold-chain work
 * would take every cold-chain courier nearby, routine work pays up to maxSeconds to take one. Emergencies pay
 * nothing (route-scoring.ts scarcityCost). The matching, stacking and en route all charge it. A fixed
 * `policy.scarceCapabilities` table overrides the learnt price; `policy.scarcity: false` turns it off.
 *
 * On by default: over twelve simulated days it halved the minutes cold-chain work waited on couriers busy with plain
 * work and shortened its wait for a pickup by 8 %, for a second more per delivery. Stronger prices (per second of
 * the job, or of its detour from the banks) stopped all drain but stranded couriers where their last blood drop left
 * them, and cold-chain work waited longer (bench/RESULTS.md, "Scarce couriers, measured over twelve days").
 */
import { CAPABILITIES, type Capability, capabilityMask } from '../engine/courier-attributes.js';
import type { CourierSnapshot } from '../engine/courier-snapshot.js';
import { chord2, metersToChord2, writeUnitVector } from '../engine/geodesy.js';
import type { DispatchPolicy, DispatchRequest, ScarcityPolicy } from './dispatch-request.js';
import { PointGrid } from './point-grid.js';

/** Up to ten minutes for a courier whose capability the next half hour's work (as the last hour's rate says) needs. */
export const DEFAULT_SCARCITY: Readonly<ScarcityPolicy> = Object.freeze({ maxSeconds: 600, horizonSeconds: 1800, windowSeconds: 3600 });

/** Where and when a leg needing a capability was submitted. */
interface Sighting {
  at: number;
  lat: number;
  lng: number;
}

/** A batch's prices: seconds per capability, and which couriers of its snapshot they apply to. */
export interface BatchPrices {
  prices: Partial<Record<Capability, number>>;
  /** Per snapshot courier: the capability bits priced for it (those it has, with such work within the radius). */
  local: Uint8Array;
  /** Per request id of the batch: the capability bits whose work its dropoff is out of reach of (it takes a courier away). */
  leaves: Map<string, number>;
}

/** The demand side: when and where legs needing each capability were submitted, over the window. */
export class CapabilityDemand {
  private readonly seen = new Map<Capability, Sighting[]>();

  constructor(private readonly policy: Readonly<ScarcityPolicy> = DEFAULT_SCARCITY) {}

  /** A leg needing `capabilities`, picked up at `pickup`, was submitted at `at` (ms). */
  note(capabilities: readonly Capability[] | undefined, at: number, pickup: { lat: number; lng: number }): void {
    for (const k of capabilities ?? []) {
      let list = this.seen.get(k);
      if (list === undefined) this.seen.set(k, (list = []));
      list.push({ at, lat: pickup.lat, lng: pickup.lng });
    }
  }

  /** Legs needing `k` over the window ending at `now` (older ones are dropped), oldest first. */
  recent(k: Capability, now: number): readonly Sighting[] {
    const list = this.seen.get(k);
    if (list === undefined) return [];
    const from = now - this.policy.windowSeconds * 1000;
    let drop = 0;
    while (drop < list.length && list[drop].at < from) drop++;
    if (drop > 0) list.splice(0, drop);
    return list;
  }

  /**
   * The prices for one batch. A courier is priced for capability k only within `radius` of where k's work starts
   * (recent and waiting pickups): a cold-chain courier across town from every blood bank causes no wait to blood
   * work, so it stays a plain courier there (else it idles where it last dropped blood, out of every bank's reach).
   * supply = such couriers free in the snapshot; need = recent rate × horizon + legs waiting now.
   */
  prices(snapshot: CourierSnapshot, waiting: readonly Pick<DispatchRequest, 'id' | 'capabilities' | 'pickup' | 'dropoff'>[], now: number, radius: number): BatchPrices {
    const prices: Partial<Record<Capability, number>> = {};
    const local = new Uint8Array(snapshot.count);
    const leaves = new Map<string, number>();
    for (const k of CAPABILITIES) {
      const recent = this.recent(k, now);
      const queued = waiting.filter((r) => r.capabilities?.includes(k));
      if (recent.length === 0 && queued.length === 0) continue;
      const work = new WorkPlaces(distinctPoints([...recent, ...queued.map((r) => r.pickup)]), radius);
      const bit = capabilityMask([k]);
      let supply = 0;
      for (let i = 0; i < snapshot.count; i++) {
        if (((snapshot.attrWord(i) >>> 8) & bit) === 0 || !work.within(snapshot.lat(i), snapshot.lng(i))) continue;
        local[i] |= bit;
        supply++;
      }
      const price = scarcityPrice((recent.length / this.policy.windowSeconds) * this.policy.horizonSeconds + queued.length, supply, this.policy.maxSeconds);
      if (price <= 0) continue;
      prices[k] = price;
      // work that ends where k is needed gives the courier back there soon: only work that takes it away pays
      for (const r of waiting) {
        if (!work.within(r.dropoff.lat, r.dropoff.lng)) leaves.set(r.id, (leaves.get(r.id) ?? 0) | bit);
      }
    }
    return { prices, local, leaves };
  }
}

/** Where a capability's work starts, filed on a grid: is a point within `radius` of any of them? */
class WorkPlaces {
  private readonly grid: PointGrid;
  /** The places' unit vectors (3 per place) and the radius as a squared chord: the indexes' exact test, no trig per pair. */
  private readonly units: Float64Array;
  private readonly limit: number;
  private readonly query = new Float64Array(3);

  constructor(points: readonly { lat: number; lng: number }[], radius: number) {
    // a point within radius of one of them is at most radius further from the equator
    this.grid = new PointGrid(radius, Math.max(0, ...points.map((p) => Math.abs(p.lat))) + radius / 111_320);
    this.units = new Float64Array(points.length * 3);
    points.forEach((p, i) => {
      this.grid.add(p.lat, p.lng, i);
      writeUnitVector(p.lat, p.lng, this.units, 3 * i);
    });
    this.limit = metersToChord2(radius);
  }

  /** Runs per courier and per waiting leg each batch. */
  within(lat: number, lng: number): boolean {
    const q = this.query;
    writeUnitVector(lat, lng, q, 0);
    const u = this.units;
    return this.grid.some(lat, lng, (i) => chord2(q[0], q[1], q[2], u[3 * i], u[3 * i + 1], u[3 * i + 2]) <= this.limit);
  }
}

/** Points a few hundred metres apart or more: a bank's hundred requests are one place to be near. */
function distinctPoints(points: readonly { lat: number; lng: number }[]): { lat: number; lng: number }[] {
  const cells = new Map<string, { lat: number; lng: number }>();
  for (const p of points) cells.set(`${Math.round(p.lat * 200)}:${Math.round(p.lng * 200)}`, p);
  return [...cells.values()];
}

/**
 * The policy a batch is planned with: its scarce capabilities priced from `demand`, the legs waiting and the
 * snapshot's free couriers — unless the policy fixes a table of its own, or nothing is priced now.
 */
export function pricedPolicy(policy: DispatchPolicy, demand: CapabilityDemand, snapshot: CourierSnapshot, waiting: readonly DispatchRequest[], now: number): DispatchPolicy {
  const fixed = policy.scarceCapabilities;
  if (fixed !== undefined && Object.keys(fixed).length > 0) return policy;
  const { prices, local, leaves } = demand.prices(snapshot, waiting, now, policy.radius);
  return Object.keys(prices).length === 0 ? policy : { ...policy, scarceCapabilities: prices, scarceLocal: local, scarceLeaves: leaves };
}

/** maxSeconds × min(1, need ÷ supply); 0 when nothing is needed or nobody has the capability. */
export function scarcityPrice(need: number, supply: number, maxSeconds: number): number {
  if (!(need > 0) || !(supply > 0)) return 0;
  return maxSeconds * Math.min(1, need / supply);
}
