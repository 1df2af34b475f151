/**
 * Prometheus metrics for one server instance, in a Registry the instance owns (never prom-client's global
 * default registry, so tests and several servers in one process do not collide).
 *
 * Names follow Prometheus conventions: `geodispatch_…_total` for counters, `_seconds` for durations.
 * Labels have small, fixed value sets (route pattern, status, role, kind, urgency, outcome, queue): never a
 * courier, request or donor id, which would create one time series per entity.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** HTTP handling: nearest queries take microseconds, so the buckets start well below a millisecond. */
const HTTP_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** A batch match targets ≤ 100 ms (PRODUCT §6); the tail shows overload. */
const DISPATCH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Request → offer on the driver's socket targets p99 ≤ 10 ms; batched requests wait up to the window (2 s). */
const OFFER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** A webhook is delivered tens of ms after its event when the receiver is up; retries back off to minutes. */
const WEBHOOK_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3600];

/** The server's metrics; `render()` is what GET /metrics returns. */
export class ApiMetrics {
  readonly registry: Registry;
  readonly pingsAccepted: Counter;
  readonly pingsRejected: Counter;
  readonly httpRequests: Counter<'route' | 'status'>;
  readonly httpDuration: Histogram<'route'>;
  readonly dispatchLatency: Histogram;
  readonly offerLatency: Histogram;
  readonly openSockets: Gauge<'role'>;
  readonly queueDepth: Gauge<'queue'>;
  readonly requestsCreated: Counter<'kind' | 'urgency'>;
  readonly offersTotal: Counter<'outcome'>;
  readonly bloodUnitsReserved: Counter;
  readonly webhookDeliveries: Counter<'outcome'>;
  readonly webhookLag: Histogram;

  /** `processMetrics` (default true) adds prom-client's process and event-loop metrics to this registry. */
  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [(this.registry = new Registry())];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'geodispatch_' });
    this.pingsAccepted = new Counter({ name: 'geodispatch_pings_accepted_total', help: 'Location pings applied to the index', registers });
    this.pingsRejected = new Counter({ name: 'geodispatch_pings_rejected_total', help: 'Location pings refused (invalid, stale, unknown courier, rate limited)', registers });
    this.httpRequests = new Counter({ name: 'geodispatch_http_requests_total', help: 'HTTP requests by route pattern and status', labelNames: ['route', 'status'] as const, registers });
    this.httpDuration = new Histogram({ name: 'geodispatch_http_request_duration_seconds', help: 'HTTP handling time by route pattern', labelNames: ['route'] as const, buckets: HTTP_BUCKETS, registers });
    this.dispatchLatency = new Histogram({ name: 'geodispatch_dispatch_latency_seconds', help: 'Time to compute one dispatch plan (greedy or batch)', buckets: DISPATCH_BUCKETS, registers });
    this.offerLatency = new Histogram({ name: 'geodispatch_offer_latency_seconds', help: 'Request creation to offer sent on the driver socket', buckets: OFFER_BUCKETS, registers });
    this.openSockets = new Gauge({ name: 'geodispatch_open_sockets', help: 'Open WebSocket connections by role', labelNames: ['role'] as const, registers });
    this.queueDepth = new Gauge({ name: 'geodispatch_queue_depth', help: 'Items waiting by queue (pending requests, batch window, outbound)', labelNames: ['queue'] as const, registers });
    this.requestsCreated = new Counter({ name: 'geodispatch_requests_created_total', help: 'Requests created by kind and urgency', labelNames: ['kind', 'urgency'] as const, registers });
    this.offersTotal = new Counter({ name: 'geodispatch_offers_total', help: 'Offers by outcome (sent, accepted, declined, expired, revoked)', labelNames: ['outcome'] as const, registers });
    this.bloodUnitsReserved = new Counter({ name: 'geodispatch_blood_units_reserved_total', help: 'Blood units reserved for requests', registers });
    this.webhookDeliveries = new Counter({ name: 'geodispatch_webhook_deliveries_total', help: 'Webhook POST attempts by outcome (delivered: a 2xx; failed: anything else, retried)', labelNames: ['outcome'] as const, registers });
    this.webhookLag = new Histogram({ name: 'geodispatch_webhook_lag_seconds', help: 'Event time to the receiver\'s 2xx, retries included', buckets: WEBHOOK_BUCKETS, registers });
  }

  /** The Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Content-Type for `render()`'s output. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
