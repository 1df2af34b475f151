import { describe, expect, it } from 'vitest';
import { RatePacer } from './rate-pacer.js';

describe('RatePacer', () => {
  it('makes units due in proportion to elapsed time', () => {
    const p = new RatePacer(1000, 0);
    expect(p.due(0)).toBe(0);
    expect(p.due(10)).toBe(10);
    p.take(10);
    expect(p.due(10)).toBe(0);
    expect(p.due(25)).toBe(15);
  });

  it('drops debt beyond the burst allowance instead of bursting to catch up', () => {
    const p = new RatePacer(1000, 0, 50);
    expect(p.due(1000)).toBe(50);
    expect(p.behind).toBe(950);
    p.take(50);
    expect(p.due(1000)).toBe(0);
    expect(p.due(1010)).toBe(10);
    expect(p.sent).toBe(50);
  });

  it('says how long until the next unit is due', () => {
    const p = new RatePacer(100, 0);
    expect(p.waitMs(0)).toBe(10);
    p.take(p.due(10));
    expect(p.waitMs(10)).toBe(10);
    expect(p.waitMs(25)).toBe(0);
  });

  it('treats an infinite rate as always due and refuses a non-positive one', () => {
    expect(new RatePacer(Infinity, 0).due(0)).toBe(Infinity);
    expect(() => new RatePacer(0, 0)).toThrow(/rate must be positive/);
  });
});
