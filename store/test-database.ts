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
