import { describe, expect, it } from 'vitest';
import { Prng } from '../fixtures/prng.js';
import { KeyFilter } from './key-filter.js';

const HOUR = 3_600_000;

describe('KeyFilter', () => {
  it('never says "not there" for a key added within the span, and rarely "maybe" for one never added', () => {
    let now = 0;
    const f = new KeyFilter(24 * HOUR, () => now);
    const rng = new Prng(5);
    const added: string[] = [];
    for (let i = 0; i < 50_000; i++) {
      const key = `requester:${rng.int(1000)}\u0000${rng.int(1e9).toString(36)}-${i}`;
      f.add(key);
      added.push(key);
      now += 1000; // 50,000 s: under one span
    }
    expect(added.every((k) => f.mayHave(k))).toBe(true);
    let maybes = 0;
    for (let i = 0; i < 20_000; i++) if (f.mayHave(`requester:${i}\u0000never-${i}`)) maybes++;
    expect(maybes / 20_000).toBeLessThan(0.01);
  });

  it('keeps a key for at least one span across a rotation, and forgets it after two', () => {
    let now = 0;
    const f = new KeyFilter(HOUR, () => now);
    const keys = Array.from({ length: 1000 }, (_, i) => `p\u0000k${i}`);
    now = 0.9 * HOUR;
    for (const k of keys) f.add(k);
    now = 1.5 * HOUR; // rotated once: the keys sit in the previous generation
    expect(keys.every((k) => f.mayHave(k))).toBe(true);
    now = 1.85 * HOUR; // still within a span of their adding
    expect(keys.every((k) => f.mayHave(k))).toBe(true);
    now = 2.6 * HOUR; // rotated again: gone
    expect(keys.filter((k) => f.mayHave(k)).length).toBe(0);
  });

  it('drops both generations after a whole idle span', () => {
    let now = 0;
    const f = new KeyFilter(HOUR, () => now);
    f.add('p\u0000old');
    now = 0.5 * HOUR;
    expect(f.mayHave('p\u0000old')).toBe(true);
    now = 2.2 * HOUR; // nothing asked since: the key is more than a span old
    expect(f.mayHave('p\u0000old')).toBe(false);
  });
});
