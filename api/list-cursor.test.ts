import { describe, expect, it } from 'vitest';
import { seededRandom } from '../fixtures/prng.js';
import { ListCursors, listScope, pageAfter, parseBbox } from './list-cursor.js';

describe('pageAfter', () => {
  it('gives the same pages as sorting every id and slicing after the cursor, whatever the insertion order', () => {
    const random = seededRandom(7);
    for (let round = 0; round < 50; round++) {
      const ids = Array.from({ length: 1 + Math.floor(random() * 400) }, () => `c-${Math.floor(random() * 1e6).toString(36)}`);
      const unique = [...new Set(ids)];
      const sorted = [...unique].sort();
      const limit = 1 + Math.floor(random() * 60);
      let after: string | undefined;
      const seen: string[] = [];
      for (;;) {
        const page = pageAfter(unique, after, limit);
        const from = after === undefined ? 0 : sorted.findIndex((id) => id > after!);
        const want = from < 0 ? [] : sorted.slice(from, from + limit);
        expect(page.ids).toEqual(want);
        expect(page.more).toBe(from >= 0 && from + limit < sorted.length);
        seen.push(...page.ids);
        if (!page.more) break;
        after = page.ids[page.ids.length - 1];
      }
      expect(seen).toEqual(sorted);
    }
  });

  it('starts after an id that is no longer there, without skipping the next one', () => {
    expect(pageAfter(['a', 'c', 'd', 'b'], 'bb', 2)).toEqual({ ids: ['c', 'd'], more: false });
  });
});

describe('ListCursors', () => {
  const cursors = new ListCursors('a shared secret');
  const scope = listScope('couriers', { status: 'available', bbox: undefined });

  it('hands back the position a cursor was made with, also on another instance with the same secret', () => {
    const c = cursors.encode(scope, { a: 'courier-17' });
    expect(cursors.decode(scope, c)).toEqual({ a: 'courier-17' });
    expect(new ListCursors('a shared secret').decode(scope, c)).toEqual({ a: 'courier-17' });
  });

  it('refuses a cursor with one character changed, made for other filters, made under another secret, or garbage', () => {
    const c = cursors.encode(scope, { a: 'courier-17' });
    for (let i = 0; i < c.length; i++) {
      // A↔B differ in the lowest bit only: in the last character of each part that bit is spare
      const flipped = c.slice(0, i) + (c[i] === 'A' ? 'B' : 'A') + c.slice(i + 1);
      expect(() => cursors.decode(scope, flipped)).toThrow(expect.objectContaining({ code: 'E_BAD_CURSOR', status: 400 }));
    }
    expect(() => cursors.decode(listScope('couriers', { status: 'busy' }), c)).toThrow(expect.objectContaining({ code: 'E_BAD_CURSOR' }));
    expect(() => new ListCursors('another secret').decode(scope, c)).toThrow(expect.objectContaining({ code: 'E_BAD_CURSOR' }));
    for (const junk of ['', '.', 'abc', 'abc.def', '..', c + '.x']) expect(() => cursors.decode(scope, junk)).toThrow(expect.objectContaining({ code: 'E_BAD_CURSOR' }));
  });
});

describe('parseBbox', () => {
  it('reads minLng,minLat,maxLng,maxLat and refuses swapped or out-of-range corners', () => {
    expect(parseBbox('-9.2,38.7,-9.1,38.8')).toEqual([-9.2, 38.7, -9.1, 38.8]);
    for (const bad of ['38.7,-9.2,38.8', '-9.2,38.8,-9.1,38.7', '-200,0,0,0', '0,0,0,95', 'a,b,c,d']) {
      expect(() => parseBbox(bad)).toThrow(expect.objectContaining({ code: 'E_VALIDATION' }));
    }
  });
});
