import { describe, expect, it } from 'vitest';
import { parsePgbenchTps, parseRedisBenchmarkCsv } from './native-peers.js';

describe('native peer output', () => {
  it('reads the rate from redis-benchmark --csv', () => {
    const out = '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms"\n"GEOSEARCH k FROMLONLAT -0.1 51.5 BYRADIUS 5000 m COUNT 10 ASC","41666.67","0.072","0.024","0.071"\n';
    expect(parseRedisBenchmarkCsv(out)).toBe(41666.67);
    expect(() => parseRedisBenchmarkCsv('Could not connect to Redis at 127.0.0.1:1: Connection refused\n')).toThrow(/no result row/);
  });

  it('reads the transactions per second from pgbench', () => {
    const out = 'number of failed transactions: 0 (0.000%)\nlatency average = 1.234 ms\ninitial connection time = 5.1 ms\ntps = 12965.421337 (without initial connection time)\n';
    expect(parsePgbenchTps(out)).toBeCloseTo(12965.421337, 6);
    expect(() => parsePgbenchTps('pgbench: error: connection to server failed')).toThrow(/no tps line/);
  });
});
