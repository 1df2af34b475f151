/**
 * What a stack's offers carry besides the leg itself (PRODUCT §2): its legs in pickup order and its stops in driving
 * order, the same on every offer of the stack, so the driver sees the whole route whichever frame it reads.
 *
 *   planned legs of one courier (ETAs along the stack's route) ──► stackDetails ──► { stack, stops } on each offer
 */
import type { LatLng } from './dispatch-request.js';
import type { Leg } from './submission-legs.js';

/** What every offer of a stack carries: its legs in pickup order and its stops in driving order. */
export function stackDetails(legs: readonly { leg: Leg; a: { pickupEta: number; dropoffEta: number } }[]): { stack: StackLeg[]; stops: StackStop[] } {
  const stack = legs.map(({ leg, a }) => ({ legId: leg.id, requestId: leg.parentId, pickup: leg.dispatch.pickup, dropoff: leg.dispatch.dropoff, eta: a.pickupEta, dropoffEta: a.dropoffEta }));
  const stops: StackStop[] = [
    ...stack.map((l) => ({ legId: l.legId, requestId: l.requestId, action: 'pickup' as const, at: l.pickup, eta: l.eta })),
    ...stack.map((l) => ({ legId: l.legId, requestId: l.requestId, action: 'dropoff' as const, at: l.dropoff, eta: l.dropoffEta })),
  ].sort((x, y) => x.eta - y.eta || (x.action === y.action ? 0 : x.action === 'pickup' ? -1 : 1));
  return { stack, stops };
}

/** One leg of a stack offer, as the driver's frame shows it. */
export interface StackLeg {
  legId: string;
  requestId: string;
  pickup: LatLng;
  dropoff: LatLng;
  /** Seconds from the offer to the pickup, along the stack's route. */
  eta: number;
  dropoffEta: number;
}

/** One stop of a stack's route. */
export interface StackStop {
  legId: string;
  requestId: string;
  action: 'pickup' | 'dropoff';
  at: LatLng;
  eta: number;
}

