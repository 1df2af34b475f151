/**
 * An edge's pings into the region streams, many callers to one Redis round trip: pings that arrive in the same
 * turn of the event loop go out as one PingPublisher.publish (one pipeline, one XADD per region), and each
 * caller's promise settles with it — resolved once Redis holds the ping (the gateway's ack, PRODUCT §7), rejected
 * when Redis did not take it (the caller answers 503: nothing was acknowledged that is not in a stream).
 *
 *   driver A loc ─┐
 *   driver B loc ─┼─► open batch ── setImmediate / maxBatch ──► publish ──► every caller's promise settles
 *   gateway locs ─┘
 *
 * Bounded: pings waiting on Redis are counted; past `maxPending` a new ping is refused at once (E_OVERLOADED)
 * instead of queueing behind a Redis that stopped answering.
 */
import { ApiError } from '../api/api-error.js';
import type { PingBatch } from './ping-streams.js';

/** 200,000 pings (~10 MB) waiting on Redis: about a second of a busy edge; beyond it Redis is not keeping up. */
export const MAX_PENDING_PINGS = 200_000;
/** Pings per publish at most: one XADD pipeline of a few hundred kB. */
const MAX_BATCH = 5_000;

interface OpenBatch {
  batch: PingBatch;
  done: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class PingFunnel {
  private open: OpenBatch | undefined;
  private pending = 0;

  constructor(
    private readonly publisher: { publish(batch: PingBatch): Promise<unknown> },
    private readonly maxPending = MAX_PENDING_PINGS,
  ) {}

  /** Pings waiting on Redis now. */
  get waiting(): number {
    return this.pending;
  }

  /** Adds pings (parallel arrays); resolves once Redis holds them, rejects with a 503 ApiError when it does not. */
  add(ids: readonly string[], lat: readonly number[], lng: readonly number[], ts: readonly number[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    if (this.pending + ids.length > this.maxPending) {
      return Promise.reject(new ApiError(503, 'E_OVERLOADED', 'the cluster\'s Redis is not keeping up with pings: nothing was stored; retry shortly'));
    }
    let open = this.open;
    if (open === undefined) open = this.start();
    const b = open.batch;
    for (let i = 0; i < ids.length; i++) {
      b.ids.push(ids[i]);
      b.lat.push(lat[i]);
      b.lng.push(lng[i]);
      b.ts.push(ts[i]);
    }
    this.pending += ids.length;
    if (b.ids.length >= MAX_BATCH) this.send(open);
    return open.done;
  }

  private start(): OpenBatch {
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    // every caller handles the rejection itself; this keeps a batch nobody awaits from being "unhandled"
    done.catch(() => undefined);
    const open: OpenBatch = { batch: { ids: [], lat: [], lng: [], ts: [] }, done, resolve, reject };
    this.open = open;
    setImmediate(() => this.send(open));
    return open;
  }

  private send(open: OpenBatch): void {
    if (this.open !== open) return; // sent already (full)
    this.open = undefined;
    const n = open.batch.ids.length;
    this.publisher.publish(open.batch).then(
      () => {
        this.pending -= n;
        open.resolve();
      },
      (err: unknown) => {
        this.pending -= n;
        open.reject(new ApiError(503, 'E_UNAVAILABLE', `pings are not accepted while the cluster's Redis is unreachable (${err instanceof Error ? err.message : String(err)}): nothing was stored; retry`));
      },
    );
  }
}
