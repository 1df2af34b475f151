import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { mintToken, parseDevTokenLine, peekClaims } from './dev-tokens.js';
import { readCounter } from './server-target.js';

describe('dev token lines', () => {
  it('reads the role and token of a dev server line', () => {
    expect(parseDevTokenLine('dev token admin: aaa.bbb.ccc')).toEqual({ role: 'admin', token: 'aaa.bbb.ccc' });
    expect(parseDevTokenLine('  dev token driver:  x.y.z  ')).toEqual({ role: 'driver', token: 'x.y.z' });
  });

  it('ignores other lines', () => {
    expect(parseDevTokenLine('listening on 8080')).toBeUndefined();
    expect(parseDevTokenLine('dev token admin:')).toBeUndefined();
  });
});

describe('mintToken', () => {
  it('signs HS256 over header.payload with sub, role and exp', () => {
    const t = mintToken('s3cret', 'c7', 'driver', 60, 1_700_000_000_000);
    const [h, p, s] = t.split('.');
    expect(JSON.parse(Buffer.from(h, 'base64url').toString())).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(peekClaims(t)).toEqual({ sub: 'c7', role: 'driver', iat: 1_700_000_000, exp: 1_700_000_060 });
    expect(s).toBe(createHmac('sha256', 's3cret').update(`${h}.${p}`).digest('base64url'));
  });

  it('refuses an empty secret', () => {
    expect(() => mintToken('', 'a', 'admin')).toThrow(/non-empty secret/);
  });
});

describe('readCounter', () => {
  const text = [
    '# HELP geodispatch_pings_accepted_total pings applied',
    '# TYPE geodispatch_pings_accepted_total counter',
    'geodispatch_pings_accepted_total{source="ws"} 120',
    'geodispatch_pings_accepted_total{source="http"} 5 1700000000000',
    'geodispatch_pings_accepted_total_created 1700000000',
  ].join('\n');

  it('sums a counter over its label sets, ignoring timestamps and longer names', () => {
    expect(readCounter(text, 'geodispatch_pings_accepted_total')).toBe(125);
    expect(readCounter('geodispatch_pings_accepted_total 42\n', 'geodispatch_pings_accepted_total')).toBe(42);
  });

  it('is undefined when the counter is absent', () => {
    expect(readCounter('up 1\n', 'geodispatch_pings_accepted_total')).toBeUndefined();
  });
});
