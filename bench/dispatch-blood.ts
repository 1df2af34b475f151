/**
 * Blood allocation over a generated city's day of blood requests, run twice over the same stock and requests:
 * banks by ETA alone ('nearest', the baseline — how blood was allocated before PRODUCT §2's dispatch policy) and
 * type preference worth minutes ('typed', the default: identical units within the urgency's slack, O− last).
 * Units allocated stay off the shelf (a day's transfusions), so later requests meet what earlier ones left.
 *
 *   dispatch.blood.oNegToOthers    O− units (red cells, whole blood, platelets) to recipients of another known type
 *                                  (lower is better; target: at most half the baseline's)
 *   dispatch.blood.identicalShare  share of units to known-type recipients that are of their very type (higher is better)
 *   dispatch.blood.eta.mean        seconds from bank to hospital per request served, its slower leg (target: at most
 *                                  10 % above the baseline's)
 *   dispatch.blood.unitsAllocated  units allocated over the day (the policy must not serve fewer)
 *
 *   node dist/bench/dispatch-blood.js [--quick] [--seed 42] [--requests N]
 */
import { allocateBlood, type BloodNeed } from '../dispatch/blood-allocation.js';
import { SiteIndex } from '../engine/site-index.js';
import { generateScenario, type RequestFixture, type Scenario } from '../fixtures/city-scenario.js';
import { costRatio, parseArgs, rateRatio, report } from './bench-report.js';

const args = parseArgs(process.argv.slice(2));
const quick = args.has('quick');
const seed = Number(args.get('seed') ?? 42);
// the day of dispatch-day.ts: 8 % of requests are blood orders
const requestCount = Number(args.get('requests') ?? (quick ? 6_000 : 30_000));
// the city of dispatch-day.ts: its sites (banks and hospitals among them) scale with the fleet
const courierCount = Number(args.get('couriers') ?? (quick ? 1_000 : 5_000));

interface BloodDay {
  requests: number;
  served: number;
  units: number;
  oNegToOthers: number;
  knownUnits: number;
  identical: number;
  etaSum: number;
}

function main(): void {
  const scenario = generateScenario({ seed, couriers: courierCount, requests: requestCount });
  const blood = scenario.requests.filter((r) => r.kind === 'blood').sort((a, b) => a.createdAt - b.createdAt);
  process.stderr.write(`dispatch blood: seed ${seed}, ${blood.length} blood requests, ${scenario.sites.filter((s) => s.kind === 'blood_bank').length} banks\n`);
  const nearest = day(scenario, blood, 'nearest');
  const typed = day(scenario, blood, 'typed');
  const common = { n: blood.length, baseline: 'nearest-bank allocation' };
  report({ bench: 'dispatch.blood.oNegToOthers', ...common, value: typed.oNegToOthers, unit: 'units', baselineValue: nearest.oNegToOthers, ratio: costRatio(Math.max(typed.oNegToOthers, 1), Math.max(nearest.oNegToOthers, 1)) });
  report({ bench: 'dispatch.blood.identicalShare', ...common, value: typed.identical / typed.knownUnits, unit: 'share', baselineValue: nearest.identical / nearest.knownUnits, ratio: rateRatio(typed.identical / typed.knownUnits, nearest.identical / nearest.knownUnits) });
  report({ bench: 'dispatch.blood.eta.mean', ...common, value: typed.etaSum / typed.served, unit: 's', baselineValue: nearest.etaSum / nearest.served, ratio: costRatio(typed.etaSum / typed.served, nearest.etaSum / nearest.served) });
  report({ bench: 'dispatch.blood.unitsAllocated', ...common, value: typed.units, unit: 'units', baselineValue: nearest.units, ratio: rateRatio(typed.units, nearest.units) });
}

/** One policy over the day: every blood request in time order against what the earlier ones left. */
function day(scenario: Scenario, requests: readonly RequestFixture[], bankChoice: 'nearest' | 'typed'): BloodDay {
  const sites = new SiteIndex();
  for (const s of scenario.sites) {
    sites.upsert(s.id, s);
    if (s.inventory !== undefined) sites.setInventory(s.id, s.inventory);
  }
  const out: BloodDay = { requests: requests.length, served: 0, units: 0, oNegToOthers: 0, knownUnits: 0, identical: 0, etaSum: 0 };
  for (const r of requests) {
    const b = r.blood!;
    const need: BloodNeed = { requestId: r.id, hospital: r.dropoff!, product: b.product, recipient: b.bloodType, units: b.units, urgency: r.urgency };
    const a = allocateBlood(sites, need, { now: r.createdAt, bankChoice });
    if (a.allocated === 0) continue;
    out.served++;
    out.units += a.allocated;
    out.etaSum += Math.max(...a.sources.map((s) => s.etaSeconds));
    if (b.bloodType === 'unknown') continue;
    for (const lot of a.reservations) {
      out.knownUnits += lot.count;
      if (lot.bloodType === b.bloodType) out.identical += lot.count;
      else if (lot.bloodType === 'O-' && b.product !== 'plasma') out.oNegToOthers += lot.count;
    }
  }
  return out;
}

main();
