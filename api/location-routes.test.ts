import { describe, expect, test } from 'vitest';
import { queryFields } from './location-routes.js';

// the oracle: what the route read before it split plain queries by hand
function viaSearchParams(query: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(query)) if (key !== 'access_token') out[key] = value;
  return out;
}

describe('queryFields', () => {
  test('reads what URLSearchParams reads, on plain, encoded, repeated and odd queries', () => {
    const cases = [
      '', 'lat=51.5&lng=-0.12&k=10', 'lat=1&lat=2', 'a', 'a=', '=x', '&&lat=1&&', 'k=10&access_token=abc.def.ghi', 'a=b=c',
      'name=caf%C3%A9', 'q=a+b', 'bad=%E0%A4%A', 'x=%zz', 'kind=courier&status=available&capability=cold_chain',
    ];
    for (const q of cases) expect(queryFields(q), q).toEqual(viaSearchParams(q));
  });

  test('seeded random queries over a small alphabet agree with URLSearchParams', () => {
    let seed = 11;
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
    const alphabet = 'ab=&%2+._-k0';
    for (let i = 0; i < 2000; i++) {
      const q = Array.from({ length: rnd(16) }, () => alphabet[rnd(alphabet.length)]).join('');
      expect(queryFields(q), q).toEqual(viaSearchParams(q));
    }
  });
});
