/**
 * `npm run cluster`: a cluster on one machine for trying it (PRODUCT §7) — two edges on PORT and PORT+1, two
 * cores on PORT+10 and PORT+11 (/health, /ready, /metrics), on the Redis and PostgreSQL + PostGIS it is given.
 *
 *   REDIS_URL     (default redis://127.0.0.1:6379)
 *   DATABASE_URL  (default postgres://postgres@127.0.0.1:5432/postgres; needs PostGIS: `CREATE EXTENSION postgis` works)
 *   JWT_SECRET    (default: a random one for this run; every edge accepts the same tokens)
 *   PORT          (default 8080)
 *
 * An empty database is seeded with the fixture city's couriers (SEED_CITY=none skips it), so nearby and the map
 * show something at once. Prints a token per role and each process's pid. A process killed once running (try
 * `kill -9` on a core: the other takes its regions within the lease) is started again after 5 s. Ctrl-C (or
 * SIGTERM) stops the four processes cleanly.
 * `--seed-only` seeds and exits (the compose profile runs it once before its cores).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Authenticator, type Role } from '../api/auth.js';
import { loadConfig } from '../api/config.js';
import { loadScenario } from '../fixtures/load-scenario.js';
import { openStore } from '../store/store.js';

const ENTRY = fileURLToPath(new URL('../api/main.js', import.meta.url));
/** A process that dies once running is started again after this long (its peers serve its share meanwhile). */
const RESTART_MS = 5_000;

async function main(): Promise<void> {
  const env = process.env;
  const redisUrl = env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const databaseUrl = env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const secret = env.JWT_SECRET ?? randomBytes(32).toString('base64url');
  const port = Number(env.PORT ?? 8080);
  await seed(databaseUrl, env.DATABASE_SCHEMA, env.SEED_CITY ?? 'small-city');
  if (process.argv.includes('--seed-only')) return;

  const shared = { ...env, REDIS_URL: redisUrl, DATABASE_URL: databaseUrl, JWT_SECRET: secret, GEODISPATCH_DEV: '' };
  const children: ChildProcess[] = [];
  const run = (name: string, role: 'edge' | 'core', at: number): Promise<void> => {
    const child = spawn(process.execPath, [ENTRY], { env: { ...shared, GD_ROLE: role, GD_NODE_NAME: name, PORT: String(at) }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let ready!: () => void;
    const started = new Promise<void>((r) => (ready = r));
    for (const stream of [child.stdout, child.stderr]) {
      let rest = '';
      stream.on('data', (b: Buffer) => {
        const lines = (rest + String(b)).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) {
          console.log(`[${name}] ${line}`);
          if (line.includes(`GeoDispatch ${role} ${name} on`)) ready();
        }
      });
    }
    let up = false;
    void started.then(() => {
      up = true;
      console.log(`[${name}] pid ${child.pid}`);
    });
    child.once('exit', (code, signal) => {
      console.log(`[${name}] exited (${signal ?? code})`);
      if (stopping) return;
      // killed once running (kill -9 a core to watch its regions move): started again, as a supervisor would
      if (up) {
        console.log(`[${name}] starting again in ${RESTART_MS / 1000} s; meanwhile the other ${role} serves`);
        setTimeout(() => void run(name, role, at).catch(() => stop(1)), RESTART_MS).unref();
        return;
      }
      stop(1);
    });
    return started;
  };
  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r))))).then(() => process.exit(code));
  };
  process.once('SIGINT', () => stop(0));
  process.once('SIGTERM', () => stop(0));

  // cores first, so the edges' first pings find owners
  await Promise.all([run('core-1', 'core', port + 10), run('core-2', 'core', port + 11)]);
  await Promise.all([run('edge-a', 'edge', port), run('edge-b', 'edge', port + 1)]);

  const auth = new Authenticator(loadConfig({ JWT_SECRET: secret }).jwt, []);
  const token = (role: Role, sub: string): string => auth.signToken({ sub, role }, 24 * 3600);
  console.log(`\nGeoDispatch cluster: edges http://localhost:${port} and http://localhost:${port + 1} (the map at /), cores :${port + 10} :${port + 11}`);
  for (const [role, sub] of [['admin', 'admin'], ['dispatcher', 'dispatcher'], ['driver', 'c1'], ['requester', 'requester-1']] as const) {
    console.log(`dev token ${role} (sub=${sub}): ${token(role, sub)}`);
  }
  console.log(`try: curl -H "Authorization: Bearer <dispatcher token>" "http://localhost:${port + 1}/v1/nearby?lat=<lat>&lng=<lng>&k=5"`);
}

/** An empty database gets the fixture city's couriers and their positions (what cores load their regions from). */
async function seed(databaseUrl: string, schema: string | undefined, city: string): Promise<void> {
  const store = await openStore({ databaseUrl, dataDir: 'unused', ...(schema ? { schema } : {}) });
  try {
    await store.migrate();
    if (city === 'none' || (await store.loadCouriers({ box: { minLat: -90, maxLat: 90, minLng: -180, maxLng: 180 } })).length > 0) return;
    const scenario = loadScenario(city === 'small-multi-city' ? 'small-multi-city' : 'small-city');
    const couriers = scenario.couriers;
    await store.upsertCouriers(couriers.map(({ id, vehicle, capabilities, capacity, status }) => ({ id, vehicle, capabilities, capacity, status })));
    const now = Date.now();
    await store.writePositions({ ids: couriers.map((c) => c.id), lat: Float64Array.from(couriers, (c) => c.lat), lng: Float64Array.from(couriers, (c) => c.lng), ts: new Float64Array(couriers.length).fill(now) });
    console.log(`seeded ${couriers.length} couriers of ${city} into the cluster's database`);
  } finally {
    await store.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
