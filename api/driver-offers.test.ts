import { describe, expect, it } from 'vitest';
import type { DispatchLoop } from '../dispatch/dispatch-loop.js';
import { RequestLifecycle } from '../dispatch/request-lifecycle.js';
import { catchUpFrames, driverFrame } from './driver-offers.js';

const T0 = 1_700_000_000_000;
const stop = (legId: string, action: string) => ({ legId, requestId: legId, action, at: { lat: 51.5, lng: -0.12 }, eta: 0 });

describe('driver frames', () => {
  it('tells a driver an offer is en route, and when its current trip ends', () => {
    const lc = new RequestLifecycle();
    lc.addRequest({ id: 'r1', kind: 'delivery', urgency: 'routine' }, T0);
    lc.setCourierStatus('c1', 'available', T0);
    const made = lc.offer('r1', 'c1', T0, { kind: 'delivery', eta: 400, enRoute: { finishIn: 180 } });
    if (!made.ok) throw new Error(made.reason);
    const event = made.events.find((e) => e.type === 'offer.created')!;
    expect(driverFrame(event, (id) => id)?.frame).toMatchObject({ t: 'offer', offerId: made.offer.id, eta: 400, enRoute: { finishIn: 180 } });
  });

  it('catches a reconnecting driver up on what is left of a stack: a leg cancelled since is not in it', () => {
    const lc = new RequestLifecycle();
    for (const id of ['a', 'b', 'c']) lc.addRequest({ id, kind: 'delivery', urgency: 'routine' }, T0);
    lc.setCourierStatus('c1', 'available', T0);
    const details = { stack: ['a', 'b', 'c'].map((legId) => ({ legId })), stops: ['a', 'b', 'c'].flatMap((l) => [stop(l, 'pickup'), stop(l, 'dropoff')]) };
    const made = lc.offerStack(['a', 'b', 'c'].map((requestId) => ({ requestId, details })), 'c1', T0);
    if (!made.ok) throw new Error(made.reason);
    expect(lc.cancel('b', T0 + 1).ok).toBe(true);
    const frames = catchUpFrames({ lifecycle: lc } as unknown as DispatchLoop, 'c1', (id) => id);
    expect(frames.map((f) => f.legId)).toEqual(['a', 'c']);
    for (const f of frames) {
      expect((f.stack as { legId: string }[]).map((l) => l.legId)).toEqual(['a', 'c']);
      expect((f.stops as { legId: string }[]).map((s) => s.legId)).toEqual(['a', 'a', 'c', 'c']);
    }
  });
});
