/**
 * Who is calling: JWT bearer tokens (verified by hand with node:crypto) and hashed API keys.
 *
 *   Authorization: Bearer <jwt> ─┐
 *   ?access_token=<jwt> ─────────┼─► Authenticator.authenticate ─► Principal { sub, role, via }
 *   X-API-Key: <key> ────────────┘          │ throws ApiError 401 E_UNAUTHENTICATED / E_TOKEN_EXPIRED
 *                                           ▼
 *                       requireRole(p, …roles) / requireSelf(p, courierId) ─► ApiError 403 E_FORBIDDEN
 *
 * JWT rules: the algorithm is pinned to the configured one (no `alg: none`, no HS256 when a public key is
 * configured and no RS256/ES256 with a shared secret), signatures compare in constant time, `exp` is
 * required, `nbf` is honoured, `sub` is a non-empty string and `role` a known role. Times are ms (`now`),
 * JWT claims are seconds as RFC 7519 says.
 *
 * A token whose signature checked out is remembered (bounded, by its exact text) with its time claims, so the
 * next request with it pays a map lookup and the exp/nbf comparison instead of an HMAC or RSA check and two
 * base64 + JSON decodes: that was a sixth of a nearest query's server time. Only verified tokens enter, so
 * refused ones cannot fill it; it empties when full.
 */
import { createHash, createHmac, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { ApiError } from './api-error.js';
import type { ApiConfig } from './config.js';

export type Role = 'driver' | 'dispatcher' | 'requester' | 'admin';

/** Every role, in one place (config parsing and claim checks use it). */
export const ROLES: readonly Role[] = Object.freeze(['driver', 'dispatcher', 'requester', 'admin']);

/** An authenticated caller. */
export interface Principal {
  sub: string;
  role: Role;
  via: 'jwt' | 'api-key';
}

/** Clock skew tolerated on `exp` and `nbf`: phones and gateways drift by seconds, not minutes. */
export const CLOCK_SKEW_SEC = 30;
/** Longest token accepted: an RS256 JWT with a few claims is ~600 chars; 8 KiB also bounds the work per call. */
export const MAX_TOKEN_LENGTH = 8192;
/** Longest API key accepted (keys are random strings of a few dozen chars). */
export const MAX_API_KEY_LENGTH = 256;
/** Longest subject accepted (same bound as ids elsewhere in the API). */
const MAX_SUB_LENGTH = 128;
/** Verified tokens remembered: a city's drivers, dispatchers and gateways, each a few hundred bytes. */
export const VERIFIED_TOKEN_CACHE = 20_000;

/** A verified token's principal and the time claims every use must still pass. */
interface VerifiedToken {
  principal: Principal;
  exp: number;
  nbf: number | undefined;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Verifies JWTs and API keys against the configured secret, public key and key hashes. */
export class Authenticator {
  private readonly algorithm: ApiConfig['jwt']['algorithm'];
  private readonly secret: Buffer | undefined;
  private readonly publicKey: KeyObject | undefined;
  private readonly keys: readonly { hash: Buffer; role: Role; sub: string }[];
  private readonly verified = new Map<string, VerifiedToken>();

  constructor(jwt: ApiConfig['jwt'], apiKeys: ApiConfig['apiKeys']) {
    this.algorithm = jwt.algorithm;
    if (jwt.algorithm === 'HS256') {
      if (!jwt.secret) throw new Error('Authenticator: HS256 needs jwt.secret (set JWT_SECRET)');
      if (jwt.publicKey) throw new Error('Authenticator: a public key is configured, so the algorithm must be RS256 or ES256, not HS256');
      this.secret = Buffer.from(jwt.secret, 'utf8');
    } else {
      if (!jwt.publicKey) throw new Error(`Authenticator: ${jwt.algorithm} needs jwt.publicKey (set JWT_PUBLIC_KEY to a PEM public key)`);
      this.publicKey = loadPublicKey(jwt.publicKey, jwt.algorithm);
    }
    this.keys = apiKeys.map((k) => {
      if (!/^[0-9a-f]{64}$/.test(k.hash)) throw new Error(`Authenticator: API key hash for '${k.sub}' must be 64 lowercase hex chars (sha256)`);
      return { hash: Buffer.from(k.hash, 'hex'), role: k.role, sub: k.sub };
    });
  }

  /** The caller behind a bearer header, an `access_token` query value or an API key; throws ApiError 401. */
  authenticate(input: { authorization?: string; apiKey?: string; accessToken?: string }, now: number = Date.now()): Principal {
    if (input.authorization) {
      if (input.authorization.length > MAX_TOKEN_LENGTH + 7) throw unauthenticated('authorization header too long');
      // the common case: exactly "Bearer " and a token verified before (so one the pattern below would capture)
      if (input.authorization.startsWith('Bearer ')) {
        const known = this.remembered(input.authorization.slice(7), now);
        if (known !== undefined) return known;
      }
      const m = /^Bearer +(\S+) *$/i.exec(input.authorization);
      if (!m) throw unauthenticated('authorization header must be "Bearer <token>"');
      return this.verifyToken(m[1], now);
    }
    if (input.accessToken) return this.verifyToken(input.accessToken, now);
    if (input.apiKey) return this.verifyApiKey(input.apiKey);
    throw unauthenticated('credentials required: Authorization: Bearer <token> or X-API-Key');
  }

  /** Signs an HS256 token (dev tokens and tests); `now` in ms. */
  signToken(claims: { sub: string; role: Role }, ttlSeconds: number, now: number = Date.now()): string {
    if (!this.secret) throw new Error(`signToken: only HS256 tokens can be signed here; this server verifies ${this.algorithm} with a public key`);
    if (!(ttlSeconds > 0) || !Number.isFinite(ttlSeconds)) throw new Error('signToken: ttlSeconds must be a positive finite number');
    const iat = Math.floor(now / 1000);
    const header = b64urlJson({ alg: 'HS256', typ: 'JWT' });
    const payload = b64urlJson({ sub: claims.sub, role: claims.role, iat, exp: iat + Math.ceil(ttlSeconds) });
    const sig = createHmac('sha256', this.secret).update(`${header}.${payload}`).digest('base64url');
    return `${header}.${payload}.${sig}`;
  }

  /** sha256 hex of an API key: the only form in which keys are configured or stored. */
  static hashApiKey(key: string): string {
    return createHash('sha256').update(key, 'utf8').digest('hex');
  }

  // the principal of a token whose signature checked out before (exp and nbf checked again now), or undefined
  private remembered(token: string, now: number): Principal | undefined {
    const known = this.verified.get(token);
    if (known === undefined) return undefined;
    checkTimes(known.exp, known.nbf, now);
    return known.principal;
  }

  private verifyToken(token: string, now: number): Principal {
    const known = this.remembered(token, now);
    if (known !== undefined) return known;
    if (token.length > MAX_TOKEN_LENGTH) throw unauthenticated('token too long');
    const parts = token.split('.');
    if (parts.length !== 3 || !parts.every((p) => BASE64URL.test(p)) || !parts[0] || !parts[1]) throw unauthenticated('malformed token');
    const [h, p, s] = parts;
    const header = parseSegment(h);
    if (header.alg !== this.algorithm) throw unauthenticated(`token algorithm must be ${this.algorithm}`);
    // no extension is understood here, so a token that demands one must be refused (RFC 7515 §4.1.11)
    if (header.crit !== undefined) throw unauthenticated('token uses unsupported critical header parameters');
    if (!this.signatureValid(`${h}.${p}`, Buffer.from(s, 'base64url'))) throw unauthenticated('bad token signature');
    const verified = checkClaims(parseSegment(p), now);
    if (this.verified.size >= VERIFIED_TOKEN_CACHE) this.verified.clear();
    this.verified.set(token, verified);
    return verified.principal;
  }

  private signatureValid(signingInput: string, sig: Buffer): boolean {
    if (this.secret) {
      const expected = createHmac('sha256', this.secret).update(signingInput).digest();
      return sig.length === expected.length && timingSafeEqual(sig, expected);
    }
    const key = this.algorithm === 'ES256' ? { key: this.publicKey as KeyObject, dsaEncoding: 'ieee-p1363' as const } : (this.publicKey as KeyObject);
    try {
      return verify('sha256', Buffer.from(signingInput), key, sig);
    } catch {
      return false;
    }
  }

  private verifyApiKey(key: string): Principal {
    if (key.length > MAX_API_KEY_LENGTH) throw unauthenticated('API key too long');
    const hash = createHash('sha256').update(key, 'utf8').digest();
    let found: { role: Role; sub: string } | undefined;
    // compare against every key so the time taken does not reveal which (or whether one) matched
    for (const k of this.keys) if (timingSafeEqual(hash, k.hash) && !found) found = k;
    if (!found) throw unauthenticated('unknown API key');
    return { sub: found.sub, role: found.role, via: 'api-key' };
  }
}

/** Throws ApiError 403 E_FORBIDDEN unless the principal has one of the roles. */
export function requireRole(p: Principal, ...roles: Role[]): void {
  if (!roles.includes(p.role)) throw new ApiError(403, 'E_FORBIDDEN', `role '${p.role}' may not do this (needs ${roles.join(' or ')})`);
}

/**
 * Throws ApiError 403 E_FORBIDDEN unless the caller may act as this courier: a driver only as its own `sub`;
 * another role only when listed in `othersAllowed` (default admin and dispatcher; pass roles to narrow).
 */
export function requireSelf(p: Principal, courierId: string, ...othersAllowed: Role[]): void {
  if (p.role === 'driver') {
    if (p.sub !== courierId) throw new ApiError(403, 'E_FORBIDDEN', 'a driver may act only as itself');
    return;
  }
  const allowed: readonly Role[] = othersAllowed.length > 0 ? othersAllowed : ['admin', 'dispatcher'];
  if (!allowed.includes(p.role)) throw new ApiError(403, 'E_FORBIDDEN', `role '${p.role}' may not act for courier '${courierId}'`);
}

/** True when the string is one of the four roles. */
export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

function checkClaims(claims: Record<string, unknown>, now: number): VerifiedToken {
  const { exp, nbf, sub, role } = claims;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw unauthenticated('token must carry a numeric exp claim');
  if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf))) throw unauthenticated('token nbf claim must be numeric');
  checkTimes(exp, nbf, now);
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_SUB_LENGTH) throw unauthenticated(`token sub must be a string of 1..${MAX_SUB_LENGTH} chars`);
  // the sub is stored as text (owners, idempotency keys): a control character or a lone surrogate is not text
  // PostgreSQL keeps, and a write refused by the store would take the writes queued behind it along
  if (/[\u0000-\u001f\u007f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(sub)) throw unauthenticated('token sub must be printable text (no control characters or lone surrogates)');
  if (!isRole(role)) throw unauthenticated(`token role must be one of ${ROLES.join(', ')}`);
  return { principal: Object.freeze({ sub, role, via: 'jwt' as const }), exp, nbf };
}

// exp and nbf (seconds) against `now` (ms), with the tolerated skew
function checkTimes(exp: number, nbf: number | undefined, now: number): void {
  const nowSec = now / 1000;
  if (nowSec > exp + CLOCK_SKEW_SEC) throw new ApiError(401, 'E_TOKEN_EXPIRED', 'token expired');
  if (nbf !== undefined && nowSec + CLOCK_SKEW_SEC < nbf) throw unauthenticated('token not yet valid');
}

function parseSegment(segment: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw unauthenticated('malformed token');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw unauthenticated('malformed token');
  return value as Record<string, unknown>;
}

function loadPublicKey(pem: string, algorithm: 'RS256' | 'ES256'): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (cause) {
    throw new Error('Authenticator: JWT_PUBLIC_KEY is not a readable PEM public key', { cause });
  }
  if (algorithm === 'RS256' && key.asymmetricKeyType !== 'rsa') throw new Error(`Authenticator: RS256 needs an RSA public key, got ${key.asymmetricKeyType}`);
  if (algorithm === 'ES256' && (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')) {
    throw new Error('Authenticator: ES256 needs an EC P-256 public key');
  }
  return key;
}

function b64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function unauthenticated(message: string): ApiError {
  return new ApiError(401, 'E_UNAUTHENTICATED', message);
}
