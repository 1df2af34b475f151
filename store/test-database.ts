import pg from 'pg';
import { PGliteStore } from './pglite-store.js';
import { type Store, openStore } from './store.js';
/**
 * The PostgreSQL + PostGIS server the suites that need a real one (outages, lost COMMITs) use: TEST_DATABASE_URL,
 * which `npm test` sets to the local server when it answers (vitest.global-setup.ts) and `.ci/run` always sets.
 */

/** TEST_DATABASE_URL, or a failure that says how to provide it (these tests never skip silently). */
export function testDatabaseUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (url === undefined || url === '') {
    throw new Error('this test needs PostgreSQL 15 with PostGIS: start one on 127.0.0.1:5432 (apt-get install postgresql-15-postgis-3) or set TEST_DATABASE_URL=postgres://…');
  }
  return url;
}

/** A schema name of its own for one test store: `<prefix>_<pid>_<random>`, so parallel runs never collide. */
export function testSchemaName(prefix: string): string {
  return `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
}

/** Drops a test schema and everything in it (never the default one: callers pass their own). */
export async function dropTestSchema(url: string, schema: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema) || schema === 'public') throw new Error(`refusing to drop schema '${schema}': pass a test schema of your own`);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** Both stores for a suite that runs on each: PGlite in memory, and the real PostgreSQL in a schema of its own. */
export function bothStores(prefix: string): { name: string; open: () => Promise<{ store: Store; done: () => Promise<void> }> }[] {
  return [
    {
      name: 'pglite',
      open: async () => {
        const store = await PGliteStore.open('memory://');
        await store.migrate();
        return { store, done: () => store.close() };
      },
    },
    {
      name: 'pg',
      open: async () => {
        const url = testDatabaseUrl();
        const schema = testSchemaName(prefix);
        const store = await openStore({ databaseUrl: url, dataDir: 'unused', schema });
        await store.migrate();
        return { store, done: async () => (await store.close(), await dropTestSchema(url, schema)) };
      },
    },
  ];
}
