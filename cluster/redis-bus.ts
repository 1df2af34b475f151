/**
 * The fan-out bus over Redis pub/sub: one connection publishes, one (in subscriber mode) listens; channels are
 * prefixed so clusters sharing a Redis never hear each other.
 *
 *   core: publish(driver:c42, frame) ─► PUBLISH gd:bus:driver:c42 ─► Redis ─► every edge SUBSCRIBEd to it
 *   edge: first socket for driver c42 ─► SUBSCRIBE gd:bus:driver:c42; last one gone ─► UNSUBSCRIBE
 *
 * After a reconnect ioredis re-subscribes the channels it held (autoResubscribe); frames published while the
 * link was down are lost, as the Bus contract allows.
 */
import type { Redis } from 'ioredis';
import { type Bus, type BusHandler, HandlerTable } from './bus.js';

export class RedisBus implements Bus {
  private readonly table = new HandlerTable();
  /** SUBSCRIBEs in flight: a second handler of the channel resolves only once the first one's is confirmed. */
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly sub: Redis;
  private readonly prefix: string;

  /** `redis` publishes; a duplicate of it becomes the subscriber connection (closed with the bus). */
  constructor(
    private readonly redis: Redis,
    options: { prefix?: string; onError?: (err: unknown) => void } = {},
  ) {
    this.prefix = `${options.prefix ?? 'gd:'}bus:`;
    const onError = options.onError ?? (() => undefined);
    // the subscriber queues its SUBSCRIBEs until connected, whatever the publisher does (an edge's publisher
    // has no offline queue, so a write while Redis is away fails at once)
    this.sub = redis.duplicate({ enableOfflineQueue: true, lazyConnect: false });
    this.sub.on('messageBuffer', (channel: Buffer, payload: Buffer) => {
      const name = channel.toString();
      if (name.startsWith(this.prefix)) this.table.deliver(name.slice(this.prefix.length), payload, onError);
    });
  }

  async publish(channel: string, payload: Buffer): Promise<void> {
    await this.redis.publish(this.prefix + channel, payload);
  }

  async subscribe(channel: string, handler: BusHandler): Promise<void> {
    if (this.table.add(channel, handler)) {
      const p = this.sub.subscribe(this.prefix + channel).finally(() => this.pending.delete(channel));
      this.pending.set(channel, p);
      await p;
    } else {
      await this.pending.get(channel);
    }
  }

  async unsubscribe(channel: string, handler: BusHandler): Promise<void> {
    if (this.table.remove(channel, handler)) await this.sub.unsubscribe(this.prefix + channel);
  }

  /** True while the subscriber connection is up (messages published now reach this process). */
  listening(): boolean {
    return this.sub.status === 'ready';
  }

  channels(): string[] {
    return this.table.channels();
  }

  async close(): Promise<void> {
    this.table.clear();
    this.sub.disconnect();
  }
}
