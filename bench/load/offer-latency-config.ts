/**
 * Flags of the offer-latency bench (bench-report parseArgs) → one typed, validated config, and its usage text.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from '../bench-report.js';
import type { DriverAction } from './offer-latency-drivers.js';

/** A dispatch mode the server is started in (DISPATCH_MODE). */
export type DispatchMode = 'greedy' | 'batched';

/** Everything a run reads from its flags. */
export interface OfferBenchConfig {
  quick: boolean;
  couriers: number;
  /** Requests per second, open loop. */
  rate: number;
  durationS: number;
  modes: DispatchMode[];
  /** Batched phase: this share of requests is sent as `emergency` (they skip the batch window). */
  emergencyShare: number;
  driverAction: DriverAction;
  tripMs: number;
  /** Keep-alive connections for POST /v1/requests. */
  httpConnections: number;
  /** Keep-alive connections for the drivers' progress POSTs. */
  driverHttpConnections: number;
  /** Requester principals the requests are spread over (each has its own open-request bound). */
  requesters: number;
  /** An offer later than this after its request's scheduled send counts as never offered. */
  offerTimeoutMs: number;
  /** Send an Idempotency-Key with each request, as a retrying client does (the load generator does too). */
  idempotency: boolean;
  seed: number;
  cities: number;
  /** The server runs under `node --cpu-prof` and writes its profile here on exit. */
  profileDir?: string;
  /** The servers store in this PostgreSQL (a schema of their own, dropped after) instead of the embedded store. */
  databaseUrl?: string;
  maxSeconds: number;
  runId: string;
}

/**
 * 18,000 couriers: as many driver sockets as fit under the reference machine's hard open-file limit (20,000)
 * with room for the rest — each socket is one descriptor in this process and one in the server.
 */
const DEFAULT_COURIERS = 18_000;

export const USAGE = `offer-latency: request → offer on the driver's socket (PRODUCT §6: p99 ≤ 10 ms at 1,000 requests/s)

  node dist/bench/load/offer-latency.js [--quick] [flags]        (npm run bench:offers -- --quick)

Spawns dist/api/main.js per mode (DISPATCH_MODE, a fresh embedded store in a temp dir, no fixture city, rate limits lifted),
registers couriers around the requests' pickups, connects each as a driver on its own socket, posts requests
open loop at a fixed rate and times each from its scheduled send to its offer frame.

  --quick                 2,000 couriers, 1,000 requests/s for 3 s, trips of 500 ms
  --couriers N            couriers, each with its own driver socket (default 18000: the client and the server
                          each hold one descriptor per socket, under a 20,000 open-file limit)
  --rate R                requests per second (default 1000)
  --duration S            seconds of requests per mode (default 10)
  --modes LIST            greedy,batched (default both): greedy = every request due at once;
                          batched = DISPATCH_WINDOW_MS batches, --emergency-share of requests skip the window
  --emergency-share X     batched mode: share of requests sent as emergency (default 0.1)
  --driver complete|hold  after accepting: report picked_up + delivered after --trip-ms (default), or stay busy
  --trip-ms MS            accepted → picked_up (default 1000; quick 500)
  --http-connections C    keep-alive connections posting requests (default 32)
  --requesters N          requester principals the requests are spread over (default 100)
  --offer-timeout-ms MS   later offers count as never offered (default 5000)
  --idempotency on|off    Idempotency-Key per request (default on)
  --profile DIR           run the server under node --cpu-prof, profiles written to DIR
  --database-url URL      store in this PostgreSQL + PostGIS (DATABASE_URL; a fresh schema per server, dropped
                          after) instead of the embedded PGlite store
  --seed N --cities N     workload (default 42, 1 city)
  --max-seconds S         watchdog (default 150 quick, 900 otherwise; exit code 3)
`;

/** Parses the flags; prints USAGE and exits on --help; throws naming the flag to fix on a bad value. */
export function readOfferConfig(argv: readonly string[]): OfferBenchConfig {
  const a = parseArgs(argv);
  if (a.has('help')) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const quick = a.has('quick');
  const num = (flag: string, fallback: number, min: number, max: number): number => {
    const raw = a.get(flag);
    if (raw === undefined) return fallback;
    const v = Number(raw);
    if (!(Number.isFinite(v) && v >= min && v <= max)) throw new Error(`--${flag} must be a number from ${min} to ${max}, got '${raw}'`);
    return v;
  };
  const modes = (a.get('modes') ?? 'greedy,batched').split(',').map((m) => m.trim());
  for (const m of modes) if (m !== 'greedy' && m !== 'batched') throw new Error(`--modes takes greedy and/or batched, got '${m}'`);
  const driver = a.get('driver') ?? 'complete';
  if (driver !== 'complete' && driver !== 'hold') throw new Error(`--driver must be complete or hold, got '${driver}'`);
  const idem = a.get('idempotency') ?? 'on';
  if (idem !== 'on' && idem !== 'off') throw new Error(`--idempotency must be on or off, got '${idem}'`);
  const profile = a.get('profile');
  if (profile === 'true') throw new Error('--profile needs a directory');
  const databaseUrl = a.get('database-url');
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) throw new Error('--database-url takes a postgres:// URL');
  return {
    quick,
    couriers: Math.round(num('couriers', quick ? 2_000 : DEFAULT_COURIERS, 1, 200_000)),
    rate: num('rate', 1_000, 1, 100_000),
    durationS: num('duration', quick ? 3 : 10, 0.1, 600),
    modes: [...new Set(modes)] as DispatchMode[],
    emergencyShare: num('emergency-share', 0.1, 0, 1),
    driverAction: driver,
    tripMs: num('trip-ms', quick ? 500 : 1_000, 0, 600_000),
    httpConnections: Math.round(num('http-connections', 32, 1, 1_024)),
    driverHttpConnections: Math.round(num('driver-http-connections', 32, 1, 1_024)),
    requesters: Math.round(num('requesters', 100, 1, 100_000)),
    offerTimeoutMs: num('offer-timeout-ms', 5_000, 1, 600_000),
    idempotency: idem === 'on',
    seed: Math.round(num('seed', 42, 0, 2 ** 31)),
    cities: Math.round(num('cities', 1, 1, 100)),
    ...(profile !== undefined ? { profileDir: profile } : {}),
    ...(databaseUrl !== undefined ? { databaseUrl } : {}),
    maxSeconds: num('max-seconds', quick ? 150 : 900, 1, 86_400),
    runId: randomBytes(4).toString('hex'),
  };
}
