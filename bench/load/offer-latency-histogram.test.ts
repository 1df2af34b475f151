import { describe, expect, it } from 'vitest';
import { histogramDelta, histogramQuantile, readHistogram, readSample, shareAtMost } from './offer-latency-histogram.js';

const EXPOSITION = `# HELP geodispatch_offer_latency_seconds Request creation to offer sent on the driver socket
# TYPE geodispatch_offer_latency_seconds histogram
geodispatch_offer_latency_seconds_bucket{le="0.001"} 10
geodispatch_offer_latency_seconds_bucket{le="0.005"} 60
geodispatch_offer_latency_seconds_bucket{le="0.01"} 90
geodispatch_offer_latency_seconds_bucket{le="+Inf"} 100
geodispatch_offer_latency_seconds_sum 0.5
geodispatch_offer_latency_seconds_count 100
geodispatch_offer_latency_seconds_total_extra 7
geodispatch_http_request_duration_seconds_bucket{le="0.001",route="post /v1/requests"} 4
geodispatch_http_request_duration_seconds_bucket{le="+Inf",route="post /v1/requests"} 5
geodispatch_http_request_duration_seconds_sum{route="post /v1/requests"} 0.01
geodispatch_http_request_duration_seconds_count{route="post /v1/requests"} 5
geodispatch_http_request_duration_seconds_bucket{le="0.001",route="get /health"} 100
geodispatch_http_request_duration_seconds_bucket{le="+Inf",route="get /health"} 100
geodispatch_http_request_duration_seconds_count{route="get /health"} 100
geodispatch_process_cpu_seconds_total 12.5
geodispatch_process_cpu_seconds_total_more 1
`;

describe('readHistogram', () => {
  it('reads the buckets, count and sum of one histogram', () => {
    expect(readHistogram(EXPOSITION, 'geodispatch_offer_latency_seconds')).toEqual({ le: [0.001, 0.005, 0.01, Infinity], cumulative: [10, 60, 90, 100], count: 100, sum: 0.5 });
  });

  it('keeps only the series whose labels match', () => {
    const h = readHistogram(EXPOSITION, 'geodispatch_http_request_duration_seconds', { route: 'post /v1/requests' });
    expect(h).toEqual({ le: [0.001, Infinity], cumulative: [4, 5], count: 5, sum: 0.01 });
  });

  it('is undefined for a histogram the exposition does not have', () => {
    expect(readHistogram(EXPOSITION, 'geodispatch_nope_seconds')).toBeUndefined();
  });
});

describe('histogramDelta', () => {
  it('subtracts an earlier scrape bucket by bucket', () => {
    const before = { le: [0.001, Infinity], cumulative: [1, 2], count: 2, sum: 0.1 };
    const after = { le: [0.001, Infinity], cumulative: [5, 9], count: 9, sum: 0.4 };
    const d = histogramDelta(after, before);
    expect(d.cumulative).toEqual([4, 7]);
    expect(d.count).toBe(7);
    expect(d.sum).toBeCloseTo(0.3, 12);
  });

  it('refuses scrapes with different bounds', () => {
    expect(() => histogramDelta({ le: [1, Infinity], cumulative: [1, 1], count: 1, sum: 0 }, { le: [2, Infinity], cumulative: [0, 0], count: 0, sum: 0 })).toThrow(/different bucket bounds/);
  });
});

describe('histogramQuantile', () => {
  const h = readHistogram(EXPOSITION, 'geodispatch_offer_latency_seconds')!;

  it('interpolates inside the bucket that holds the rank, as histogram_quantile does', () => {
    expect(histogramQuantile(h, 0.05)).toBeCloseTo(0.0005, 12); // rank 5 of the first bucket's 10, from 0
    expect(histogramQuantile(h, 0.5)).toBeCloseTo(0.001 + 0.004 * (40 / 50), 12);
    expect(histogramQuantile(h, 0.9)).toBeCloseTo(0.01, 12);
  });

  it('answers the highest finite bound for a rank in the +Inf bucket, NaN when empty', () => {
    expect(histogramQuantile(h, 0.99)).toBe(0.01);
    expect(histogramQuantile({ le: [0.01, Infinity], cumulative: [0, 0], count: 0, sum: 0 }, 0.5)).toBeNaN();
  });

  it('gives the exact share at a bucket bound and nothing elsewhere', () => {
    expect(shareAtMost(h, 0.01)).toBe(0.9);
    expect(shareAtMost(h, 0.02)).toBeUndefined();
  });
});

describe('readSample', () => {
  it('reads a counter without mistaking a longer name for it', () => {
    expect(readSample(EXPOSITION, 'geodispatch_process_cpu_seconds_total')).toBe(12.5);
    expect(readSample(EXPOSITION, 'geodispatch_missing')).toBeUndefined();
  });
});
