/**
 * The crash property against a cluster (PRODUCT §7): two edges and two cores as processes on the machine's Redis
 * and PostgreSQL, driven through the edges only by a seeded random mix of deliveries (with and without
 * Idempotency-Key), cancels, reads and drivers answering offers on sockets spread over both edges; a core
 * SIGKILLed at seeded moments under that load and started again; at the end everything acknowledged is checked.
 *
 *   cycle k: load for a seeded time ─► SIGKILL a seeded core (answers still out) ─► load on through the failover
 *            ─► start it again under its name ─► both regions owned again
 *   end:     quiet ─► every acknowledged create readable through an edge and stored once (one request.created),
 *            every acknowledged cancel / delivery / assignment standing, nothing refused stored, nothing unknown
 *            stored twice, no leg with two live assignments nor courier with more than a stack and one en-route leg, no event stored twice
 *
 * The model is the one the single-process crash property uses (store/crash): an answer proves what it says —
 * 2xx acknowledged, 4xx and a 503 that says nothing was done refused, no answer or E_OWNER_TIMEOUT unknown.
 * Short form in `npm test` (cluster-crash.e2e.test.ts); long form `npm run soak:cluster -- --kills 20`.
 */
import { cellToBoundary } from 'h3-js';
import pg from 'pg';
import WebSocket from 'ws';
import { Authenticator, type Role } from '../api/auth.js';
import { loadConfig } from '../api/config.js';
import { type ServerProcess, coreStarted, edgeStarted, startServerProcess } from '../api/server-process.js';
import { Prng } from '../fixtures/prng.js';
import { MAX_CARRIED } from '../store/crash/world.js';
import { http } from '../store/crash/client.js';
import { openStore } from '../store/store.js';
import { dropTestSchema, testDatabaseUrl, testSchemaName } from '../store/test-database.js';
import { RegionLeases } from './region-lease.js';
import { regionOf } from './regions.js';
import { TEST_REDIS_URL, connectTestRedis } from './test-redis.js';

export interface ClusterCrashOptions {
  seed: number;
  kills: number;
  /** Load before each kill, [min, max) ms. */
  loadMs?: readonly [number, number];
  log?: (line: string) => void;
}

export interface ClusterCrashReport {
  seed: number;
  kills: number;
  creates: { acknowledged: number; refused: number; unknown: number };
  accepted: number;
  delivered: number;
  cancelled: number;
  /** Longest time from a kill until a read through an edge was answered for the killed core's region (ms). */
  worstFailoverMs: number;
  violations: string[];
  durationMs: number;
}

const SECRET = 'cluster-crash-secret-0123456789abcdef';
const LEASE_MS = 2_000;
const PER_REGION = 6;

interface Created {
  reference: string;
  key: string | undefined;
  body: Record<string, unknown>;
  outcome: 'acknowledged' | 'refused' | 'unknown';
  id?: string;
  cancelled?: boolean;
  /** The courier an acknowledged accept (or assigned frame) gave it. */
  courier?: string;
  delivered?: boolean;
}

/** Runs the cluster crash property; never throws for a violation (they are in the report). */
export async function runClusterCrash(options: ClusterCrashOptions): Promise<ClusterCrashReport> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const rng = new Prng(options.seed);
  const [loadMin, loadMax] = options.loadMs ?? [800, 2_000];
  const url = testDatabaseUrl();
  const schema = testSchemaName('gd_ccr');
  const { redis, prefix, cleanup } = await connectTestRedis();
  const auth = new Authenticator(loadConfig({ JWT_SECRET: SECRET }).jwt, []);
  const token = (role: Role, sub: string): string => auth.signToken({ sub, role }, 3600);
  const leases = new RegionLeases(redis, { owner: 'crash', prefix });
  const violations: string[] = [];
  const creates: Created[] = [];
  const cores = new Map<string, ServerProcess>();
  const edges: ServerProcess[] = [];
  const sockets: WebSocket[] = [];
  let delivered = 0;
  let accepted = 0;
  let worstFailoverMs = 0;

  // the world: couriers in two regions that meet at a vertex of London's region
  const [vlat, vlng] = cellToBoundary(regionOf(51.5074, -0.1278))[0];
  const spots: [number, number][] = [[vlat + 0.02, vlng + 0.03], [vlat - 0.02, vlng - 0.03]];
  const regions = spots.map((p) => regionOf(...p));
  const couriers = new Map<string, [number, number]>();
  spots.forEach((p, r) => {
    for (let i = 0; i < PER_REGION; i++) couriers.set(`k${r}-${i}`, [p[0] + i * 0.0005, p[1]]);
  });
  const store = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
  await store.migrate();
  const ids = [...couriers.keys()];
  await store.upsertCouriers(ids.map((id) => ({ id, vehicle: 'car' as const, capabilities: [], capacity: 1, status: 'available' as const })));
  await store.writePositions({ ids, lat: Float64Array.from(ids, (id) => couriers.get(id)![0]), lng: Float64Array.from(ids, (id) => couriers.get(id)![1]), ts: new Float64Array(ids.length).fill(Date.now() - 5_000) });
  await store.close();

  const common = { GD_CLUSTER_PREFIX: prefix, REDIS_URL: TEST_REDIS_URL, JWT_SECRET: SECRET, GD_LEASE_TTL_MS: String(LEASE_MS), DRAIN_GRACE_MS: '0', DISPATCH_MODE: 'greedy', OFFER_TTL_MS: '3000', RATE_PER_SEC: '100000', RATE_BURST: '100000' };
  const startCore = async (name: string): Promise<void> => {
    cores.set(name, await startServerProcess({ ...common, GD_ROLE: 'core', GD_NODE_NAME: name, DATABASE_URL: url, DATABASE_SCHEMA: schema }, 60_000, coreStarted));
  };
  const allOwned = async (ms: number): Promise<void> => {
    for (const end = Date.now() + ms; ; await sleep(50)) {
      if ((await leases.holders(regions)).every((h) => h !== undefined)) return;
      if (Date.now() > end) throw new Error(`regions not all owned after ${ms} ms`);
    }
  };
  const edgeBase = (): string => edges[rng.int(edges.length)].base;
  const requesters = ['shop-1', 'shop-2', 'shop-3'];
  const tokens = new Map(requesters.map((r) => [r, token('requester', r)]));

  try {
    await startCore('core-1');
    await startCore('core-2');
    for (const name of ['edge-a', 'edge-b']) edges.push(await startServerProcess({ ...common, GD_ROLE: 'edge', GD_NODE_NAME: name }, 60_000, edgeStarted));
    await allOwned(15_000);

    // drivers: one socket each on a seeded edge; they accept (socket or HTTP), decline or ignore offers, then deliver
    const byOffer = new Map<string, Created>();
    const byId = new Map<string, Created>();
    const pending = new Set<Promise<unknown>>();
    const track = (p: Promise<unknown>): void => {
      pending.add(p);
      void p.finally(() => pending.delete(p));
    };
    for (const id of ids) {
      const edge = edges[rng.int(edges.length)];
      const driverToken = token('driver', id);
      const ws = new WebSocket(`${edge.base.replace('http', 'ws')}/v1/stream`, { headers: { authorization: `Bearer ${driverToken}` } });
      await new Promise<void>((resolve, reject) => (ws.once('open', () => resolve()), ws.once('error', reject)));
      sockets.push(ws);
      const react = new Prng(options.seed * 31 + ids.indexOf(id));
      ws.on('message', (data) => {
        let f: any;
        try {
          f = JSON.parse(String(data));
        } catch {
          return;
        }
        const c = byId.get(f.requestId);
        if (f.t === 'offer' && c !== undefined) {
          byOffer.set(f.offerId, c);
          const roll = react.next();
          if (roll < 0.35) ws.send(JSON.stringify({ t: 'accept', offerId: f.offerId }));
          else if (roll < 0.7) {
            track(http(edgeBase(), 'POST', `/v1/offers/${f.offerId}/accept`, driverToken, undefined, {}).then((r) => {
              if (r?.status === 200) (c.courier = id), accepted++;
            }));
          } else if (roll < 0.85) track(http(edgeBase(), 'POST', `/v1/offers/${f.offerId}/decline`, driverToken, undefined, {}));
        } else if (f.t === 'assigned' && c !== undefined) {
          if (c.courier === undefined) accepted++;
          c.courier = id;
          if (react.chance(0.5)) {
            track((async () => {
              for (const status of ['picked_up', 'delivered']) {
                const r = await http(edgeBase(), 'POST', `/v1/requests/${c.id}/progress`, driverToken, { status }, {});
                if (r?.status !== 200) return;
              }
              c.delivered = true;
              delivered++;
            })());
          }
        }
      });
    }

    const create = async (): Promise<void> => {
      const n = creates.length;
      const at = couriers.get(ids[rng.int(ids.length)])!;
      const who = rng.pick(requesters);
      const c: Created = {
        reference: `cc-${options.seed}-${n}`,
        key: rng.chance(0.5) ? `key-${options.seed}-${n}` : undefined,
        body: { kind: 'delivery', urgency: rng.pick(['routine', 'urgent', 'emergency']), reference: `cc-${options.seed}-${n}`, pickup: { lat: at[0] + 0.001, lng: at[1] }, dropoff: { lat: at[0] + 0.01, lng: at[1] + 0.01 } },
        outcome: 'unknown',
      };
      creates.push(c);
      ownerOf.set(c, who);
      settle(c, await http(edgeBase(), 'POST', '/v1/requests', tokens.get(who)!, c.body, c.key ? { 'idempotency-key': c.key } : {}));
    };
    const ownerOf = new Map<Created, string>();
    const settle = (c: Created, r: Awaited<ReturnType<typeof http>>): void => {
      if (r?.status === 201) {
        c.outcome = 'acknowledged';
        c.id = r.body.id;
        byId.set(c.id!, c);
      } else if (r !== undefined && r.status >= 400 && r.status < 500) c.outcome = 'refused';
      else if (r?.status === 503 && r.body?.error?.code !== 'E_OWNER_TIMEOUT') c.outcome = 'refused';
      else c.outcome = 'unknown';
    };
    const cancel = async (): Promise<void> => {
      const open = creates.filter((c) => c.outcome === 'acknowledged' && !c.cancelled && !c.delivered && c.courier === undefined);
      if (open.length === 0) return;
      const c = rng.pick(open);
      const r = await http(edgeBase(), 'POST', `/v1/requests/${c.id}/cancel`, tokens.get(ownerOf.get(c)!)!, undefined, {});
      if (r?.status === 200) c.cancelled = true;
    };
    const load = async (ms: number): Promise<void> => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const roll = rng.next();
        const known = creates.filter((c) => c.id !== undefined);
        if (roll < 0.7 || known.length === 0) track(create());
        else if (roll < 0.85) track(cancel());
        else {
          const c = known[rng.int(known.length)];
          track(http(edgeBase(), 'GET', `/v1/requests/${c.id}`, tokens.get(ownerOf.get(c)!)!, undefined, {}));
        }
        await sleep(15 + rng.int(25));
      }
    };

    for (let k = 0; k < options.kills; k++) {
      await load(loadMin + rng.int(loadMax - loadMin));
      const victim = rng.pick([...cores.keys()]);
      const region = (await leases.holders(regions)).findIndex((h) => h?.owner === victim);
      const killedAt = Date.now();
      await cores.get(victim)!.kill();
      cores.delete(victim);
      // load on through the failover; a read of a request in the victim's region shows when it is served again
      const probe = region < 0 ? undefined : creates.find((c) => c.id?.startsWith(`r.${regions[region]}.`));
      const failover = (async () => {
        if (probe === undefined) return;
        for (;;) {
          const r = await http(edgeBase(), 'GET', `/v1/requests/${probe.id}`, tokens.get(ownerOf.get(probe)!)!, undefined, {});
          if (r?.status === 200) return void (worstFailoverMs = Math.max(worstFailoverMs, Date.now() - killedAt));
          if (Date.now() - killedAt > 15_000) return void violations.push(`kill ${k}: region ${regions[region]} not served 15 s after ${victim} was killed`);
          await sleep(100);
        }
      })();
      await load(LEASE_MS + 1_000);
      await failover;
      await startCore(victim);
      await allOwned(15_000);
      log(`kill ${k + 1}/${options.kills}: ${victim}; creates ${creates.length}, failover ${worstFailoverMs} ms worst so far`);
    }

    // quiet: answers in, unknown keyed creates retried (the key finds what was made), last commits stored
    await Promise.allSettled([...pending]);
    for (const c of creates.filter((x) => x.outcome === 'unknown' && x.key !== undefined)) {
      const r = await http(edgeBase(), 'POST', '/v1/requests', tokens.get(ownerOf.get(c)!)!, c.body, { 'idempotency-key': c.key! });
      if (r?.status === 201) {
        c.outcome = 'acknowledged';
        c.id = r.body.id;
      }
    }
    await sleep(1_000);
    await check(url, schema, creates, ownerOf, tokens, edgeBase, violations);
  } finally {
    for (const ws of sockets) ws.terminate();
    for (const p of [...edges, ...cores.values()]) await p.kill();
    await cleanup();
    await dropTestSchema(url, schema).catch(() => undefined);
  }
  const count = (o: Created['outcome']): number => creates.filter((c) => c.outcome === o).length;
  return {
    seed: options.seed, kills: options.kills,
    creates: { acknowledged: count('acknowledged'), refused: count('refused'), unknown: count('unknown') },
    accepted, delivered, cancelled: creates.filter((c) => c.cancelled).length, worstFailoverMs, violations, durationMs: Date.now() - started,
  };
}

async function check(url: string, schema: string, creates: Created[], ownerOf: Map<Created, string>, tokens: Map<string, string>, edgeBase: () => string, violations: string[]): Promise<void> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const q = async <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => (await db.query<T>(sql.replaceAll('$S', `"${schema}"`))).rows;
    const byRef = new Map((await q<{ reference: string; n: string; id: string; status: string }>(`SELECT reference, count(*) OVER (PARTITION BY reference) AS n, id, status FROM $S.requests WHERE reference IS NOT NULL`)).map((r) => [r.reference, r]));
    const createdEvents = new Map((await q<{ request_id: string; n: string }>(`SELECT request_id, count(*) AS n FROM $S.events WHERE type = 'request.created' GROUP BY request_id`)).map((r) => [r.request_id, Number(r.n)]));
    const live = await q<{ request_id: string; courier_id: string }>(`SELECT request_id, courier_id FROM $S.assignments WHERE ended_at IS NULL`);
    for (const c of creates) {
      const row = byRef.get(c.reference);
      if (c.outcome === 'refused' && row !== undefined) violations.push(`${c.reference}: refused, yet stored as ${row.id}`);
      if (row !== undefined && Number(row.n) > 1) violations.push(`${c.reference}: stored ${row.n} times`);
      if (c.outcome !== 'acknowledged') continue;
      if (row === undefined || row.id !== c.id) {
        violations.push(`${c.reference}: acknowledged as ${c.id}, stored as ${row?.id ?? 'nothing'}`);
        continue;
      }
      if (createdEvents.get(c.id!) !== 1) violations.push(`${c.id}: ${createdEvents.get(c.id!) ?? 0} request.created events`);
      if (c.cancelled && row.status !== 'cancelled') violations.push(`${c.id}: cancel acknowledged, status ${row.status}`);
      if (c.delivered && row.status !== 'delivered') violations.push(`${c.id}: delivery acknowledged, status ${row.status}`);
      if (c.courier !== undefined && !c.cancelled && !['assigned', 'picked_up', 'delivered'].includes(row.status)) violations.push(`${c.id}: assignment to ${c.courier} acknowledged, status ${row.status}`);
      if (c.courier !== undefined && ['assigned', 'picked_up'].includes(row.status) && !live.some((a) => a.request_id === c.id && a.courier_id === c.courier)) violations.push(`${c.id}: assignment to ${c.courier} acknowledged, not live in the store`);
    }
    const perCourier = new Map<string, number>();
    const perLeg = new Map<string, number>();
    for (const a of live) {
      perCourier.set(a.courier_id, (perCourier.get(a.courier_id) ?? 0) + 1);
      perLeg.set(a.request_id, (perLeg.get(a.request_id) ?? 0) + 1);
    }
    for (const [id, n] of perCourier) if (n > MAX_CARRIED) violations.push(`courier ${id}: ${n} live assignments (at most ${MAX_CARRIED}: a stack and one en route)`);
    for (const [id, n] of perLeg) if (n > 1) violations.push(`leg ${id}: ${n} live assignments`);
    // every acknowledged request reads back through an edge (a sample, so the check stays short)
    for (const c of creates.filter((x) => x.outcome === 'acknowledged').slice(-60)) {
      const r = await http(edgeBase(), 'GET', `/v1/requests/${c.id}`, tokens.get(ownerOf.get(c)!)!, undefined, {});
      if (r?.status !== 200) violations.push(`${c.id}: GET through an edge answered ${r?.status ?? 'nothing'}`);
    }
  } finally {
    await db.end();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The soak's one-line summary. */
export function summaryLine(r: ClusterCrashReport): string {
  return `cluster crash property: seed ${r.seed}, kills ${r.kills}, creates ${r.creates.acknowledged} acknowledged / ${r.creates.refused} refused / ${r.creates.unknown} unknown, ` +
    `accepted ${r.accepted}, delivered ${r.delivered}, cancelled ${r.cancelled}, worst failover ${r.worstFailoverMs} ms, violations ${r.violations.length}, duration ${(r.durationMs / 1000).toFixed(1)} s`;
}

async function main(): Promise<void> {
  const arg = (name: string, fallback: number): number => {
    const i = process.argv.indexOf(`--${name}`);
    return i < 0 ? fallback : Number(process.argv[i + 1]);
  };
  const report = await runClusterCrash({ seed: arg('seed', 7), kills: arg('kills', 20), log: (l) => console.log(l) });
  for (const v of report.violations.slice(0, 30)) console.log(`violation: ${v}`);
  console.log(summaryLine(report));
  process.exit(report.violations.length === 0 ? 0 : 1);
}

if (process.argv[1]?.endsWith('cluster-crash.js')) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
