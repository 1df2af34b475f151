/**
 * The HTTP side of a load run: courier setup before the timed phases (PUT profiles, then one batch of start
 * positions), nearest queries in a closed loop, and request creation in an open loop at a fixed rate.
 *
 *   setup:    PUT /v1/couriers/{id} ×N (C in flight) ─► POST /v1/locations (500 per batch)
 *   nearby:   GET /v1/nearby?lat&lng&kind=courier&k&radius   (C in flight)
 *   requests: POST /v1/requests at R/s, Idempotency-Key per request (≤ C in flight)
 */
import type { CourierFixture, RequestFixture } from '../../fixtures/city-scenario.js';
import { runClosedLoop, runOpenLoop, type HttpClient, type LoopBounds, type LoopResult } from './http-client.js';
import { requestBody } from './workload.js';

// POST /v1/locations batch size: ~65 bytes per JSON item keeps 500 under the server's 64 KiB body limit
const LOCATION_BATCH = 500;

/** HTTP headers for a JWT or an API key. */
export function authHeaders(c: { token: string } | { apiKey: string }): Record<string, string> {
  return 'token' in c ? { authorization: `Bearer ${c.token}` } : { 'x-api-key': c.apiKey };
}

/**
 * Creates every courier and, unless `positions` is false (the first-ping phase gives them), its start position;
 * throws with the server's answer if setup fails.
 */
export async function setupCouriers(client: HttpClient, url: string, auth: Record<string, string>, couriers: readonly CourierFixture[], concurrency: number, timeoutMs: number, positions = true): Promise<{ profiles: LoopResult; locations?: LoopResult }> {
  const bounds = { maxCount: couriers.length, durationMs: timeoutMs };
  const profiles = await runClosedLoop(
    (i) => {
      const c = couriers[i];
      return client.request('PUT', `${url}/v1/couriers/${encodeURIComponent(c.id)}`, { vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity }, auth);
    },
    concurrency,
    bounds,
  );
  if (profiles.ok < couriers.length) throw new Error(`courier setup: ${profiles.ok}/${couriers.length} PUT /v1/couriers/{id} succeeded (${describeFailures(profiles)})`);
  if (!positions) return { profiles };
  const now = Date.now();
  const locations = await runClosedLoop(
    (b) => {
      const items = couriers.slice(b * LOCATION_BATCH, (b + 1) * LOCATION_BATCH).map((c) => ({ id: c.id, lat: c.lat, lng: c.lng, ts: now - 60_000 }));
      return client.request('POST', `${url}/v1/locations`, items, auth);
    },
    Math.min(concurrency, 8),
    { maxCount: Math.ceil(couriers.length / LOCATION_BATCH), durationMs: timeoutMs },
  );
  if (locations.failed > 0) throw new Error(`courier setup: POST /v1/locations failed (${describeFailures(locations)})`);
  return { profiles, locations };
}

/** The nearest-courier query the load run sends (Node client and wrk alike). */
export function nearbyPath(lat: number, lng: number, k: number, radiusM: number): string {
  return `/v1/nearby?lat=${lat}&lng=${lng}&kind=courier&k=${k}&radius=${radiusM}`;
}

/** Nearest-courier queries over `queries`, `concurrency` in flight. */
export function runNearby(client: HttpClient, url: string, auth: Record<string, string>, q: { lat: Float64Array; lng: Float64Array }, k: number, radiusM: number, concurrency: number, bounds: LoopBounds): Promise<LoopResult> {
  const n = q.lat.length;
  return runClosedLoop((i) => client.request('GET', `${url}${nearbyPath(q.lat[i % n], q.lng[i % n], k, radiusM)}`, undefined, auth), concurrency, bounds);
}

/** Creates delivery requests at `rate` per second (bodies from the fixture, times moved to now), the principals in turn. */
export function runRequests(client: HttpClient, url: string, auths: readonly Record<string, string>[], runId: string, requests: readonly RequestFixture[], rate: number, maxInFlight: number, bounds: LoopBounds): Promise<LoopResult> {
  if (requests.length === 0) throw new Error('runRequests needs at least one fixture request');
  if (auths.length === 0) throw new Error('runRequests needs at least one credential');
  return runOpenLoop(
    (i) =>
      client.request('POST', `${url}/v1/requests`, requestBody(requests[i % requests.length], Date.now()), {
        ...auths[i % auths.length],
        'idempotency-key': `${runId}-${i}`,
      }),
    rate,
    maxInFlight,
    bounds,
  );
}

/** "HTTP 403 ×12, ECONNRESET ×1 — first: …" */
export function describeFailures(r: LoopResult): string {
  const parts = [...r.failures].map(([k, v]) => `${k} ×${v}`);
  return parts.length === 0 ? 'no failures' : `${parts.join(', ')}; first: ${r.firstFailure ?? ''}`;
}
