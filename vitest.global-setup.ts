/**
 * Once per `npm test` run, before any test file:
 *   - an empty embedded store (PGlite with PostGIS and every migration) is built in a temp dir; end-to-end
 *     servers start on a copy of it (TEST_PGLITE_TEMPLATE), ~2 s instead of ~9 s of CREATE EXTENSION each;
 *   - TEST_DATABASE_URL defaults to the local PostgreSQL (postgres://postgres@127.0.0.1:5432/test) when one
 *     answers with PostGIS, so the suites that run on both stores do so on a machine that has one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PGliteStore } from './store/pglite-store.js';

const LOCAL_DATABASE = 'postgres://postgres@127.0.0.1:5432/test';

export default async function setup(): Promise<() => void> {
  const root = mkdtempSync(join(tmpdir(), 'geodispatch-template-'));
  const dir = join(root, 'pglite');
  const store = await PGliteStore.open(dir);
  await store.migrate();
  await store.close();
  process.env.TEST_PGLITE_TEMPLATE = dir;
  if (process.env.TEST_DATABASE_URL === undefined && (await hasPostgis(LOCAL_DATABASE))) process.env.TEST_DATABASE_URL = LOCAL_DATABASE;
  return () => rmSync(root, { recursive: true, force: true });
}

async function hasPostgis(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('CREATE EXTENSION IF NOT EXISTS postgis');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}
