/**
 * gd_commit_transitions plans each of its statements once per connection (plpgsql caches generic plans), with
 * no idea how many rows a transition brings: jsonb_to_recordset is always guessed at 100 rows. A step that joins
 * those rows to a stored table by key may then scan the whole table for each transition (a hash join over a
 * sequential scan), so a commit gets slower as requests, offers and assignments accumulate. This suite runs
 * every step, as the function plans it (its own settings, a generic plan) on the embedded store with a few
 * thousand rows in each table, and counts the rows each plan node actually read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMigrations } from './migrations.js';
import { PGliteThread } from './pglite-thread.js';
import { TRANSITION_STEPS, type SqlDriver, type SqlSession } from './sql.js';
import type { Transition } from './store.js';

const T0 = Date.UTC(2030, 0, 1);
const N = 3_000;
/** Rows a node may touch for a one-row step: the row, its index neighbours, a constraint check. */
const MOST_ROWS = 10;

// one row per step, each naming rows the fill below made (r7 has a live assignment, r9's has ended)
const SAMPLE: { [K in (typeof TRANSITION_STEPS)[number][0]]: NonNullable<Transition[K]> } = {
  requests: [{ id: 'new-r', kind: 'delivery', urgency: 'routine', status: 'pending', requesterId: 'u', payload: {}, createdAt: T0, updatedAt: T0 }],
  idempotency: [{ principal: 'u', key: 'new-k', requestId: 'new-r', bodyHash: 'h', status: 201, reply: {}, createdAt: T0, replacesBefore: T0 - 1 }],
  requestStatus: [{ id: 'r7', status: 'offered' }],
  offers: [{ id: 'new-o', requestId: 'r9', courierId: 'c9', status: 'live', createdAt: T0, expiresAt: T0 + 15_000 }],
  offerStatus: [{ id: 'o7', status: 'accepted' }],
  assignmentsEnded: [{ requestId: 'r7' }],
  assignmentsStarted: [{ requestId: 'r9', courierId: 'c9', offerId: 'o9', createdAt: T0 }],
  reservationsMade: [{ requestId: 'r9', siteId: 's1', product: 'red_cells', bloodType: 'A+', expiresAt: T0, count: 1 }],
  reservationsReleased: [{ requestId: 'r7', siteId: 's7', product: 'red_cells', bloodType: 'A+', expiresAt: T0, count: 1 }],
  reservationsIssued: [{ requestId: 'r8', siteId: 's8', product: 'red_cells', bloodType: 'A+', expiresAt: T0, count: 1 }],
  courierStatus: [{ id: 'c7', status: 'busy' }],
  events: [{ seq: 1_000_000_001, at: T0, type: 'request.offered', requestId: 'r7', courierId: 'c7' }],
};

const STORED_TABLES = ['requests', 'idempotency_keys', 'offers', 'assignments', 'reservations', 'inventory_units', 'couriers', 'events', 'sites'];

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Join Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

/** Each node that read a stored table or filtered a join, with the rows it went through over all its loops. */
function rowsRead(node: PlanNode, out: { node: string; rows: number }[] = []): { node: string; rows: number }[] {
  const loops = node['Actual Loops'] ?? 1;
  const seen = (node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0);
  if (node['Relation Name'] !== undefined && STORED_TABLES.includes(node['Relation Name']) && node['Node Type'] !== 'ModifyTable') {
    out.push({ node: `${node['Node Type']} on ${node['Relation Name']}`, rows: seen * loops });
  }
  if (node['Rows Removed by Join Filter'] !== undefined) out.push({ node: `${node['Node Type']} join filter`, rows: node['Rows Removed by Join Filter'] * loops });
  for (const child of node.Plans ?? []) rowsRead(child, out);
  return out;
}

async function fill(db: SqlSession): Promise<void> {
  await db.exec(`
    INSERT INTO sites (id, kind, name, geom) SELECT 's' || g, 'blood_bank', 'bank ' || g, ST_SetSRID(ST_MakePoint(0, 0), 4326)::geography FROM generate_series(1, ${N}) g;
    INSERT INTO inventory_units (site_id, product, blood_type, expires_at, count, reserved)
      SELECT 's' || g, 'red_cells', 'A+', to_timestamp(${T0} / 1000.0), 5, 1 FROM generate_series(1, ${N}) g;
    INSERT INTO couriers (id, vehicle, capabilities, capacity, status) SELECT 'c' || g, 'bike', '{}', 1, 'idle' FROM generate_series(1, ${N}) g;
    INSERT INTO requests (id, kind, urgency, requester_id, payload, status, created_at, updated_at)
      SELECT 'r' || g, 'delivery', 'routine', 'u', '{}', 'assigned', now(), now() FROM generate_series(1, ${N}) g;
    INSERT INTO offers (id, request_id, courier_id, status, created_at, expires_at, details)
      SELECT 'o' || g, 'r' || g, 'c' || g, 'live', now(), now(), '{}' FROM generate_series(1, ${N}) g;
    -- two in three assignments live (r7 among them), the rest ended (r9)
    INSERT INTO assignments (request_id, courier_id, offer_id, created_at, ended_at)
      SELECT 'r' || g, 'c' || g, 'o' || g, now(), CASE WHEN g % 3 = 0 THEN now() END FROM generate_series(1, ${N}) g;
    INSERT INTO reservations (request_id, site_id, product, blood_type, expires_at, count, created_at)
      SELECT 'r' || g, 's' || g, 'red_cells', 'A+', to_timestamp(${T0} / 1000.0), 1, now() FROM generate_series(1, ${N}) g;
    INSERT INTO events (seq, at, type, request_id, courier_id, payload)
      SELECT g, now(), 'request.created', 'r' || g, NULL, '{}' FROM generate_series(1, ${N}) g;`);
}

describe('gd_commit_transitions, step by step as the function plans it', () => {
  let db: SqlDriver;
  let settings: string[] = [];

  beforeAll(async () => {
    db = await PGliteThread.start('memory://', undefined);
    await runMigrations(db);
    await fill(db);
    const rows = await db.query<{ proconfig: string[] | null }>("SELECT proconfig FROM pg_proc WHERE proname = 'gd_commit_transitions'");
    settings = rows[0]?.proconfig ?? [];
  }, 120_000);

  afterAll(async () => {
    await db?.close();
  });

  it.each(TRANSITION_STEPS.map(([field, sql]) => ({ field, sql })))('$field reads only the rows it is given', async ({ field, sql }) => {
    // EXPLAIN ANALYZE runs the step: the transaction is rolled back (by throwing) so nothing it wrote stays
    const plan = await db
      .transaction(async (tx) => {
        for (const setting of settings) {
          const [name, value] = setting.split('=');
          await tx.query('SELECT set_config($1, $2, true)', [name, value]);
        }
        await tx.query("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)");
        await tx.query(`PREPARE step(text) AS ${sql}`);
        try {
          const rows = await tx.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE step(${quote(JSON.stringify(SAMPLE[field].map((row) => ({ ...row, txAt: T0 }))))})`);
          throw new RolledBack(rows[0]['QUERY PLAN'][0].Plan);
        } finally {
          await tx.query('DEALLOCATE step');
        }
      })
      .then(
        () => expect.fail('the step was committed'),
        (err: unknown) => {
          if (err instanceof RolledBack) return err.plan;
          throw err;
        },
      );
    const read = rowsRead(plan);
    const worst = read.reduce((a, b) => (b.rows > a.rows ? b : a), { node: 'none', rows: 0 });
    expect(worst.rows, `${field}: ${worst.node} went through ${worst.rows} rows\n${JSON.stringify(plan, null, 1)}`).toBeLessThanOrEqual(MOST_ROWS);
  });
});

class RolledBack {
  constructor(readonly plan: PlanNode) {}
}

function quote(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}
