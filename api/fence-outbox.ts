/**
 * Fence crossings into the outbox for webhooks (`fence.enter`, `fence.exit`). They come from position pings,
 * which are written behind, so they are too: buffered (bounded) and written as one statement every
 * POSITION_FLUSH_MS through the journal's queue (which keeps outbox numbering in commit order). Like positions,
 * a crash may lose the last flush interval of them, and a store that is down drops the batch it refused.
 * Crossings are only kept while some webhook subscribes to them: one registered later starts after its
 * registration anyway.
 *
 *   CourierIndex onFenceEvent ─► push (wanted? bounded: oldest dropped) ─► every flushEveryMs ─► journal.write(appendEvents)
 */
import type { FenceEvent } from '../engine/courier-index.js';
import type { EntityWriter } from './entity-routes.js';
import type { Logger } from './log.js';

/** How the fence outbox runs. */
export interface FenceOutboxOptions {
  flushEveryMs: number;
  /** Most crossings held between flushes; beyond it the oldest go (default 10,000). */
  maxBuffered?: number;
  /** True when some webhook subscribes to this event type. */
  wants: (type: string) => boolean;
  logger: Pick<Logger, 'warn'>;
}

/** Buffers fence crossings and writes them to the events table in batches. */
export class FenceOutbox {
  private buffer: FenceEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private droppedCount = 0;
  private readonly max: number;

  constructor(private readonly writer: EntityWriter, private readonly options: FenceOutboxOptions) {
    this.max = options.maxBuffered ?? 10_000;
  }

  /** Takes one crossing (an engine callback: never throws, never waits). */
  readonly push = (e: FenceEvent): void => {
    if (!this.options.wants(`fence.${e.type}`)) return;
    if (this.buffer.length >= this.max) {
      this.buffer.shift();
      this.droppedCount++;
    }
    this.buffer.push(e);
  };

  /** Crossings dropped because the buffer was full or their write failed. */
  get dropped(): number {
    return this.droppedCount;
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.options.flushEveryMs).unref();
  }

  /** Writes what is buffered; resolves once stored or dropped. */
  async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    const batch = this.buffer.map((e) => ({ at: e.ts, type: `fence.${e.type}`, courierId: e.courierId, payload: { fenceId: e.fenceId } }));
    this.buffer = [];
    try {
      await this.writer.write((store) => store.appendEvents(batch), () => undefined).acknowledged;
    } catch (err) {
      this.droppedCount += batch.length;
      this.options.logger.warn({ err, crossings: batch.length }, 'storing fence crossings for webhooks failed; they are dropped (like unflushed positions)');
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
