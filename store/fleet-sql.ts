/**
 * The SQL of the fleet reads and deletes (PRODUCT §4, "More HTTP a team runs a fleet with"), run word for word
 * by both stores like everything in sql.ts: deletes of couriers, sites and donors, the newest-first page of
 * requests (keyset on created_at, id) and one courier's stored location history.
 *
 * Parameters are sent as text and cast in SQL, as in sql.ts; absent filters are NULL.
 */

/** timestamptz → ms since the epoch (as sql.ts). */
const ms = (col: string): string => `round(extract(epoch FROM ${col}) * 1000)::float8`;
/** ms since the epoch → timestamptz, rounded to µs like every stored time, so a cursor's ms matches its row exactly. */
const ts = (expr: string): string => `to_timestamp((${expr})::float8 / 1000.0)`;

/** $1 id: the courier row and its stored history go together; returns the deleted id (none when unknown). */
export const DELETE_COURIER = 'DELETE FROM couriers WHERE id = $1::text RETURNING id';
export const DELETE_COURIER_HISTORY = 'DELETE FROM location_history WHERE courier_id = $1::text';

/**
 * $1 id: deletes a site (its lots go by ON DELETE CASCADE) unless requests still count on units there: a lot
 * holding reserved units, or an open reservation (neither released nor issued) whatever the lots say now (an
 * inventory PUT that renamed a lot drops its counter, not the reservation). Returns `deleted`, and `reserved`
 * when held units kept it.
 */
export const DELETE_SITE = `
WITH held AS (SELECT EXISTS (SELECT 1 FROM inventory_units WHERE site_id = $1::text AND reserved > 0)
  OR EXISTS (SELECT 1 FROM reservations WHERE site_id = $1::text AND released_at IS NULL AND issued_at IS NULL) AS reserved),
gone AS (DELETE FROM sites WHERE id = $1::text AND NOT (SELECT reserved FROM held) RETURNING id)
SELECT (SELECT count(*) FROM gone)::int AS deleted, (SELECT reserved FROM held) AS reserved`;

/** $1 courier id: an open assignment's request, else a live offer (with its request), that holds the courier. */
export const COURIER_COMMITMENT = `
SELECT request_id AS "requestId", NULL AS "offerId" FROM assignments WHERE courier_id = $1::text AND ended_at IS NULL
UNION ALL
SELECT request_id, id FROM offers WHERE courier_id = $1::text AND status = 'live'
LIMIT 1`;

/** $1 id; returns the deleted id (none when unknown). */
export const DELETE_DONOR = 'DELETE FROM donors WHERE id = $1::text RETURNING id';

/** A parent request: a delivery or rescue is its own single leg (parent_id NULL or itself); blood legs point at their parent. Migration 4's partial indexes spell it the same. */
const PARENT = '(parent_id IS NULL OR parent_id = id)';

/**
 * One page of parent requests, newest first, keyset on (created_at, id) so rows added or ended meanwhile never
 * repeat or skip one. $1 requester id, $2 requester role (rows from before roles were stored carry none and
 * match any), $3 status, $4 kind, $5 created at or after (ms), $6/$7 the last row of the previous page
 * (created ms, id), $8 limit. Indexes: migration 4.
 */
export const LIST_REQUESTS = `
SELECT id, kind, urgency, status, ${ms('created_at')} AS "createdAt", ${ms('updated_at')} AS "updatedAt", reference,
  requester_id AS "requesterId", requester_role AS "requesterRole"
FROM requests
WHERE ${PARENT}
  AND ($1::text IS NULL OR requester_id = $1::text)
  AND ($2::text IS NULL OR requester_role IS NULL OR requester_role = $2::text)
  AND ($3::text IS NULL OR status = $3::text)
  AND ($4::text IS NULL OR kind = $4::text)
  AND ($5::text IS NULL OR created_at >= ${ts('$5::text')})
  AND ($6::text IS NULL OR (created_at, id) < (${ts('$6::text')}, $7::text))
ORDER BY created_at DESC, id DESC
LIMIT $8::int`;

/** $1 courier id, $2 from (ms), $3 to (ms), $4 most rows: its stored samples in the window, oldest first. */
export const COURIER_HISTORY = `
SELECT ${ms('at')} AS ts, ST_Y(geom::geometry) AS lat, ST_X(geom::geometry) AS lng
FROM location_history
WHERE courier_id = $1::text AND at >= ${ts('$2::text')} AND at <= ${ts('$3::text')}
ORDER BY at
LIMIT $4::int`;
