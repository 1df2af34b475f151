/**
 * Versioned schema migrations, applied at start-up in one transaction under an advisory lock and recorded in
 * `schema_migrations`, so running them again (or from two processes at once) changes nothing.
 * Append new versions; never edit one that has shipped.
 */
import { REGION_EPOCHS_MIGRATION, SEQ_BLOCKS_MIGRATION } from './region-fences.js';
import { COMMIT_TRANSITIONS_FUNCTION, type SqlDriver } from './sql.js';
import { WEBHOOKS_MIGRATION } from './webhook-sql.js';

/** One schema step. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Every migration, in version order. */
export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE sites (
  id text PRIMARY KEY,
  kind text NOT NULL,
  name text NOT NULL,
  geom geography(Point, 4326) NOT NULL,
  capacity double precision,              -- NULL = not tracked (unlimited)
  occupancy double precision NOT NULL DEFAULT 0,
  open boolean NOT NULL DEFAULT true,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sites_geom_gist ON sites USING gist (geom);

CREATE TABLE inventory_units (
  site_id text NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
  product text NOT NULL,
  blood_type text NOT NULL,
  expires_at timestamptz NOT NULL,
  count integer NOT NULL CHECK (count >= 0),
  reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  PRIMARY KEY (site_id, product, blood_type, expires_at)
);

CREATE TABLE couriers (
  id text PRIMARY KEY,
  vehicle text NOT NULL,
  capabilities text[] NOT NULL DEFAULT '{}',
  capacity integer NOT NULL,
  status text NOT NULL DEFAULT 'offline',
  geom geography(Point, 4326),            -- last stored position
  last_ping_at timestamptz
);
CREATE INDEX couriers_geom_gist ON couriers USING gist (geom);

CREATE TABLE donors (
  id text PRIMARY KEY,
  blood_type text NOT NULL,
  geom geography(Point, 4326) NOT NULL,
  last_donation jsonb NOT NULL DEFAULT '{}',  -- { product: ms }
  available boolean NOT NULL DEFAULT true
);
CREATE INDEX donors_geom_gist ON donors USING gist (geom);

CREATE TABLE requests (
  id text PRIMARY KEY,
  parent_id text,
  kind text NOT NULL,
  urgency text NOT NULL,
  requester_id text,
  payload jsonb NOT NULL DEFAULT '{}',
  status text NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  idempotency_key text,
  UNIQUE (requester_id, idempotency_key)
);
CREATE INDEX requests_open ON requests (status) WHERE status NOT IN ('delivered', 'cancelled', 'failed');

CREATE TABLE offers (
  id text PRIMARY KEY,
  request_id text NOT NULL,
  courier_id text NOT NULL,
  status text NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  closed_at timestamptz,
  details jsonb
);
CREATE INDEX offers_live ON offers (request_id) WHERE status = 'live';

CREATE TABLE assignments (
  id bigserial PRIMARY KEY,
  request_id text NOT NULL,
  courier_id text NOT NULL,
  offer_id text,
  created_at timestamptz NOT NULL,
  ended_at timestamptz
);
-- PRODUCT §3: a request never has two live assignments
CREATE UNIQUE INDEX assignments_one_live ON assignments (request_id) WHERE ended_at IS NULL;

CREATE TABLE reservations (
  id bigserial PRIMARY KEY,
  request_id text NOT NULL,
  site_id text NOT NULL,
  product text NOT NULL,
  blood_type text NOT NULL,
  expires_at timestamptz NOT NULL,
  count integer NOT NULL CHECK (count > 0),
  created_at timestamptz NOT NULL,
  released_at timestamptz,
  issued_at timestamptz
);
CREATE INDEX reservations_held ON reservations (request_id) WHERE released_at IS NULL AND issued_at IS NULL;

CREATE TABLE events (
  seq bigserial PRIMARY KEY,              -- the dispatch lifecycle's seq, inserted explicitly
  at timestamptz NOT NULL,
  type text NOT NULL,
  request_id text,
  courier_id text,
  payload jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_request ON events (request_id) WHERE request_id IS NOT NULL;

-- one row per committed transition: replaying a seq finds it and does nothing
CREATE TABLE applied_transitions (
  seq bigint PRIMARY KEY,
  at timestamptz NOT NULL
);

CREATE TABLE geofences (
  id text PRIMARY KEY,
  kind text NOT NULL,
  geometry geography NOT NULL
);
CREATE INDEX geofences_geometry_gist ON geofences USING gist (geometry);

CREATE TABLE location_history (
  courier_id text NOT NULL,
  at timestamptz NOT NULL,
  geom geography(Point, 4326) NOT NULL
);
CREATE INDEX location_history_at ON location_history (at);            -- retention purge
CREATE INDEX location_history_courier ON location_history (courier_id, at);

CREATE TABLE cell_speeds (
  cell text PRIMARY KEY,
  mps double precision NOT NULL,
  samples integer NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'idempotency keys, request reference and role',
    sql: `
ALTER TABLE requests
  ADD COLUMN reference text CHECK (char_length(reference) <= 128),   -- the client's own reference
  ADD COLUMN requester_role text;                                    -- requester | dispatcher | admin; NULL on older rows
-- idempotency moves to idempotency_keys; the column stays, informational
ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_requester_id_idempotency_key_key;
CREATE INDEX requests_parent ON requests (parent_id) WHERE parent_id IS NOT NULL;

-- the first answer to a create under an Idempotency-Key; principal is '<role>:<sub>'
CREATE TABLE idempotency_keys (
  principal text NOT NULL,
  key text NOT NULL,
  request_id text NOT NULL,
  body_hash text NOT NULL,
  status integer NOT NULL,
  reply jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);   -- the purge

-- one request's whole history (getRequest), ended rows included; migration 1 indexes only the live ones
CREATE INDEX offers_request ON offers (request_id);
CREATE INDEX assignments_request ON assignments (request_id);
CREATE INDEX reservations_request ON reservations (request_id);
`,
  },
  {
    version: 3,
    name: 'no spatial index on the couriers written behind',
    // Every flush rewrites each moved courier's row; with a GiST index on geom each row also costs a GiST
    // insert (and no HOT update), which halved the write-behind's rows/s (PGlite 36k → 69k rows/s, bench/RESULTS.md)
    // and, on the embedded store, took a quarter of the server's main thread under ingest. Nothing in the product
    // asks the store for couriers by place (the engine answers that); ad-hoc SQL still can, by a scan or an index
    // of its own on a copy.
    sql: `DROP INDEX IF EXISTS couriers_geom_gist;`,
  },
  {
    version: 4,
    name: 'request lists newest first',
    // GET /v1/requests pages parent requests newest first with a keyset on (created_at, id) (store/fleet-sql.ts
    // LIST_REQUESTS): for everyone (dispatchers) and per requester. Partial on parents, with the predicate spelled
    // exactly as the query spells it (the planner matches a partial index by it).
    sql: `
CREATE INDEX requests_listed ON requests (created_at DESC, id DESC) WHERE (parent_id IS NULL OR parent_id = id);
CREATE INDEX requests_listed_by_requester ON requests (requester_id, created_at DESC, id DESC) WHERE (parent_id IS NULL OR parent_id = id);
`,
  },
  {
    version: 5,
    name: 'webhooks: outbox numbering of events, registry, delivery log',
    sql: WEBHOOKS_MIGRATION,
  },
  {
    version: 6,
    name: 'region epochs: fencing for cluster cores',
    sql: REGION_EPOCHS_MIGRATION,
  },
  {
    version: 7,
    name: 'cluster dispatch: seq blocks per region taken, open requests per requester',
    sql: SEQ_BLOCKS_MIGRATION,
  },
]);

/** The version the code expects. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

// an arbitrary constant so every GeoDispatch process serializes its migrations on the same lock
const MIGRATION_LOCK = 4_734_001;

/** Applies the pending migrations; returns the schema version. */
export async function runMigrations(db: SqlDriver): Promise<number> {
  const have = await db.query("SELECT 1 FROM pg_extension WHERE extname = 'postgis'");
  if (have.length === 0) {
    try {
      // in public, whatever DATABASE_SCHEMA is: created in the first schema of the search path, it would belong to
      // that one deployment's schema (and go with it when it is dropped) while every other schema needs it too
      await db.exec('CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public');
    } catch (err) {
      throw new Error('PostGIS is missing and could not be created: install postgresql-15-postgis-3 and run CREATE EXTENSION postgis as a superuser', { cause: err });
    }
  }
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const rows = await tx.query<{ version: number }>('SELECT version FROM schema_migrations');
    const applied = new Set(rows.map((r) => r.version));
    const current = Math.max(0, ...applied);
    if (current > SCHEMA_VERSION) {
      throw new Error(`database schema is version ${current} but this build knows up to ${SCHEMA_VERSION}: run a newer build (or a fresh database)`);
    }
    // every version not recorded, not only those above the highest: branches merged out of order (4 after 5) still apply
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
    }
    // code, not schema: this build's transition statements, replaced on every start under the same lock
    await tx.exec(COMMIT_TRANSITIONS_FUNCTION);
    return SCHEMA_VERSION;
  });
}
