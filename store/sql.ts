/**
 * The SQL both stores run, word for word (PGlite is real Postgres + PostGIS), and the parameter encoders.
 *
 * Parameters are always sent as text and cast in SQL (`$1::text::float8[]`, `$1::text::jsonb`) so `pg` and
 * PGlite serialize them the same way. Batches travel as one array literal per column (hot path: positions,
 * history) or one JSON array of rows read with jsonb_to_recordset (everything else), so a batch is one
 * statement whatever its size. JSON keys are the TypeScript field names, quoted in the record definitions.
 */

import { TERMINAL_STATUSES } from '../dispatch/request-vocabulary.js';

/** What a connection (or an open transaction) can do. */
export interface SqlSession {
  /** One statement with $n parameters; returns its rows. */
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  /** A script of several statements, no parameters. */
  exec(script: string): Promise<void>;
}

/** A database the SqlStore runs on: sessions plus transactions and close. */
export interface SqlDriver extends SqlSession {
  /** Runs fn in BEGIN … COMMIT on one connection; ROLLBACK and rethrow when it throws. */
  transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The statuses a request never leaves, as an SQL list: `status NOT IN ${ENDED}` is "still open". */
const ENDED = `(${[...TERMINAL_STATUSES].map((s) => `'${s}'`).join(', ')})`;
/** timestamptz → ms since the epoch (a float8, so both drivers hand back a JS number). */
const ms = (col: string): string => `round(extract(epoch FROM ${col}) * 1000)::float8`;
/** ms since the epoch → timestamptz (to_timestamp rounds to µs, so equal ms give equal keys). */
const ts = (expr: string): string => `to_timestamp((${expr})::float8 / 1000.0)`;
const point = (lat: string, lng: string): string => `ST_SetSRID(ST_MakePoint(${lng}, ${lat}), 4326)::geography`;

export const UPSERT_SITES = `
INSERT INTO sites (id, kind, name, geom, capacity, occupancy, open, updated_at)
SELECT x.id, x.kind, x.name, ${point('x.lat', 'x.lng')}, x.capacity, COALESCE(x.occupancy, 0), COALESCE(x.open, true), now()
FROM jsonb_to_recordset($1::text::jsonb) AS x(id text, kind text, name text, lat float8, lng float8, capacity float8, occupancy float8, open boolean)
ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, geom = EXCLUDED.geom,
  capacity = EXCLUDED.capacity, open = EXCLUDED.open, updated_at = now()`;

/** Occupancy only where given (omitted keeps the stored value, as SiteIndex.upsert does). */
export const SET_SITE_OCCUPANCY = `
UPDATE sites s SET occupancy = x.occupancy
FROM jsonb_to_recordset($1::text::jsonb) AS x(id text, occupancy float8)
WHERE s.id = x.id AND x.occupancy IS NOT NULL`;

/** $1 site id, $2 lots: unlisted lots go; listed ones keep reserved units up to the new count. */
/** $1 site id: its lots, locked (run first: a commit reserving there then waits, and the next statement sees what committed before). */
export const LOCK_SITE_LOTS = 'SELECT 1 FROM inventory_units WHERE site_id = $1::text FOR UPDATE';

/** $1 site id: the units open reservations hold per lot there. */
export const HELD_BY_LOT = `
SELECT product, blood_type AS "bloodType", ${ms('expires_at')} AS "expiresAt", sum(count)::int AS held
FROM reservations WHERE site_id = $1::text AND released_at IS NULL AND issued_at IS NULL
GROUP BY 1, 2, 3`;

export const REPLACE_INVENTORY = `
WITH x AS (
  SELECT product, "bloodType" AS blood_type, ${ts('"expiresAt"')} AS expires_at, sum(count)::int AS count
  FROM jsonb_to_recordset($2::text::jsonb) AS x(product text, "bloodType" text, "expiresAt" float8, count int)
  GROUP BY 1, 2, 3 HAVING sum(count) > 0
), gone AS (
  DELETE FROM inventory_units i WHERE i.site_id = $1::text AND NOT EXISTS (
    SELECT 1 FROM x WHERE x.product = i.product AND x.blood_type = i.blood_type AND x.expires_at = i.expires_at)
)
INSERT INTO inventory_units (site_id, product, blood_type, expires_at, count, reserved)
SELECT $1::text, product, blood_type, expires_at, count, 0 FROM x
ON CONFLICT (site_id, product, blood_type, expires_at) DO UPDATE
  SET count = EXCLUDED.count, reserved = LEAST(inventory_units.reserved, EXCLUDED.count)`;

export const UPSERT_DONORS = `
INSERT INTO donors (id, blood_type, geom, last_donation, available)
SELECT x.id, x."bloodType", ${point('x.lat', 'x.lng')}, COALESCE(x."lastDonation", '{}'), x.available
FROM jsonb_to_recordset($1::text::jsonb) AS x(id text, "bloodType" text, lat float8, lng float8, "lastDonation" jsonb, available boolean)
ON CONFLICT (id) DO UPDATE SET blood_type = EXCLUDED.blood_type, geom = EXCLUDED.geom,
  last_donation = EXCLUDED.last_donation, available = EXCLUDED.available`;

export const UPSERT_COURIERS = `
INSERT INTO couriers (id, vehicle, capabilities, capacity, status)
SELECT x.id, x.vehicle, COALESCE(x.capabilities, '{}'), x.capacity, COALESCE(x.status, 'offline')
FROM jsonb_to_recordset($1::text::jsonb) AS x(id text, vehicle text, capabilities text[], capacity int, status text)
ON CONFLICT (id) DO UPDATE SET vehicle = EXCLUDED.vehicle, capabilities = EXCLUDED.capabilities, capacity = EXCLUDED.capacity`;

/** Status only where given (omitted keeps the stored one, as CourierIndex.upsert does). */
export const SET_COURIER_STATUS = `
UPDATE couriers c SET status = x.status
FROM jsonb_to_recordset($1::text::jsonb) AS x(id text, status text)
WHERE c.id = x.id AND x.status IS NOT NULL`;

export const PUT_GEOFENCE = `
INSERT INTO geofences (id, kind, geometry) VALUES ($1::text, $2::text, ST_SetSRID(ST_GeomFromGeoJSON($3::text), 4326)::geography)
ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, geometry = EXCLUDED.geometry`;

export const DELETE_GEOFENCE = 'DELETE FROM geofences WHERE id = $1::text';

/**
 * Hot path. $1 ids, $2 lat, $3 lng, $4 ts (ms), $5 status (NULL / empty = keep). The latest ping per id in the
 * batch wins; a ping older than the stored one and an id with no courier row are skipped. A stored ping more
 * than FUTURE_PING_SLACK ahead of the database clock (a bogus timestamp an older build accepted) is
 * overwritten by any ping, so that courier is not frozen until the bogus time passes.
 */
// wider than any honest clock skew between an app server and the database, far below a bogus future time
const FUTURE_PING_SLACK = "interval '60 seconds'";

export const WRITE_POSITIONS = `
UPDATE couriers c
SET geom = ${point('u.lat', 'u.lng')}, last_ping_at = ${ts('u.ts')}, status = COALESCE(NULLIF(u.status, ''), c.status)
FROM (
  SELECT DISTINCT ON (id) id, lat, lng, ts, status
  FROM unnest($1::text::text[], $2::text::float8[], $3::text::float8[], $4::text::float8[], $5::text::text[]) AS u(id, lat, lng, ts, status)
  ORDER BY id, ts DESC
) u
WHERE c.id = u.id AND (c.last_ping_at IS NULL OR c.last_ping_at <= ${ts('u.ts')} OR c.last_ping_at > now() + ${FUTURE_PING_SLACK})`;

export const APPEND_HISTORY = `
INSERT INTO location_history (courier_id, at, geom)
SELECT u.id, ${ts('u.ts')}, ${point('u.lat', 'u.lng')}
FROM unnest($1::text::text[], $2::text::float8[], $3::text::float8[], $4::text::float8[]) AS u(id, lat, lng, ts)`;

export const PURGE_HISTORY = `
WITH d AS (DELETE FROM location_history WHERE at < ${ts('$1')} RETURNING 1)
SELECT count(*)::int AS n FROM d`;

export const SAVE_CELL_SPEEDS = `
INSERT INTO cell_speeds (cell, mps, samples)
SELECT * FROM unnest($1::text::text[], $2::text::float8[], $3::text::int[])
ON CONFLICT (cell) DO UPDATE SET mps = EXCLUDED.mps, samples = EXCLUDED.samples`;

// ── commitTransitions: the steps of a transition, in TRANSITION_STEPS order ($1 its rows; a row's "txAt" is its transition's `at`) ──

/** A plain INSERT: an existing id is a primary-key violation, never an overwrite of someone else's request. */
export const T_REQUESTS = `
INSERT INTO requests (id, parent_id, kind, urgency, requester_id, payload, status, created_at, updated_at, idempotency_key,
  reference, requester_role)
SELECT x.id, x."parentId", x.kind, x.urgency, x."requesterId", COALESCE(x.payload, '{}'), x.status,
  ${ts('x."createdAt"')}, ${ts('x."updatedAt"')}, x."idempotencyKey", x.reference, x."requesterRole"
FROM jsonb_to_recordset($1::text::jsonb) AS x(id text, "parentId" text, kind text, urgency text, "requesterId" text,
  payload jsonb, status text, "createdAt" float8, "updatedAt" float8, "idempotencyKey" text, reference text, "requesterRole" text)`;

/** A plain INSERT: a (principal, key) already there is a primary-key violation that rolls the transition back. */
export const T_IDEMPOTENCY = `
INSERT INTO idempotency_keys (principal, key, request_id, body_hash, status, reply, created_at)
SELECT x.principal, x.key, x."requestId", x."bodyHash", x.status, x.reply, ${ts('x."createdAt"')}
FROM jsonb_to_recordset($1::text::jsonb) AS x(principal text, key text, "requestId" text, "bodyHash" text, status int,
  reply jsonb, "createdAt" float8)`;

/** An expired row of a key being used again goes first (only rows created before the row's replacesBefore). */
export const T_IDEMPOTENCY_EXPIRED = `
DELETE FROM idempotency_keys k
USING jsonb_to_recordset($1::text::jsonb) AS x(principal text, key text, "replacesBefore" float8)
WHERE k.principal = x.principal AND k.key = x.key AND x."replacesBefore" IS NOT NULL AND k.created_at < ${ts('x."replacesBefore"')}`;

export const T_REQUEST_STATUS = `
UPDATE requests r SET status = x.status, updated_at = ${ts('x."txAt"')}
FROM jsonb_to_recordset($1::text::jsonb) AS x(id text, status text, "txAt" float8) WHERE r.id = x.id`;

export const T_OFFERS = `
INSERT INTO offers (id, request_id, courier_id, status, created_at, expires_at, details)
SELECT x.id, x."requestId", x."courierId", x.status, ${ts('x."createdAt"')}, ${ts('x."expiresAt"')}, x.details
FROM jsonb_to_recordset($1::text::jsonb) AS x(id text, "requestId" text, "courierId" text, status text,
  "createdAt" float8, "expiresAt" float8, details jsonb)`;

export const T_OFFER_STATUS = `
UPDATE offers o SET status = x.status, closed_at = CASE WHEN x.status = 'live' THEN NULL ELSE ${ts('x."txAt"')} END
FROM jsonb_to_recordset($1::text::jsonb) AS x(id text, status text, "txAt" float8) WHERE o.id = x.id`;

// the live row is looked up per given request, never by scanning every live assignment (KEYED_PLANS below)
export const T_ASSIGNMENTS_ENDED = `
UPDATE assignments a SET ended_at = ${ts('x."txAt"')}
FROM jsonb_to_recordset($1::text::jsonb) AS x("requestId" text, "txAt" float8),
  LATERAL (SELECT l.id FROM assignments l WHERE l.request_id = x."requestId" AND l.ended_at IS NULL OFFSET 0) live
WHERE a.id = live.id`;

export const T_ASSIGNMENTS_STARTED = `
INSERT INTO assignments (request_id, courier_id, offer_id, created_at, ended_at)
SELECT x."requestId", x."courierId", x."offerId", ${ts('x."createdAt"')}, CASE WHEN x."endedAt" IS NULL THEN NULL ELSE ${ts('x."endedAt"')} END
FROM jsonb_to_recordset($1::text::jsonb) AS x("requestId" text, "courierId" text, "offerId" text, "createdAt" float8, "endedAt" float8)`;

const RESERVATION_ROWS = `jsonb_to_recordset($1::text::jsonb) AS x("requestId" text, "siteId" text, product text, "bloodType" text, "expiresAt" float8, count int, "txAt" float8)`;
const LOT_MATCH = 'i.site_id = agg.site_id AND i.product = agg.product AND i.blood_type = agg.blood_type AND i.expires_at = agg.expires_at';

export const T_RESERVATIONS_MADE = `
WITH x AS (SELECT * FROM ${RESERVATION_ROWS}),
ins AS (
  INSERT INTO reservations (request_id, site_id, product, blood_type, expires_at, count, created_at)
  SELECT "requestId", "siteId", product, "bloodType", ${ts('"expiresAt"')}, count, ${ts('"txAt"')} FROM x
), agg AS (
  SELECT "siteId" AS site_id, product, "bloodType" AS blood_type, ${ts('"expiresAt"')} AS expires_at, sum(count)::int AS n
  FROM x GROUP BY 1, 2, 3, 4
)
UPDATE inventory_units i SET reserved = LEAST(i.count, i.reserved + agg.n) FROM agg WHERE ${LOT_MATCH}`;

/**
 * Releases (column released_at) or issues (issued_at) held reservations; only rows actually closed move inventory.
 * Held rows are looked up per given row, never by scanning every held reservation (KEYED_PLANS below).
 */
function closeReservations(column: 'released_at' | 'issued_at', inventorySet: string): string {
  return `
WITH x AS (SELECT * FROM ${RESERVATION_ROWS}),
done AS (
  UPDATE reservations r SET ${column} = ${ts('x."txAt"')}
  FROM x, LATERAL (
    SELECT h.id FROM reservations h
    WHERE h.request_id = x."requestId" AND h.site_id = x."siteId" AND h.product = x.product AND h.blood_type = x."bloodType"
      AND h.expires_at = ${ts('x."expiresAt"')} AND h.released_at IS NULL AND h.issued_at IS NULL OFFSET 0
  ) held
  WHERE r.id = held.id
  RETURNING r.site_id, r.product, r.blood_type, r.expires_at, r.count
), agg AS (
  SELECT site_id, product, blood_type, expires_at, sum(count)::int AS n FROM done GROUP BY 1, 2, 3, 4
)
UPDATE inventory_units i SET ${inventorySet} FROM agg WHERE ${LOT_MATCH}`;
}

export const T_RESERVATIONS_RELEASED = closeReservations('released_at', 'reserved = GREATEST(0, i.reserved - agg.n)');
export const T_RESERVATIONS_ISSUED = closeReservations('issued_at', 'count = GREATEST(0, i.count - agg.n), reserved = GREATEST(0, i.reserved - agg.n)');

export const T_COURIER_STATUS = SET_COURIER_STATUS;

export const T_EVENTS = `
INSERT INTO events (seq, at, type, request_id, courier_id, payload)
SELECT x.seq, ${ts('x.at')}, x.type, x."requestId", x."courierId", COALESCE(x.payload, '{}')
FROM jsonb_to_recordset($1::text::jsonb) AS x(seq bigint, at float8, type text, "requestId" text, "courierId" text, payload jsonb)`;

/** A transition's steps in the order they run: the Transition field holding its rows, and its statement. */
export const TRANSITION_STEPS = [
  ['requests', T_REQUESTS],
  ['idempotency', T_IDEMPOTENCY_EXPIRED],
  ['idempotency', T_IDEMPOTENCY],
  ['requestStatus', T_REQUEST_STATUS],
  ['offers', T_OFFERS],
  ['offerStatus', T_OFFER_STATUS],
  ['assignmentsEnded', T_ASSIGNMENTS_ENDED],
  ['assignmentsStarted', T_ASSIGNMENTS_STARTED],
  ['reservationsMade', T_RESERVATIONS_MADE],
  ['reservationsReleased', T_RESERVATIONS_RELEASED],
  ['reservationsIssued', T_RESERVATIONS_ISSUED],
  ['courierStatus', T_COURIER_STATUS],
  ['events', T_EVENTS],
] as const;

/** SQLSTATE gd_commit_transitions raises for a run only partly stored before (class GD: ours). */
export const PARTLY_APPLIED = 'GDR01';

// a step's statement with its rows parameter ($1) turned into the function's variable
function asFunctionStatement(sql: string): string {
  const out = sql.replaceAll('$1::text::jsonb', 'v_rows');
  if (/\$\d/.test(out)) throw new Error(`a transition step uses a parameter other than its rows ($1):\n${sql}`);
  return out;
}

/**
 * One round trip per group of transitions. gd_commit_transitions(batch) takes the group as runs
 * (transition-runs.ts: consecutive transitions naming no common row, `{ applied: [{seq, at}], <step field>: rows }`)
 * and runs, for each run in order, the statements above once over all its rows: a run whose seqs are all
 * applied already writes nothing; one only partly applied raises PARTLY_APPLIED (SQLSTATE GDR01) and the caller
 * sends the group again one transition per run. Returns how many transitions were new. Made from the statements
 * of this build and replaced on every start (runMigrations), so it never drifts from them. Each statement's rows
 * were a round trip (and in the embedded store a parse and plan) of their own; plpgsql plans them once per
 * connection.
 *
 * KEYED_PLANS: those plans are generic, made before any transition's rows are seen, and jsonb_to_recordset is
 * always guessed at 100 rows, so a step joining its rows to a table by key was planned as a hash join over a scan
 * of the whole table — every transition read all requests, offers, couriers or lots, and commits slowed as they
 * accumulated (the embedded store never runs ANALYZE: it has no autovacuum). A run brings a few dozen rows at
 * most, each naming its row by key: the function allows nested loops only, so each given row is looked up in an
 * index; rows found through a partial index (live assignments, held reservations) are looked up per given row
 * (LATERAL … OFFSET 0), so a guess of how many rows the index holds cannot turn the lookup into a scan of it.
 * commit-plans.test.ts runs each step as planned here and counts the rows each plan node reads.
 */
export const COMMIT_TRANSITIONS_FUNCTION = `
CREATE OR REPLACE FUNCTION gd_commit_transitions(batch text) RETURNS integer LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off AS $gd$
DECLARE
  v_run jsonb;
  v_rows jsonb;
  v_fresh integer;
  v_stored integer := 0;
BEGIN
  FOR v_run IN SELECT value FROM jsonb_array_elements(batch::jsonb) LOOP
    INSERT INTO applied_transitions (seq, at)
    SELECT x.seq, ${ts('x.at')} FROM jsonb_to_recordset(v_run->'applied') AS x(seq bigint, at float8)
    ON CONFLICT (seq) DO NOTHING;
    GET DIAGNOSTICS v_fresh = ROW_COUNT;
    CONTINUE WHEN v_fresh = 0;
    IF v_fresh < jsonb_array_length(v_run->'applied') THEN
      RAISE EXCEPTION 'a run of % transitions was partly stored before (% new): send them one per run', jsonb_array_length(v_run->'applied'), v_fresh
        USING ERRCODE = '${PARTLY_APPLIED}';
    END IF;
    v_stored := v_stored + v_fresh;
${TRANSITION_STEPS.map(([field, sql]) => `    v_rows := v_run->'${field}';
    IF v_rows IS NOT NULL THEN
${asFunctionStatement(sql).trim()};
    END IF;`).join('\n')}
  END LOOP;
  RETURN v_stored;
END
$gd$`;

/** Calls the function above with a group's JSON. */
export const COMMIT_TRANSITIONS = 'SELECT gd_commit_transitions($1::text) AS stored';

// ── loadState ──

export const LOAD_SITES = `
SELECT id, kind, name, ST_Y(geom::geometry) AS lat, ST_X(geom::geometry) AS lng, capacity, occupancy, open
FROM sites ORDER BY id`;

export const LOAD_INVENTORY = `
SELECT site_id AS "siteId", product, blood_type AS "bloodType", ${ms('expires_at')} AS "expiresAt", count, reserved
FROM inventory_units WHERE count > 0 ORDER BY site_id, expires_at, product, blood_type`;

/** The lots of some sites ($1 text[]), reserved counts included. */
export const LOAD_SITE_INVENTORY = `
SELECT site_id AS "siteId", product, blood_type AS "bloodType", ${ms('expires_at')} AS "expiresAt", count, reserved
FROM inventory_units WHERE count > 0 AND site_id = ANY($1::text[]) ORDER BY site_id, expires_at, product, blood_type`;

/**
 * A cluster commit's stock check: locks the lots its reservations touch ($1: [{siteId, product, bloodType,
 * expiresAt}]), in one order so two commits never wait on each other's lots, and reads their count and reserved.
 */
export const LOCK_LOTS = `
SELECT i.site_id AS "siteId", i.product, i.blood_type AS "bloodType", ${ms('i.expires_at')} AS "expiresAt", i.count, i.reserved
FROM inventory_units i
JOIN jsonb_to_recordset($1::text::jsonb) AS x("siteId" text, product text, "bloodType" text, "expiresAt" float8)
  ON i.site_id = x."siteId" AND i.product = x.product AND i.blood_type = x."bloodType" AND i.expires_at = ${ts('x."expiresAt"')}
ORDER BY i.site_id, i.product, i.blood_type, i.expires_at
FOR UPDATE OF i`;

export const LOAD_DONORS = `
SELECT id, blood_type AS "bloodType", ST_Y(geom::geometry) AS lat, ST_X(geom::geometry) AS lng,
  last_donation AS "lastDonation", available
FROM donors ORDER BY id`;

export const LOAD_COURIERS = `
SELECT id, vehicle, capabilities, capacity, status, ST_Y(geom::geometry) AS lat, ST_X(geom::geometry) AS lng,
  ${ms('last_ping_at')} AS "lastPingAt"
FROM couriers ORDER BY id`;

/** Couriers with a stored position inside a lat/lng box ($1 min lat, $2 max lat, $3 min lng, $4 max lng). */
export const LOAD_COURIERS_IN_BOX = `
SELECT id, vehicle, capabilities, capacity, status, ST_Y(geom::geometry) AS lat, ST_X(geom::geometry) AS lng,
  ${ms('last_ping_at')} AS "lastPingAt"
FROM couriers
WHERE geom IS NOT NULL AND ST_Y(geom::geometry) BETWEEN $1 AND $2 AND ST_X(geom::geometry) BETWEEN $3 AND $4
ORDER BY id`;

/**
 * A page of the courier registry by id (keyset): $1 after (exclusive), $2 status or null, $3 capability or null,
 * $4..$7 box (min lng, min lat, max lng, max lat; min lng > max lng crosses the antimeridian) or nulls, $8 limit.
 */
export const LIST_COURIERS = `
SELECT id, vehicle, capabilities, capacity, status, ST_Y(geom::geometry) AS lat, ST_X(geom::geometry) AS lng,
  ${ms('last_ping_at')} AS "lastPingAt"
FROM couriers
WHERE id > $1::text
  AND ($2::text IS NULL OR status = $2::text)
  AND ($3::text IS NULL OR $3::text = ANY (capabilities))
  AND ($4::float8 IS NULL OR (geom IS NOT NULL AND ST_Y(geom::geometry) BETWEEN $5::float8 AND $7::float8 AND CASE
    WHEN $4::float8 <= $6::float8 THEN ST_X(geom::geometry) BETWEEN $4::float8 AND $6::float8
    ELSE ST_X(geom::geometry) >= $4::float8 OR ST_X(geom::geometry) <= $6::float8 END))
ORDER BY id LIMIT $8::int`;

/** Couriers by id ($1 text[]). */
export const LOAD_COURIERS_BY_ID = `
SELECT id, vehicle, capabilities, capacity, status, ST_Y(geom::geometry) AS lat, ST_X(geom::geometry) AS lng,
  ${ms('last_ping_at')} AS "lastPingAt"
FROM couriers WHERE id = ANY($1::text[]) ORDER BY id`;

export const LOAD_GEOFENCES = 'SELECT id, kind, ST_AsGeoJSON(geometry)::json AS geometry FROM geofences ORDER BY id';

const REQUEST_COLUMNS = `id, parent_id AS "parentId", kind, urgency, requester_id AS "requesterId", payload, status,
  ${ms('created_at')} AS "createdAt", ${ms('updated_at')} AS "updatedAt", idempotency_key AS "idempotencyKey",
  reference, requester_role AS "requesterRole"`;

export const LOAD_OPEN_REQUESTS = `
SELECT ${REQUEST_COLUMNS}
FROM requests WHERE status NOT IN ${ENDED} ORDER BY created_at, id`;

const OFFER_COLUMNS = `id, request_id AS "requestId", courier_id AS "courierId", status, ${ms('created_at')} AS "createdAt",
  ${ms('expires_at')} AS "expiresAt", details`;

export const LOAD_LIVE_OFFERS = `SELECT ${OFFER_COLUMNS} FROM offers WHERE status = 'live' ORDER BY created_at, id`;

export const LOAD_LIVE_ASSIGNMENTS = `
SELECT a.request_id AS "requestId", a.courier_id AS "courierId", a.offer_id AS "offerId", ${ms('a.created_at')} AS "createdAt",
       o.details AS "offerDetails"
FROM assignments a LEFT JOIN offers o ON o.id = a.offer_id WHERE a.ended_at IS NULL ORDER BY a.id`;

/** Couriers that declined an offer of a request still open (recovery keeps them off it). */
export const LOAD_OPEN_DECLINES = `
SELECT DISTINCT o.request_id AS "requestId", o.courier_id AS "courierId"
FROM offers o JOIN requests r ON r.id = o.request_id
WHERE o.status = 'declined' AND r.status NOT IN ${ENDED}
ORDER BY 1, 2`;

export const LOAD_HELD_RESERVATIONS = `
SELECT request_id AS "requestId", site_id AS "siteId", product, blood_type AS "bloodType",
  ${ms('expires_at')} AS "expiresAt", count
FROM reservations WHERE released_at IS NULL AND issued_at IS NULL ORDER BY id`;

export const LOAD_LAST_SEQ = `
SELECT GREATEST((SELECT max(seq) FROM events), (SELECT max(seq) FROM applied_transitions), 0)::float8 AS seq`;

export const LOAD_CELL_SPEEDS = 'SELECT cell, mps, samples FROM cell_speeds ORDER BY cell';

export const LOAD_SCHEMA_VERSION = 'SELECT COALESCE(max(version), 0)::int AS v FROM schema_migrations';

// ── idempotency keys ──

/** $1 principal, $2 key, $3 notBefore (ms): the row only when created at or after notBefore. */
export const FIND_IDEMPOTENCY = `
SELECT principal, key, request_id AS "requestId", body_hash AS "bodyHash", status, reply, ${ms('created_at')} AS "createdAt"
FROM idempotency_keys WHERE principal = $1::text AND key = $2::text AND created_at >= ${ts('$3')}`;

/** $1 notBefore (ms), $2/$3 the last (principal, key) of the previous page ('' for the first), $4 page size. */
export const LIST_IDEMPOTENCY_KEYS = `
SELECT principal, key FROM idempotency_keys
WHERE created_at >= ${ts('$1')} AND (principal, key) > ($2::text, $3::text)
ORDER BY principal, key LIMIT $4::int`;

/** $1 olderThan (ms): deletes the rows created before it; returns their number. */
export const PURGE_IDEMPOTENCY = `
WITH d AS (DELETE FROM idempotency_keys WHERE created_at < ${ts('$1')} RETURNING 1)
SELECT count(*)::int AS n FROM d`;

// ── getRequest: $1 the request id, or an array literal of it and its leg ids ──

/** The row with that id. */
export const GET_REQUEST = `SELECT ${REQUEST_COLUMNS} FROM requests WHERE id = $1::text`;

/** The rows naming it as their parent, itself excluded (a delivery is its own single leg). */
export const GET_LEGS = `SELECT ${REQUEST_COLUMNS} FROM requests WHERE parent_id = $1::text AND id <> $1::text ORDER BY created_at, id`;

/** Every assignment of the ids, ended ones included, oldest first. */
export const GET_ASSIGNMENTS = `
SELECT request_id AS "requestId", courier_id AS "courierId", offer_id AS "offerId", ${ms('created_at')} AS "createdAt",
  ${ms('ended_at')} AS "endedAt"
FROM assignments WHERE request_id = ANY($1::text::text[]) ORDER BY created_at, id`;

/** Every reservation of the ids, with its release or issue time once closed. */
export const GET_RESERVATIONS = `
SELECT request_id AS "requestId", site_id AS "siteId", product, blood_type AS "bloodType", ${ms('expires_at')} AS "expiresAt",
  count, ${ms('released_at')} AS "releasedAt", ${ms('issued_at')} AS "issuedAt"
FROM reservations WHERE request_id = ANY($1::text::text[]) ORDER BY id`;

/** Every offer of the ids, oldest first. */
export const GET_OFFERS = `SELECT ${OFFER_COLUMNS} FROM offers WHERE request_id = ANY($1::text::text[]) ORDER BY created_at, id`;

/** k nearest ids of a table with a `geom` column; $1 lat, $2 lng, $3 k. */
export function nearestSql(table: 'couriers' | 'sites' | 'donors'): string {
  if (table !== 'couriers' && table !== 'sites' && table !== 'donors') throw new Error(`nearest() takes 'couriers', 'sites' or 'donors', got '${String(table)}'`);
  return `SELECT id FROM ${table} WHERE geom IS NOT NULL
ORDER BY geom <-> ${point('$1::float8', '$2::float8')} LIMIT $3::int`;
}

/** A Postgres array literal of numbers: one text parameter instead of one per element. */
export function floatArray(values: ArrayLike<number>, n = values.length): string {
  if (n === 0) return '{}';
  let out = '{' + String(values[0]);
  for (let i = 1; i < n; i++) out += ',' + String(values[i]);
  return out + '}';
}

/** A Postgres array literal of strings (quoted and escaped); null / undefined become NULL. */
export function textArray(values: readonly (string | null | undefined)[], n = values.length): string {
  if (n === 0) return '{}';
  const parts = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    parts[i] = v == null ? 'NULL' : '"' + v.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
  }
  return '{' + parts.join(',') + '}';
}

/** JSON text of rows for jsonb_to_recordset; Infinity and NaN become null (JSON has neither). */
export function jsonRows(rows: readonly unknown[]): string {
  return JSON.stringify(rows);
}
