/**
 * The embedded default Store: PGlite (Postgres compiled to WASM) with PostGIS, its files in DATA_DIR.
 *
 *   SqlStore (shared SQL) ──► PGliteThread (pglite-thread.ts) ──► worker thread: PGlite (one connection) ──► dataDir
 *
 * The first start of a process spends ~10 s initialising the WASM and PostGIS. PGlite runs on its own thread
 * (its statements run synchronously in WASM and would otherwise stop the server's thread for as long); the
 * driver lets one caller (or one transaction) at a time through, so callers need no locking of their own. Its
 * server errors carry the SQLSTATE in `code` as pg's do (store-errors.ts classifies both); its commits run
 * in this process, so they are never ambiguous.
 *
 * Memory (PRODUCT §6: `npm start` ≤ 350 MB): PGlite holds its extension files in memory and its WASM heap
 * for the life of the process, so three choices keep it small —
 *   - the slim PostGIS bundle (postgis-bundle.ts: ~35 MB of files instead of ~91 MB, one library compiled);
 *   - shared_buffers of PGLITE_SHARED_BUFFERS (api/config.ts; default 32MB, not 128MB: the store holds a few MB per 10,000
 *     couriers and the OS caches the data files);
 *   - a new data directory is initialised (initdb) by a child process that then exits: initdb's WASM
 *     instance (~190 MB resident) would otherwise stay with the server — a worker thread is not enough, the
 *     process keeps the pages its threads freed.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { slimBundle, slimPostgis } from './postgis-bundle.js';
import { SqlStore } from './sql-store.js';
import { PGliteThread } from './pglite-thread.js';
import type { SqlDriver } from './sql.js';

/** PGlite's settings: small buffers (see the file's head; PGLITE_SHARED_BUFFERS in api/config.ts). */
export function pgliteSettings(sharedBuffers = '32MB'): string[] {
  if (!/^\d+(kB|MB|GB)$/.test(sharedBuffers)) throw new Error(`shared_buffers must look like 32MB, got ${sharedBuffers}`);
  return [`shared_buffers=${sharedBuffers}`, 'wal_buffers=1MB'];
}

/** Opens PGlite with PostGIS (the slim bundle) on dataDir. */
export async function openPGlite(dataDir: string, sharedBuffers?: string): Promise<PGlite> {
  const db = await PGlite.create({ dataDir, extensions: { postgis: slimPostgis() }, postgresqlconf: pgliteSettings(sharedBuffers) });
  keepParsersWeRead(db);
  return db;
}

/**
 * Types whose values the store reads back: the common scalars (an array's parser looks its elements' up in the
 * same table) and their arrays (capabilities is text[]). Any other type comes back as PostgreSQL's text.
 */
const SCALAR_TYPES_READ = [16, 17, 20, 21, 23, 25, 26, 114, 700, 701, 1043, 1082, 1114, 1184, 1700, 2950, 3802];
const ARRAY_TYPES_READ = [1000, 1001, 1005, 1007, 1009, 1015, 1016, 1021, 1022, 1028, 1115, 1182, 1185, 1231, 199, 2951, 3807];
const TYPES_READ = [...SCALAR_TYPES_READ, ...ARRAY_TYPES_READ];

/**
 * PGlite copies its whole per-instance parser table into a new object on every query (parseResults: `{ ...parsers,
 * ...options.parsers }`); with PostGIS loaded that table holds ~330 entries, one per array type, and the copy was
 * a fifth of the main thread under request load (bench:offers profile). It keeps only the types above.
 */
export function keepParsersWeRead(db: PGlite): void {
  const all = db.parsers;
  db.parsers = Object.fromEntries(TYPES_READ.filter((oid) => all[oid] !== undefined).map((oid) => [oid, all[oid]]));
}

/** Tables whose rows change or come and go after they are written (the rest only grow or barely change). */
// couriers are left out: their rows change with every position flush, but only in columns no index holds, so
// PostgreSQL reuses their pages itself (HOT updates, pruned on the next visit), and a VACUUM of 100,000 freshly
// rewritten rows would hold the store thread for longer than a commit should wait
const CHANGING_TABLES = ['requests', 'offers', 'assignments', 'reservations', 'inventory_units', 'idempotency_keys'] as const;

/** PGlite + PostGIS in this process, on its own thread. */
export class PGliteStore extends SqlStore {
  readonly kind = 'pglite' as const;

  private constructor(
    driver: SqlDriver,
    readonly dataDir: string,
    private readonly unlock: () => void,
  ) {
    super(driver);
  }

  override async close(): Promise<void> {
    try {
      await super.close();
    } finally {
      this.unlock();
    }
  }

  /**
   * PGlite runs PostgreSQL single-user, without autovacuum: rows that dispatch updates (requests, offers,
   * assignments, reservations, lots) would leave their old versions and index entries behind forever,
   * and the planner would never learn the tables' sizes. VACUUM (ANALYZE) of the tables that change does both;
   * it visits only the pages changed since the last run. The server's store chores run it every minute
   * (api/main.ts); insert-only tables (events, applied_transitions) are left alone, and location history, which
   * only grows between purges, is vacuumed after each purge instead.
   */
  override async maintain(): Promise<string[]> {
    await this.db.exec(`VACUUM (ANALYZE) ${CHANGING_TABLES.join(', ')}`);
    return [...CHANGING_TABLES];
  }

  /** Purged history leaves dead rows whose space only VACUUM hands back (hourly, with the purge, not with maintain). */
  override async purgeHistory(olderThan: number): Promise<number> {
    const purged = await super.purgeHistory(olderThan);
    if (purged > 0) await this.db.exec('VACUUM location_history');
    return purged;
  }

  /** Opens (creating when missing) the database in dataDir; `memory://` keeps it in memory. Does not migrate. */
  static async open(dataDir: string, sharedBuffers?: string): Promise<PGliteStore> {
    let unlock = (): void => undefined;
    if (!dataDir.includes('://')) {
      mkdirSync(dataDir, { recursive: true });
      unlock = lockDataDir(dataDir);
      try {
        if (!existsSync(join(dataDir, 'PG_VERSION'))) await initialiseApart(dataDir, sharedBuffers);
      } catch (err) {
        unlock();
        throw err;
      }
    }
    try {
      return new PGliteStore(await PGliteThread.start(dataDir, sharedBuffers), dataDir, unlock);
    } catch (err) {
      unlock();
      throw err;
    }
  }
}

/**
 * Claims dataDir for this process (DATA_DIR/geodispatch.lock holding its pid): PGlite takes no lock of its own,
 * and two servers writing one data directory would corrupt it. A lock left by a process that is gone (a kill -9)
 * is taken over; one held by a live Node process refuses the start. Returns the release.
 */
export function lockDataDir(dataDir: string): () => void {
  const file = join(dataDir, 'geodispatch.lock');
  const mine = String(process.pid);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, mine);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(file, 'utf8') === mine) unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(readFileSync(file, 'utf8'));
    if (holder !== process.pid && nodeProcessAlive(holder)) {
      throw new Error(`DATA_DIR ${dataDir} is in use by process ${holder} (another GeoDispatch server?): stop it, or give this one its own DATA_DIR`);
    }
    unlinkSync(file); // left behind by a process that is gone, or by this one
  }
  throw new Error(`could not claim DATA_DIR ${dataDir}: ${file} keeps coming back`);
}

// alive and a Node process (on Linux, where /proc says so): a reused pid of something else is no holder
function nodeProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return /node/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return true; // no /proc: alive is all we know
  }
}

/**
 * Runs initdb for a new data directory in a child process, whose memory goes when it exits. The child is an
 * inline module given absolute module URLs, so it runs the same from dist/ and from sources under vitest.
 */
async function initialiseApart(dataDir: string, sharedBuffers?: string): Promise<void> {
  const require = createRequire(import.meta.url);
  const modules = [require.resolve('@electric-sql/pglite'), require.resolve('@electric-sql/pglite-postgis')].map((p) => pathToFileURL(p).href);
  const args = [...modules, pathToFileURL(slimBundle()).href, dataDir, JSON.stringify(pgliteSettings(sharedBuffers))];
  const child = spawn(process.execPath, ['--input-type=module', '-e', INITDB_SCRIPT, '--', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-2000)));
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`initialising the embedded store in ${dataDir} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`)),
    );
  });
}

// openPGlite + CREATE EXTENSION, spelled out because the child cannot import this module under vitest (it runs
// the .ts sources); the bundle and the settings come from the same functions as openPGlite's.
// argv: pglite module URL, pglite-postgis module URL, slim bundle URL, data dir, settings (JSON array)
const INITDB_SCRIPT = `
const [pgliteUrl, postgisUrl, bundleUrl, dataDir, settings] = process.argv.slice(-5);
const { PGlite } = await import(pgliteUrl);
const { postgis } = await import(postgisUrl);
const slim = { name: 'postgis', setup: async (pg, o) => ({ ...(await postgis.setup(pg, o)), bundlePath: new URL(bundleUrl) }) };
const db = await PGlite.create({ dataDir, extensions: { postgis: slim }, postgresqlconf: JSON.parse(settings) });
await db.exec('CREATE EXTENSION IF NOT EXISTS postgis');
await db.close();
`;
