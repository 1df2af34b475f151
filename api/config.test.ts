import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { Authenticator } from './auth.js';
import { dispatchPolicy, loadConfig } from './config.js';

const SECRET = 'x'.repeat(32);

describe('loadConfig', () => {
  test('BLOOD_TYPE_SLACK_*_S set how much extra transit blood requests accept for better-matched units; the policy carries them', () => {
    expect(dispatchPolicy(loadConfig({ JWT_SECRET: SECRET })).bloodTypeSlack).toEqual({ routine: 1800, urgent: 600, emergency: 180 });
    const c = loadConfig({ JWT_SECRET: SECRET, BLOOD_TYPE_SLACK_ROUTINE_S: '900', BLOOD_TYPE_SLACK_EMERGENCY_S: '0', DISPATCH_MODE: 'greedy' });
    expect(dispatchPolicy(c)).toMatchObject({ mode: 'greedy', bloodTypeSlack: { routine: 900, urgent: 600, emergency: 0 } });
    expect(() => loadConfig({ JWT_SECRET: SECRET, BLOOD_TYPE_SLACK_URGENT_S: '-5' })).toThrow(/BLOOD_TYPE_SLACK_URGENT_S/);
  });

  test('STACK_* shape stacking; STACK_MAX_STOPS=1 turns it off in the policy', () => {
    expect(dispatchPolicy(loadConfig({ JWT_SECRET: SECRET })).stacking).toEqual({ maxStops: 3, pickupGapSeconds: 300, detourShare: 0.5 });
    expect(dispatchPolicy(loadConfig({ JWT_SECRET: SECRET, STACK_MAX_STOPS: '2', STACK_PICKUP_GAP_S: '120', STACK_DETOUR_PCT: '80' })).stacking).toEqual({ maxStops: 2, pickupGapSeconds: 120, detourShare: 0.8 });
    expect(dispatchPolicy(loadConfig({ JWT_SECRET: SECRET, STACK_MAX_STOPS: '1' })).stacking).toBe(false);
    expect(() => loadConfig({ JWT_SECRET: SECRET, STACK_MAX_STOPS: '9' })).toThrow(/STACK_MAX_STOPS/);
  });

  test('EN_ROUTE_* pick which busy couriers are candidates; EN_ROUTE_FINISH_S=0 turns en route off', () => {
    expect(dispatchPolicy(loadConfig({ JWT_SECRET: SECRET })).enRoute).toEqual({ finishWithinSeconds: 300, nearSeconds: 600 });
    expect(dispatchPolicy(loadConfig({ JWT_SECRET: SECRET, EN_ROUTE_NEAR_S: '120' })).enRoute).toEqual({ finishWithinSeconds: 300, nearSeconds: 120 });
    expect(dispatchPolicy(loadConfig({ JWT_SECRET: SECRET, EN_ROUTE_FINISH_S: '0' })).enRoute).toBe(false);
  });

  test('SCARCE_PRICE_MAX_S caps what routine work pays for a cold-chain courier; on by default, 0 turns it off', () => {
    expect(dispatchPolicy(loadConfig({ JWT_SECRET: SECRET })).scarcity).toEqual({ maxSeconds: 600, horizonSeconds: 1800, windowSeconds: 3600 });
    expect(dispatchPolicy(loadConfig({ JWT_SECRET: SECRET, SCARCE_PRICE_MAX_S: '120' })).scarcity).toMatchObject({ maxSeconds: 120 });
    expect(dispatchPolicy(loadConfig({ JWT_SECRET: SECRET, SCARCE_PRICE_MAX_S: '0' })).scarcity).toBe(false);
    expect(() => loadConfig({ JWT_SECRET: SECRET, SCARCE_PRICE_MAX_S: '-5' })).toThrow(/SCARCE_PRICE_MAX_S/);
  });

  test('MAP_STYLE_URL is an http(s) URL for the live map, absent by default', () => {
    expect(loadConfig({ JWT_SECRET: SECRET }).mapStyleUrl).toBeUndefined();
    expect(loadConfig({ JWT_SECRET: SECRET, MAP_STYLE_URL: 'https://tiles.example/style.json' }).mapStyleUrl).toBe('https://tiles.example/style.json');
    expect(() => loadConfig({ JWT_SECRET: SECRET, MAP_STYLE_URL: 'file:///etc/passwd' })).toThrow(/MAP_STYLE_URL/);
  });

  test('GD_ROLE is all by default; core needs REDIS_URL and DATABASE_URL; edge needs REDIS_URL and a token key every edge shares', () => {
    const all = loadConfig({ JWT_SECRET: SECRET });
    expect(all.role).toBe('all');
    expect(all.cluster).toMatchObject({ leaseTtlMs: 5_000, prefix: 'gd:' });
    expect(all.cluster.nodeName).toMatch(/^all-.+-\d+$/);
    expect(() => loadConfig({ JWT_SECRET: SECRET, GD_ROLE: 'core' })).toThrow(/GD_ROLE=core needs REDIS_URL and DATABASE_URL/);
    const core = loadConfig({ JWT_SECRET: SECRET, GD_ROLE: 'core', REDIS_URL: 'redis://r:6379', DATABASE_URL: 'postgres://p/db', GD_NODE_NAME: 'core-7', GD_LEASE_TTL_MS: '2000' });
    expect([core.role, core.cluster.nodeName, core.cluster.leaseTtlMs]).toEqual(['core', 'core-7', 2000]);
    expect(() => loadConfig({ JWT_SECRET: SECRET, GD_ROLE: 'edge' })).toThrow(/GD_ROLE=edge needs REDIS_URL/);
    expect(() => loadConfig({ GD_ROLE: 'edge', REDIS_URL: 'redis://r:6379' })).toThrow(/GD_ROLE=edge needs JWT_SECRET or JWT_PUBLIC_KEY/);
    const edge = loadConfig({ JWT_SECRET: SECRET, GD_ROLE: 'edge', REDIS_URL: 'redis://r:6379' });
    expect([edge.role, edge.redisUrl]).toEqual(['edge', 'redis://r:6379']);
    expect(edge.cluster.nodeName).toMatch(/^edge-.+-\d+$/);
    expect(() => loadConfig({ JWT_SECRET: SECRET, GD_ROLE: 'leader' })).toThrow(/GD_ROLE/);
    expect(() => loadConfig({ JWT_SECRET: SECRET, GD_NODE_NAME: 'has space' })).toThrow(/GD_NODE_NAME/);
  });

  test('an environment with only a secret gives the documented defaults', () => {
    const c = loadConfig({ JWT_SECRET: SECRET, NODE_ENV: 'production' });
    expect(c.host).toBe('0.0.0.0');
    expect(c.port).toBe(8080);
    expect(c.bodyLimitBytes).toBe(65536);
    expect(c.ws.maxPayloadBytes).toBe(1024 * 1024);
    expect(c.ws.maxBackpressureBytes).toBe(1024 * 1024);
    expect(c.offerTtlMs).toBe(15000);
    expect(c.dispatch).toEqual({ mode: 'batched', windowMs: 2000, tickMs: 50, bloodTypeSlack: { routine: 1800, urgent: 600, emergency: 180 }, stacking: { maxStops: 3, pickupGapSeconds: 300, detourShare: 0.5 }, enRoute: { finishWithinSeconds: 300, nearSeconds: 600 }, scarcePriceMaxSeconds: 600 });
    expect(c.requests).toEqual({ openPerRequester: 1000, idempotencyTtlMs: 86_400_000 });
    expect(c.ws).toMatchObject({ maxFrameBytes: 65536, socketsPerPrincipal: 8, socketsPerDispatcher: 64, slowCloseMs: 5000 });
    expect(c.bulkBodyLimitBytes).toBe(4 * 1024 * 1024);
    expect([c.seedCity, c.positionFlushMs, c.cellSpeedsSaveMs, c.drainGraceMs]).toEqual(['small-city', 1000, 60_000, 1000]);
    expect(c.dataDir).toBe('./data');
    expect(c.rateLimit.ingestPerSecond).toBe(50);
    expect(c.rateLimit.gatewayIngestPerSecond).toBe(200_000);
    expect(c.jwt).toEqual({ secret: SECRET, algorithm: 'HS256' });
    expect(c.apiKeys).toEqual([]);
    expect(c.devTokens).toBe(false);
    expect('redisUrl' in c).toBe(false);
  });

  test('webhook settings default to public URLs only, 5 s timeouts, 1 s → 5 min back-off, and are validated', () => {
    expect(loadConfig({ JWT_SECRET: SECRET }).webhooks).toEqual({ allowPrivate: false, max: 100, timeoutMs: 5000, backoffMinMs: 1000, backoffMaxMs: 300_000, pollMs: 1000, concurrency: 1, stockLowUnits: 5 });
    const c = loadConfig({ JWT_SECRET: SECRET, WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_BACKOFF_MIN_MS: '50', WEBHOOK_BACKOFF_MAX_MS: '400', STOCK_LOW_UNITS: '0' });
    expect(c.webhooks).toMatchObject({ allowPrivate: true, backoffMinMs: 50, backoffMaxMs: 400, stockLowUnits: 0 });
    expect(() => loadConfig({ JWT_SECRET: SECRET, WEBHOOK_ALLOW_PRIVATE: 'maybe' })).toThrow(/WEBHOOK_ALLOW_PRIVATE must be 1 or 0/);
    expect(() => loadConfig({ JWT_SECRET: SECRET, WEBHOOK_BACKOFF_MIN_MS: '5000', WEBHOOK_BACKOFF_MAX_MS: '1000' })).toThrow(/WEBHOOK_BACKOFF_MIN_MS must not exceed/);
  });

  test('the configuration is frozen all the way down', () => {
    const c = loadConfig({ JWT_SECRET: SECRET, API_KEYS: `admin:gw:${Authenticator.hashApiKey('k')}` });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.jwt)).toBe(true);
    expect(Object.isFrozen(c.ws)).toBe(true);
    expect(Object.isFrozen(c.apiKeys)).toBe(true);
    expect(Object.isFrozen(c.apiKeys[0])).toBe(true);
    expect(() => {
      (c as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  test('every bad value is listed in one error', () => {
    let message = '';
    try {
      loadConfig({
        NODE_ENV: 'production',
        PORT: '99999',
        BODY_LIMIT_BYTES: 'lots',
        DISPATCH_MODE: 'random',
        LOG_LEVEL: 'loud',
        WS_IDLE_TIMEOUT_SEC: '10',
        API_KEYS: 'admin:gw:plaintextkey,boss:x:' + 'a'.repeat(64),
        REDIS_URL: 'http://example',
      });
    } catch (err) {
      message = (err as Error).message;
    }
    for (const name of ['PORT', 'BODY_LIMIT_BYTES', 'DISPATCH_MODE', 'LOG_LEVEL', 'WS_IDLE_TIMEOUT_SEC', 'API_KEYS entry 1', 'API_KEYS entry 2', 'REDIS_URL', 'JWT_SECRET is required']) {
      expect(message).toContain(name);
    }
  });

  test('a short JWT secret is refused', () => {
    expect(() => loadConfig({ JWT_SECRET: 'short' })).toThrow(/at least 32 characters/);
  });

  test('API keys are read as role, subject and sha256 hash', () => {
    const hash = Authenticator.hashApiKey('gateway-key');
    const c = loadConfig({ JWT_SECRET: SECRET, API_KEYS: `admin:fleet-gw:${hash.toUpperCase()}, dispatcher:ops:${Authenticator.hashApiKey('o')}` });
    expect(c.apiKeys).toEqual([
      { role: 'admin', sub: 'fleet-gw', hash },
      { role: 'dispatcher', sub: 'ops', hash: Authenticator.hashApiKey('o') },
    ]);
  });

  test('without a secret outside production, dev tokens switch on with a random secret', () => {
    const a = loadConfig({});
    const b = loadConfig({ NODE_ENV: 'development' });
    expect(a.devTokens).toBe(true);
    expect(a.jwt.algorithm).toBe('HS256');
    expect(a.jwt.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(b.jwt.secret).not.toBe(a.jwt.secret);
  });

  test('GEODISPATCH_DEV=1 keeps a given secret and is refused in production', () => {
    expect(loadConfig({ GEODISPATCH_DEV: '1', JWT_SECRET: SECRET }).jwt.secret).toBe(SECRET);
    expect(loadConfig({ GEODISPATCH_DEV: '1', JWT_SECRET: SECRET }).devTokens).toBe(true);
    expect(() => loadConfig({ GEODISPATCH_DEV: '1', NODE_ENV: 'production', JWT_SECRET: SECRET })).toThrow(/not allowed with NODE_ENV=production/);
  });

  test('a public key picks its algorithm, and a mismatched algorithm is refused', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const c = loadConfig({ JWT_PUBLIC_KEY: pem.replace(/\n/g, '\\n'), NODE_ENV: 'production' });
    expect(c.jwt).toEqual({ publicKey: pem, algorithm: 'ES256' });
    expect(c.devTokens).toBe(false);
    expect(() => loadConfig({ JWT_PUBLIC_KEY: pem, JWT_ALGORITHM: 'RS256' })).toThrow(/is a ES256 key but JWT_ALGORITHM is RS256/);
    expect(() => loadConfig({ JWT_PUBLIC_KEY: pem, JWT_ALGORITHM: 'HS256' })).toThrow(/HS256 cannot be used with JWT_PUBLIC_KEY/);
    expect(() => loadConfig({ JWT_PUBLIC_KEY: 'not a key' })).toThrow(/not a readable/);
  });

  test('numbers, modes and URLs from the environment are used when valid', () => {
    const c = loadConfig({
      JWT_SECRET: SECRET, PORT: '0', HOST: '127.0.0.1', DISPATCH_MODE: 'greedy', DISPATCH_WINDOW_MS: '500',
      REDIS_URL: 'redis://localhost:6379', DATABASE_URL: 'postgres://u:p@db/geo', WS_IDLE_TIMEOUT_SEC: '0', LOG_LEVEL: 'debug',
    });
    expect([c.port, c.host, c.dispatch.mode, c.dispatch.windowMs, c.ws.idleTimeoutSec, c.logLevel]).toEqual([0, '127.0.0.1', 'greedy', 500, 0, 'debug']);
    expect(c.redisUrl).toBe('redis://localhost:6379');
    expect(c.databaseUrl).toBe('postgres://u:p@db/geo');
  });

  test('a bad connection URL is reported without echoing its password', () => {
    expect(() => loadConfig({ JWT_SECRET: SECRET, DATABASE_URL: 'mysql://user:hunter2@db' })).toThrow(/^(?![\s\S]*hunter2)[\s\S]*DATABASE_URL/);
  });
});
