import { describe, expect, it } from 'vitest';
import type { MoveStream } from '../../fixtures/move-stream.js';
import { decodeMsgpack, encodeJsonBatch, encodeJsonSingle, encodeMsgpackBatch, PingCursor, type PingItem, splitByCourier } from './ping-frames.js';

const stream: MoveStream = {
  index: Int32Array.from([0, 1, 0]),
  lat: Float64Array.from([51.5, 48.8566, 51.5000004]),
  lng: Float64Array.from([-0.12, 2.3522, -0.1200004]),
  ts: Float64Array.from([1000, 2000, 3000]),
};
const ids = ['c0', 'c1'];

describe('PingCursor', () => {
  it('hands out the stream in order as gateway items, with the ts shift applied', () => {
    const c = new PingCursor(stream, ids, 5);
    expect(c.take(2)).toEqual([
      ['c0', 51.5, -0.12, 1005],
      ['c1', 48.8566, 2.3522, 2005],
    ]);
    expect(c.taken).toBe(2);
  });

  it('cycles the pool with later timestamps so each courier still moves forward in time', () => {
    const c = new PingCursor(stream, ids);
    const items = c.take(4);
    // span = 3000 - 1000 + 1000: the second pass starts after the first one ends
    expect(items[3]).toEqual(['c0', 51.5, -0.12, 4000]);
    expect(items[3][3]).toBeGreaterThan(items[2][3]);
    expect(c.taken).toBe(4);
  });

  it('never stamps a ping past the clock, and each courier\'s timestamps still never go back', () => {
    let now = 2500;
    const c = new PingCursor(stream, ids, 0, () => now);
    const seen = new Map<string, number>();
    for (let round = 0; round < 8; round++) {
      for (const [id, , , ts] of c.take(2)) {
        expect(ts).toBeLessThanOrEqual(now);
        expect(ts).toBeGreaterThanOrEqual(seen.get(id) ?? -Infinity);
        seen.set(id, ts);
      }
      now += round % 2 === 0 ? 0 : 700; // a fast replay: several batches within one clock tick
    }
    expect(c.taken).toBe(16);
    expect(seen.get('c0')).toBe(now - 700); // capped: the shifted timestamps ran far ahead by then
  });

  it('reuses the caller\'s item arrays', () => {
    const c = new PingCursor(stream, ids);
    const out: PingItem[] = [];
    const first = c.take(1, out)[0];
    c.take(1, out);
    expect(out[0]).toBe(first);
    expect(out[0]).toEqual(['c1', 48.8566, 2.3522, 2000]);
  });
});

describe('splitByCourier', () => {
  it('gives each courier to exactly one part, keeping every ping and its order', () => {
    const big: MoveStream = {
      index: Int32Array.from([0, 1, 2, 0, 3, 1, 2, 0]),
      lat: Float64Array.from([0, 1, 2, 3, 4, 5, 6, 7]),
      lng: Float64Array.from([0, 1, 2, 3, 4, 5, 6, 7]),
      ts: Float64Array.from([10, 11, 12, 13, 14, 15, 16, 17]),
    };
    const parts = splitByCourier(big, 2);
    expect(parts.map((p) => Array.from(p.index))).toEqual([[0, 2, 0, 2, 0], [1, 3, 1]]);
    expect(Array.from(parts[0].ts)).toEqual([10, 12, 13, 16, 17]);
    expect(parts.reduce((n, p) => n + p.index.length, 0)).toBe(big.index.length);
    expect(splitByCourier(big, 8)).toHaveLength(4); // parts with no courier are dropped
    expect(() => splitByCourier(big, 0)).toThrow();
  });
});

describe('frames', () => {
  const items: PingItem[] = [
    ['c0', 51.5000004, -0.1200004, 1000],
    ['c1', 48.8566, 2.3522, 2000],
  ];

  it('encodes a MessagePack batch as a plain map of t and items', () => {
    expect(decodeMsgpack(encodeMsgpackBatch(items))).toEqual({ t: 'locs', items });
  });

  it('encodes a JSON batch with coordinates rounded to 6 decimals', () => {
    expect(JSON.parse(encodeJsonBatch(items))).toEqual({ t: 'locs', items: [['c0', 51.5, -0.12, 1000], ['c1', 48.8566, 2.3522, 2000]] });
    expect(JSON.parse(encodeJsonBatch([]))).toEqual({ t: 'locs', items: [] });
  });

  it('encodes a driver ping without the id', () => {
    expect(JSON.parse(encodeJsonSingle(items[1]))).toEqual({ t: 'loc', lat: 48.8566, lng: 2.3522, ts: 2000 });
  });
});
