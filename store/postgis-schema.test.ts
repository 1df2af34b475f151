/**
 * PostGIS lands in `public` whatever DATABASE_SCHEMA the first migration ran with: created in the first schema
 * of the search path, it belonged to that one deployment's schema, every other schema of the database failed
 * with `type "geography" does not exist`, and dropping that schema took PostGIS away from everyone.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from './store.js';
import { testDatabaseUrl } from './test-database.js';

describe('PostGIS created on a fresh database by a migration under a schema', () => {
  const admin = testDatabaseUrl();
  const name = `gd_ext_${process.pid}`;
  const url = (() => {
    const u = new URL(admin);
    u.pathname = `/${name}`;
    return u.toString();
  })();
  const exec = async (sql: string): Promise<unknown[]> => {
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    try {
      return (await c.query(sql)).rows;
    } finally {
      await c.end();
    }
  };
  afterAll(async () => {
    await exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });

  it('is in public, so a second schema migrates and dropping the first leaves it in place', async () => {
    await exec(`CREATE DATABASE ${name}`);
    const first = await openStore({ databaseUrl: url, dataDir: 'unused', schema: 'tenant_a' });
    await first.migrate();
    await first.close();
    const second = await openStore({ databaseUrl: url, dataDir: 'unused', schema: 'tenant_b' });
    await second.migrate();
    await second.upsertCouriers([{ id: 'x1', vehicle: 'car', capabilities: [], capacity: 1, status: 'available' }]);
    await second.close();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const where = await c.query("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'postgis'");
      expect(where.rows).toEqual([{ nspname: 'public' }]);
      await c.query('DROP SCHEMA tenant_a CASCADE');
      expect((await c.query("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).rows).toHaveLength(1);
    } finally {
      await c.end();
    }
  });
});
