import { describe, expect, it } from 'vitest';
import { type BookedRequest, RequestBook } from './request-book.js';

const blood: BookedRequest = {
  id: 'r1', kind: 'blood', owner: 'hospital-1', ownerRole: 'requester', urgency: 'emergency', createdAt: 0,
  pickup: { lat: 51.5, lng: -0.1 }, dropoff: { lat: 51.52, lng: -0.12 }, legs: ['r1/bb1', 'r1/bb2'],
};

/** The dispatch loop's answer for the legs used here: blood's bank legs belong to it, the rest are their own request. */
const parents = { parentOf: (id: string): string | undefined => (blood.legs.includes(id) ? blood.id : undefined) };

describe('RequestBook', () => {
  it('finds a request by its own id and by its legs, and forgets both', () => {
    const book = new RequestBook(parents);
    book.record(blood);
    expect(book.get('r1')).toBe(blood);
    expect(book.parentOf('r1/bb2')?.id).toBe('r1');
    book.forget('r1');
    expect(book.get('r1')).toBeUndefined();
    expect(book.parentOf('r1/bb1')).toBeUndefined();
    book.forget('r1'); // forgetting twice is harmless
  });

  it('counts open requests per owner (role and sub), dropping ended ones only once the limit is reached', () => {
    const book = new RequestBook(parents);
    const ended = new Set<string>();
    let asked = 0;
    const isOpen = (id: string): boolean => {
      asked++;
      return !ended.has(id);
    };
    for (let i = 0; i < 3; i++) book.record({ ...blood, id: `a${i}`, legs: [`a${i}`] });
    book.record({ ...blood, id: 'd1', legs: ['d1'], ownerRole: 'dispatcher' }); // same sub, another principal
    expect(book.atLimit('requester', 'hospital-1', 4, isOpen)).toBe(false);
    expect(asked).toBe(0);
    expect(book.atLimit('requester', 'hospital-1', 3, isOpen)).toBe(true);
    ended.add('a1');
    expect(book.atLimit('requester', 'hospital-1', 3, isOpen)).toBe(false);
    book.forget('a0');
    book.forget('a2');
    expect(book.atLimit('requester', 'hospital-1', 1, isOpen)).toBe(false);
    expect(book.atLimit('dispatcher', 'hospital-1', 1, isOpen)).toBe(true);
  });
});
