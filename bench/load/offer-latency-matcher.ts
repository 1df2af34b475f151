/**
 * Request → offer matching for the offer-latency bench. A request is known by its send index until the
 * server's 201 names its id; the offer frame and the 201 race each other (both follow the same store commit),
 * so an offer for an id not yet known waits in a buffer until its 201 arrives.
 *
 *   sent(i, scheduledAt, label) ─► acknowledged(i, id) | failed(i, reason) ─┐
 *   offered(id, at) ────────────────────────────────────────────────────────┴─► first offer per request:
 *                                                                                latency = at − scheduledAt
 *   outcome(timeoutMs) ─► per label: sorted latencies of the offered, and the rest by what became of them
 *
 * Latency runs from the *scheduled* send time, not the moment the client got round to sending, so a client or
 * server stall is charged to every request it delayed (no coordinated omission); and percentiles count the
 * requests with no offer in time as slower than the timeout instead of leaving them out (censoredPercentiles),
 * so an overloaded server cannot look fast by answering few. Pure: the caller passes the times.
 */

/** Latencies of one label's requests and what became of them. */
export interface OfferOutcome {
  sent: number;
  /** Requests the server acknowledged (2xx). */
  acknowledged: number;
  /** Acknowledged requests whose first offer arrived within the timeout. */
  offered: number;
  /** Acknowledged requests with no offer within the timeout (late offers included). */
  notOffered: number;
  /** Requests with no answer yet (neither acknowledged nor failed) when the outcome was taken. */
  unanswered: number;
  /** Requests answered with an error (non-2xx, network error). */
  failed: number;
  /** Scheduled send → first offer (ms) of the offered ones, ascending. */
  latencies: Float64Array;
}

/** What the whole run's matching saw. */
export interface MatchOutcome {
  byLabel: Map<string, OfferOutcome>;
  /** Requests whose POST failed (non-2xx or network error), by reason, over every label. */
  failures: Map<string, number>;
  /** Offers for ids no acknowledged request had (e.g. a create whose 201 the client never read). */
  unmatchedOffers: number;
  /** Offers after the first for the same request (a re-offer after a decline or expiry). */
  repeatOffers: number;
}

/** Percentiles of a sorted latency sample (nearest rank); NaN when empty. */
export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Matches offers to the requests a run sent, by the request id in the offer frame. */
export class OfferMatcher {
  private readonly scheduledAt: Float64Array;
  private readonly offerAt: Float64Array;
  private readonly labels: string[];
  /** Per request: 0 no answer yet, 1 acknowledged, 2 failed. */
  private readonly answer: Uint8Array;
  private readonly indexOf = new Map<string, number>();
  /** First arrival of offers whose request's 201 has not been read yet. */
  private readonly early = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  private repeats = 0;
  private count = 0;

  /** @param capacity the most requests the run will send */
  constructor(readonly capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 0)) throw new Error(`capacity must be a non-negative integer, got ${capacity}`);
    this.scheduledAt = new Float64Array(capacity);
    this.offerAt = new Float64Array(capacity).fill(NaN);
    this.labels = new Array<string>(capacity);
    this.answer = new Uint8Array(capacity);
  }

  /** Request `i` was due at `scheduledAt` (ms, same clock as offers); `label` groups it in the outcome. */
  sent(i: number, scheduledAt: number, label: string): void {
    this.checkIndex(i);
    this.scheduledAt[i] = scheduledAt;
    this.labels[i] = label;
    if (i >= this.count) this.count = i + 1;
  }

  /** The server created request `i` as `id`; an offer that came first is matched now. */
  acknowledged(i: number, id: string): void {
    this.checkIndex(i);
    if (this.labels[i] === undefined) throw new Error(`request ${i} was acknowledged before sent(): call sent(i, …) first`);
    this.answer[i] = ACKED;
    this.indexOf.set(id, i);
    const at = this.early.get(id);
    if (at !== undefined) {
      this.early.delete(id);
      this.offerAt[i] = at;
    }
  }

  /** Request `i` failed (`reason`: "HTTP 503", "ECONNRESET", …). */
  failed(i: number, reason: string): void {
    this.checkIndex(i);
    this.answer[i] = FAILED;
    this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1);
  }

  /** An offer for request `id` arrived at `at`; only the first one per request counts. */
  offered(id: string, at: number): void {
    const i = this.indexOf.get(id);
    if (i === undefined) {
      if (this.early.has(id)) this.repeats++;
      else this.early.set(id, at);
      return;
    }
    if (Number.isNaN(this.offerAt[i])) this.offerAt[i] = at;
    else this.repeats++;
  }

  /** Acknowledged requests still waiting for their first offer. */
  get waiting(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) if (this.answer[i] === ACKED && Number.isNaN(this.offerAt[i])) n++;
    return n;
  }

  /** Requests acknowledged so far. */
  get acknowledgedCount(): number {
    return this.indexOf.size;
  }

  /** The outcome per label; an offer later than `timeoutMs` after its scheduled send counts as not offered. */
  outcome(timeoutMs: number): MatchOutcome {
    const samples = new Map<string, number[]>();
    const byLabel = new Map<string, OfferOutcome>();
    for (let i = 0; i < this.count; i++) {
      const label = this.labels[i];
      if (label === undefined) continue; // an index never sent
      let o = byLabel.get(label);
      if (o === undefined) {
        o = emptyOutcome();
        byLabel.set(label, o);
        samples.set(label, []);
      }
      o.sent++;
      if (this.answer[i] === FAILED) o.failed++;
      if (this.answer[i] === NONE) o.unanswered++;
      if (this.answer[i] !== ACKED) continue;
      o.acknowledged++;
      const ms = this.offerAt[i] - this.scheduledAt[i];
      if (ms <= timeoutMs) {
        o.offered++;
        samples.get(label)!.push(ms);
      } else o.notOffered++; // NaN (never offered) compares false too
    }
    for (const [label, o] of byLabel) o.latencies = Float64Array.from(samples.get(label)!).sort();
    return { byLabel, failures: new Map(this.failures), unmatchedOffers: this.early.size, repeatOffers: this.repeats };
  }

  private checkIndex(i: number): void {
    if (!(Number.isInteger(i) && i >= 0 && i < this.capacity)) throw new Error(`request index ${i} is outside 0..${this.capacity - 1}: size the matcher for the whole run`);
  }
}

/** An outcome with nothing in it. */
export function emptyOutcome(): OfferOutcome {
  return { sent: 0, acknowledged: 0, offered: 0, notOffered: 0, unanswered: 0, failed: 0, latencies: new Float64Array(0) };
}

/** Merges the outcomes of several labels into one (e.g. every urgency of a greedy run). */
export function mergeOutcomes(outcomes: Iterable<OfferOutcome>): OfferOutcome {
  const all: number[] = [];
  const m = emptyOutcome();
  for (const o of outcomes) {
    m.sent += o.sent;
    m.acknowledged += o.acknowledged;
    m.offered += o.offered;
    m.notOffered += o.notOffered;
    m.unanswered += o.unanswered;
    m.failed += o.failed;
    for (const v of o.latencies) all.push(v);
  }
  m.latencies = Float64Array.from(all).sort();
  return m;
}

/** p50 / p90 / p99 / max of an ascending sample. */
export function percentiles(sorted: Float64Array): Percentiles {
  return censoredPercentiles(sorted, 0);
}

/**
 * p50 / p90 / p99 / max by nearest rank over `sorted` plus `missing` requests known only to be slower than
 * any of them (no offer within the timeout): a rank among the missing answers Infinity. `count` is the total.
 */
export function censoredPercentiles(sorted: Float64Array, missing: number): Percentiles {
  if (!(Number.isInteger(missing) && missing >= 0)) throw new Error(`missing must be a non-negative integer, got ${missing}`);
  const n = sorted.length + missing;
  const at = (q: number): number => {
    if (n === 0) return NaN;
    const rank = Math.min(n, Math.max(1, Math.ceil(q * n)));
    return rank > sorted.length ? Infinity : sorted[rank - 1];
  };
  return { count: n, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: n === 0 ? NaN : missing > 0 ? Infinity : sorted[sorted.length - 1] };
}

const NONE = 0;
const ACKED = 1;
const FAILED = 2;
