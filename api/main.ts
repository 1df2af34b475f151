/**
 * The composition root: configuration read once, the engine, the dispatch loop and its worker pool built
 * here and handed to the server, the fixture city loaded so nearby and requests work at once.
 *
 *   loadConfig(process.env) ─► createLogger ─► openStore (PGlite in DATA_DIR, or DATABASE_URL) ─► loadState
 *        (an empty store is seeded with fixtures/small-city.json first)
 *   recover(state) ─► engine (couriers, sites + stock, donors, fences, speeds) + DispatchLoop with open requests,
 *                     live assignments and reservations; offers live at the crash expired ─► committed
 *   DispatchJournal (every change committed before acknowledged; refused ones rolled back) + PositionWriteBehind
 *   (pings, at most POSITION_FLUSH_MS lost) + StoreChores (cell speeds saved, old Idempotency-Keys purged) ─► /ready
 *   WebhookDeliverer (outbox after each webhook's cursor, signed POSTs; the journal pokes it after commits)
 *   + FenceOutbox (fence crossings for webhooks, written behind like pings)
 *   DispatchPool ─► createServer ─► listen(PORT)
 *   SIGTERM / SIGINT ─► drain (ready 503, stop accepting, finish batches, close sockets 1001)
 *                    ─► flush positions, save speeds, wait for commits ─► close the store ─► exit
 *
 * There is no other wiring of the server: the end-to-end tests start it here too (api/test-server.ts).
 *
 *   npm start                (PORT=8080; dev tokens printed unless JWT_SECRET / JWT_PUBLIC_KEY is set)
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { DispatchLoop } from '../dispatch/dispatch-loop.js';
import type { DispatchPolicy } from '../dispatch/dispatch-request.js';
import type { CellSpeeds } from '../engine/cell-speeds.js';
import { type EngineIndexes, createEngineIndexes } from '../engine/engine-indexes.js';
import type { Scenario } from '../fixtures/city-scenario.js';
import { loadScenario } from '../fixtures/load-scenario.js';
import { startCore } from '../cluster/core-main.js';
import { startEdge } from '../cluster/edge-main.js';
import { DispatchJournal } from '../store/dispatch-journal.js';
import { type Recovered, recover } from '../store/recovery.js';
import { type Store, openStore } from '../store/store.js';
import { PositionWriteBehind } from '../store/write-behind.js';
import { DispatchPool } from '../workers/dispatch-pool.js';
import { Authenticator, type Role } from './auth.js';
import { type ApiConfig, dispatchPolicy, loadConfig } from './config.js';
import { openFileLimit, socketsThatFit } from './file-limit.js';
import { type Logger, createLogger } from './log.js';
import { ApiMetrics } from './metrics.js';
import { RequestBook, bookedFrom } from './request-book.js';
import { type Server, createServer } from './server.js';
import { FenceFeed } from './stream.js';
import { FenceOutbox } from './fence-outbox.js';
import { WebhookDeliverer } from './webhook-deliverer.js';


/** A running instance. */
export interface Instance {
  config: Readonly<ApiConfig>;
  engine: EngineIndexes;
  server: Server;
  port: number;
  logger: Logger;
  /** The fixture city an empty store was (or would have been) seeded with; undefined with SEED_CITY=none. */
  scenario: Scenario | undefined;
  store: Store;
  journal: DispatchJournal;
  /** Webhook deliveries (started here, stopped by stop()). */
  deliverer: WebhookDeliverer;
  /** What recovery rebuilt, with its timings. */
  recovery: Recovered['report'] & { loadStateMs: number };
  /** Dev tokens by label (empty unless dev tokens are on). */
  tokens: { label: string; role: Role; sub: string; token: string }[];
  /** Drains the server, stops the worker pool, flushes positions and commits, closes the store. */
  stop(): Promise<void>;
}

/**
 * Loads a fixture city into the engine, shifted so its day starts `now`: stock expires and donors become
 * eligible relative to today, not to the day the fixture was generated.
 */
export function loadCity(engine: EngineIndexes, scenario: Scenario, now: number): void {
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

/** Seeds an empty store with a fixture city, shifted so its day starts `now` (as loadCity does in memory). */
export async function seedCity(store: Store, scenario: Scenario, now: number): Promise<void> {
  const engine = createEngineIndexes();
  loadCity(engine, scenario, now);
  await store.upsertSites(scenario.sites.map((s) => ({ id: s.id, kind: s.kind, name: s.name, lat: s.lat, lng: s.lng, capacity: s.capacity, occupancy: s.occupancy, open: s.open })));
  for (const s of scenario.sites) {
    if (!s.inventory) continue;
    await store.upsertInventory(s.id, engine.sites.lots(s.id).map((l) => ({ product: l.product, bloodType: l.bloodType, expiresAt: l.expiresAt, count: l.available + l.reserved })));
  }
  await store.upsertDonors(scenario.donors.map((d) => ({ ...engine.donors.get(d.id)!, id: d.id })));
  await store.upsertCouriers(scenario.couriers.map((c) => ({ id: c.id, vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity, status: c.status ?? 'available' })));
  const n = scenario.couriers.length;
  const batch = { ids: scenario.couriers.map((c) => c.id), lat: new Float64Array(n), lng: new Float64Array(n), ts: new Float64Array(n).fill(now) };
  scenario.couriers.forEach((c, i) => { batch.lat[i] = c.lat; batch.lng[i] = c.lng; });
  await store.writePositions(batch);
  for (const id of engine.fences.ids()) {
    const f = engine.fences.get(id)!;
    await store.putGeofence({ id, kind: f.kind, geometry: f.geometry as never });
  }
}

/** Builds and starts one instance from a configuration: `npm start`, the demo and every end-to-end test start here. */
export async function startInstance(given: Readonly<ApiConfig>, options: { logger?: Logger; now?: number } = {}): Promise<Instance> {
  const logger = options.logger ?? createLogger(given.logLevel);
  const config = fitSocketCap(given, logger);
  const now = options.now ?? Date.now();
  const scenario = config.seedCity === 'none' ? undefined : loadScenario(config.seedCity);
  const store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, pgliteSharedBuffers: config.pgliteSharedBuffers, ...(config.databaseSchema ? { schema: config.databaseSchema } : {}) });
  try {
    return await startOn(store, config, logger, now, scenario);
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
}

// WS_MAX_SOCKETS above the open-files limit would let accept() fail and spin instead of answering 503
function fitSocketCap(config: Readonly<ApiConfig>, logger: Logger): Readonly<ApiConfig> {
  const limit = openFileLimit();
  const fits = socketsThatFit(config.ws.maxSockets, limit);
  if (fits === config.ws.maxSockets) return config;
  logger.warn({ wsMaxSockets: config.ws.maxSockets, openFileLimit: limit, socketCap: fits }, 'WS_MAX_SOCKETS is above what the open-files limit allows; capping open sockets (raise ulimit -n to hold more)');
  return { ...config, ws: { ...config.ws, maxSockets: fits } };
}

async function startOn(store: Store, config: Readonly<ApiConfig>, logger: Logger, now: number, scenario: Scenario | undefined): Promise<Instance> {
  const loadStarted = performance.now();
  let state = await store.loadState();
  if (scenario !== undefined && state.sites.length === 0 && state.couriers.length === 0) {
    await seedCity(store, scenario, now);
    state = await store.loadState();
    logger.info({ city: scenario.cities[0].name }, 'empty store seeded with the fixture city');
  }
  const loadStateMs = performance.now() - loadStarted;
  const policy: DispatchPolicy = dispatchPolicy(config);
  const fenceFeed = new FenceFeed();
  let fenceOutbox: FenceOutbox | undefined; // made once the journal is; no ping is ingested before
  const recovered = recover(state, {
    now,
    onFenceEvent: (e) => {
      fenceFeed.push(e);
      fenceOutbox?.push(e);
    },
    // offer ids are stored: a random boot id keeps them unique across restarts (the counter starts again at 1)
    createLoop: (e) => new DispatchLoop({ couriers: e.couriers, sites: e.sites, donors: e.donors, speeds: e.speeds, policy, offerTtlMs: config.offerTtlMs, offerIdPrefix: `o-${randomBytes(5).toString('hex')}-` }),
  });
  const engine = recovered.engine;
  // webhook deliveries read the outbox (events) off the request path; a commit only pokes them
  const metrics = new ApiMetrics();
  const deliverer = new WebhookDeliverer(store, {
    ...config.webhooks, logger,
    onAttempt: (delivered, lagMs) => {
      metrics.webhookDeliveries.inc({ outcome: delivered ? 'delivered' : 'failed' });
      if (delivered) metrics.webhookLag.observe(lagMs / 1000);
    },
  });
  const journal = new DispatchJournal(store, recovered.loop, recovered.seqBase, {
    onHealthChange: (healthy, err) => (healthy ? logger.info('store commits resumed') : logger.error({ err }, 'store unreachable; writes answer 503 until it is back')),
    onStored: () => deliverer.wake(),
    builder: { stock: { sites: engine.sites, level: config.webhooks.stockLowUnits } },
  });
  if (recovered.expiry !== undefined) await journal.commit(recovered.expiry).acknowledged;
  fenceOutbox = new FenceOutbox(journal, { flushEveryMs: config.positionFlushMs, wants: (type) => deliverer.wants(type), logger });
  fenceOutbox.start();
  const positions = new PositionWriteBehind(store, {
    flushEveryMs: config.positionFlushMs,
    keys: engine.couriers, // the engine's slots: a ping's id is hashed once, by the index's own move
    onHealthChange: (healthy, err) => (healthy ? logger.info('position writes resumed') : logger.error({ err }, 'position writes failing; pings kept in memory (bounded)')),
  });
  positions.start();
  const book = new RequestBook(recovered.loop.parents);
  for (const r of recovered.requests) book.record(bookedFrom(r));
  const recovery = { ...recovered.report, loadStateMs };
  logger.info({ ...recovery, dropped: recovery.dropped.slice(0, 20), store: store.kind }, 'state recovered from the store');
  const chores = new StoreChores(store, engine.speeds, config, logger);
  chores.start();
  await deliverer.start();
  const pool = new DispatchPool();
  const server = createServer(config, {
    webhooks: { log: store, sink: deliverer, allowPrivate: config.webhooks.allowPrivate, max: config.webhooks.max },
    ...engine, fenceFeed, loop: recovered.loop, planner: pool.planner, metrics, logger, journal, book, store, positions,
    dependencyDown: () => (!journal.isHealthy() ? 'store: not reachable, writes refused' : !positions.isHealthy() ? 'store: position writes failing' : undefined),
  });
  const port = await server.listen();
  logger.info({ port, couriers: engine.couriers.size, sites: engine.sites.size, donors: engine.donors.size, city: scenario?.cities[0].name }, 'serving');
  const tokens = config.devTokens ? devTokens(config, scenario) : [];
  let stopped: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    await server.drain();
    await fenceOutbox!.stop();
    await deliverer.stop();
    await pool.close();
    await positions.close();
    await chores.stop();
    await Promise.race([journal.settled(), new Promise((r) => setTimeout(r, SETTLE_WAIT_MS))]);
    await store.close();
  };
  return {
    config, engine, server, port, logger, scenario, tokens, store, recovery, journal, deliverer,
    stop: () => (stopped ??= stop()),
  };
}

/**
 * The store's periodic chores: learned cell speeds saved (and restored by recovery), expired
 * Idempotency-Keys purged, the embedded store vacuumed. All best effort: a failure is logged and tried again next time.
 */
class StoreChores {
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly store: Store,
    private readonly speeds: CellSpeeds,
    private readonly config: Readonly<ApiConfig>,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timers.push(setInterval(() => void this.saveSpeeds(), this.config.cellSpeedsSaveMs).unref());
    // once at start too: a process restarted more often than hourly would otherwise never purge
    void this.purgeKeys();
    this.timers.push(setInterval(() => void this.purgeKeys(), IDEMPOTENCY_PURGE_MS).unref());
    this.timers.push(setInterval(() => void this.maintain(), STORE_MAINTAIN_MS).unref());
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.saveSpeeds();
  }

  async saveSpeeds(): Promise<void> {
    const rows = this.speeds.toJSON().cells.map(([cell, mps, samples]) => ({ cell, mps, samples }));
    try {
      await this.store.saveCellSpeeds(rows);
    } catch (err) {
      this.logger.warn({ err }, 'saving learned cell speeds failed; trying again later');
    }
  }

  private async maintain(): Promise<void> {
    const started = performance.now();
    try {
      const tables = await this.store.maintain();
      if (tables.length > 0) this.logger.info({ tables: tables.length, ms: Math.round(performance.now() - started) }, 'store maintenance (VACUUM ANALYZE) done');
    } catch (err) {
      this.logger.warn({ err }, 'store maintenance failed; trying again later');
    }
  }

  private async purgeKeys(): Promise<void> {
    try {
      await this.store.purgeIdempotency(Date.now() - this.config.requests.idempotencyTtlMs);
    } catch (err) {
      this.logger.warn({ err }, 'purging expired Idempotency-Keys failed; trying again later');
    }
  }
}

/** The embedded store's VACUUM (ANALYZE) of the tables dispatch changes (Store.maintain): often, so each run is short (it blocks the store thread; ~200 ms per 20,000 deliveries changed). */
const STORE_MAINTAIN_MS = 60_000;

/** Expired Idempotency-Keys are purged hourly: lookups ignore them anyway, this only keeps the table small. */
const IDEMPOTENCY_PURGE_MS = 3_600_000;

/** How long a shutdown waits for commits still queued (a database that is down must not hold it forever). */
const SETTLE_WAIT_MS = 5_000;

/** One dev token per role (24 h): the driver acts as the fixture's courier c1. */
export function devTokens(config: Readonly<ApiConfig>, scenario: Scenario | undefined): Instance['tokens'] {
  const auth = new Authenticator(config.jwt, config.apiKeys);
  const driver = scenario?.couriers[1]?.id ?? 'c1';
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
  if (config.role !== 'all') return runClusterRole(config);
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

/**
 * GD_ROLE=core (a region owner, cluster/core-main.ts) or edge (sockets and the public API, cluster/edge-main.ts),
 * stopped cleanly on SIGTERM / SIGINT.
 */
async function runClusterRole(config: Readonly<ApiConfig>): Promise<void> {
  const logger = createLogger(config.logLevel);
  const role = config.role === 'edge' ? 'edge' : 'core';
  // signals are heard from the first moment: a SIGTERM during the start waits for it, then stops cleanly
  const starting: Promise<{ port: number; stop(): Promise<void> }> = role === 'edge' ? startEdge(config, logger) : startCore(config, logger);
  const shutdown = (signal: string): void => {
    logger.info({ signal }, `${role} shutting down`);
    starting.then((node) => node.stop()).then(
      () => process.exit(0),
      (err: unknown) => (logger.error({ err }, `${role} shutdown failed`), process.exit(1)),
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  const node = await starting;
  const serves = role === 'edge' ? 'the API, /v1/stream and the map' : '/health, /ready, /metrics';
  console.log(`GeoDispatch ${role} ${config.cluster.nodeName} on http://localhost:${node.port} (${serves})`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
