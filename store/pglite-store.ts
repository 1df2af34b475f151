/**
 * The embedded default Store: PGlite (Postgres compiled to WASM) with PostGIS, its files in DATA_DIR.
 *
 *   SqlStore (shared SQL) ──► PGlite driver ──► PGlite (one in-process connection) ──► dataDir (or memory://)
 *
 * The first start of a process spends ~10 s initialising the WASM and PostGIS. PGlite queues concurrent
 * queries and transactions on its single connection, so callers need no locking of their own. Its server errors
 * carry the SQLSTATE in `code` as pg's do (store-errors.ts classifies both); its commits run in-process, so
 * they are never ambiguous.
 */
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { postgis } from '@electric-sql/pglite-postgis';
import { SqlStore } from './sql-store.js';
import type { SqlDriver, SqlSession } from './sql.js';

/** PGlite + PostGIS in this process. */
export class PGliteStore extends SqlStore {
  readonly kind = 'pglite' as const;

  private constructor(driver: SqlDriver, readonly dataDir: string) {
    super(driver);
  }

  /** Opens (creating when missing) the database in dataDir; `memory://` keeps it in memory. Does not migrate. */
  static async open(dataDir: string): Promise<PGliteStore> {
    if (!dataDir.includes('://')) mkdirSync(dataDir, { recursive: true });
    const db = await PGlite.create({ dataDir, extensions: { postgis } });
    return new PGliteStore(pgliteDriver(db), dataDir);
  }
}

interface PGliteSession {
  query<R>(text: string, params?: unknown[]): Promise<{ rows: R[] }>;
  exec(script: string): Promise<unknown>;
}

function session(db: PGliteSession): SqlSession {
  return {
    async query<R>(text: string, params?: unknown[]): Promise<R[]> {
      const res = await db.query<R>(text, params);
      return res.rows;
    },
    async exec(script: string): Promise<void> {
      await db.exec(script);
    },
  };
}

function pgliteDriver(db: PGlite): SqlDriver {
  return {
    ...session(db),
    transaction: <T>(fn: (tx: SqlSession) => Promise<T>): Promise<T> => db.transaction((tx) => fn(session(tx))),
    close: () => db.close(),
  };
}
