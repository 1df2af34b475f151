/**
 * Server configuration: read once from the environment, typed, validated, deeply frozen.
 *
 * | env                        | default            | meaning |
 * |----------------------------|--------------------|---------|
 * | HOST                       | 0.0.0.0            | listen address |
 * | PORT                       | 8080               | listen port (0 = any free port) |
 * | JWT_SECRET                 | —                  | HS256 shared secret, ≥ 32 chars; required unless JWT_PUBLIC_KEY or dev tokens |
 * | JWT_PUBLIC_KEY             | —                  | PEM public key (RS256/ES256); `\n` escapes are accepted |
 * | JWT_ALGORITHM              | HS256, or from key | HS256, RS256 or ES256; pinned: tokens with any other `alg` are refused |
 * | API_KEYS                   | (none)             | `role:sub:sha256hex,…` — sha256 hex of each key, never the key itself |
 * | BODY_LIMIT_BYTES           | 65536              | largest HTTP body (all but the bulk routes) |
 * | BULK_BODY_LIMIT_BYTES      | 4194304            | largest body of POST /v1/locations (10,000 items) |
 * | RATE_PER_SEC / RATE_BURST  | 100 / 200          | requests per principal (token bucket) |
 * | INGEST_PER_SEC / INGEST_BURST | 50 / 100        | location pings per driver |
 * | GATEWAY_INGEST_PER_SEC / GATEWAY_INGEST_BURST | 200000 / 400000 | location pings per admin gateway key |
 * | WS_MAX_PAYLOAD_BYTES       | 1048576            | largest WebSocket frame (admin gateways' `locs`) |
 * | WS_MAX_FRAME_BYTES         | 65536              | largest frame from any other role (refused before it is decoded) |
 * | WS_SOCKETS_PER_PRINCIPAL   | 8                  | open sockets per driver / requester |
 * | WS_SOCKETS_PER_DISPATCHER  | 64                 | open sockets per dispatcher / admin |
 * | WS_SLOW_CLOSE_MS           | 5000               | a watch socket over the backpressure limit this long is closed |
 * | WS_MAX_BACKPRESSURE_BYTES  | 1048576            | buffered outbound bytes before a socket is skipped/dropped |
 * | WS_IDLE_TIMEOUT_SEC        | 120                | 0, or 8..960 in steps of 4 (uWS rule) |
 * | WS_WATCH_HZ_DEFAULT / WS_WATCH_HZ_MAX | 2 / 10  | dispatcher map update rate |
 * | WS_MAX_SOCKETS             | 200000             | open WebSockets on one instance |
 * | OFFER_TTL_MS               | 15000              | an offer expires after this (PRODUCT §3) |
 * | DISPATCH_MODE              | batched            | greedy or batched |
 * | DISPATCH_WINDOW_MS         | 2000               | batch window for non-emergency requests |
 * | DISPATCH_TICK_MS           | 50                 | dispatch timer: offer expiry and batch checks |
 * | BLOOD_TYPE_SLACK_ROUTINE_S / _URGENT_S / _EMERGENCY_S | 1800 / 600 / 180 | extra transit a blood request accepts for better-matched units (identical before compatible, O− last) |
 * | STACK_MAX_STOPS            | 3                  | deliveries one courier (capacity > 1) may carry as a stack; 1 turns stacking off |
 * | STACK_PICKUP_GAP_S         | 300                | a stacked pickup is at most this many seconds' drive from another of its stack |
 * | STACK_DETOUR_PCT           | 50                 | a delivery joins a stack only when the route grows by at most this % of its own drive |
 * | EN_ROUTE_FINISH_S          | 300                | busy couriers whose trip ends within this are candidates for legs nobody free took; 0 turns en route off |
 * | EN_ROUTE_NEAR_S            | 600                | … when their trip ends at most this many seconds' drive from the pickup |
 * | SCARCE_PRICE_MAX_S         | 600                | most a routine job pays to take a cold-chain courier blood work nearby will need; 0 turns the price off |
 * | OPEN_REQUESTS_PER_REQUESTER | 1000              | open requests one principal may hold |
 * | IDEMPOTENCY_TTL_MS         | 86400000           | how long an Idempotency-Key answer is kept |
 * | GD_ROLE                    | all                | all (one process does everything), edge (sockets and the public API of a cluster) or core (a cluster region owner) |
 * | REDIS_URL                  | —                  | Redis for a cluster (leases, ping streams, fan-out, shared rate limits) |
 * | GD_NODE_NAME               | <role>-<host>-<pid> | this node's name in the cluster (unique) |
 * | GD_LEASE_TTL_MS            | 5000               | a region lease lapses this long after its core stops renewing |
 * | GD_CLUSTER_PREFIX          | gd:                | Redis key prefix of the cluster (clusters sharing a Redis) |
 * | DATA_DIR                   | ./data             | embedded PGlite store (`memory://` for a throwaway one) |
 * | PGLITE_SHARED_BUFFERS      | 32MB               | the embedded store's shared_buffers (resident memory)   |
 * | DATABASE_SCHEMA            | —                  | PostgreSQL schema for every table (created when missing) |
 * | SEED_CITY                  | small-city         | fixture city an empty store starts with; `none` starts empty |
 * | POSITION_FLUSH_MS          | 1000               | pings are written behind at this period (what a crash may lose) |
 * | CELL_SPEEDS_SAVE_MS        | 60000              | learned cell speeds are saved at this period |
 * | DRAIN_GRACE_MS             | 1000               | on SIGTERM, /ready answers 503 this long before listening stops |
 * | MAP_STYLE_URL              | —                  | base map style for the live map (offline style when unset) |
 * | WEBHOOK_ALLOW_PRIVATE      | 0                  | `1`: webhook URLs may resolve to loopback / private / link-local addresses |
 * | WEBHOOK_TIMEOUT_MS         | 5000               | a delivery without an answer this long is a failed attempt |
 * | WEBHOOK_BACKOFF_MIN_MS / WEBHOOK_BACKOFF_MAX_MS | 1000 / 300000 | retry wait after the first failure, doubling to the cap (with jitter) |
 * | WEBHOOK_POLL_MS            | 1000               | outbox polled this often when no commit woke the deliverer |
 * | WEBHOOK_CONCURRENCY        | 1                  | POSTs in flight per webhook; 1 = strictly in outbox order, more = in order per request only |
 * | STOCK_LOW_UNITS            | 5                  | `stock.low` when a bank's available units of a product and type fall below this |
 * | DATABASE_URL               | —                  | real PostgreSQL + PostGIS instead of PGlite |
 * | LOG_LEVEL                  | info               | pino level |
 * | GEODISPATCH_DEV            | —                  | `1`: dev tokens (random HS256 secret unless JWT_SECRET) |
 * | NODE_ENV                   | —                  | without a secret or key and not `production`, dev tokens switch on |
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { DEFAULT_TYPE_SLACK_SECONDS } from '../dispatch/blood-allocation.js';
import { DEFAULT_POLICY, type DispatchPolicy, type EnRoutePolicy, type StackingPolicy, type Urgency } from '../dispatch/dispatch-request.js';
import { DEFAULT_EN_ROUTE } from '../dispatch/en-route.js';
import { DEFAULT_SCARCITY } from '../dispatch/scarcity.js';
import { DEFAULT_STACKING } from '../dispatch/stacking.js';
import { isRole, ROLES, type Role } from './auth.js';

export type { Role } from './auth.js';

/** Everything the server needs to know at start. */
export interface ApiConfig {
  host: string;
  port: number;
  jwt: { secret?: string; publicKey?: string; algorithm: 'HS256' | 'RS256' | 'ES256' };
  apiKeys: readonly { hash: string; role: Role; sub: string }[];
  bodyLimitBytes: number;
  /** Body limit of the bulk routes (10,000 items). */
  bulkBodyLimitBytes: number;
  rateLimit: {
    perSecond: number;
    burst: number;
    ingestPerSecond: number;
    ingestBurst: number;
    /** Pings per second for one admin gateway key (a whole fleet behind one key). */
    gatewayIngestPerSecond: number;
    gatewayIngestBurst: number;
  };
  ws: {
    maxPayloadBytes: number;
    /** Largest frame from a role other than admin. */
    maxFrameBytes: number;
    maxBackpressureBytes: number;
    idleTimeoutSec: number;
    watchHzDefault: number;
    watchHzMax: number;
    maxSockets: number;
    /** Open sockets per principal: drivers and requesters, dispatchers and admins. */
    socketsPerPrincipal: number;
    socketsPerDispatcher: number;
    slowCloseMs: number;
  };
  offerTtlMs: number;
  dispatch: { mode: 'greedy' | 'batched'; windowMs: number; tickMs: number; bloodTypeSlack: Record<Urgency, number>; stacking: StackingPolicy; enRoute: EnRoutePolicy; scarcePriceMaxSeconds: number };
  requests: { openPerRequester: number; idempotencyTtlMs: number };
  /** all: one process does everything; edge: a cluster's sockets and public API; core: a cluster region owner (PRODUCT §7). */
  role: 'all' | 'edge' | 'core';
  redisUrl?: string;
  cluster: {
    nodeName: string;
    leaseTtlMs: number;
    prefix: string;
  };
  dataDir: string;
  databaseUrl?: string;
  databaseSchema?: string;
  /** The embedded store's shared_buffers (PGlite keeps it resident). */
  pgliteSharedBuffers: string;
  /** The fixture city an empty store is seeded with, or 'none'. */
  seedCity: 'small-city' | 'small-multi-city' | 'none';
  positionFlushMs: number;
  cellSpeedsSaveMs: number;
  drainGraceMs: number;
  logLevel: string;
  devTokens: boolean;
  /** MapLibre style URL the live map loads; undefined keeps the bundled offline style. */
  mapStyleUrl?: string;
  /** Webhook deliveries (api/webhook-deliverer.ts) and the stock.low level. */
  webhooks: { allowPrivate: boolean; max: number; timeoutMs: number; backoffMinMs: number; backoffMaxMs: number; pollMs: number; concurrency: number; stockLowUnits: number };
}

/** 64 KiB: the largest single-object body (a site inventory of a few hundred lots, a detailed geofence)
 *  fits; anything bigger is a mistake or an attack, and bulk pings belong on the WebSocket `locs` frame. */
const BODY_LIMIT_DEFAULT = 64 * 1024;
/** 1 MiB: a MessagePack `locs` frame of 10,000 pings is ~350 KiB, so the largest allowed batch fits. */
const WS_PAYLOAD_DEFAULT = 1024 * 1024;
/** 64 KiB: far above any frame a driver, dispatcher or requester sends (a watch is < 200 B); only gateways need more. */
const WS_FRAME_DEFAULT = 64 * 1024;
/** 4 MiB: 10,000 JSON location items with 64-character ids and every optional field fit (~1.7 MB), with room. */
const BULK_BODY_LIMIT_DEFAULT = 4 * 1024 * 1024;
/** 1 MiB of unsent bytes per socket: a few seconds of a busy dispatcher map; beyond it the client is too slow. */
const WS_BACKPRESSURE_DEFAULT = 1024 * 1024;
/** Shortest HS256 secret: 32 bytes = the 256-bit HMAC key RFC 7518 §3.2 asks for. */
const MIN_SECRET_LENGTH = 32;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const ALGORITHMS = ['HS256', 'RS256', 'ES256'] as const;

/** Reads, validates and deeply freezes the configuration; throws one Error listing every problem. */
export function loadConfig(env: Record<string, string | undefined>): Readonly<ApiConfig> {
  const problems: string[] = [];
  const read = new EnvReader(env, problems);

  const isProduction = env.NODE_ENV === 'production';
  const devFlag = read.flag('GEODISPATCH_DEV');
  const secret = read.string('JWT_SECRET');
  const publicKey = read.string('JWT_PUBLIC_KEY')?.replace(/\\n/g, '\n');
  const devTokens = devFlag || (!secret && !publicKey && !isProduction);
  const role = read.oneOf('GD_ROLE', ['all', 'core', 'edge'] as const, 'all');
  if (devFlag && isProduction) problems.push('GEODISPATCH_DEV=1 is not allowed with NODE_ENV=production');
  if (devFlag && publicKey) problems.push('GEODISPATCH_DEV=1 signs HS256 dev tokens: unset JWT_PUBLIC_KEY or GEODISPATCH_DEV');

  const config: ApiConfig = {
    host: read.string('HOST') ?? '0.0.0.0',
    port: read.int('PORT', 8080, 0, 65535),
    jwt: readJwt(read, problems, secret, publicKey, devTokens),
    apiKeys: readApiKeys(env.API_KEYS, problems),
    bodyLimitBytes: read.int('BODY_LIMIT_BYTES', BODY_LIMIT_DEFAULT, 1, 64 * 1024 * 1024),
    bulkBodyLimitBytes: read.int('BULK_BODY_LIMIT_BYTES', BULK_BODY_LIMIT_DEFAULT, 1, 256 * 1024 * 1024),
    rateLimit: {
      // 100/s per principal: far above a person clicking or a dashboard polling, low enough to stop a loop
      perSecond: read.int('RATE_PER_SEC', 100, 1, 10_000_000),
      burst: read.int('RATE_BURST', 200, 1, 10_000_000),
      // 50 pings/s per driver: phones send 1 Hz; room for replaying a buffered minute after a tunnel
      ingestPerSecond: read.int('INGEST_PER_SEC', 50, 1, 10_000_000),
      ingestBurst: read.int('INGEST_BURST', 100, 1, 10_000_000),
      // 200,000 pings/s per gateway key: a 100,000-courier fleet at 1 Hz, twice over
      gatewayIngestPerSecond: read.int('GATEWAY_INGEST_PER_SEC', 200_000, 1, 100_000_000),
      gatewayIngestBurst: read.int('GATEWAY_INGEST_BURST', 400_000, 1, 100_000_000),
    },
    ws: {
      maxPayloadBytes: read.int('WS_MAX_PAYLOAD_BYTES', WS_PAYLOAD_DEFAULT, 1024, 64 * 1024 * 1024),
      maxFrameBytes: read.int('WS_MAX_FRAME_BYTES', WS_FRAME_DEFAULT, 256, 64 * 1024 * 1024),
      maxBackpressureBytes: read.int('WS_MAX_BACKPRESSURE_BYTES', WS_BACKPRESSURE_DEFAULT, 1024, 1024 * 1024 * 1024),
      idleTimeoutSec: read.int('WS_IDLE_TIMEOUT_SEC', 120, 0, 960),
      // 2 Hz is smooth enough for a map of moving dots; 10 Hz caps the fan-out cost of one dispatcher
      watchHzDefault: read.int('WS_WATCH_HZ_DEFAULT', 2, 1, 60),
      watchHzMax: read.int('WS_WATCH_HZ_MAX', 10, 1, 60),
      // PRODUCT §6 targets 100,000 open sockets per instance; twice that before refusing upgrades
      maxSockets: read.int('WS_MAX_SOCKETS', 200_000, 1, 10_000_000),
      // 8: a phone and a tablet reconnecting a few times; one token holding hundreds is a leak or an attack
      socketsPerPrincipal: read.int('WS_SOCKETS_PER_PRINCIPAL', 8, 1, 1_000_000),
      // 64: a dispatch room's screens share one login
      socketsPerDispatcher: read.int('WS_SOCKETS_PER_DISPATCHER', 64, 1, 1_000_000),
      slowCloseMs: read.int('WS_SLOW_CLOSE_MS', 5_000, 50, 600_000),
    },
    offerTtlMs: read.int('OFFER_TTL_MS', 15_000, 1000, 600_000),
    dispatch: {
      mode: read.oneOf('DISPATCH_MODE', ['greedy', 'batched'] as const, 'batched'),
      windowMs: read.int('DISPATCH_WINDOW_MS', 2000, 0, 60_000),
      // 50 ms keeps offer expiry within a frame of OFFER_TTL and costs nothing when idle
      tickMs: read.int('DISPATCH_TICK_MS', 50, 5, 10_000),
      bloodTypeSlack: {
        routine: read.int('BLOOD_TYPE_SLACK_ROUTINE_S', DEFAULT_TYPE_SLACK_SECONDS.routine, 0, 86_400),
        urgent: read.int('BLOOD_TYPE_SLACK_URGENT_S', DEFAULT_TYPE_SLACK_SECONDS.urgent, 0, 86_400),
        emergency: read.int('BLOOD_TYPE_SLACK_EMERGENCY_S', DEFAULT_TYPE_SLACK_SECONDS.emergency, 0, 86_400),
      },
      stacking: {
        // every stop order of a stack is tried ((n!)² routes): 4 stops is 576, the most worth trying per candidate
        maxStops: read.int('STACK_MAX_STOPS', DEFAULT_STACKING.maxStops, 1, 4),
        pickupGapSeconds: read.int('STACK_PICKUP_GAP_S', DEFAULT_STACKING.pickupGapSeconds, 0, 3_600),
        detourShare: read.int('STACK_DETOUR_PCT', Math.round(DEFAULT_STACKING.detourShare * 100), 0, 200) / 100,
      },
      enRoute: {
        finishWithinSeconds: read.int('EN_ROUTE_FINISH_S', DEFAULT_EN_ROUTE.finishWithinSeconds, 0, 3_600),
        nearSeconds: read.int('EN_ROUTE_NEAR_S', DEFAULT_EN_ROUTE.nearSeconds, 0, 3_600),
      },
      scarcePriceMaxSeconds: read.int('SCARCE_PRICE_MAX_S', DEFAULT_SCARCITY.maxSeconds, 0, 7_200),
    },
    requests: {
      // a busy hospital desk has tens open; a thousand is a loop gone wrong
      openPerRequester: read.int('OPEN_REQUESTS_PER_REQUESTER', 1000, 1, 10_000_000),
      // 24 h: a client retrying after a day-long outage is told what happened instead of creating twice
      idempotencyTtlMs: read.int('IDEMPOTENCY_TTL_MS', 86_400_000, 1000, 30 * 86_400_000),
    },
    role,
    redisUrl: read.url('REDIS_URL', ['redis:', 'rediss:']),
    cluster: {
      nodeName: read.pattern('GD_NODE_NAME', /^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - (at most 64)') ?? `${role}-${hostname()}-${process.pid}`,
      // PRODUCT §7: a dead core's regions are served by another within 10 s; 5 s of lease leaves room to load them
      leaseTtlMs: read.int('GD_LEASE_TTL_MS', 5_000, 300, 60_000),
      prefix: read.pattern('GD_CLUSTER_PREFIX', /^[A-Za-z0-9:._-]{1,64}$/, 'letters, digits, : . _ - (at most 64)') ?? 'gd:',
    },
    dataDir: read.string('DATA_DIR') ?? './data',
    databaseUrl: read.url('DATABASE_URL', ['postgres:', 'postgresql:']),
    databaseSchema: read.pattern('DATABASE_SCHEMA', /^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case SQL identifier'),
    // the embedded store's data is a few MB per 10,000 couriers and the OS caches its files: 128MB (Postgres's
    // default) only made `npm start` bigger
    pgliteSharedBuffers: read.pattern('PGLITE_SHARED_BUFFERS', /^\d+(kB|MB|GB)$/, 'a size such as 32MB') ?? '32MB',
    seedCity: read.oneOf('SEED_CITY', ['small-city', 'small-multi-city', 'none'] as const, 'small-city'),
    // PRODUCT §4: at most POSITION_FLUSH_MS of pings may be lost in a crash
    positionFlushMs: read.int('POSITION_FLUSH_MS', 1000, 10, 60_000),
    // a minute of learned speeds is little to lose and one statement a minute costs nothing
    cellSpeedsSaveMs: read.int('CELL_SPEEDS_SAVE_MS', 60_000, 100, 86_400_000),
    drainGraceMs: read.int('DRAIN_GRACE_MS', 1000, 0, 60_000),
    logLevel: read.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    devTokens,
    mapStyleUrl: read.url('MAP_STYLE_URL', ['http:', 'https:']),
    webhooks: {
      // PRODUCT §4: webhook URLs must not resolve to internal addresses unless explicitly allowed
      allowPrivate: read.flag('WEBHOOK_ALLOW_PRIVATE'),
      // each webhook holds a worker, a page of events and a connection: 100 covers the systems a fleet feeds
      // (SMS, hospital, order service, analytics …) while one admin cannot open thousands of sockets
      max: read.int('WEBHOOK_MAX', 100, 1, 10_000),
      // 5 s: a receiver that answers at all answers well within it; a hung one must not hold its queue long
      timeoutMs: read.int('WEBHOOK_TIMEOUT_MS', 5_000, 100, 60_000),
      // 1 s doubling to 5 min: a blip costs a second, a receiver down for an hour is tried every 5 min
      backoffMinMs: read.int('WEBHOOK_BACKOFF_MIN_MS', 1_000, 10, 3_600_000),
      backoffMaxMs: read.int('WEBHOOK_BACKOFF_MAX_MS', 300_000, 10, 86_400_000),
      // commits wake the deliverer at once; the poll only catches what no wake announced
      pollMs: read.int('WEBHOOK_POLL_MS', 1_000, 10, 60_000),
      // 1: every receiver sees events in outbox order; raise it for throughput when order per request is enough
      concurrency: read.int('WEBHOOK_CONCURRENCY', 1, 1, 64),
      // 5 units: about a day of one product and type at a mid-size bank; below it the bank wants restocking
      stockLowUnits: read.int('STOCK_LOW_UNITS', 5, 0, 1_000_000),
    },
  };

  const idle = config.ws.idleTimeoutSec;
  if (idle !== 0 && (idle < 8 || idle % 4 !== 0)) problems.push(`WS_IDLE_TIMEOUT_SEC must be 0 or a multiple of 4 from 8 to 960, got ${idle}`);
  if (config.ws.watchHzDefault > config.ws.watchHzMax) problems.push(`WS_WATCH_HZ_DEFAULT (${config.ws.watchHzDefault}) must not exceed WS_WATCH_HZ_MAX (${config.ws.watchHzMax})`);
  if (config.rateLimit.burst < config.rateLimit.perSecond) problems.push('RATE_BURST must be at least RATE_PER_SEC');
  if (config.rateLimit.ingestBurst < config.rateLimit.ingestPerSecond) problems.push('INGEST_BURST must be at least INGEST_PER_SEC');
  if (config.rateLimit.gatewayIngestBurst < config.rateLimit.gatewayIngestPerSecond) problems.push('GATEWAY_INGEST_BURST must be at least GATEWAY_INGEST_PER_SEC');
  if (config.webhooks.backoffMinMs > config.webhooks.backoffMaxMs) problems.push('WEBHOOK_BACKOFF_MIN_MS must not exceed WEBHOOK_BACKOFF_MAX_MS');

  if (config.role === 'core' && (config.redisUrl === undefined || config.databaseUrl === undefined)) {
    problems.push('GD_ROLE=core needs REDIS_URL and DATABASE_URL (a PostgreSQL + PostGIS the cluster shares; the embedded store is one process only)');
  }
  if (config.role === 'edge' && config.redisUrl === undefined) problems.push('GD_ROLE=edge needs REDIS_URL (the Redis its cores read pings from)');
  // every edge must accept the tokens any other edge does: a secret made up at start would be this edge's alone
  if (config.role === 'edge' && !secret && !publicKey) problems.push('GD_ROLE=edge needs JWT_SECRET or JWT_PUBLIC_KEY, the same on every edge');

  if (problems.length > 0) throw new Error(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  for (const key of ['redisUrl', 'databaseUrl', 'databaseSchema'] as const) if (config[key] === undefined) delete config[key];
  return deepFreeze(config);
}

function readJwt(read: EnvReader, problems: string[], secret: string | undefined, publicKey: string | undefined, devTokens: boolean): ApiConfig['jwt'] {
  const keyAlg = publicKey ? keyAlgorithm(publicKey) : undefined;
  const algorithm = read.oneOf<ApiConfig['jwt']['algorithm']>('JWT_ALGORITHM', ALGORITHMS, keyAlg ?? (publicKey ? 'RS256' : 'HS256'));
  if (secret && publicKey) problems.push('set JWT_SECRET or JWT_PUBLIC_KEY, not both (the algorithm is pinned to one)');
  if (publicKey) {
    if (algorithm === 'HS256') problems.push('JWT_ALGORITHM=HS256 cannot be used with JWT_PUBLIC_KEY (use RS256 or ES256)');
    else if (keyAlg === undefined) problems.push('JWT_PUBLIC_KEY is not a readable RSA or EC P-256 PEM public key');
    else if (keyAlg !== algorithm) problems.push(`JWT_PUBLIC_KEY is a ${keyAlg} key but JWT_ALGORITHM is ${algorithm}`);
    return { publicKey, algorithm };
  }
  if (algorithm !== 'HS256') problems.push(`JWT_ALGORITHM=${algorithm} needs JWT_PUBLIC_KEY`);
  if (secret) {
    if (secret.length < MIN_SECRET_LENGTH) problems.push(`JWT_SECRET must be at least ${MIN_SECRET_LENGTH} characters (256-bit HMAC key)`);
    return { secret, algorithm: 'HS256' };
  }
  if (devTokens) return { secret: randomBytes(32).toString('base64url'), algorithm: 'HS256' };
  problems.push('JWT_SECRET is required (or JWT_PUBLIC_KEY; or GEODISPATCH_DEV=1 outside production for random dev tokens)');
  return { algorithm: 'HS256' };
}

/** 'RS256' / 'ES256' for a readable RSA / EC P-256 public key, undefined otherwise. */
function keyAlgorithm(pem: string): 'RS256' | 'ES256' | undefined {
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType === 'rsa') return 'RS256';
    if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  } catch {
    // reported by the caller
  }
  return undefined;
}

function readApiKeys(raw: string | undefined, problems: string[]): ApiConfig['apiKeys'] {
  if (!raw || raw.trim() === '') return [];
  const keys: { hash: string; role: Role; sub: string }[] = [];
  const seen = new Set<string>();
  raw.split(',').forEach((entry, i) => {
    const parts = entry.trim().split(':');
    if (parts.length !== 3) {
      problems.push(`API_KEYS entry ${i + 1} must be role:sub:sha256hex (hashed keys only; Authenticator.hashApiKey makes one)`);
      return;
    }
    const [role, sub, hashRaw] = parts;
    const hash = hashRaw.toLowerCase();
    if (!isRole(role)) problems.push(`API_KEYS entry ${i + 1}: role '${role}' is not one of ${ROLES.join(', ')}`);
    if (sub.length === 0 || sub.length > 128) problems.push(`API_KEYS entry ${i + 1}: sub must be 1..128 characters`);
    if (!/^[0-9a-f]{64}$/.test(hash)) problems.push(`API_KEYS entry ${i + 1}: '${hashRaw.slice(0, 8)}…' is not a sha256 hex digest (64 hex chars); raw keys are not accepted`);
    else if (seen.has(hash)) problems.push(`API_KEYS entry ${i + 1}: the same key hash appears twice`);
    seen.add(hash);
    if (isRole(role)) keys.push({ hash, role, sub });
  });
  return keys;
}

/** Typed reads of env values that record a problem instead of throwing, so every problem is reported at once. */
class EnvReader {
  constructor(
    private readonly env: Record<string, string | undefined>,
    private readonly problems: string[],
  ) {}

  string(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  }

  flag(name: string): boolean {
    const v = this.string(name);
    if (v === undefined) return false;
    if (['1', 'true', 'yes'].includes(v.toLowerCase())) return true;
    if (['0', 'false', 'no'].includes(v.toLowerCase())) return false;
    this.problems.push(`${name} must be 1 or 0, got '${v}'`);
    return false;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const v = this.string(name);
    if (v === undefined) return fallback;
    const n = /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      this.problems.push(`${name} must be an integer from ${min} to ${max}, got '${v}'`);
      return fallback;
    }
    return n;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const v = this.string(name);
    if (v === undefined) return fallback;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    this.problems.push(`${name} must be one of ${allowed.join(', ')}, got '${v}'`);
    return fallback;
  }

  pattern(name: string, re: RegExp, what: string): string | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (re.test(v)) return v;
    this.problems.push(`${name} must be ${what}, got '${v.slice(0, 64)}'`);
    return undefined;
  }

  url(name: string, protocols: readonly string[]): string | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    let protocol = '';
    try {
      protocol = new URL(v).protocol;
    } catch {
      // falls through to the problem below
    }
    if (!protocols.includes(protocol)) {
      // never echo the value: connection URLs carry passwords
      this.problems.push(`${name} must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);
      return undefined;
    }
    return v;
  }
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** The dispatch policy a configuration asks for (one process and cluster cores alike). */
export function dispatchPolicy(config: Pick<ApiConfig, 'dispatch'>): DispatchPolicy {
  const { mode, windowMs, bloodTypeSlack, stacking, enRoute, scarcePriceMaxSeconds } = config.dispatch;
  const scarcity = scarcePriceMaxSeconds === 0 ? false : { ...DEFAULT_SCARCITY, maxSeconds: scarcePriceMaxSeconds };
  return { ...DEFAULT_POLICY, mode, windowMs, bloodTypeSlack, stacking: stacking.maxStops < 2 ? false : stacking, enRoute: enRoute.finishWithinSeconds === 0 ? false : enRoute, scarcity };
}
