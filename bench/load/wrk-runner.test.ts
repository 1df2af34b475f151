import { describe, expect, it } from 'vitest';
import { cyclingScript, parseWrk, pooledWrk } from './wrk-runner.js';

// wrk 4.1 (Debian) against a server answering 404 to every second path
const SAMPLE = `Running 1s test @ http://127.0.0.1:18777
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   405.01us    1.16ms  19.26ms   94.83%
    Req/Sec    22.09k     9.50k   30.87k    80.00%
  Latency Distribution
     50%  148.00us
     75%  237.00us
     90%  630.00us
     99%    5.17ms
  21911 requests in 1.00s, 2.66MB read
  Non-2xx or 3xx responses: 10956
Requests/sec:  21880.26
Transfer/sec:      2.66MB
`;

describe('pooledWrk', () => {
  it('pools counts and time into one rate and keeps the worst of each percentile', () => {
    const a = { ok: 1000, failed: 1, elapsedMs: 1000, perSecond: 1000, latencyMs: { p50: 1, p75: 2, p90: 3, p99: 9 } };
    const b = { ok: 3000, failed: 0, elapsedMs: 1000, perSecond: 3000, latencyMs: { p50: 2, p75: 2.5, p90: 2.8, p99: 4 } };
    expect(pooledWrk([a, b])).toEqual({ ok: 4000, failed: 1, elapsedMs: 2000, perSecond: 2000, latencyMs: { p50: 2, p75: 2.5, p90: 3, p99: 9 } });
    expect(() => pooledWrk([])).toThrow();
  });
});

describe('parseWrk', () => {
  it('counts only 2xx answers as answered, and reads the latency percentiles in ms', () => {
    const r = parseWrk(SAMPLE);
    expect(r.ok).toBe(21911 - 10956);
    expect(r.failed).toBe(10956);
    expect(r.elapsedMs).toBe(1000);
    expect(r.perSecond).toBeCloseTo(10955, 0);
    expect(r.latencyMs).toEqual({ p50: 0.148, p75: 0.237, p90: 0.63, p99: 5.17 });
  });

  it('adds socket errors and timeouts to the failures', () => {
    const r = parseWrk(SAMPLE.replace('  Non-2xx or 3xx responses: 10956\n', '  Socket errors: connect 0, read 3, write 0, timeout 2\n'));
    expect(r.failed).toBe(5);
    expect(r.ok).toBe(21911);
  });

  it('refuses output with no request count (wrk did not run)', () => {
    expect(() => parseWrk('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(/no request count/);
  });
});

describe('cyclingScript', () => {
  it('lists every path once, quoted for Lua, and cycles them by index', () => {
    const s = cyclingScript(['/v1/nearby?lat=1&lng=2', '/a"b\\c']);
    expect(s).toContain('"/v1/nearby?lat=1&lng=2",');
    expect(s).toContain('"/a\\"b\\\\c",');
    expect(s).toMatch(/i = i % n \+ 1/);
    expect(() => cyclingScript([])).toThrow();
  });
});
