import { describe, expect, it } from 'vitest';
import type { DispatchRequest } from './dispatch-request.js';
import type { RequestStatus } from './lifecycle-events.js';
import { RequestParents } from './request-parents.js';
import { newLeg } from './submission-legs.js';
import { UndoLog } from './undo-log.js';

const T0 = Date.UTC(2026, 0, 5, 9);
const A = { lat: 51.5, lng: -0.1 };
const B = { lat: 51.51, lng: -0.12 };

function dispatchOf(id: string, kind: DispatchRequest['kind']): DispatchRequest {
  return { id, kind, urgency: 'urgent', createdAt: T0, pickup: A, dropoff: B };
}

/** A blood request b1 from two banks and a delivery d1, registered in a fresh owner. */
function owner(): { parents: RequestParents; undo: UndoLog } {
  const undo = new UndoLog();
  const parents = new RequestParents(undo);
  parents.add('b1', 'blood', [newLeg('b1', dispatchOf('b1/bank1', 'blood')), newLeg('b1', dispatchOf('b1/bank2', 'blood'))]);
  parents.add('d1', 'delivery', [newLeg('d1', dispatchOf('d1', 'delivery'))]);
  undo.clear();
  return { parents, undo };
}

describe('RequestParents', () => {
  it('names the request of a leg, of a request itself, and the legs of a request', () => {
    const { parents } = owner();
    expect(parents.parentOf('b1/bank2')).toBe('b1');
    expect(parents.parentOf('b1')).toBe('b1');
    expect(parents.parentOf('d1')).toBe('d1');
    expect(parents.parentOf('nope')).toBeUndefined();
    expect(parents.legsOf('b1')).toEqual(['b1/bank1', 'b1/bank2']);
    expect(parents.legsOf('b1/bank1')).toBeUndefined();
    expect(parents.has('b1/bank1')).toBe(true);
  });

  it('takes a registration back through the undo log', () => {
    const undo = new UndoLog();
    const parents = new RequestParents(undo);
    parents.add('b2', 'blood', [newLeg('b2', dispatchOf('b2/bank1', 'blood'))]);
    undo.take()();
    expect(parents.parentOf('b2/bank1')).toBeUndefined();
    expect(parents.has('b2')).toBe(false);
  });

  it('still answers parentOf for a forgotten request until the drain after next, and nothing else about it', () => {
    const { parents } = owner();
    parents.forget('b1');
    expect(parents.has('b1/bank1')).toBe(false);
    expect(parents.legsOf('b1')).toBeUndefined();
    expect(parents.parentOf('b1/bank1')).toBe('b1');
    parents.drained(); // the events drained with the forget: the journal builds their rows now
    expect(parents.parentOf('b1/bank2')).toBe('b1');
    parents.drained();
    expect(parents.parentOf('b1/bank1')).toBeUndefined();
    expect(parents.parentOf('d1')).toBe('d1');
  });

  it('emits blood.status when a blood parent\'s derived status changes, and never for a single-leg request', () => {
    const { parents, undo } = owner();
    const statuses = new Map<string, RequestStatus>([['b1/bank1', 'offered'], ['b1/bank2', 'pending'], ['d1', 'offered']]);
    const statusOf = (id: string): RequestStatus | undefined => statuses.get(id);
    expect(parents.refresh({ seq: 1, at: T0, type: 'request.offered', requestId: 'd1', courierId: 'k1', offerId: 'o1' } as never, statusOf)).toBeUndefined();
    expect(parents.refresh({ seq: 2, at: T0, type: 'request.offered', requestId: 'b1/bank1', courierId: 'k1', offerId: 'o2' } as never, statusOf)).toBeUndefined();
    statuses.set('b1/bank2', 'offered');
    expect(parents.refresh({ seq: 3, at: T0 + 1, type: 'request.offered', requestId: 'b1/bank2', courierId: 'k2', offerId: 'o3' } as never, statusOf))
      .toEqual({ seq: 3, at: T0 + 1, type: 'blood.status', requestId: 'b1', status: 'offered', previous: 'pending' });
    expect(parents.get('b1')?.status).toBe('offered');
    undo.take()();
    expect(parents.get('b1')?.status).toBe('pending');
  });
});
