/**
 * The fan-out bus between cores and edges (PRODUCT §7): a core publishes an offer, a map delta or a track frame
 * on a channel, and every process subscribed to that channel gets it. Channels are per audience, so an edge
 * subscribes only to what its own sockets watch:
 *
 *   driver:{courierId}   offers and assignment frames for one driver's socket
 *   region:{h3}          map deltas of a region (dispatchers whose box touches it)
 *   request:{id}         track frames for one requester
 *
 * Two implementations behind one contract (`bus.contract.test.ts` runs both): LocalBus in one process
 * (GD_ROLE=all) and RedisBus over Redis pub/sub between machines. Delivery is at most once and in publish order
 * per channel, like Redis pub/sub itself: what these frames carry is also in PostgreSQL or repaired by the
 * next frame, so a frame lost while an edge reconnects costs a refresh, never a transition.
 */
import { unpack } from 'msgpackr';


/** A message's MessagePack payload as an object, or undefined when it is not one (never throws: a bad message is dropped). */
export function decodeMessage(payload: Buffer): Record<string, unknown> | undefined {
  try {
    const v = unpack(payload) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Receives one message of a channel. */
export type BusHandler = (channel: string, payload: Buffer) => void;

export interface Bus {
  /** Sends to every current subscriber of the channel, in any process; resolves once handed to the transport. */
  publish(channel: string, payload: Buffer): Promise<void>;
  /** Adds a handler for the channel; the first handler of a channel subscribes this process to it. */
  subscribe(channel: string, handler: BusHandler): Promise<void>;
  /** Removes a handler; the last one removed unsubscribes this process from the channel. */
  unsubscribe(channel: string, handler: BusHandler): Promise<void>;
  /** Channels this process is subscribed to now. */
  channels(): string[];
  close(): Promise<void>;
}

/** Handlers per channel with reference counting: the part both buses share. */
export class HandlerTable {
  private readonly byChannel = new Map<string, Set<BusHandler>>();

  /** Adds; true when it is the channel's first handler (subscribe the transport). */
  add(channel: string, handler: BusHandler): boolean {
    let set = this.byChannel.get(channel);
    const first = set === undefined;
    if (set === undefined) this.byChannel.set(channel, (set = new Set()));
    set.add(handler);
    return first;
  }

  /** Removes; true when it was the channel's last handler (unsubscribe the transport). */
  remove(channel: string, handler: BusHandler): boolean {
    const set = this.byChannel.get(channel);
    if (set === undefined || !set.delete(handler)) return false;
    if (set.size > 0) return false;
    this.byChannel.delete(channel);
    return true;
  }

  /** Calls every handler of the channel; a throwing handler does not stop the others. */
  deliver(channel: string, payload: Buffer, onError: (err: unknown) => void): void {
    const set = this.byChannel.get(channel);
    if (set === undefined) return;
    for (const h of [...set]) {
      try {
        h(channel, payload);
      } catch (err) {
        onError(err);
      }
    }
  }

  channels(): string[] {
    return [...this.byChannel.keys()];
  }

  clear(): void {
    this.byChannel.clear();
  }
}

/** One process: publish calls the subscribers directly (on a later tick, as a transport would). */
export class LocalBus implements Bus {
  private readonly table = new HandlerTable();
  private closed = false;

  constructor(private readonly onError: (err: unknown) => void = () => undefined) {}

  async publish(channel: string, payload: Buffer): Promise<void> {
    if (this.closed) throw new Error('the bus is closed');
    queueMicrotask(() => this.table.deliver(channel, payload, this.onError));
  }

  async subscribe(channel: string, handler: BusHandler): Promise<void> {
    this.table.add(channel, handler);
  }

  async unsubscribe(channel: string, handler: BusHandler): Promise<void> {
    this.table.remove(channel, handler);
  }

  channels(): string[] {
    return this.table.channels();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.table.clear();
  }
}
