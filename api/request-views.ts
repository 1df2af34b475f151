/**
 * How a request looks to the people watching it, read from the request book, the dispatch loop and the
 * courier index: the map's request entry (dispatchers) and the track frame (requesters).
 */
import type { DispatchLoop } from '../dispatch/dispatch-loop.js';
import type { CourierIndex } from '../engine/courier-index.js';
import { distanceMeters } from '../engine/geodesy.js';
import type { BookedRequest, RequestBook } from './request-book.js';
import type { WatchRequest } from './watch-session.js';

/** Where request views are read from. */
export interface RequestViewSources {
  book: RequestBook;
  loop: DispatchLoop;
  couriers: CourierIndex;
}

/** A requester's `{ t:'request' }` frame: status, and while a courier carries it, its position and ETA. */
// a type alias (not an interface) so it passes where a frame record is expected
export type TrackFrame = {
  t: 'request';
  id: string;
  status: string;
  courier?: { lat: number; lng: number };
  eta?: number;
};

/** A request's state for the map, or undefined when the API does not know it. */
export function watchRequestOf(src: RequestViewSources, id: string): WatchRequest | undefined {
  const booked = src.book.get(id);
  const summary = src.loop.status(id);
  if (booked === undefined || summary === undefined) return undefined;
  const r: WatchRequest = { id, kind: booked.kind, status: summary.status, pickup: booked.pickup, dropoff: booked.dropoff };
  const courierId = summary.legs.find((l) => l.courierId !== undefined && l.status !== 'cancelled' && l.status !== 'failed')?.courierId;
  if (courierId !== undefined) r.courierId = courierId;
  return r;
}

/** The track frame of a request (also the live part of GET /v1/requests/{id}), or undefined when unknown. */
export function trackFrameOf(src: RequestViewSources, id: string): TrackFrame | undefined {
  const booked = src.book.get(id);
  const summary = src.loop.status(id);
  if (booked === undefined || summary === undefined) return undefined;
  const frame: TrackFrame = { t: 'request', id, status: summary.status };
  const leg = summary.legs.find((l) => l.courierId !== undefined && (l.status === 'assigned' || l.status === 'picked_up'));
  const c = leg?.courierId === undefined ? undefined : src.couriers.get(leg.courierId);
  if (leg !== undefined && c !== undefined && !Number.isNaN(c.lat)) {
    frame.courier = { lat: c.lat, lng: c.lng };
    // the policy's road circuity and the courier's vehicle speed, as dispatch scored the route
    const { circuity, vehicleSpeed } = src.loop.policy;
    frame.eta = Math.round((remainingMeters(c.lat, c.lng, booked, leg.status === 'picked_up') * circuity) / vehicleSpeed[c.vehicle]);
  }
  return frame;
}

function remainingMeters(lat: number, lng: number, r: BookedRequest, pickedUp: boolean): number {
  return pickedUp
    ? distanceMeters(lat, lng, r.dropoff.lat, r.dropoff.lng)
    : distanceMeters(lat, lng, r.pickup.lat, r.pickup.lng) + distanceMeters(r.pickup.lat, r.pickup.lng, r.dropoff.lat, r.dropoff.lng);
}
