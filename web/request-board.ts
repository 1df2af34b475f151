/**
 * Requests on the map, the event log and the time-to-offer figure, all from what the watch stream shows.
 *
 *   snapshot / delta request ─► apply(r, now) ─┬─ first seen `pending` ─► pendingSince[id] = now
 *                                              ├─ first `offered`/`assigned` after that ─► time-to-offer sample
 *                                              ├─ status changed ─► event line
 *                                              └─ delivered / cancelled / failed ─► off the map
 *
 * Time to offer is measured in the browser between the frame that first showed the request pending and the
 * frame that first showed it offered, so its resolution is the watch interval (250 ms at 4 Hz); requests
 * first seen already offered give no sample.
 */
import { isTerminal } from '../dispatch/request-vocabulary.js';
import type { FenceCrossing, WatchRequest } from './watch-socket.js';

/** A request on the map, with what the page learnt beside the stream. */
export interface BoardRequest extends WatchRequest {
  urgency?: string;
  /** When this page first saw it (performance.now ms). */
  seenAt: number;
}

/** One line of the recent-events list. */
export interface BoardEvent {
  at: number;
  text: string;
}

/** Samples kept for the p95: the last 500 offers (minutes of a busy city), so the figure follows the present. */
const MAX_SAMPLES = 500;
const MAX_EVENTS = 60;

/** Live requests and the figures derived from them. */
export class RequestBoard {
  readonly requests = new Map<string, BoardRequest>();
  readonly events: BoardEvent[] = [];
  private readonly pendingSince = new Map<string, number>();
  private readonly samples: number[] = [];
  /** Bumped on every change, so layers redraw only when needed. */
  version = 0;

  /** Replaces the set with a snapshot's requests (events only for what changed). */
  reset(list: readonly WatchRequest[], now: number): void {
    const keep = new Set(list.map((r) => r.id));
    for (const id of this.requests.keys()) if (!keep.has(id)) this.requests.delete(id);
    for (const r of list) this.apply(r, now);
    this.version++;
  }

  /** A request's latest state; returns true when it is new to the page. */
  apply(r: WatchRequest, now: number): boolean {
    const old = this.requests.get(r.id);
    if (old === undefined || old.status !== r.status) this.log(now, `${r.kind} ${r.id} ${r.status}${r.courierId ? ` · ${r.courierId}` : ''}`);
    if (r.status === 'pending' && !this.pendingSince.has(r.id)) this.pendingSince.set(r.id, now);
    if (r.status === 'offered' || r.status === 'assigned') {
      const since = this.pendingSince.get(r.id);
      if (since !== undefined) {
        this.samples.push(now - since);
        if (this.samples.length > MAX_SAMPLES) this.samples.shift();
        this.pendingSince.delete(r.id);
      }
    }
    this.version++;
    if (isTerminal(r.status)) {
      this.requests.delete(r.id);
      this.pendingSince.delete(r.id);
      return false;
    }
    this.requests.set(r.id, { ...r, urgency: old?.urgency, seenAt: old?.seenAt ?? now });
    return old === undefined;
  }

  /** Urgency fetched over HTTP (the stream does not carry it). */
  setUrgency(id: string, urgency: string): void {
    const r = this.requests.get(id);
    if (r === undefined) return;
    r.urgency = urgency;
    this.version++;
  }

  /** A fence crossing for the event list. */
  fence(f: FenceCrossing, now: number): void {
    this.log(now, `${f.courierId} ${f.type === 'enter' ? 'entered' : 'left'} ${f.fenceId}`);
  }

  /** A line of its own (connection changes). */
  log(now: number, text: string): void {
    this.events.unshift({ at: now, text });
    if (this.events.length > MAX_EVENTS) this.events.length = MAX_EVENTS;
  }

  /** Open requests per kind. */
  openByKind(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.requests.values()) out[r.kind] = (out[r.kind] ?? 0) + 1;
    return out;
  }

  /** p95 of time-to-offer in ms and the sample count, or undefined before the first offer. */
  timeToOffer(): { p95: number; n: number } | undefined {
    if (this.samples.length === 0) return undefined;
    return { p95: quantile(this.samples, 0.95), n: this.samples.length };
  }
}

/** Nearest-rank quantile of unsorted values. */
export function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
