/**
 * The Store on a real PostgreSQL + PostGIS server through a `pg` pool (DATABASE_URL).
 *
 *   SqlStore (shared SQL) ──► PgDriver ──► pg.Pool (POOL_SIZE connections) ──► PostgreSQL + PostGIS
 *
 * An optional `schema` puts every table in that schema (created if missing) through each connection's
 * search_path, with `public` behind it for PostGIS: the contract suite runs in a throwaway schema per run.
 * A transaction whose COMMIT gets no answer rejects with CommitOutcomeUnknown (store-errors.ts): it may have
 * committed.
 */
import pg from 'pg';
import { SqlStore } from './sql-store.js';
import type { SqlDriver, SqlSession } from './sql.js';
import { CommitOutcomeUnknown, rolledBackForSure } from './store-errors.js';

/** How PgStore connects. */
export interface PgStoreOptions {
  databaseUrl: string;
  /** A schema for every table (`[a-z_][a-z0-9_]*`), created by migrate(); default: the server's search_path. */
  schema?: string;
  /** Pool size; default 4: write-behind and transitions each hold one, recovery and ping the rest. */
  poolSize?: number;
  /** Connect timeout in ms; default 5000, so ping() answers false soon when the server is gone. */
  connectTimeoutMs?: number;
}

/** PostgreSQL + PostGIS through `pg`. */
export class PgStore extends SqlStore {
  readonly kind = 'pg' as const;
  readonly schema: string | undefined;
  /** The last error an idle pooled connection raised (the server went away); the pool replaces it. */
  lastPoolError: Error | undefined;

  constructor(options: PgStoreOptions) {
    const schema = options.schema;
    if (schema !== undefined && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`schema must match [a-z_][a-z0-9_]*, got '${schema}'`);
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? 4,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      keepAlive: true,
      ...(schema ? { options: `-c search_path=${schema},public` } : {}),
    });
    super(pgDriver(pool));
    this.schema = schema;
    // without a listener an idle client's error (server restart, cut connection) would crash the process
    pool.on('error', (err) => {
      this.lastPoolError = err;
    });
  }

  /** Drops this store's own schema and everything in it (throwaway test and benchmark schemas). */
  async dropSchema(): Promise<void> {
    if (!this.schema) throw new Error('dropSchema() needs a store opened with a schema; it never drops the default one');
    await this.db.exec(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
  }

  override async migrate(): Promise<number> {
    if (this.schema) await this.db.exec(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
    return super.migrate();
  }
}

function pgDriver(pool: pg.Pool): SqlDriver {
  return {
    async query<R>(text: string, params?: unknown[]): Promise<R[]> {
      const res = await pool.query(text, params);
      return res.rows as R[];
    },
    async exec(script: string): Promise<void> {
      await pool.query(script);
    },
    async transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      let broken: Error | undefined;
      // pg-pool listens only on idle clients: a connection dying while checked out would otherwise emit an
      // unhandled 'error' and crash the process (the query in flight rejects on its own)
      const onError = (err: Error): void => {
        broken = err;
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const result = await fn(clientSession(client));
        try {
          await client.query('COMMIT');
        } catch (err) {
          // a lost connection (or a FATAL such as a shutdown) after COMMIT was sent leaves its outcome unknown
          throw rolledBackForSure(err) ? err : new CommitOutcomeUnknown(err);
        }
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch((rollbackErr: Error) => {
          broken = rollbackErr;
        });
        throw err;
      } finally {
        client.removeListener('error', onError);
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}

function clientSession(client: pg.PoolClient): SqlSession {
  return {
    async query<R>(text: string, params?: unknown[]): Promise<R[]> {
      const res = await client.query(text, params);
      return res.rows as R[];
    },
    async exec(script: string): Promise<void> {
      await client.query(script);
    },
  };
}
