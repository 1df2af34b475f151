/**
 * What only one Store implementation has: PGlite's data directory surviving a reopen, and PgStore's handling
 * of an unreachable server and of a COMMIT whose answer is lost or refused (real PostgreSQL; TEST_DATABASE_URL
 * or the machine's local server). The behaviour every store shares is in store.contract.test.ts.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from './migrations.js';
import { PgStore } from './pg-store.js';
import { openPGlite, PGliteStore } from './pglite-store.js';
import { PGliteThread } from './pglite-thread.js';
import { CommitOutcomeUnknown, storeFailureKind } from './store-errors.js';
import { type Store, openStore } from './store.js';
import { testDatabaseUrl } from './test-database.js';

const T0 = Date.UTC(2030, 0, 1);
const PENDING = { id: 'p-r', kind: 'delivery' as const, urgency: 'routine' as const, status: 'pending' as const, createdAt: T0, updatedAt: T0, requesterId: 'req-1', payload: { note: 'p-r' } };

describe('the PGlite store', () => {
  it('stops the process when its thread dies unexpectedly (a restart recovers from DATA_DIR)', async () => {
    // the compiled driver in a child process, whose thread is then terminated from outside
    const script = `
      const { PGliteThread } = await import(${JSON.stringify(pathToFileURL(join(process.cwd(), 'dist/store/pglite-thread.js')).href)});
      const db = await PGliteThread.start('memory://', undefined);
      await db.query('SELECT 1');
      await db.worker.terminate();
      setTimeout(() => process.exit(0), 5000);`;
    const dir = mkdtempSync(join(tmpdir(), 'gd-thread-'));
    writeFileSync(join(dir, 'die.mjs'), script);
    const child = spawn(process.execPath, [join(dir, 'die.mjs')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += String(b)));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).not.toBe(0);
    rmSync(dir, { recursive: true, force: true });
    expect(stderr).toContain("the embedded store's thread exited unexpectedly");
  });

  it('runs on its own thread: errors keep their SQLSTATE, a transaction is alone, a thrown one rolls back, a closed one refuses', async () => {
    const db = await PGliteThread.start('memory://', undefined);
    try {
      await db.exec('CREATE TABLE t (id int PRIMARY KEY)');
      const dup = await db.query('INSERT INTO t VALUES (1), (1)').then(() => undefined, (e: unknown) => e);
      expect(storeFailureKind(dup)).toBe('invalid');
      expect((dup as { code?: string }).code).toBe('23505');
      // another caller's statement waits for the open transaction instead of landing inside it
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const tx = db.transaction(async (t) => {
        await t.query('INSERT INTO t VALUES (2)');
        await held;
        throw new Error('changed my mind');
      });
      const outside = db.query('INSERT INTO t VALUES (3)');
      release();
      await expect(tx).rejects.toThrow('changed my mind');
      await outside;
      expect(await db.query<{ id: number }>('SELECT id FROM t ORDER BY id')).toEqual([{ id: 3 }]);
    } finally {
      await db.close();
    }
    expect(storeFailureKind(await db.query('SELECT 1').then(() => undefined, (e: unknown) => e))).toBe('unavailable');
  });

  it('keeps a small parser table (PGlite copies it per query) and still reads arrays, numbers, JSON and times as before', async () => {
    const db = await openPGlite('memory://');
    try {
      await db.exec('CREATE EXTENSION IF NOT EXISTS postgis');
      expect(Object.keys(db.parsers).length).toBeLessThanOrEqual(40);
      const r = await db.query<Record<string, unknown>>(
        `SELECT ARRAY['a','b']::text[] AS t, ARRAY[1.5, 2]::float8[] AS f, ARRAY[3]::int[] AS n, ARRAY['{"k":2}']::jsonb[] AS js, ARRAY[true]::bool[] AS bs, 7::int8 AS i, 2.5::float8 AS x,
                true AS b, '{"a":[1]}'::jsonb AS j, to_timestamp(0) AS ts, 'plain' AS s, ST_X(ST_MakePoint(1.25, 2)) AS lng`,
      );
      expect(r.rows[0]).toEqual({ t: ['a', 'b'], f: [1.5, 2], n: [3], js: [{ k: 2 }], bs: [true], i: 7, x: 2.5, b: true, j: { a: [1] }, ts: new Date(0), s: 'plain', lng: 1.25 });
    } finally {
      await db.close();
    }
  });

  it('maintain() vacuums and analyzes the tables dispatch changes (PGlite has no autovacuum)', async () => {
    const store = await openStore({ dataDir: 'memory://' }) as PGliteStore;
    try {
      await store.migrate();
      // 200 requests each moved through three statuses: dead row versions and index entries behind them
      for (let i = 0; i < 200; i++) {
        const id = `m-r${i}`;
        await store.commitTransition({ seq: 3 * i + 1, at: T0, requests: [{ ...PENDING, id, payload: {} }] });
        await store.commitTransition({ seq: 3 * i + 2, at: T0, requestStatus: [{ id, status: 'offered' }] });
        await store.commitTransition({ seq: 3 * i + 3, at: T0, requestStatus: [{ id, status: 'delivered' }] });
      }
      // the protected driver, read-only here: what PostgreSQL knows of the table
      const db = (store as unknown as { db: { query<R>(text: string): Promise<R[]> } }).db;
      const known = () => db.query<{ reltuples: number; relallvisible: number }>("SELECT reltuples::float8 AS reltuples, relallvisible FROM pg_class WHERE relname = 'requests'");
      expect(await known()).toEqual([{ reltuples: -1, relallvisible: 0 }]);
      expect(await store.maintain()).toContain('requests');
      const [after] = await known();
      // ANALYZE counted the live rows; VACUUM cleared the dead versions and marked the pages all-visible
      expect(after.reltuples).toBe(200);
      expect(after.relallvisible).toBeGreaterThan(0);
      expect((await store.getRequest('m-r7'))?.request.status).toBe('delivered');
    } finally {
      await store.close();
    }
  });

  it('claims its DATA_DIR: a live Node process holding it refuses the open, a lock left by a dead one is taken over', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gd-lock-'));
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      writeFileSync(join(dir, 'geodispatch.lock'), String(holder.pid));
      await expect(PGliteStore.open(dir)).rejects.toThrow(`is in use by process ${holder.pid}`);
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
      // the holder is gone (as after a kill -9): its lock is stale
      const store = await PGliteStore.open(dir);
      expect(readFileSync(join(dir, 'geodispatch.lock'), 'utf8')).toBe(String(process.pid));
      await store.close();
      expect(existsSync(join(dir, 'geodispatch.lock'))).toBe(false);
    } finally {
      holder.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('persists across close and reopen of the same dataDir', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'gd-pglite-'));
    try {
      const first = await openStore({ dataDir });
      expect(first.kind).toBe('pglite');
      await first.upsertSites([{ id: 'p-site', kind: 'food_bank', name: 'F', lat: 3, lng: 4, capacity: 9 }]);
      await first.commitTransition({ seq: 7, at: T0, requests: [PENDING], events: [{ seq: 7, at: T0, type: 'request.created', requestId: 'p-r' }] });
      await first.close();

      const second = (await openStore({ dataDir })) as PGliteStore;
      const s = await second.loadState();
      expect(s.sites).toEqual([{ id: 'p-site', kind: 'food_bank', name: 'F', lat: 3, lng: 4, capacity: 9, occupancy: 0, open: true }]);
      expect(s.requests).toEqual([PENDING]);
      expect(s.lastEventSeq).toBe(7);
      expect((await second.appliedMigrations()).map((m) => m.version)).toEqual(MIGRATIONS.map((m) => m.version));
      await second.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('the pg store', () => {
  it('ping() is false on a bad URL, without throwing', async () => {
    const store: Store = new PgStore({ databaseUrl: 'postgres://postgres@127.0.0.1:1/nowhere', connectTimeoutMs: 1000 });
    await expect(store.ping()).resolves.toBe(false);
    await store.close();
  });

  it('openStore on an unreachable server rejects instead of hanging', async () => {
    await expect(openStore({ databaseUrl: 'postgres://postgres@127.0.0.1:1/nowhere', dataDir: 'unused' })).rejects.toThrow();
  });

  it('a COMMIT whose connection dies rejects with CommitOutcomeUnknown, and one the server refuses keeps its own error', async () => {
    const databaseUrl = testDatabaseUrl();
    const schema = `gd_commit_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
    const store = new PgStore({ databaseUrl, schema });
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    try {
      await store.migrate();
      // a deferred trigger runs inside COMMIT: it refuses one event type and stalls on another (naming its
      // backend after the schema so this run terminates only its own)
      await admin.query(`
CREATE FUNCTION ${schema}.at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.type = 'test.refused' THEN RAISE unique_violation USING MESSAGE = 'refused at commit'; END IF;
  IF NEW.type = 'test.stalled' THEN PERFORM set_config('application_name', TG_TABLE_SCHEMA, false); PERFORM pg_sleep(30); END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON ${schema}.events DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION ${schema}.at_commit();`);

      const stalled = store.commitTransition({ seq: 1, at: T0, events: [{ seq: 1, at: T0, type: 'test.stalled' }] }).then(() => undefined, (e: unknown) => e);
      let terminated = false;
      for (let i = 0; i < 200 && !terminated; i++) {
        const rows = await admin.query("SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND query = 'COMMIT'", [schema]);
        terminated = rows.rows.length === 1;
        if (!terminated) await new Promise((r) => setTimeout(r, 50));
      }
      expect(terminated).toBe(true);
      const lost = await stalled;
      expect(lost).toBeInstanceOf(CommitOutcomeUnknown);
      expect(((lost as Error).cause as { code?: string }).code).toBe('57P01');
      expect(storeFailureKind(lost)).toBe('ambiguous');

      const refused = await store.commitTransition({ seq: 2, at: T0, events: [{ seq: 2, at: T0, type: 'test.refused' }] }).then(() => undefined, (e: unknown) => e);
      expect(refused).not.toBeInstanceOf(CommitOutcomeUnknown);
      expect((refused as Error).message).toBe('refused at commit');
      expect(storeFailureKind(refused)).toBe('invalid');

      // both were rolled back (the trigger runs before the commit record), and the pool still works
      expect((await store.loadState()).lastEventSeq).toBe(0);
      await store.commitTransition({ seq: 2, at: T0, events: [{ seq: 2, at: T0, type: 'request.created' }] });
      expect((await store.loadState()).lastEventSeq).toBe(2);
    } finally {
      await store.dropSchema().catch(() => undefined);
      await store.close();
      await admin.end();
    }
  }, 30_000);
});
