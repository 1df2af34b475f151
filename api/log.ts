/**
 * The structured logger (pino), with secrets redacted before anything is written.
 *
 * Redacted: Authorization and X-API-Key headers, access tokens (query strings and fields), API keys, JWT
 * secrets and connection URLs. Privacy: raw coordinates of people (drivers, donors, requesters) are logged
 * only at `debug` level; at `info` and above log ids, counts, codes and durations, never a position.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Paths whose values are replaced by "[redacted]" wherever they appear in a log line. */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  '*.authorization',
  'apiKey',
  '*.apiKey',
  'headers["x-api-key"]',
  'req.headers["x-api-key"]',
  '*["x-api-key"]',
  'token',
  '*.token',
  'accessToken',
  '*.accessToken',
  'access_token',
  '*.access_token',
  'secret',
  '*.secret',
  'jwt.secret',
  'config.jwt.secret',
  'password',
  '*.password',
  'redisUrl',
  '*.redisUrl',
  'databaseUrl',
  '*.databaseUrl',
]);

/** A pino logger at `level` writing to `destination` (stdout by default) with secrets redacted. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, base: { service: 'geodispatch' }, redact: { paths: [...REDACT_PATHS], censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}
