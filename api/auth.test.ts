import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { ApiError } from './api-error.js';
import { Authenticator, type Principal, requireRole, requireSelf, VERIFIED_TOKEN_CACHE } from './auth.js';

const SECRET = 's'.repeat(40);
const NOW = 1_700_000_000_000;
const nowSec = NOW / 1000;

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
function hs256(header: unknown, claims: unknown, secret = SECRET): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof ApiError ? `${err.status} ${err.code}` : `not an ApiError: ${String(err)}`;
  }
  return 'no error';
}

const auth = new Authenticator({ secret: SECRET, algorithm: 'HS256' }, [{ hash: Authenticator.hashApiKey('gateway-key'), role: 'admin', sub: 'gw-1' }]);

describe('Authenticator with HS256', () => {
  test('a valid bearer token gives its subject and role', () => {
    const token = auth.signToken({ sub: 'courier-7', role: 'driver' }, 60, NOW);
    expect(auth.authenticate({ authorization: `Bearer ${token}` }, NOW)).toEqual({ sub: 'courier-7', role: 'driver', via: 'jwt' });
    expect(auth.authenticate({ accessToken: token }, NOW + 30_000)).toEqual({ sub: 'courier-7', role: 'driver', via: 'jwt' });
  });

  test('a token past exp plus the clock skew is E_TOKEN_EXPIRED, within the skew it is accepted', () => {
    const token = auth.signToken({ sub: 'd', role: 'driver' }, 60, NOW);
    expect(auth.authenticate({ accessToken: token }, NOW + 60_000 + 29_000).sub).toBe('d');
    expect(codeOf(() => auth.authenticate({ accessToken: token }, NOW + 60_000 + 31_000))).toBe('401 E_TOKEN_EXPIRED');
  });

  test('a token without exp is rejected', () => {
    const token = hs256({ alg: 'HS256', typ: 'JWT' }, { sub: 'd', role: 'driver' });
    expect(codeOf(() => auth.authenticate({ accessToken: token }, NOW))).toBe('401 E_UNAUTHENTICATED');
  });

  test('a token with alg none and no signature is rejected', () => {
    const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'admin', role: 'admin', exp: nowSec + 60 })}.`;
    expect(codeOf(() => auth.authenticate({ accessToken: token }, NOW))).toBe('401 E_UNAUTHENTICATED');
  });

  test('a token signed with another secret is rejected', () => {
    const token = hs256({ alg: 'HS256' }, { sub: 'd', role: 'driver', exp: nowSec + 60 }, 'another-secret-another-secret-xx');
    expect(codeOf(() => auth.authenticate({ accessToken: token }, NOW))).toBe('401 E_UNAUTHENTICATED');
  });

  test('a token whose payload was altered after signing is rejected', () => {
    const [h, , s] = auth.signToken({ sub: 'd', role: 'driver' }, 60, NOW).split('.');
    const forged = `${h}.${b64({ sub: 'd', role: 'admin', exp: nowSec + 60 })}.${s}`;
    expect(codeOf(() => auth.authenticate({ accessToken: forged }, NOW))).toBe('401 E_UNAUTHENTICATED');
  });

  test('an unknown role or an empty subject is rejected', () => {
    expect(codeOf(() => auth.authenticate({ accessToken: hs256({ alg: 'HS256' }, { sub: 'd', role: 'root', exp: nowSec + 60 }) }, NOW))).toBe('401 E_UNAUTHENTICATED');
    expect(codeOf(() => auth.authenticate({ accessToken: hs256({ alg: 'HS256' }, { sub: '', role: 'driver', exp: nowSec + 60 }) }, NOW))).toBe('401 E_UNAUTHENTICATED');
  });

  test('a token not yet valid by nbf is rejected until nbf minus the skew', () => {
    const token = hs256({ alg: 'HS256' }, { sub: 'd', role: 'driver', exp: nowSec + 600, nbf: nowSec + 120 });
    expect(codeOf(() => auth.authenticate({ accessToken: token }, NOW))).toBe('401 E_UNAUTHENTICATED');
    expect(auth.authenticate({ accessToken: token }, NOW + 100_000).sub).toBe('d');
  });

  test('a remembered token still obeys exp and nbf, and a forged twin of it is still refused', () => {
    const a = new Authenticator({ secret: SECRET, algorithm: 'HS256' }, []);
    const token = hs256({ alg: 'HS256' }, { sub: 'd', role: 'driver', exp: nowSec + 600, nbf: nowSec + 120 });
    expect(a.authenticate({ accessToken: token }, NOW + 100_000)).toEqual({ sub: 'd', role: 'driver', via: 'jwt' });
    expect(codeOf(() => a.authenticate({ accessToken: token }, NOW))).toBe('401 E_UNAUTHENTICATED');
    expect(codeOf(() => a.authenticate({ accessToken: token }, NOW + 631_000))).toBe('401 E_TOKEN_EXPIRED');
    const [h, p] = token.split('.');
    const forged = `${h}.${p}.${createHmac('sha256', 'x'.repeat(40)).update(`${h}.${p}`).digest('base64url')}`;
    expect(codeOf(() => a.authenticate({ accessToken: forged }, NOW + 200_000))).toBe('401 E_UNAUTHENTICATED');
    expect(a.authenticate({ accessToken: token }, NOW + 200_000).sub).toBe('d');
  });

  test('a remembered token behind the Authorization header answers as the header pattern does, whatever its spacing', () => {
    const a = new Authenticator({ secret: SECRET, algorithm: 'HS256' }, []);
    const token = a.signToken({ sub: 'd', role: 'driver' }, 600, NOW);
    const principal = { sub: 'd', role: 'driver', via: 'jwt' };
    for (let round = 0; round < 2; round++) {
      // round 0 verifies, round 1 remembers: both must answer the same
      for (const header of [`Bearer ${token}`, `bearer ${token}`, `Bearer   ${token}  `]) expect(a.authenticate({ authorization: header }, NOW), header).toEqual(principal);
      for (const header of [`Bearer ${token}\tx`, `Bearer\t${token}`, `Bearer ${token} x`, `Bearer`, `Bearer `, `Bearer ${token.slice(0, -1)}`]) {
        expect(codeOf(() => a.authenticate({ authorization: header }, NOW)), header).toBe('401 E_UNAUTHENTICATED');
      }
      expect(codeOf(() => a.authenticate({ authorization: `Bearer ${token}` }, NOW + 700_000))).toBe('401 E_TOKEN_EXPIRED');
    }
  });

  test('the memory of verified tokens is bounded: past the bound it starts again and every token still verifies', () => {
    const a = new Authenticator({ secret: SECRET, algorithm: 'HS256' }, []);
    const first = a.signToken({ sub: 'first', role: 'driver' }, 600, NOW);
    a.authenticate({ accessToken: first }, NOW);
    for (let i = 0; i < VERIFIED_TOKEN_CACHE; i++) a.authenticate({ accessToken: a.signToken({ sub: `d${i}`, role: 'driver' }, 600, NOW) }, NOW);
    expect((a as unknown as { verified: Map<string, unknown> }).verified.size).toBeLessThanOrEqual(VERIFIED_TOKEN_CACHE);
    expect(a.authenticate({ accessToken: first }, NOW).sub).toBe('first');
  });

  test('malformed, oversized and missing credentials are 401', () => {
    expect(codeOf(() => auth.authenticate({}, NOW))).toBe('401 E_UNAUTHENTICATED');
    expect(codeOf(() => auth.authenticate({ authorization: 'Basic abc' }, NOW))).toBe('401 E_UNAUTHENTICATED');
    expect(codeOf(() => auth.authenticate({ accessToken: 'a.b' }, NOW))).toBe('401 E_UNAUTHENTICATED');
    expect(codeOf(() => auth.authenticate({ accessToken: 'e30.e30.!!' }, NOW))).toBe('401 E_UNAUTHENTICATED');
    expect(codeOf(() => auth.authenticate({ accessToken: `${'a'.repeat(9000)}.b.c` }, NOW))).toBe('401 E_UNAUTHENTICATED');
    expect(codeOf(() => auth.authenticate({ accessToken: `${b64('just a string')}.${b64([1])}.x` }, NOW))).toBe('401 E_UNAUTHENTICATED');
  });

  test('API keys are matched by their hash and carry the configured role', () => {
    expect(auth.authenticate({ apiKey: 'gateway-key' }, NOW)).toEqual({ sub: 'gw-1', role: 'admin', via: 'api-key' });
    expect(codeOf(() => auth.authenticate({ apiKey: 'gateway-kez' }, NOW))).toBe('401 E_UNAUTHENTICATED');
    expect(Authenticator.hashApiKey('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('Authenticator with a public key', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const rsa = new Authenticator({ publicKey: pem, algorithm: 'RS256' }, []);
  const rs256 = (claims: unknown) => {
    const input = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims)}`;
    return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
  };

  test('an RS256 token signed by the private key is accepted', () => {
    expect(rsa.authenticate({ authorization: `Bearer ${rs256({ sub: 'ops', role: 'dispatcher', exp: nowSec + 60 })}` }, NOW)).toEqual({ sub: 'ops', role: 'dispatcher', via: 'jwt' });
  });

  test('an HS256 token is rejected when a public key is configured, even one keyed with the PEM text', () => {
    const confused = hs256({ alg: 'HS256' }, { sub: 'ops', role: 'admin', exp: nowSec + 60 }, pem);
    expect(codeOf(() => rsa.authenticate({ accessToken: confused }, NOW))).toBe('401 E_UNAUTHENTICATED');
  });

  test('an RS256 token is rejected by an HS256 server', () => {
    expect(codeOf(() => auth.authenticate({ accessToken: rs256({ sub: 'ops', role: 'admin', exp: nowSec + 60 }) }, NOW))).toBe('401 E_UNAUTHENTICATED');
  });

  test('ES256 tokens verify with raw r||s signatures', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const es = new Authenticator({ publicKey: ec.publicKey.export({ type: 'spki', format: 'pem' }).toString(), algorithm: 'ES256' }, []);
    const input = `${b64({ alg: 'ES256' })}.${b64({ sub: 'h1', role: 'requester', exp: nowSec + 60 })}`;
    const sig = sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    expect(es.authenticate({ accessToken: `${input}.${sig}` }, NOW).role).toBe('requester');
    expect(codeOf(() => es.authenticate({ accessToken: `${input}.${sig.slice(0, -4)}AAAA` }, NOW))).toBe('401 E_UNAUTHENTICATED');
  });

  test('signing is refused without a shared secret, and a mismatched configuration is a programming error', () => {
    expect(() => rsa.signToken({ sub: 'x', role: 'admin' }, 60)).toThrow(/only HS256/);
    expect(() => new Authenticator({ publicKey: pem, algorithm: 'HS256', secret: SECRET }, [])).toThrow(/RS256 or ES256/);
    expect(() => new Authenticator({ publicKey: pem, algorithm: 'ES256' }, [])).toThrow(/EC P-256/);
  });
});

describe('requireRole and requireSelf', () => {
  const driver: Principal = { sub: 'c1', role: 'driver', via: 'jwt' };
  const admin: Principal = { sub: 'root', role: 'admin', via: 'api-key' };
  const dispatcher: Principal = { sub: 'ops', role: 'dispatcher', via: 'jwt' };
  const requester: Principal = { sub: 'h1', role: 'requester', via: 'jwt' };

  test('requireRole passes listed roles and refuses others with 403 E_FORBIDDEN', () => {
    expect(() => requireRole(admin, 'admin', 'dispatcher')).not.toThrow();
    expect(codeOf(() => requireRole(driver, 'admin', 'dispatcher'))).toBe('403 E_FORBIDDEN');
  });

  test('a driver may act only as its own subject', () => {
    expect(() => requireSelf(driver, 'c1')).not.toThrow();
    expect(codeOf(() => requireSelf(driver, 'c2'))).toBe('403 E_FORBIDDEN');
  });

  test('admin and dispatcher may act for a courier by default, requesters never; the caller can narrow the list', () => {
    expect(() => requireSelf(admin, 'c2')).not.toThrow();
    expect(() => requireSelf(dispatcher, 'c2')).not.toThrow();
    expect(codeOf(() => requireSelf(requester, 'c2'))).toBe('403 E_FORBIDDEN');
    expect(codeOf(() => requireSelf(dispatcher, 'c2', 'admin'))).toBe('403 E_FORBIDDEN');
  });
});
