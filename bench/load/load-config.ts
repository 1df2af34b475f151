/**
 * Load-generator configuration: command-line flags (bench-report parseArgs) → a typed Config, read once by
 * load-generator.ts, plus the run context the phases share (notes printed at the end, cleanups run last-first).
 */
import { parseArgs } from '../bench-report.js';
import type { IngestMode } from './ping-frames.js';
import { wrkAvailable } from './wrk-runner.js';

/** Everything a run reads from its flags and environment. */
export interface Config {
  quick: boolean;
  url: string;
  spawn: boolean;
  peersOnly: boolean;
  token?: string;
  apiKey?: string;
  jwtSecret?: string;
  requestToken?: string;
  couriers: number;
  rate: number;
  driverRate: number;
  durationS: number;
  connections: number;
  drivers: number;
  batch: number;
  httpConcurrency: number;
  pgConcurrency: number;
  requestRate: number;
  k: number;
  radiusM: number;
  seed: number;
  cities: number;
  modes: IngestMode[];
  pingPool: number;
  maxPings: number;
  maxQueries: number;
  queries: number;
  requests: number;
  redis: boolean;
  postgis: boolean;
  redisUrl: string;
  pgUrl: string;
  maxSeconds: number;
  runId: string;
  /** With --spawn: the server runs under `node --cpu-prof` and writes its profile here on exit. */
  profileDir?: string;
  /** Who sends the HTTP nearest queries: Node's client, or Debian's wrk (C) with a /health run beside it. */
  httpClient: 'node' | 'wrk';
}

/** The config plus what the phases accumulate: notes printed at the end, cleanups run last registered first. */
export interface LoadRun {
  cfg: Config;
  notes: string[];
  cleanups: (() => Promise<void>)[];
}

/** Parses the flags (see USAGE); prints USAGE and exits on --help; throws with the flag to fix on a bad value. */
export function readConfig(argv: string[]): Config {
  const a = parseArgs(argv);
  if (a.has('help')) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const quick = a.has('quick');
  const num = (name: string, dflt: number, min = 0): number => {
    const raw = a.get(name);
    if (raw === undefined) return dflt;
    const v = raw === 'max' ? Infinity : Number(raw);
    if (!(v >= min)) throw new Error(`--${name} must be a number ≥ ${min} (or 'max' for --rate), got ${raw}`);
    return v;
  };
  const url = (a.get('url') ?? `http://127.0.0.1:${process.env.PORT ?? 8080}`).replace(/\/$/, '');
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) throw new Error(`--url must point at this machine (127.0.0.1/localhost), got ${host}`);
  const rate = num('rate', quick ? 200_000 : 500_000, 1);
  const durationS = num('duration', quick ? 3 : 15, 0.5);
  const modes = (a.get('modes') ?? 'msgpack,json-batch,json-single').split(',') as IngestMode[];
  for (const m of modes) if (!['msgpack', 'json-batch', 'json-single'].includes(m)) throw new Error(`--modes: unknown mode '${m}' (msgpack, json-batch, json-single)`);
  const token = a.get('token');
  if (token !== undefined && a.has('api-key')) throw new Error('pass --token or --api-key, not both');
  const couriers = Math.floor(num('couriers', quick ? 10_000 : 100_000, 1));
  // the pool holds one phase's worth of pings at the target rate, capped so it builds in seconds (cycled beyond)
  const pingPool = Math.max(1000, Math.min(Number.isFinite(rate) ? Math.ceil(rate * durationS) : Infinity, quick ? 300_000 : 2_000_000));
  return {
    quick, url, spawn: a.has('spawn'), peersOnly: a.has('peers-only'),
    token, apiKey: a.get('api-key'), jwtSecret: a.get('jwt-secret') ?? process.env.JWT_SECRET, requestToken: a.get('request-token'),
    couriers, rate, durationS, pingPool,
    driverRate: num('driver-rate', 20_000, 1),
    connections: Math.floor(num('connections', quick ? 4 : 8, 1)),
    drivers: Math.floor(num('drivers', quick ? 50 : 200, 1)),
    batch: Math.floor(num('batch', 1000, 1)),
    httpConcurrency: Math.floor(num('http-concurrency', quick ? 16 : 32, 1)),
    pgConcurrency: Math.floor(num('pg-concurrency', a.has('http-concurrency') ? Number(a.get('http-concurrency')) : quick ? 16 : 32, 1)),
    requestRate: num('request-rate', quick ? 100 : 500),
    k: Math.floor(num('k', 10, 1)),
    radiusM: num('radius', 5000, 1),
    seed: num('seed', 42),
    cities: Math.floor(num('cities', 10, 1)),
    modes,
    // hard caps behind every loop, whatever the rate and duration say
    maxPings: Math.floor(num('max-pings', 50_000_000, 1)),
    maxQueries: Math.floor(num('max-queries', 5_000_000, 1)),
    queries: 20_000,
    requests: Math.floor(num('requests', quick ? 2_000 : 10_000, 0)),
    redis: !a.has('no-redis'),
    postgis: !a.has('no-postgis'),
    redisUrl: a.get('redis-url') ?? 'redis://127.0.0.1:6379',
    pgUrl: a.get('pg-url') ?? 'postgres://postgres@127.0.0.1:5432/test',
    maxSeconds: num('max-seconds', quick ? 170 : 900, 5),
    runId: `${Date.now().toString(36)}_${process.pid}`,
    profileDir: a.get('profile'),
    httpClient: chooseHttpClient(a.get('http-client') ?? 'auto'),
  };
}

function chooseHttpClient(v: string): 'node' | 'wrk' {
  if (v === 'node') return 'node';
  if (v === 'wrk') {
    if (!wrkAvailable()) throw new Error('--http-client wrk: wrk is not on PATH (apt-get install wrk)');
    return 'wrk';
  }
  if (v === 'auto') return wrkAvailable() ? 'wrk' : 'node';
  throw new Error(`--http-client must be auto, node or wrk, got ${v}`);
}

const USAGE = `GeoDispatch load generator (bench/load/README.md)

  node dist/bench/load/load-generator.js [options]

  --couriers N          couriers created before the timed phases (default 100000; quick 10000)
  --rate R              target WS pings/s, or 'max' (default 500000; quick 200000)
  --duration S          seconds per timed phase (default 15; quick 3)
  --connections C       gateway WebSocket connections (default 8; quick 4)
  --batch B             pings per gateway frame and per GEOADD / upsert batch (default 1000)
  --modes LIST          msgpack,json-batch,json-single (default all)
  --drivers D           driver sockets in json-single mode (default 200; quick 50), --driver-rate (default 20000)
  --http-concurrency C  GET /v1/nearby in flight, also Redis GEOSEARCH (default 32; quick 16); --pg-concurrency
  --http-client W       auto | node | wrk: wrk (Debian's C client) sends the nearest queries, then /health of the
                        same server for as long (the nearest rate as a share of the server's ceiling);
                        auto = wrk when on PATH (default)
  --request-rate R      POST /v1/requests per second (default 500; quick 100; 0 = off)
  --k K --radius M      nearest query (default 10, 5000 m)
  --url U               server (default http://127.0.0.1:$PORT or :8080); loopback only
  --token JWT | --api-key KEY   admin (fleet gateway) credential; --request-token JWT for POST /v1/requests
  --jwt-secret S        the server's JWT_SECRET (or env JWT_SECRET): mint admin/driver/dispatcher tokens
  --spawn               start dist/api/main.js on a free port (GEODISPATCH_DEV=1, own JWT_SECRET)
  --profile DIR         with --spawn: run the server under node --cpu-prof, profile written to DIR on exit
                        (read it with node dist/bench/profile-summary.js FILE --windows)
  --peers-only          only the Redis and PostGIS baselines
  --no-redis --no-postgis --redis-url U --pg-url U
  --seed N --cities N --max-seconds S --quick
`;
