import { describe, expect, it } from 'vitest';
import { type BookedRequest, RequestBook } from './request-book.js';

const blood: BookedRequest = {
  id: 'r1', kind: 'blood', owner: 'hospital-1', urgency: 'emergency', createdAt: 0,
  pickup: { lat: 51.5, lng: -0.1 }, dropoff: { lat: 51.52, lng: -0.12 }, legs: ['r1/bb1', 'r1/bb2'],
};

describe('RequestBook', () => {
  it('finds a request by its own id and by its legs, and forgets both', () => {
    const book = new RequestBook();
    book.record(blood);
    expect(book.get('r1')).toBe(blood);
    expect(book.parentOf('r1/bb2')?.id).toBe('r1');
    book.forget('r1');
    expect(book.get('r1')).toBeUndefined();
    expect(book.parentOf('r1/bb1')).toBeUndefined();
    book.forget('r1'); // forgetting twice is harmless
  });

  it('replays an Idempotency-Key reply per requester only', () => {
    const book = new RequestBook();
    book.remember('hospital-1', 'k1', { status: 201, body: { id: 'r1' } });
    expect(book.replay('hospital-1', 'k1')).toEqual({ status: 201, body: { id: 'r1' } });
    expect(book.replay('hospital-2', 'k1')).toBeUndefined();
  });
});
