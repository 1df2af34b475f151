import { describe, expect, it } from 'vitest';
import { MAX_PENDING_FENCES, WatchSession } from './watch-session.js';

const BBOX = [-1, 50, 1, 52] as const;

describe('WatchSession', () => {
  it('keeps one pending entry per courier however often it moves, holding the latest position', () => {
    const s = new WatchSession(BBOX, { hz: 4 });
    for (let i = 0; i < 10_000; i++) s.noteCourier(`c${i % 10}`, 51, i / 100_000, 'available');
    expect(s.pending).toBe(10);
    const delta = s.takeDelta(0)!;
    expect(delta.moved).toHaveLength(10);
    expect(delta.moved.find((m) => m[0] === 'c9')).toEqual(['c9', 51, 9999 / 100_000, 'available']);
    expect(s.pending).toBe(0);
  });

  it('reports a shown courier that leaves the bbox as removed, and forgets the removal when it comes back', () => {
    const s = new WatchSession(BBOX, { hz: 1000 });
    s.seed([['a', 51, 0, 'available']], []);
    s.noteCourier('a', 60, 0, 'available');
    s.noteCourier('never-shown', 60, 0, 'available');
    expect(s.takeDelta(0)).toEqual({ moved: [], removed: ['a'], requests: [], fences: [] });
    s.noteCourier('a', 60, 0, 'busy');
    expect(s.takeDelta(10)).toBeUndefined(); // gone already: nothing new
    s.noteCourier('a', 51, 0.5, 'busy');
    s.noteGone('a');
    s.noteCourier('a', 51, 0.6, 'busy');
    expect(s.takeDelta(20)).toEqual({ moved: [['a', 51, 0.6, 'busy']], removed: [], requests: [], fences: [] });
  });

  it('sends deltas no faster than its rate', () => {
    const s = new WatchSession(BBOX, { hz: 4 });
    s.noteCourier('a', 51, 0, 'available');
    expect(s.takeDelta(1000)).toBeDefined();
    s.noteCourier('a', 51, 0.1, 'available');
    expect(s.takeDelta(1100)).toBeUndefined();
    expect(s.takeDelta(1250)?.moved).toEqual([['a', 51, 0.1, 'available']]);
  });

  it('keeps requests touching the bbox and follows shown ones to a terminal status', () => {
    const s = new WatchSession(BBOX, { hz: 1000 });
    const inside = { id: 'r1', kind: 'delivery', status: 'pending', pickup: { lat: 51, lng: 0 }, dropoff: { lat: 60, lng: 0 } };
    s.noteRequest(inside);
    s.noteRequest({ ...inside, id: 'far', pickup: { lat: 60, lng: 5 } });
    s.noteRequest({ ...inside, status: 'assigned' });
    expect(s.takeDelta(0)?.requests).toEqual([{ ...inside, status: 'assigned' }]);
  });

  it('bounds pending fence crossings, dropping the oldest', () => {
    const s = new WatchSession(BBOX, { hz: 1 });
    for (let i = 0; i < MAX_PENDING_FENCES + 5; i++) s.noteFence({ type: 'enter', courierId: `c${i}`, fenceId: 'f', ts: i }, 51, 0);
    s.noteFence({ type: 'exit', courierId: 'outside', fenceId: 'f', ts: 0 }, 10, 0);
    const delta = s.takeDelta(0)!;
    expect(delta.fences).toHaveLength(MAX_PENDING_FENCES);
    expect(delta.fences[0].courierId).toBe('c5');
    expect(s.droppedFences).toBe(5);
  });

  it('handles a bbox across the antimeridian', () => {
    const s = new WatchSession([170, -10, -170, 10], { hz: 1 });
    expect(s.contains(0, 175)).toBe(true);
    expect(s.contains(0, -175)).toBe(true);
    expect(s.contains(0, 0)).toBe(false);
  });
});
