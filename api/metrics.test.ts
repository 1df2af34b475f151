import { describe, expect, test } from 'vitest';
import { ApiMetrics } from './metrics.js';

describe('ApiMetrics', () => {
  test('render gives Prometheus text with the geodispatch metric names', async () => {
    const m = new ApiMetrics({ processMetrics: false });
    m.pingsAccepted.inc(3);
    m.pingsRejected.inc();
    m.httpRequests.inc({ route: 'GET /v1/nearby', status: '200' });
    m.httpDuration.observe({ route: 'GET /v1/nearby' }, 0.0002);
    m.dispatchLatency.observe(0.04);
    m.offerLatency.observe(0.003);
    m.openSockets.set({ role: 'driver' }, 5);
    m.queueDepth.set({ queue: 'pending' }, 2);
    m.requestsCreated.inc({ kind: 'blood', urgency: 'emergency' });
    m.offersTotal.inc({ outcome: 'accepted' });
    m.bloodUnitsReserved.inc(4);
    const text = await m.render();
    expect(m.contentType).toMatch(/^text\/plain/);
    expect(text).toContain('geodispatch_pings_accepted_total 3');
    expect(text).toContain('geodispatch_pings_rejected_total 1');
    expect(text).toContain('geodispatch_http_requests_total{route="GET /v1/nearby",status="200"} 1');
    expect(text).toContain('geodispatch_http_request_duration_seconds_bucket{le="0.0005",route="GET /v1/nearby"} 1');
    expect(text).toContain('geodispatch_dispatch_latency_seconds_count 1');
    expect(text).toContain('geodispatch_offer_latency_seconds_sum 0.003');
    expect(text).toContain('geodispatch_open_sockets{role="driver"} 5');
    expect(text).toContain('geodispatch_queue_depth{queue="pending"} 2');
    expect(text).toContain('geodispatch_requests_created_total{kind="blood",urgency="emergency"} 1');
    expect(text).toContain('geodispatch_offers_total{outcome="accepted"} 1');
    expect(text).toContain('geodispatch_blood_units_reserved_total 4');
  });

  test('each instance has its own registry, so two servers in one process do not collide', async () => {
    const a = new ApiMetrics();
    const b = new ApiMetrics();
    a.pingsAccepted.inc();
    expect(await a.render()).toContain('geodispatch_pings_accepted_total 1');
    expect(await b.render()).toContain('geodispatch_pings_accepted_total 0');
    expect(await a.render()).toContain('geodispatch_process_cpu_seconds_total');
  });
});
