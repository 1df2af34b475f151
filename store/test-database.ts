import pg from 'pg';
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
