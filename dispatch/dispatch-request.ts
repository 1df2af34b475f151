/**
 * The vocabulary dispatch speaks: a request ready to be matched, the policy of a deployment, and the
 * plan a matching run returns. Plain data, so it crosses into worker threads packed (see workers/).
 */
import type { Capability, Vehicle } from '../engine/courier-attributes.js';

/** A point in request bodies: `{ lat, lng }`. */
export interface LatLng {
  lat: number;
  lng: number;
}

import type { RequestKind, Urgency } from './request-vocabulary.js';

export type { RequestKind, Urgency } from './request-vocabulary.js';

/** A request as matching sees it: one pickup, one dropoff, one courier. */
export interface DispatchRequest {
  id: string;
  kind: RequestKind;
  urgency: Urgency;
  createdAt: number;
  pickup: LatLng;
  dropoff: LatLng;
  /** Food ready at the pickup (delivery) — aim the courier's arrival here. */
  readyAt?: number;
  /** Latest acceptable arrival at the dropoff (rescue perishability, blood need-by). */
  deadline?: number;
  /** Latest acceptable arrival at the pickup (a rescue's pickup window). */
  pickupBy?: number;
  /** Capabilities the courier must have (cold_chain for blood and chilled rescue). */
  capabilities?: readonly Capability[];
  /** Capacity units the load takes (default 1). */
  load?: number;
  /** Couriers that declined or let an offer for this request expire. */
  exclude?: readonly string[];
  /** Learned speed (m/s) around the pickup, for the pickup → dropoff leg; undefined = vehicle default. */
  legSpeed?: number;
}

/** How a deployment matches. */
export interface DispatchPolicy {
  /** 'greedy': best ETA now, request by request; 'batched': min-cost assignment over a window. */
  mode: 'greedy' | 'batched';
  /** Batch window in ms (default 2000): how long requests gather before a batch is solved. */
  windowMs: number;
  /** Candidate couriers per request (default 20). */
  candidates: number;
  /** Search radius for candidates in metres (default 15 km). */
  radius: number;
  /** Road distance ÷ great-circle distance (default 1.35, typical of city grids). */
  circuity: number;
  /** Free-flow vehicle speeds in m/s when no live cell speed is known. */
  vehicleSpeed: Readonly<Record<Vehicle, number>>;
  /** Cost weights: seconds of lateness count `lateness` times a second of pickup ETA. */
  weights: { lateness: number; unassigned: Readonly<Record<Urgency, number>> };
  /**
   * Extra transit (seconds) a blood request accepts for better-matched units, by urgency (PRODUCT §2: routine 30
   * min, urgent 10, emergency 3); default dispatch/blood-allocation.ts DEFAULT_TYPE_SLACK_SECONDS.
   */
  bloodTypeSlack?: Readonly<Record<Urgency, number>>;
  /**
   * What a courier's scarce capability costs work that does not need it: the expected wait (seconds) it causes to
   * the work that does (PRODUCT §2: cold-chain couriers kept for blood). Added to a routine or urgent request's
   * cost for a courier carrying it; emergencies pay nothing. A fixed table set here is used as it is; left empty,
   * the loop prices each batch from the demand it sees (`scarcity`, dispatch/scarcity.ts).
   */
  scarceCapabilities?: Readonly<Partial<Record<Capability, number>>>;
  /**
   * How the loop prices scarce capabilities from demand (dispatch/scarcity.ts); undefined: DEFAULT_SCARCITY, `false`:
   * unpriced. Over twelve simulated days the default halved the time cold-chain work waited on couriers busy with
   * plain work and shortened cold-chain legs' wait for a pickup by 7 % (bench/RESULTS.md, "Scarce couriers").
   */
  scarcity?: Readonly<ScarcityPolicy> | false;
  /**
   * Set by the loop on a batch's policy: per courier of the batch's snapshot, the capability bits `scarceCapabilities`
   * prices for it (where such work is near). Undefined: the table prices every courier with the capability.
   */
  scarceLocal?: Uint8Array;
  /** Set by the loop with scarceLocal: per request id, the capability bits whose work its dropoff takes a courier away from. */
  scarceLeaves?: ReadonlyMap<string, number>;
  /**
   * Stacking (PRODUCT §2): couriers with capacity > 1 take deliveries whose pickups are close, in the batched
   * planner. `false` turns it off; default dispatch/stacking.ts DEFAULT_STACKING.
   */
  stacking?: Readonly<StackingPolicy> | false;
  /**
   * En route (PRODUCT §2): busy couriers whose trip ends soon near a pickup are candidates for the legs a plan
   * left. `false` turns it off; default dispatch/en-route.ts DEFAULT_EN_ROUTE.
   */
  enRoute?: Readonly<EnRoutePolicy> | false;
}

/** How scarce capabilities are priced from demand (dispatch/scarcity.ts). */
export interface ScarcityPolicy {
  /** The most a routine request pays (seconds) for a courier whose capability is all taken by the work ahead. */
  maxSeconds: number;
  /** How far ahead demand counts: legs expected over this many seconds at the recent rate. */
  horizonSeconds: number;
  /** The recent rate is measured over this many seconds. */
  windowSeconds: number;
}

/** Which busy couriers are candidates en route. */
export interface EnRoutePolicy {
  /** The courier's current trip ends within this many seconds. */
  finishWithinSeconds: number;
  /** Its trip ends at most this many seconds' drive from the pickup. */
  nearSeconds: number;
}

/** How deliveries are stacked on one courier. */
export interface StackingPolicy {
  /** At most this many seconds of driving from a stacked pickup to another pickup of the stack ("within a few minutes"). */
  pickupGapSeconds: number;
  /** Deliveries per stack, at most (2–4). */
  maxStops: number;
  /** A delivery joins a stack only when the stack's route grows by at most this share of the delivery's own pickup → dropoff drive. */
  detourShare: number;
}

/**
 * No fixed price by default: a fixed price (60 or 180 s for cold_chain) did not shorten emergencies' wait for a
 * cold-chain courier over the simulated day and cost assignments (bench/RESULTS.md, "Dispatch"); the price a
 * courier should carry depends on the cold-chain work nearby, which the loop learns per batch (dispatch/scarcity.ts).
 */
export const DEFAULT_SCARCE_CAPABILITIES: Readonly<Partial<Record<Capability, number>>> = Object.freeze({});

/** One courier chosen for one request. */
export interface PlannedAssignment {
  requestId: string;
  courierId: string;
  /** Seconds from now until the courier reaches the pickup (after any wait for readyAt). */
  pickupEta: number;
  /** Seconds from now until the load reaches the dropoff. */
  dropoffEta: number;
  /** Seconds the dropoff misses its deadline by (0 when on time). */
  lateness: number;
  cost: number;
}

/** Why a request got no courier in this run. */
export type UnassignedReason = 'no-courier-in-radius' | 'no-feasible-courier' | 'outbid' | 'deadline-passed';

/** The result of one matching run. */
export interface DispatchPlan {
  assignments: PlannedAssignment[];
  unassigned: { requestId: string; reason: UnassignedReason }[];
  totalCost: number;
  /** Sum of pickupEta over assignments, in seconds. */
  totalPickupEta: number;
  solveMs: number;
}

/** Defaults for a city deployment; each value says why. */
export const DEFAULT_POLICY: Readonly<DispatchPolicy> = Object.freeze({
  mode: 'batched',
  windowMs: 2000, // long enough to gather choices at 1,000 req/s, short enough that nobody notices
  candidates: 20, // beyond ~20 the optimum almost never changes, and the graph stays sparse
  radius: 15_000, // a 30-minute bike ride; farther couriers are never the right answer in a city
  circuity: 1.35, // measured road/great-circle ratios in grid cities cluster around 1.3–1.4
  vehicleSpeed: Object.freeze({ bike: 4.5, car: 8.5, van: 7.5 }), // urban averages incl. stops, m/s
  weights: Object.freeze({
    lateness: 4, // a late second hurts four times a second of courier travel
    unassigned: Object.freeze({ routine: 3_600, urgent: 14_400, emergency: 1e7 }), // s-equivalent of leaving it unmatched
  }),
}) as DispatchPolicy;
