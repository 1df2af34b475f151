/**
 * Requests and plans packed for the trip across a worker boundary: one Float64Array (transferred, not
 * copied) plus one string, instead of thousands of small objects walked by structured clone.
 *
 *   main:   packRequests(requests) ──► { numbers: Float64Array, text } ──transfer──► worker: unpackRequests
 *   worker: packPlan(plan)         ──► { numbers: Float64Array, text } ──transfer──► main:   unpackPlan
 *
 * numbers = [format, count, fixed-stride numeric rows…, string lengths…]; text = every string of the batch
 * (ids, exclusions) concatenated in row order, cut back apart with the lengths (UTF-16 units). Absent
 * optional numbers are NaN; capabilities travel as the engine's capability bit mask, so they come back
 * deduplicated and in CAPABILITIES order. A string crosses postMessage as one flat copy, and the Float64Array's
 * buffer is moved, so the cost is linear in bytes with no per-object work on either side of the clone.
 */
import { capabilitiesOf, capabilityMask } from '../engine/courier-attributes.js';
import type { DispatchPlan, DispatchRequest, PlannedAssignment, RequestKind, UnassignedReason, Urgency } from '../dispatch/dispatch-request.js';
import { REQUEST_KINDS, URGENCIES } from '../dispatch/request-vocabulary.js';

/** A batch of requests or a plan, packed: `numbers.buffer` is transferable, `text` is one flat string. */
export interface Packed {
  numbers: Float64Array<ArrayBuffer>;
  text: string;
}

/** Layout version of both packings; a worker built from older sources refuses a newer batch instead of misreading it. */
export const PACKING_FORMAT = 1;

/** Packs requests into one Float64Array and one string (throws on a kind or urgency the packing cannot name). */
export function packRequests(requests: readonly DispatchRequest[]): Packed {
  const n = requests.length;
  let strings = 0;
  for (const r of requests) strings += 1 + (r.exclude?.length ?? 0);
  const numbers = new Float64Array(HEAD + n * REQUEST_STRIDE + strings);
  numbers[0] = PACKING_FORMAT;
  numbers[1] = n;
  const parts: string[] = [];
  let s = HEAD + n * REQUEST_STRIDE;
  for (let q = 0; q < n; q++) {
    const r = requests[q];
    const o = HEAD + q * REQUEST_STRIDE;
    numbers[o] = codeOf(KINDS, r.kind, 'kind', r.id);
    numbers[o + 1] = codeOf(URGENCIES, r.urgency, 'urgency', r.id);
    numbers[o + 2] = r.createdAt;
    numbers[o + 3] = r.pickup.lat;
    numbers[o + 4] = r.pickup.lng;
    numbers[o + 5] = r.dropoff.lat;
    numbers[o + 6] = r.dropoff.lng;
    numbers[o + 7] = r.readyAt ?? NaN;
    numbers[o + 8] = r.deadline ?? NaN;
    numbers[o + 9] = r.pickupBy ?? NaN;
    numbers[o + 10] = r.load ?? NaN;
    numbers[o + 11] = r.legSpeed ?? NaN;
    numbers[o + 12] = r.capabilities === undefined ? NaN : capabilityMask(r.capabilities);
    numbers[o + 13] = r.exclude === undefined ? NaN : r.exclude.length;
    parts.push(r.id);
    numbers[s++] = r.id.length;
    for (const id of r.exclude ?? []) {
      parts.push(id);
      numbers[s++] = id.length;
    }
  }
  return { numbers, text: parts.join('') };
}

/** Rebuilds the requests packRequests packed; optional fields absent there are absent here. */
export function unpackRequests(packed: Packed): DispatchRequest[] {
  const { numbers, text } = packed;
  const n = checkHead(numbers, 'requests');
  const out: DispatchRequest[] = new Array(n);
  const cut = new StringCutter(numbers, HEAD + n * REQUEST_STRIDE, text);
  for (let q = 0; q < n; q++) {
    const o = HEAD + q * REQUEST_STRIDE;
    const r: DispatchRequest = {
      id: cut.next(),
      kind: KINDS[numbers[o]],
      urgency: URGENCIES[numbers[o + 1]],
      createdAt: numbers[o + 2],
      pickup: { lat: numbers[o + 3], lng: numbers[o + 4] },
      dropoff: { lat: numbers[o + 5], lng: numbers[o + 6] },
    };
    if (!Number.isNaN(numbers[o + 7])) r.readyAt = numbers[o + 7];
    if (!Number.isNaN(numbers[o + 8])) r.deadline = numbers[o + 8];
    if (!Number.isNaN(numbers[o + 9])) r.pickupBy = numbers[o + 9];
    if (!Number.isNaN(numbers[o + 10])) r.load = numbers[o + 10];
    if (!Number.isNaN(numbers[o + 11])) r.legSpeed = numbers[o + 11];
    if (!Number.isNaN(numbers[o + 12])) r.capabilities = capabilitiesOf(numbers[o + 12]);
    const excluded = numbers[o + 13];
    if (!Number.isNaN(excluded)) {
      const exclude: string[] = new Array(excluded);
      for (let e = 0; e < excluded; e++) exclude[e] = cut.next();
      r.exclude = exclude;
    }
    out[q] = r;
  }
  return out;
}

/** Packs a plan: totals in the head, one numeric row per assignment and per unassigned request, ids in text. */
export function packPlan(plan: DispatchPlan): Packed {
  const a = plan.assignments.length;
  const u = plan.unassigned.length;
  const numbers = new Float64Array(PLAN_HEAD + a * ASSIGNMENT_STRIDE + u + 2 * a + u);
  numbers[0] = PACKING_FORMAT;
  numbers[1] = a;
  numbers[2] = u;
  numbers[3] = plan.totalCost;
  numbers[4] = plan.totalPickupEta;
  numbers[5] = plan.solveMs;
  const parts: string[] = [];
  let s = PLAN_HEAD + a * ASSIGNMENT_STRIDE + u;
  for (let i = 0; i < a; i++) {
    const x = plan.assignments[i];
    const o = PLAN_HEAD + i * ASSIGNMENT_STRIDE;
    numbers[o] = x.pickupEta;
    numbers[o + 1] = x.dropoffEta;
    numbers[o + 2] = x.lateness;
    numbers[o + 3] = x.cost;
    parts.push(x.requestId, x.courierId);
    numbers[s++] = x.requestId.length;
    numbers[s++] = x.courierId.length;
  }
  for (let i = 0; i < u; i++) {
    const x = plan.unassigned[i];
    numbers[PLAN_HEAD + a * ASSIGNMENT_STRIDE + i] = codeOf(REASONS, x.reason, 'unassigned reason', x.requestId);
    parts.push(x.requestId);
    numbers[s++] = x.requestId.length;
  }
  return { numbers, text: parts.join('') };
}

/** Rebuilds the plan packPlan packed, field for field. */
export function unpackPlan(packed: Packed): DispatchPlan {
  const { numbers, text } = packed;
  checkHead(numbers, 'plan');
  const a = numbers[1];
  const u = numbers[2];
  const cut = new StringCutter(numbers, PLAN_HEAD + a * ASSIGNMENT_STRIDE + u, text);
  const assignments: PlannedAssignment[] = new Array(a);
  for (let i = 0; i < a; i++) {
    const o = PLAN_HEAD + i * ASSIGNMENT_STRIDE;
    const requestId = cut.next();
    const courierId = cut.next();
    assignments[i] = { requestId, courierId, pickupEta: numbers[o], dropoffEta: numbers[o + 1], lateness: numbers[o + 2], cost: numbers[o + 3] };
  }
  const unassigned: DispatchPlan['unassigned'] = new Array(u);
  for (let i = 0; i < u; i++) unassigned[i] = { requestId: cut.next(), reason: REASONS[numbers[PLAN_HEAD + a * ASSIGNMENT_STRIDE + i]] };
  return { assignments, unassigned, totalCost: numbers[3], totalPickupEta: numbers[4], solveMs: numbers[5] };
}

// Code tables: a value's position is its code, so appending keeps old codes stable.
const KINDS: readonly RequestKind[] = REQUEST_KINDS;
const REASONS: readonly UnassignedReason[] = ['no-courier-in-radius', 'no-feasible-courier', 'outbid', 'deadline-passed'];

const HEAD = 2; // format, request count
const REQUEST_STRIDE = 14; // kind … excludeCount, see packRequests
const PLAN_HEAD = 6; // format, assignments, unassigned, totalCost, totalPickupEta, solveMs
const ASSIGNMENT_STRIDE = 4; // pickupEta, dropoffEta, lateness, cost

function codeOf<T extends string>(table: readonly T[], value: T, what: string, id: string): number {
  const code = table.indexOf(value);
  if (code < 0) throw new Error(`request '${id}': ${what} '${String(value)}' cannot be packed; expected one of ${table.join(', ')}`);
  return code;
}

function checkHead(numbers: Float64Array, what: string): number {
  if (numbers[0] !== PACKING_FORMAT) {
    throw new Error(`packed ${what} have format ${numbers[0]}, this side reads ${PACKING_FORMAT}: rebuild both sides together (npm run build)`);
  }
  return numbers[1];
}

/** Cuts `text` into consecutive strings whose lengths follow one another in `numbers` from `at`. */
class StringCutter {
  private pos = 0;
  constructor(
    private readonly numbers: Float64Array,
    private at: number,
    private readonly text: string,
  ) {}

  next(): string {
    const end = this.pos + this.numbers[this.at++];
    const s = this.text.slice(this.pos, end);
    this.pos = end;
    return s;
  }
}
