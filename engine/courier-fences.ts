/**
 * Which geofences each courier is inside, and the enter / exit events when that changes.
 *
 *   CourierIndex.move ─► update(slot, id, bucket, lat, lng, ts)
 *     │ fences whose bbox touches the bucket (cached on the bucket until the GeofenceIndex version moves)
 *     │ point-in-polygon for those few only ─► sorted ids now inside
 *     └─ diff against the last set ─► exit / enter events to onEvent
 *   CourierIndex.remove ─► leave(slot, id, ts) ─► exit events for every fence it was inside
 */
import type { GeofenceIndex } from './geofence-index.js';
import type { H3Buckets } from './h3-buckets.js';

/** A courier crossed a geofence boundary. */
export interface FenceEvent {
  type: 'enter' | 'exit';
  courierId: string;
  fenceId: string;
  ts: number;
}

/** Fence membership per courier slot; owned by one CourierIndex, sharing its buckets. */
export class CourierFences {
  private readonly fences: GeofenceIndex;
  private readonly cells: H3Buckets;
  private readonly onEvent: ((event: FenceEvent) => void) | undefined;
  private membership = new Map<number, string[]>();

  constructor(fences: GeofenceIndex, cells: H3Buckets, onEvent: ((event: FenceEvent) => void) | undefined) {
    this.fences = fences;
    this.cells = cells;
    this.onEvent = onEvent;
  }

  /** Ids of the fences the courier in this slot is inside, sorted. */
  of(slot: number): readonly string[] {
    return this.membership.get(slot) ?? [];
  }

  /** Recomputes the fences of a courier that now sits in bucket b at (lat, lng); emits the crossings. */
  update(slot: number, id: string, b: number, lat: number, lng: number, ts: number): void {
    const fences = this.fences;
    const cells = this.cells;
    if (cells.fenceVersion[b] !== fences.version) {
      cells.fenceCandidates[b] = fences.candidates(cells.boxOf(b));
      cells.fenceVersion[b] = fences.version;
    }
    const before = this.membership.get(slot);
    const candidates = cells.fenceCandidates[b] as readonly number[];
    if (candidates.length === 0 && before === undefined) return;
    const now: string[] = [];
    for (const no of candidates) if (fences.contains(no, lat, lng)) now.push(fences.idOf(no));
    now.sort();
    if (before !== undefined) {
      for (const f of before) if (!now.includes(f)) this.onEvent?.({ type: 'exit', courierId: id, fenceId: f, ts });
    }
    for (const f of now) if (before === undefined || !before.includes(f)) this.onEvent?.({ type: 'enter', courierId: id, fenceId: f, ts });
    if (now.length === 0) this.membership.delete(slot);
    else this.membership.set(slot, now);
  }

  /** Forgets a removed courier, emitting an exit (at its last ping's ts) for every fence it was inside. */
  leave(slot: number, id: string, ts: number): void {
    const inside = this.membership.get(slot);
    if (inside === undefined) return;
    this.membership.delete(slot);
    for (const fenceId of inside) this.onEvent?.({ type: 'exit', courierId: id, fenceId, ts });
  }
}
