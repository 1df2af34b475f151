import { cellToChildren, cellToParent, latLngToCell } from 'h3-js';
import { describe, expect, it } from 'vitest';
import { CellSpeeds, type CellSpeedsJSON } from './cell-speeds.js';
import { seededRandom } from '../fixtures/prng.js';


const CELL = latLngToCell(51.5074, -0.1278, 7); // central London
const OTHER = latLngToCell(48.8566, 2.3522, 7); // Paris

describe('CellSpeeds', () => {
  it('seeds with the first sample and then follows the EWMA exactly', () => {
    const s = new CellSpeeds({ alpha: 0.5 });
    expect(s.observe(CELL, 100, 10_000)).toBe(true); // 10 m/s
    expect(s.speedOf(CELL)).toEqual({ metersPerSecond: 10, samples: 1 });
    expect(s.observe(CELL, 200, 10_000)).toBe(true); // 20 m/s → 10 + 0.5·(20 − 10) = 15
    expect(s.speedOf(CELL)).toEqual({ metersPerSecond: 15, samples: 2 });
    expect(s.observe(CELL, 50, 10_000)).toBe(true); // 5 m/s → 15 + 0.5·(5 − 15) = 10
    expect(s.observe(CELL, 130, 10_000)).toBe(true); // 13 m/s → 10 + 0.5·(13 − 10) = 11.5
    expect(s.speedOf(CELL)).toEqual({ metersPerSecond: 11.5, samples: 4 });
  });

  it('uses alpha 0.1 by default', () => {
    const s = new CellSpeeds();
    s.observe(CELL, 100, 10_000); // 10
    s.observe(CELL, 300, 10_000); // 30 → 10 + 0.1·20 = 12
    expect(s.speedOf(CELL)!.metersPerSecond).toBeCloseTo(12, 12);
    expect(s.options).toEqual({ resolution: 7, alpha: 0.1, minSpeed: 0.5, maxSpeed: 50, minIntervalMs: 1000, maxIntervalMs: 120_000 });
  });

  it('rejects parked, noisy, too-short, too-long and non-numeric samples without changing the estimate', () => {
    const s = new CellSpeeds();
    s.observe(CELL, 100, 10_000);
    const before = s.speedOf(CELL);
    const rejected: [number, number][] = [
      [4, 10_000], // 0.4 m/s: parked
      [0, 10_000],
      [600, 10_000], // 60 m/s: GPS noise
      [5, 999], // interval too short
      [6000, 120_001], // interval too long
      [Number.NaN, 10_000],
      [100, Number.NaN],
      [-100, 10_000],
      [100, 0],
      [100, -10_000],
      [Number.POSITIVE_INFINITY, 10_000],
    ];
    for (const [m, ms] of rejected) {
      expect(s.observe(CELL, m, ms)).toBe(false);
      expect(s.observe(OTHER, m, ms)).toBe(false);
    }
    expect(s.speedOf(CELL)).toEqual(before);
    expect(s.speedOf(OTHER)).toBeUndefined();
    expect(s.size).toBe(1);
  });

  it('accepts samples exactly at the speed and interval limits', () => {
    const s = new CellSpeeds();
    expect(s.observe(CELL, 5, 10_000)).toBe(true); // 0.5 m/s
    expect(s.observe(CELL, 500, 10_000)).toBe(true); // 50 m/s
    expect(s.observe(CELL, 10, 1000)).toBe(true);
    expect(s.observe(CELL, 1200, 120_000)).toBe(true);
    expect(s.speedOf(CELL)!.samples).toBe(4);
  });

  it('folds a finer cell into its resolution-7 parent', () => {
    const s = new CellSpeeds({ alpha: 0.5 });
    const fine = latLngToCell(51.5074, -0.1278, 10);
    expect(cellToParent(fine, 7)).toBe(CELL);
    expect(s.observe(fine, 100, 10_000)).toBe(true);
    expect(s.observe(CELL, 200, 10_000)).toBe(true);
    const child = cellToChildren(CELL, 9)[3];
    expect(s.observe(child, 300, 10_000)).toBe(true); // 15 + 0.5·(30 − 15)
    expect(s.size).toBe(1);
    expect([...s.entries()]).toEqual([[CELL, { metersPerSecond: 22.5, samples: 3 }]]);
    expect(s.speedOf(fine)).toEqual({ metersPerSecond: 22.5, samples: 3 });
  });

  it('throws for a string that is not a cell at resolution 7 or finer', () => {
    const s = new CellSpeeds();
    expect(() => s.observe('not-a-cell', 100, 10_000)).toThrow(/latLngToCell/);
    expect(() => s.observe(cellToParent(CELL, 5), 100, 10_000)).toThrow(/resolution 7 or finer/);
    expect(s.size).toBe(0);
    expect(s.speedOf('not-a-cell')).toBeUndefined();
    expect(s.speedOf(cellToParent(CELL, 5))).toBeUndefined();
  });

  it('speedAt matches speedOf of the resolution-7 cell at random points', () => {
    const s = new CellSpeeds();
    const rnd = seededRandom(7);
    const points: [number, number][] = [];
    for (let i = 0; i < 400; i++) {
      const lat = 51.3 + rnd() * 0.4;
      const lng = -0.4 + rnd() * 0.6;
      points.push([lat, lng]);
      s.observe(latLngToCell(lat, lng, 7), 20 + rnd() * 200, 10_000);
    }
    expect(s.size).toBeGreaterThan(20);
    for (const [lat, lng] of points) {
      const at = s.speedAt(lat, lng);
      expect(at).toBeDefined();
      expect(at).toEqual(s.speedOf(latLngToCell(lat, lng, 7)));
    }
    expect(s.speedAt(0, 0)).toBeUndefined();
    expect(() => s.speedAt(91, 0)).toThrow(expect.objectContaining({ code: 'E_BAD_COORDINATE' }));
  });

  it('round-trips through JSON', () => {
    const s = new CellSpeeds({ alpha: 0.2, maxSpeed: 40 });
    const rnd = seededRandom(11);
    for (let i = 0; i < 500; i++) s.observe(latLngToCell(51.3 + rnd() * 0.4, -0.4 + rnd() * 0.6, 7), rnd() * 400, 10_000);
    const json = JSON.parse(JSON.stringify(s)) as CellSpeedsJSON;
    const back = CellSpeeds.fromJSON(json);
    expect(back.options).toEqual(s.options);
    expect(back.size).toBe(s.size);
    expect([...back.entries()]).toEqual([...s.entries()]);
    // the restored estimator keeps learning the same way
    s.observe(CELL, 100, 10_000);
    back.observe(CELL, 100, 10_000);
    expect(back.speedOf(CELL)).toEqual(s.speedOf(CELL));
    expect(CellSpeeds.fromJSON(json, { alpha: 0.3 }).options.alpha).toBe(0.3);
  });

  it('rejects a malformed snapshot with E_BAD_SNAPSHOT', () => {
    const good = new CellSpeeds();
    good.observe(CELL, 100, 10_000);
    const json = good.toJSON();
    const bad: unknown[] = [
      null,
      { ...json, v: 2 },
      { ...json, cells: [['nope', 1, 1]] },
      { ...json, cells: [[cellToParent(CELL, 6), 1, 1]] },
      { ...json, cells: [[CELL, -1, 1]] },
      { ...json, cells: [[CELL, 1, 0]] },
      { ...json, cells: [[CELL, 1, 1], [CELL, 2, 2]] },
      { ...json, options: { ...json.options, alpha: 2 } },
    ];
    for (const b of bad) {
      expect(() => CellSpeeds.fromJSON(b as CellSpeedsJSON)).toThrow(expect.objectContaining({ code: 'E_BAD_SNAPSHOT' }));
    }
    expect(() => CellSpeeds.fromJSON(json, { resolution: 8 })).toThrow(expect.objectContaining({ code: 'E_BAD_SNAPSHOT' }));
  });

  it('rejects nonsense options with a message naming the fix', () => {
    expect(() => new CellSpeeds({ alpha: 0 })).toThrow(/alpha must be in \(0, 1\]/);
    expect(() => new CellSpeeds({ resolution: 16 })).toThrow(/resolution/);
    expect(() => new CellSpeeds({ minSpeed: 10, maxSpeed: 5 })).toThrow(/minSpeed < maxSpeed/);
    expect(() => new CellSpeeds({ minIntervalMs: 0 })).toThrow(/minIntervalMs/);
  });

  it('grows past its initial capacity without losing estimates', () => {
    const s = new CellSpeeds({ resolution: 9 });
    const cells = cellToChildren(CELL, 9); // 49 cells
    const more = cellToChildren(OTHER, 9);
    const all = [...cells, ...more];
    all.forEach((c, i) => expect(s.observe(c, 5 * (i + 1), 10_000)).toBe(true));
    expect(s.size).toBe(all.length);
    expect(s.resolution).toBe(9);
    all.forEach((c, i) => expect(s.speedOf(c)).toEqual({ metersPerSecond: (i + 1) / 2, samples: 1 }));
  });
});
