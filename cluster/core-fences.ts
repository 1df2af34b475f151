/**
 * Geofences on a cluster core: the core's copy of the fences (its courier index finds crossings as pings land
 * here), followed from the hub, and what becomes of each crossing — a frame on dispatchers' maps and, while some
 * webhook wants it, an event in the outbox (as one process does it, api/fence-outbox.ts).
 *
 *   start ─► the stored fences ─► the index's copy          hub: `fences:changed` {id, fence|null} ─► put / remove
 *   hub: `webhooks:want` {patterns} ─► which crossings the outbox keeps (none until told)
 *   ping applied ─► index.move ─► crossings collected ─► landed(region, lat, lng):
 *        each ─► MovePublisher.fence (the region's map watchers) + FenceOutbox.push (written every second)
 */
import type { EntityWriter } from '../api/entity-routes.js';
import { FenceOutbox } from '../api/fence-outbox.js';
import type { Logger } from '../api/log.js';
import type { FenceEvent } from '../engine/courier-index.js';
import type { GeofenceIndex } from '../engine/geofence-index.js';
import type { Store } from '../store/store.js';
import { type EventFilter, eventFilter } from '../store/webhook-store.js';
import { type Bus, type BusHandler, decodeMessage } from './bus.js';
import { FENCES_CHANGED, WEBHOOKS_WANT } from './hub.js';
import type { MovePublisher } from './move-feed.js';

/** How often buffered crossings are written to the outbox (as pings' positions are written behind). */
const FLUSH_EVERY_MS = 1_000;

export interface CoreFencesOptions {
  bus: Bus;
  store: Store;
  /** The index the core's courier index checks moves against. */
  fences: GeofenceIndex;
  moves: Pick<MovePublisher, 'fence'>;
  logger: Pick<Logger, 'warn'>;
  onError: (err: unknown) => void;
}

export class CoreFences {
  /** Crossings the courier index reported during the move being applied. */
  private readonly pending: FenceEvent[] = [];
  private wanted: EventFilter = { exact: [], prefixes: [] };
  private readonly outbox: FenceOutbox;
  private readonly changed: BusHandler = (_c, payload) => this.fenceChanged(payload);
  private readonly want: BusHandler = (_c, payload) => {
    const patterns = decodeMessage(payload)?.patterns;
    if (Array.isArray(patterns)) this.wanted = eventFilter(patterns.filter((p): p is string => typeof p === 'string'));
  };

  constructor(private readonly options: CoreFencesOptions) {
    const { store } = options;
    // appends only (the journal's queue is one process's way to keep outbox order; the store's lock keeps it here)
    const writer: EntityWriter = {
      write: (run) => {
        const done = run(store);
        return { acknowledged: done, stored: done };
      },
    };
    this.outbox = new FenceOutbox(writer, { flushEveryMs: FLUSH_EVERY_MS, wants: (type) => this.wants(type), logger: options.logger });
  }

  /** Pass as the courier index's `onFenceEvent`. */
  readonly crossed = (e: FenceEvent): void => void this.pending.push(e);

  /** Loads the stored fences and follows the hub's changes. */
  async start(stored: readonly { id: string; kind: string; geometry: unknown }[]): Promise<void> {
    for (const f of stored) this.put(f.id, f.kind, f.geometry);
    await this.options.bus.subscribe(FENCES_CHANGED, this.changed);
    await this.options.bus.subscribe(WEBHOOKS_WANT, this.want);
    this.outbox.start();
  }

  async stop(): Promise<void> {
    await this.options.bus.unsubscribe(FENCES_CHANGED, this.changed).catch(this.options.onError);
    await this.options.bus.unsubscribe(WEBHOOKS_WANT, this.want).catch(this.options.onError);
    await this.outbox.stop();
  }

  /** A ping was applied at (lat, lng) in `region`: the crossings it made go to the maps and the outbox. */
  landed(region: string, lat: number, lng: number): void {
    for (const e of this.pending.splice(0)) {
      this.options.moves.fence(region, { type: e.type, courierId: e.courierId, fenceId: e.fenceId, ts: e.ts }, lat, lng);
      this.outbox.push(e);
    }
  }

  /** A courier was placed without a ping (loaded from the store): what it "crossed" is not news. */
  discard(): void {
    this.pending.length = 0;
  }

  private wants(type: string): boolean {
    return this.wanted.exact.includes(type) || this.wanted.prefixes.some((p) => type.startsWith(p));
  }

  private fenceChanged(payload: Buffer): void {
    const m = decodeMessage(payload);
    if (typeof m?.id !== 'string') return;
    const fence = m.fence as { kind?: unknown; geometry?: unknown } | null | undefined;
    if (fence === null || fence === undefined) this.options.fences.remove(m.id);
    else if (typeof fence.kind === 'string') this.put(m.id, fence.kind, fence.geometry);
  }

  private put(id: string, kind: string, geometry: unknown): void {
    try {
      this.options.fences.put(id, { kind, geometry: geometry as never });
    } catch (err) {
      this.options.onError(err); // checked when stored: a fence the index refuses here is reported, not fatal
    }
  }
}
