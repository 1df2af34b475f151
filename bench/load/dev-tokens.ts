/**
 * Credentials for a load run: tokens printed by a dev server (`dev token <role>: <JWT>` on stdout), or HS256
 * tokens minted here when the run knows the server's JWT_SECRET (it sets it itself under --spawn).
 */
import { createHmac } from 'node:crypto';

/** Roles of PRODUCT.md §4. */
export type Role = 'driver' | 'dispatcher' | 'requester' | 'admin';

const DEV_TOKEN_LINE = /^\s*dev token ([a-z_]+)\s*:\s*(\S+)\s*$/;

/** Reads one stdout line of a dev server: `{ role, token }` for `dev token <role>: <JWT>`, else undefined. */
export function parseDevTokenLine(line: string): { role: string; token: string } | undefined {
  const m = DEV_TOKEN_LINE.exec(line);
  return m === null ? undefined : { role: m[1], token: m[2] };
}

/** Mints an HS256 JWT with `sub`, `role`, `iat` and `exp` (seconds), as the server verifies with JWT_SECRET. */
export function mintToken(secret: string, sub: string, role: Role, ttlSeconds = 3600, nowMs = Date.now()): string {
  if (secret.length === 0) throw new Error('mintToken needs a non-empty secret (the server\'s JWT_SECRET)');
  const iat = Math.floor(nowMs / 1000);
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = base64url(JSON.stringify({ sub, role, iat, exp: iat + ttlSeconds }));
  const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

/** The claims of a JWT, without verifying it (to learn a given token's role for messages). */
export function peekClaims(token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1];
  if (part === undefined) return undefined;
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function base64url(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64url');
}
