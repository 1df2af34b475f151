/**
 * The one seeded workload every side of the comparison replays: courier profiles and start positions, a ping
 * stream, nearest-query points and delivery requests. GeoDispatch, Redis and PostGIS all get exactly these.
 *
 *   seed ─┬─ generateScenario        couriers c0…c(N-1) (positions = generateCourierPositions(seed, N))
 *         ├─ generateMoveStream      ping pool, paced so simulated time runs at wall-clock speed at the target rate
 *         ├─ generateCourierPositions(seed+1) query points from the same city model
 *         └─ scenario requests       delivery bodies (pickup, dropoff, windows)
 */
import { generateScenario, type CourierFixture, type RequestFixture } from '../../fixtures/city-scenario.js';
import { generateCourierPositions } from '../../fixtures/city-scenario.js';
import { generateMoveStream, type MoveStream } from '../../fixtures/move-stream.js';

/** Everything a run sends. */
export interface Workload {
  couriers: CourierFixture[];
  ids: string[];
  start: { lat: Float64Array; lng: Float64Array };
  pings: MoveStream;
  queries: { lat: Float64Array; lng: Float64Array };
  requests: RequestFixture[];
}

/** Sizes of a workload. */
export interface WorkloadOptions {
  seed: number;
  couriers: number;
  cities: number;
  /** Pings in the pool (cycled when a run needs more). */
  pingPool: number;
  /** Pings per second the run aims for: sets each courier's ping interval so timestamps track the wall clock. */
  pingRate: number;
  queries: number;
  requests: number;
}

/** Builds the workload; identical for identical options. */
export function buildWorkload(o: WorkloadOptions): Workload {
  const scenario = generateScenario({ seed: o.seed, couriers: o.couriers, cities: o.cities, donors: 0, requests: Math.max(o.requests * 2, 10) });
  const couriers = scenario.couriers;
  const ids = couriers.map((c) => c.id);
  const start = { lat: Float64Array.from(couriers, (c) => c.lat), lng: Float64Array.from(couriers, (c) => c.lng) };
  // N couriers pinging every interval give N / interval pings per ms: pick the interval that makes that the target rate
  const rate = Number.isFinite(o.pingRate) ? o.pingRate : 1_000_000;
  const intervalMs = Math.max(1, (o.couriers * 1000) / rate);
  const pings = generateMoveStream(start, { seed: o.seed, count: o.pingPool, intervalMs });
  const queries = generateCourierPositions(o.seed + 1, o.queries, o.cities);
  const requests = scenario.requests.filter((r) => r.kind === 'delivery').slice(0, o.requests);
  return { couriers, ids, start, pings, queries, requests };
}

/** The POST /v1/requests body for a fixture request, its times moved so it is created at `now`. */
export function requestBody(r: RequestFixture, now: number): Record<string, unknown> {
  const shift = now - r.createdAt;
  const body: Record<string, unknown> = { kind: r.kind, urgency: r.urgency, pickup: r.pickup };
  if (r.dropoff) body.dropoff = r.dropoff;
  if (r.readyAt !== undefined) body.readyAt = r.readyAt + shift;
  if (r.deadline !== undefined) body.deadline = r.deadline + shift;
  return body;
}
