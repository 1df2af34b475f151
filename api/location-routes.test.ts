import { describe, expect, test } from 'vitest';
import { nearbyQuery, queryFields } from './location-routes.js';
import { validate } from './schemas.js';

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

// the oracle: the validator over the fields, as the route read every query before the direct path
function viaValidator(query: string): unknown {
  try {
    return validate('nearbyQuery', queryFields(query));
  } catch (err) {
    return { threw: (err as Error).message };
  }
}

function direct(query: string): unknown {
  try {
    return nearbyQuery(query);
  } catch (err) {
    return { threw: (err as Error).message };
  }
}

describe('nearbyQuery', () => {
  test('reads what the validator reads, and refuses what it refuses with its message', () => {
    const cases = [
      'lat=51.5074&lng=-0.1278&k=10', 'lat=51.5074&lng=-0.1278', 'lat=0&lng=0&k=1', 'lat=-90&lng=180&k=1000', 'lat=90.0&lng=-180.0',
      'lat=-0&lng=-0', 'lat=51.5&lng=-0.12&radius=0', 'lat=51.5&lng=-0.12&radius=20037509', 'lat=51.5&lng=-0.12&radius=20037509.5',
      'lat=90.0000001&lng=0', 'lat=0&lng=180.5', 'lat=01.5&lng=2', 'lat=1e1&lng=2', 'lat=%201&lng=2', 'lat=+1&lng=2', 'lat=.5&lng=2',
      'lat=5.&lng=2', 'lat=&lng=2', 'lat=abc&lng=2', 'lng=2', 'lat=1', '', 'lat=1&lng=2&k=0', 'lat=1&lng=2&k=1001', 'lat=1&lng=2&k=10.0',
      'lat=1&lng=2&k=-3', 'lat=1&lng=2&k=07', 'lat=1&lng=2&kind=courier', 'lat=1&lng=2&kind=site', 'lat=1&lng=2&kind=donor&bloodType=O-',
      'lat=1&lng=2&kind=bus', 'lat=1&lng=2&status=available', 'lat=1&lng=2&capability=cold_chain', 'lat=1&lng=2&extra=1',
      'lat=1&lat=2&lng=3', 'lat=1&lng=2&access_token=x.y.z', 'lat=1&lng=2&radius=-1', 'lat=1.1234567890123456&lng=2',
      'lat=1&lng=2&', '&lat=1&&lng=2', 'lat=1&lng', 'lat=1&lng=2&k', 'lat=1=2&lng=3', 'lat=1&lng=2&kind=courier&kind=site',
      'lat=1&lng=2&kind=site&kind=courier', 'lat=1%2E5&lng=2', 'lat=1&lng=2&radius=5&radius=x', 'access_token=t&lat=1&lng=2',
    ];
    for (const q of cases) expect(direct(q), q).toEqual(viaValidator(q));
  });

  test('seeded random queries over numbers and keys agree with the validator', () => {
    let seed = 5;
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
    const keys = ['lat', 'lng', 'k', 'radius', 'kind', 'access_token', 'status', ''];
    const values = ['0', '-0', '1', '10', '90', '91', '-90.5', '180', '180.01', '51.5074', '1000', '1001', '0.0', '00', 'courier', 'site', '', '1e2', 'a=b'];
    for (let i = 0; i < 5000; i++) {
      const q = Array.from({ length: 1 + rnd(5) }, () => (rnd(9) === 0 ? keys[rnd(keys.length)] : `${keys[rnd(keys.length)]}=${values[rnd(values.length)]}`)).join(rnd(7) === 0 ? '&&' : '&');
      expect(direct(q), q).toEqual(viaValidator(q));
    }
  });
});

describe('nearbyQuery numbers', () => {
  test('refuses what Number() would read but is not a decimal: blanks, hex, Infinity (which passed every bound)', () => {
    for (const q of ['lat=%20&lng=2', 'lat=0x10&lng=2', 'lat=Infinity&lng=2', 'lat=1&lng=-Infinity', 'lat=1&lng=2&radius=Infinity', 'lat=1&lng=2&k=0b11', 'lat=1&lng=2&kind=site&units=1e999']) {
      expect(() => nearbyQuery(q), q).toThrow(expect.objectContaining({ code: 'E_VALIDATION' }));
    }
    expect(nearbyQuery('lat=%2B51.5&lng=.5&radius=1e3')).toMatchObject({ lat: 51.5, lng: 0.5, radius: 1000 });
  });
});
