/**
 * One contract over every Bus: LocalBus (one process) and RedisBus (two edges and a core on the machine's Redis,
 * each with connections of its own).
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bus, type BusHandler, LocalBus } from './bus.js';
import { RedisBus } from './redis-bus.js';
import { connectTestRedis } from './test-redis.js';

interface Topology {
  /** The core's bus (publishes) and two edges' (subscribe); the same object for the local bus. */
  core: Bus;
  edges: [Bus, Bus];
  errors: unknown[];
  done(): Promise<void>;
}

let redis: Redis;
let base: string;
let cleanup: () => Promise<void>;
let run = 0;
beforeAll(async () => ({ redis, prefix: base, cleanup } = await connectTestRedis()));
afterAll(async () => cleanup());

const implementations: { name: string; make(): Topology }[] = [
  {
    name: 'local',
    make() {
      const errors: unknown[] = [];
      const bus = new LocalBus((e) => errors.push(e));
      return { core: bus, edges: [bus, bus], errors, done: () => bus.close() };
    },
  },
  {
    name: 'redis',
    make() {
      const errors: unknown[] = [];
      const prefix = `${base}${++run}:`;
      const conns = [redis.duplicate(), redis.duplicate(), redis.duplicate()];
      const [core, a, b] = conns.map((c) => new RedisBus(c, { prefix, onError: (e) => errors.push(e) }));
      return {
        core,
        edges: [a, b],
        errors,
        done: async () => {
          for (const bus of [core, a, b]) await bus.close();
          for (const c of conns) c.disconnect();
        },
      };
    },
  },
];

/** A handler that records what it got, and a wait for a count of messages. */
function recorder(): { handler: BusHandler; got: string[]; until(n: number): Promise<void> } {
  const got: string[] = [];
  return {
    handler: (channel, payload) => got.push(`${channel}=${payload.toString('hex')}`),
    got,
    async until(n) {
      for (let i = 0; i < 200 && got.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    },
  };
}

const msg = (s: string): Buffer => Buffer.from(s);
const hex = (s: string): string => Buffer.from(s).toString('hex');

describe.each(implementations)('the $name bus', (impl) => {
  let t: Topology;
  beforeAll(() => void (t = impl.make()));
  afterAll(async () => t.done());

  it('delivers a message to every subscriber of its channel and to no other channel, bytes intact', async () => {
    const [onA, onB, other] = [recorder(), recorder(), recorder()];
    await t.edges[0].subscribe('driver:c1', onA.handler);
    await t.edges[1].subscribe('driver:c1', onB.handler);
    await t.edges[1].subscribe('driver:c2', other.handler);
    const binary = Buffer.from([0, 255, 10, 0, 13]);
    await t.core.publish('driver:c1', binary);
    await t.core.publish('driver:c3', msg('nobody'));
    await t.core.publish('driver:c2', msg('sentinel')); // after the others on the same link: its arrival bounds theirs
    await Promise.all([onA.until(1), onB.until(1), other.until(1)]);
    expect(onA.got).toEqual([`driver:c1=${binary.toString('hex')}`]);
    expect(onB.got).toEqual([`driver:c1=${binary.toString('hex')}`]);
    expect(other.got).toEqual([`driver:c2=${hex('sentinel')}`]);
  });

  it('keeps publish order within a channel', async () => {
    const r = recorder();
    await t.edges[0].subscribe('region:r1', r.handler);
    for (let i = 0; i < 200; i++) void t.core.publish('region:r1', msg(String(i)));
    await r.until(200);
    expect(r.got).toEqual(Array.from({ length: 200 }, (_, i) => `region:r1=${hex(String(i))}`));
  });

  it('counts handlers per channel: the channel stays subscribed until its last handler leaves', async () => {
    const [first, second, probe] = [recorder(), recorder(), recorder()];
    const edge = t.edges[0];
    await edge.subscribe('request:q1', first.handler);
    await edge.subscribe('request:q1', second.handler);
    await edge.subscribe('request:probe', probe.handler);
    await edge.unsubscribe('request:q1', first.handler);
    await t.core.publish('request:q1', msg('one'));
    await second.until(1);
    expect(second.got).toEqual([`request:q1=${hex('one')}`]);
    expect(edge.channels()).toContain('request:q1');
    await edge.unsubscribe('request:q1', second.handler);
    expect(edge.channels()).not.toContain('request:q1');
    await t.core.publish('request:q1', msg('two'));
    await t.core.publish('request:probe', msg('after'));
    await probe.until(1);
    expect(first.got).toEqual([]);
    expect(second.got).toHaveLength(1);
    // removing a handler that is not there changes nothing
    await edge.unsubscribe('request:q1', second.handler);
  });

  it('goes on delivering to the other handlers when one throws, and reports the error', async () => {
    const good = recorder();
    await t.edges[1].subscribe('driver:c9', () => {
      throw new Error('a broken socket writer');
    });
    await t.edges[1].subscribe('driver:c9', good.handler);
    await t.core.publish('driver:c9', msg('x'));
    await good.until(1);
    expect(good.got).toHaveLength(1);
    expect(t.errors.map((e) => (e as Error).message)).toContain('a broken socket writer');
  });
});

describe('the redis bus between clusters', () => {
  it('keeps two clusters on one Redis apart by prefix', async () => {
    const [c1, c2] = [redis.duplicate(), redis.duplicate()];
    const one = new RedisBus(c1, { prefix: `${base}x1:` });
    const two = new RedisBus(c2, { prefix: `${base}x2:` });
    try {
      const [r1, r2] = [recorder(), recorder()];
      await one.subscribe('driver:c1', r1.handler);
      await two.subscribe('driver:c1', r2.handler);
      await one.publish('driver:c1', msg('for one'));
      await two.publish('driver:c1', msg('for two'));
      await Promise.all([r1.until(1), r2.until(1)]);
      await new Promise((r) => setTimeout(r, 50));
      expect(r1.got).toEqual([`driver:c1=${hex('for one')}`]);
      expect(r2.got).toEqual([`driver:c1=${hex('for two')}`]);
    } finally {
      await one.close();
      await two.close();
      c1.disconnect();
      c2.disconnect();
    }
  });
});
