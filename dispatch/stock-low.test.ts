import { describe, expect, it } from 'vitest';
import { availableByType, stockLowEvents } from './stock-low.js';

describe('stockLowEvents', () => {
  const lots = (units: [string, string, number][]) => availableByType(units.map(([product, bloodType, available]) => ({ product, bloodType, available })));

  it('fires once for each product and type that falls from the level or above to below it', () => {
    const before = lots([['red_cells', 'O+', 4], ['red_cells', 'O+', 2], ['platelets', 'A+', 9], ['red_cells', 'A-', 3]]);
    const after = lots([['red_cells', 'O+', 4], ['platelets', 'A+', 9], ['red_cells', 'A-', 1]]);
    expect(stockLowEvents('b1', before, after, 5, 7)).toEqual([
      { at: 7, type: 'stock.low', payload: { siteId: 'b1', product: 'red_cells', bloodType: 'O+', available: 4, level: 5 } },
    ]);
  });

  it('counts a product and type that disappeared as zero, and stays quiet when already below or with level 0', () => {
    const before = lots([['red_cells', 'B+', 5], ['red_cells', 'AB+', 2]]);
    expect(stockLowEvents('b1', before, new Map(), 5, 1).map((e) => e.payload.bloodType)).toEqual(['B+']);
    expect(stockLowEvents('b1', before, new Map(), 0, 1)).toEqual([]);
  });
});
