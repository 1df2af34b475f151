import type { Redis } from 'ioredis';
import { pack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PINGS_PER_ENTRY, OWNER_GROUP, type PingBatch, PingConsumer, PingPublisher, pingStreamKey } from './ping-streams.js';
import { regionOf } from './regions.js';
import { connectTestRedis } from './test-redis.js';

// two points ~100 km apart: two regions
const LONDON: [number, number] = [51.5074, -0.1278];
const OXFORD: [number, number] = [51.752, -1.2577];

function frame(prefix: string, n: number, [lat, lng]: [number, number], t0 = 1_000): PingBatch {
  const b: PingBatch = { ids: [], lat: [], lng: [], ts: [] };
  for (let i = 0; i < n; i++) {
    b.ids.push(`${prefix}${i}`);
    b.lat.push(lat + i * 1e-5);
    b.lng.push(lng);
    b.ts.push(t0 + i);
  }
  return b;
}

function concat(a: PingBatch, b: PingBatch): PingBatch {
  return { ids: [...a.ids, ...b.ids], lat: [...a.lat, ...b.lat], lng: [...a.lng, ...b.lng], ts: [...a.ts, ...b.ts] };
}

describe('ping streams on a real Redis', () => {
  let redis: Redis;
  let reader: Redis;
  let base: string;
  let cleanup: () => Promise<void>;
  let run = 0;
  beforeAll(async () => {
    ({ redis, prefix: base, cleanup } = await connectTestRedis());
    reader = redis.duplicate();
  });
  afterAll(async () => {
    reader.disconnect();
    await cleanup();
  });

  const london = regionOf(...LONDON);
  const oxford = regionOf(...OXFORD);

  it('puts each ping in its region\'s stream, and the owner of one region gets exactly that region\'s pings', async () => {
    expect(london).not.toBe(oxford);
    const prefix = `${base}${++run}:`;
    const got: [string, PingBatch][] = [];
    const core = new PingConsumer(reader, (r, b) => got.push([r, b]), { prefix, consumer: 'core-1', blockMs: 50 });
    await core.addRegion(london);
    const edge = new PingPublisher(redis, prefix);
    expect((await edge.publish(concat(frame('l', 3, LONDON), frame('o', 2, OXFORD)))).sort()).toEqual([london, oxford].sort());
    expect((await redis.zrange(`${prefix}regions`, 0, -1)).sort()).toEqual([london, oxford].sort());
    expect(await core.readOnce()).toBe(3);
    expect(got).toEqual([[london, frame('l', 3, LONDON)]]);
    // acknowledged: nothing pending for the group, and a second read finds nothing new
    expect(await redis.xpending(pingStreamKey(prefix, london), OWNER_GROUP)).toEqual([0, null, null, null]);
    expect(await core.readOnce()).toBe(0);
    // the other region's pings wait in their stream for an owner, sent before it came
    await core.addRegion(oxford);
    expect(await core.readOnce()).toBe(2);
    expect(got[1]).toEqual([oxford, frame('o', 2, OXFORD)]);
  });

  it('gives a new owner what the dead owner read but never acknowledged, then what came after', async () => {
    const prefix = `${base}${++run}:`;
    const edge = new PingPublisher(redis, prefix);
    const key = pingStreamKey(prefix, london);
    await new PingConsumer(reader, () => undefined, { prefix, consumer: 'core-1' }).addRegion(london);
    await edge.publish(frame('a', 4, LONDON));
    // core-1 reads the entry and dies before acknowledging it
    await redis.xreadgroup('GROUP', OWNER_GROUP, 'core-1', 'COUNT', 10, 'STREAMS', key, '>');
    expect((await redis.xpending(key, OWNER_GROUP))[0]).toBe(1);
    const got: PingBatch[] = [];
    const next = new PingConsumer(reader, (_r, b) => got.push(b), { prefix, consumer: 'core-2', blockMs: 50 });
    await next.addRegion(london);
    expect(got).toEqual([frame('a', 4, LONDON)]);
    await edge.publish(frame('b', 2, LONDON, 2_000));
    expect(await next.readOnce()).toBe(2);
    expect(got[1]).toEqual(frame('b', 2, LONDON, 2_000));
    expect((await redis.xpending(key, OWNER_GROUP))[0]).toBe(0);
  });

  it('drops and acknowledges a poison entry instead of leaving it to wedge every later owner', async () => {
    const prefix = `${base}${++run}:`;
    const key = pingStreamKey(prefix, london);
    const dropped: string[] = [];
    const got: string[] = [];
    let explode = true;
    const core = new PingConsumer(reader, (_r, b) => {
      if (explode && b.ids[0] === 'boom0') throw new Error('a bug in apply');
      got.push(...b.ids);
    }, { prefix, consumer: 'core-1', blockMs: 50, onDropped: (_r, _id, why) => dropped.push(why) });
    await core.addRegion(london);
    await redis.xadd(key, '*', 'p', Buffer.from([0xc1, 0xff, 0x00])); // not MessagePack
    await redis.xadd(key, '*', 'p', pack([['x'], [1, 2], [1], [1]])); // lengths differ
    await redis.xadd(key, '*', 'p', pack({ ids: ['y'] }));
    await new PingPublisher(redis, prefix).publish(frame('boom', 1, LONDON));
    // a hostile or broken publisher's oversized entries: too many pings, too many bytes; and one with no pings field
    const many = frame('m', MAX_PINGS_PER_ENTRY + 1, LONDON);
    await redis.xadd(key, '*', 'p', pack([many.ids, many.lat, many.lng, many.ts]));
    await redis.xadd(key, '*', 'p', Buffer.alloc(600 * 1024, 0x90));
    await redis.xadd(key, '*', 'q', 'x');
    await new PingPublisher(redis, prefix).publish(frame('ok', 2, LONDON));
    expect(await core.readOnce()).toBe(2);
    expect(got).toEqual(['ok0', 'ok1']);
    expect(dropped).toHaveLength(7);
    expect(dropped[1]).toBe('arrays of different lengths');
    expect(dropped[3]).toMatch(/applying it threw: a bug in apply/);
    expect(dropped.slice(4)).toEqual([`${MAX_PINGS_PER_ENTRY + 1} pings: more than ${MAX_PINGS_PER_ENTRY} in one entry`, `${600 * 1024} bytes: more than ${512 * 1024}`, 'no p field']);
    expect(core.dropped).toBe(7);
    expect((await redis.xpending(key, OWNER_GROUP))[0]).toBe(0);
    // and a new owner taking the region over is not handed any of them again
    explode = false;
    await new PingConsumer(reader, (_r, b) => got.push(...b.ids), { prefix, consumer: 'core-2' }).addRegion(london);
    expect(got).toEqual(['ok0', 'ok1']);
  });

  it('stops reading a region it lost, and reads in the background until stopped', async () => {
    const prefix = `${base}${++run}:`;
    const edge = new PingPublisher(redis, prefix);
    const got: string[] = [];
    const core = new PingConsumer(reader, (_r, b) => got.push(...b.ids), { prefix, consumer: 'core-1', blockMs: 50 });
    await core.addRegion(london);
    await core.addRegion(oxford);
    core.start();
    await edge.publish(concat(frame('l', 2, LONDON), frame('o', 2, OXFORD)));
    for (let i = 0; i < 40 && got.length < 4; i++) await new Promise((r) => setTimeout(r, 25));
    expect(got.sort()).toEqual(['l0', 'l1', 'o0', 'o1']);
    core.removeRegion(oxford);
    await edge.publish(concat(frame('L', 1, LONDON), frame('O', 1, OXFORD)));
    for (let i = 0; i < 40 && got.length < 5; i++) await new Promise((r) => setTimeout(r, 25));
    await core.stop();
    expect(got.sort()).toEqual(['L0', 'l0', 'l1', 'o0', 'o1']);
    expect(await redis.xlen(pingStreamKey(prefix, oxford))).toBe(2);
  });

  it('splits a frame larger than an entry may be, so no entry is refused and every ping arrives in order', async () => {
    const prefix = `${base}${++run}:`;
    const got: string[] = [];
    const core = new PingConsumer(reader, (_r, b) => got.push(...b.ids), { prefix, consumer: 'core-1', blockMs: 50 });
    await core.addRegion(london);
    const big = frame('s', 2 * MAX_PINGS_PER_ENTRY + 7, LONDON);
    big.lat = big.lat.map(() => LONDON[0]); // all in one region
    await new PingPublisher(redis, prefix).publish(big);
    expect(await redis.xlen(pingStreamKey(prefix, london))).toBe(3);
    expect(await core.readOnce()).toBe(big.ids.length);
    expect(got).toEqual(big.ids);
    expect(core.dropped).toBe(0);
  });
});
