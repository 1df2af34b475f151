/**
 * The composition root: configuration read once, the engine, the dispatch loop and its worker pool built
 * here and handed to the server, the fixture city loaded so nearby and requests work at once.
 *
 *   loadConfig(process.env) ─► createLogger ─► engine (couriers, sites, donors, fences, speeds)
 *                                           ─► fixtures/small-city.json (sites + stock, donors, couriers)
 *                                           ─► DispatchLoop + DispatchPool ─► createServer ─► listen(PORT)
 *   SIGTERM / SIGINT ─► drain (ready 503, stop accepting, finish batches, close sockets 1001) ─► exit
 *
 *   npm start                (PORT=8080; dev tokens printed unless JWT_SECRET / JWT_PUBLIC_KEY is set)
 */
import { pathToFileURL } from 'node:url';
import { DispatchLoop } from '../dispatch/dispatch-loop.js';
import { DEFAULT_POLICY, type DispatchPolicy } from '../dispatch/dispatch-request.js';
import { CellSpeeds } from '../engine/cell-speeds.js';
import { CourierIndex } from '../engine/courier-index.js';
import { DonorIndex } from '../engine/donor-index.js';
import { GeofenceIndex } from '../engine/geofence-index.js';
import { SiteIndex } from '../engine/site-index.js';
import type { Scenario } from '../fixtures/city-scenario.js';
import { loadScenario } from '../fixtures/load-scenario.js';
import { DispatchPool } from '../workers/dispatch-pool.js';
import { Authenticator, type Role } from './auth.js';
import { type ApiConfig, loadConfig } from './config.js';
import { type Logger, createLogger } from './log.js';
import { ApiMetrics } from './metrics.js';
import { type Server, createServer } from './server.js';
import { FenceFeed } from './stream.js';

/** The engine of one instance. */
export interface Engine {
  couriers: CourierIndex;
  sites: SiteIndex;
  donors: DonorIndex;
  fences: GeofenceIndex;
  speeds: CellSpeeds;
  fenceFeed: FenceFeed;
}

/** A running instance. */
export interface Instance {
  config: Readonly<ApiConfig>;
  engine: Engine;
  server: Server;
  port: number;
  logger: Logger;
  scenario: Scenario;
  /** Dev tokens by label (empty unless dev tokens are on). */
  tokens: { label: string; role: Role; sub: string; token: string }[];
  /** Drains the server and stops the worker pool. */
  stop(): Promise<void>;
}

/** Fresh, empty engine indexes wired for fence events. */
export function createEngine(): Engine {
  const fences = new GeofenceIndex();
  const speeds = new CellSpeeds();
  const fenceFeed = new FenceFeed();
  const couriers = new CourierIndex({ fences, speeds, onFenceEvent: fenceFeed.push });
  return { couriers, sites: new SiteIndex(), donors: new DonorIndex(), fences, speeds, fenceFeed };
}

/**
 * Loads a fixture city into the engine, shifted so its day starts `now`: stock expires and donors become
 * eligible relative to today, not to the day the fixture was generated.
 */
export function loadCity(engine: Engine, scenario: Scenario, now: number): void {
  const shift = now - scenario.dayStart;
  for (const s of scenario.sites) {
    engine.sites.upsert(s.id, s);
    if (s.inventory) engine.sites.setInventory(s.id, s.inventory.map((lot) => ({ ...lot, expiresAt: lot.expiresAt + shift })));
  }
  for (const d of scenario.donors) {
    const lastDonation = Object.fromEntries(Object.entries(d.lastDonation).map(([p, t]) => [p, (t as number) + shift]));
    engine.donors.upsert(d.id, { ...d, lastDonation });
  }
  for (const c of scenario.couriers) {
    engine.couriers.upsert(c.id, c);
    engine.couriers.move(c.id, c.lat, c.lng, now);
  }
  // one fence around the centre: a low-emission zone whose enter/exit events stream to dispatchers
  const city = scenario.cities[0];
  const d = 0.02;
  const ring = [[city.lng - d, city.lat - d], [city.lng + d, city.lat - d], [city.lng + d, city.lat + d], [city.lng - d, city.lat + d], [city.lng - d, city.lat - d]];
  engine.fences.put('centre-zone', { kind: 'low_emission', geometry: { type: 'Polygon', coordinates: [ring] } });
}

/** Builds and starts one instance from a configuration (the demo and `npm start` share it). */
export async function startInstance(config: Readonly<ApiConfig>, options: { logger?: Logger; now?: number } = {}): Promise<Instance> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const now = options.now ?? Date.now();
  const engine = createEngine();
  const scenario = loadScenario('small-city');
  loadCity(engine, scenario, now);
  const policy: DispatchPolicy = { ...DEFAULT_POLICY, mode: config.dispatch.mode, windowMs: config.dispatch.windowMs };
  const loop = new DispatchLoop({ couriers: engine.couriers, sites: engine.sites, donors: engine.donors, speeds: engine.speeds, policy, offerTtlMs: config.offerTtlMs });
  const pool = new DispatchPool();
  const server = createServer(config, { ...engine, loop, planner: pool.planner, metrics: new ApiMetrics(), logger, drainGraceMs: 1000 });
  const port = await server.listen();
  logger.info({ port, couriers: engine.couriers.size, sites: engine.sites.size, donors: engine.donors.size, city: scenario.cities[0].name }, 'fixture city loaded');
  const tokens = config.devTokens ? devTokens(config, scenario) : [];
  let stopped: Promise<void> | undefined;
  return {
    config, engine, server, port, logger, scenario, tokens,
    stop: () => (stopped ??= server.drain().then(() => pool.close())),
  };
}

/** One dev token per role (24 h): the driver acts as the fixture's courier c1. */
export function devTokens(config: Readonly<ApiConfig>, scenario: Scenario): Instance['tokens'] {
  const auth = new Authenticator(config.jwt, config.apiKeys);
  const driver = scenario.couriers[1]?.id ?? 'c1';
  const people: { label: string; role: Role; sub: string }[] = [
    { label: 'admin', role: 'admin', sub: 'admin' },
    { label: 'dispatcher', role: 'dispatcher', sub: 'dispatcher' },
    { label: `driver (sub=${driver})`, role: 'driver', sub: driver },
    { label: 'requester', role: 'requester', sub: 'requester-1' },
  ];
  return people.map((p) => ({ ...p, token: auth.signToken({ sub: p.sub, role: p.role }, 24 * 3600) }));
}

/** Prints how to get a token for each role (the load generator parses `dev token admin: `). */
export function printAccess(instance: Instance): void {
  const base = `http://localhost:${instance.port}`;
  console.log(`GeoDispatch on ${base}  (WebSocket ${base.replace('http', 'ws')}/v1/stream?access_token=…)`);
  if (instance.tokens.length === 0) {
    console.log('tokens: sign a JWT (HS256 with JWT_SECRET, or your key) with claims sub, role (driver|dispatcher|requester|admin), exp');
    return;
  }
  for (const t of instance.tokens) console.log(`dev token ${t.label}: ${t.token}`);
  console.log(`try: curl -H "Authorization: Bearer <dispatcher token>" "${base}/v1/nearby?lat=51.5074&lng=-0.1278&kind=courier&k=3"`);
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const instance = await startInstance(config);
  printAccess(instance);
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    instance.logger.info({ signal }, 'shutting down');
    instance.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        instance.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
