import { describe, expect, it } from 'vitest';
import { OfferMatcher, censoredPercentiles, mergeOutcomes, percentiles } from './offer-latency-matcher.js';
import { isEmergency } from './offer-latency-phase.js';

describe('OfferMatcher', () => {
  it('times each request from its scheduled send to its first offer', () => {
    const m = new OfferMatcher(3);
    m.sent(0, 100, 'routine');
    m.sent(1, 101, 'routine');
    m.sent(2, 102, 'emergency');
    m.acknowledged(0, 'r_a');
    m.acknowledged(1, 'r_b');
    m.acknowledged(2, 'r_c');
    m.offered('r_b', 104);
    m.offered('r_a', 107);
    m.offered('r_c', 103);
    const o = m.outcome(1000);
    expect([...o.byLabel.get('routine')!.latencies]).toEqual([3, 7]);
    expect([...o.byLabel.get('emergency')!.latencies]).toEqual([1]);
    expect(o.byLabel.get('routine')).toMatchObject({ sent: 2, acknowledged: 2, offered: 2, notOffered: 0, unanswered: 0, failed: 0 });
    expect(o.unmatchedOffers).toBe(0);
  });

  it('matches an offer that arrives before the 201 naming its request', () => {
    const m = new OfferMatcher(1);
    m.sent(0, 10, 'routine');
    m.offered('r_early', 12);
    expect(m.outcome(1000).unmatchedOffers).toBe(1);
    m.acknowledged(0, 'r_early');
    const o = m.outcome(1000);
    expect([...o.byLabel.get('routine')!.latencies]).toEqual([2]);
    expect(o.unmatchedOffers).toBe(0);
    expect(m.waiting).toBe(0);
  });

  it('counts only the first offer of a request and tallies the re-offers', () => {
    const m = new OfferMatcher(1);
    m.sent(0, 0, 'routine');
    m.offered('r_x', 5);
    m.offered('r_x', 9);
    m.acknowledged(0, 'r_x');
    m.offered('r_x', 20);
    const o = m.outcome(1000);
    expect([...o.byLabel.get('routine')!.latencies]).toEqual([5]);
    expect(o.repeatOffers).toBe(2);
  });

  it('counts requests with no offer, or one later than the timeout, as not offered', () => {
    const m = new OfferMatcher(4);
    for (let i = 0; i < 4; i++) m.sent(i, 0, 'routine');
    m.acknowledged(0, 'a');
    m.acknowledged(1, 'b');
    m.acknowledged(2, 'c');
    m.offered('a', 50);
    m.offered('b', 150);
    expect(m.waiting).toBe(1);
    expect(m.outcome(100).byLabel.get('routine')).toMatchObject({ sent: 4, acknowledged: 3, offered: 1, notOffered: 2, unanswered: 1 });
  });

  it('keeps failed requests out of the latencies and counts them by reason', () => {
    const m = new OfferMatcher(3);
    for (let i = 0; i < 3; i++) m.sent(i, 0, 'routine');
    m.failed(0, 'HTTP 503');
    m.failed(1, 'HTTP 503');
    m.failed(2, 'ECONNRESET');
    const o = m.outcome(100);
    expect(o.byLabel.get('routine')).toMatchObject({ sent: 3, acknowledged: 0, failed: 3, unanswered: 0 });
    expect(o.byLabel.get('routine')!.latencies).toHaveLength(0);
    expect([...o.failures]).toEqual([['HTTP 503', 2], ['ECONNRESET', 1]]);
  });

  it('refuses indexes outside its capacity and an acknowledgement before the send', () => {
    const m = new OfferMatcher(2);
    expect(() => m.sent(2, 0, 'routine')).toThrow(/outside 0\.\.1/);
    expect(() => m.acknowledged(1, 'x')).toThrow(/call sent/);
  });
});

describe('mergeOutcomes and percentiles', () => {
  it('merges labels into one sorted sample with summed counts', () => {
    const a = { sent: 2, acknowledged: 2, offered: 2, notOffered: 0, unanswered: 0, failed: 0, latencies: Float64Array.of(1, 5) };
    const b = { sent: 5, acknowledged: 3, offered: 2, notOffered: 1, unanswered: 1, failed: 1, latencies: Float64Array.of(2, 9) };
    const m = mergeOutcomes([a, b]);
    expect(m).toMatchObject({ sent: 7, acknowledged: 5, offered: 4, notOffered: 1, unanswered: 1, failed: 1 });
    expect([...m.latencies]).toEqual([1, 2, 5, 9]);
  });

  it('reads p50, p90, p99 and max by nearest rank', () => {
    const s = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentiles(s)).toEqual({ count: 100, p50: 50, p90: 90, p99: 99, max: 100 });
    expect(percentiles(new Float64Array(0)).p99).toBeNaN();
  });

  it('ranks requests with no offer in time above every offered one', () => {
    const offered = Float64Array.from({ length: 98 }, (_, i) => i + 1);
    expect(censoredPercentiles(offered, 2)).toEqual({ count: 100, p50: 50, p90: 90, p99: Infinity, max: Infinity });
    expect(censoredPercentiles(Float64Array.of(3), 0)).toEqual({ count: 1, p50: 3, p90: 3, p99: 3, max: 3 });
    expect(censoredPercentiles(new Float64Array(0), 4).p50).toBe(Infinity);
    expect(() => censoredPercentiles(offered, -1)).toThrow(/non-negative integer/);
  });
});

describe('isEmergency', () => {
  it('marks exactly the share of requests, spread evenly', () => {
    const marked = Array.from({ length: 100 }, (_, i) => isEmergency(i, 0.1));
    expect(marked.filter(Boolean)).toHaveLength(10);
    expect(marked.indexOf(true)).toBe(9);
    expect(Array.from({ length: 10 }, (_, i) => isEmergency(i, 0)).some(Boolean)).toBe(false);
    expect(Array.from({ length: 10 }, (_, i) => isEmergency(i, 1)).every(Boolean)).toBe(true);
  });
});
