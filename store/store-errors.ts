/**
 * What a failed store call means for the write it carried, so callers can answer without knowing drivers:
 *
 *   invalid      the database answered and refused it (constraint, bad data, bad SQL): retrying never helps
 *   unavailable  it was not reached, or definitely not committed for a transient reason: retry later
 *   ambiguous    COMMIT was sent but its answer was lost: it may or may not have committed
 *
 * Both drivers raise the server's error with its SQLSTATE in `code` (pg's DatabaseError, and PGlite's own
 * error class with the same fields), connection failures as Node system errors (`code` ECONNREFUSED …) or
 * plain Errors ("Connection terminated unexpectedly", "timeout exceeded when trying to connect"), and use
 * after close as plain Errors ("PGlite is closed", "Cannot use a pool after calling end on the pool").
 */

/** How a failed store call failed: refused for good, not done (retry), or maybe done. */
export type StoreFailureKind = 'invalid' | 'unavailable' | 'ambiguous';

/** The COMMIT of a transaction was sent but failed without saying whether it committed (connection lost, FATAL); `cause` is the driver's error. */
export class CommitOutcomeUnknown extends Error {
  constructor(cause: unknown) {
    super(`the COMMIT failed without saying whether the transaction committed: ${messageOf(cause)}`, { cause });
    this.name = 'CommitOutcomeUnknown';
  }
}

/** A call on a store after its close(). */
export class StoreClosed extends Error {
  constructor() {
    super('the store is closed: open a new one to read or write');
    this.name = 'StoreClosed';
  }
}

/**
 * A cluster commit reserving blood units PostgreSQL no longer has free: another core reserved or issued them
 * since this one's copy of the stock was read. Never retried: the change is taken back, the stock read again.
 */
export class StockConflict extends Error {
  readonly code = 'E_STOCK_CONFLICT';
  constructor(readonly sites: readonly string[]) {
    super(`blood units this change reserves were taken meanwhile at ${sites.join(', ')}; nothing was stored`);
    this.name = 'StockConflict';
  }
}

/** An inventory write that would drop or shrink a lot below the units open reservations hold there: refused. */
export class HeldUnits extends Error {
  readonly code = 'E_SITE_RESERVED';
  constructor(readonly siteId: string, readonly lots: readonly string[]) {
    super(`site '${siteId}' holds reserved units in ${lots.join(', ')}: keep each such lot (same product, type and expiry) with at least its reserved units until they are issued or released`);
    this.name = 'HeldUnits';
  }
}

/** A commit fenced with an epoch that no longer holds its region (another core claimed a larger one): never retry. */
export class StaleEpoch extends Error {
  readonly code = 'E_STALE_EPOCH';
  constructor(
    readonly region: string,
    readonly epoch: number,
    readonly storedEpoch: number,
  ) {
    super(`region ${region} is held under epoch ${storedEpoch}, not ${epoch}: this writer lost the region; stop serving it`);
    this.name = 'StaleEpoch';
  }
}

// SQLSTATE classes where the server looked at the statement or its data and said no; every other class
// (08 connection, 25 read-only standby, 28 credentials, 40 serialization / deadlock, 53 resources,
// 57 shutdown / cancel, 58 system …) is transient or about the server, not the write
const INVALID_CLASSES = new Set([
  '0A', // feature not supported
  '20', // case not found
  '21', // cardinality violation
  '22', // data exception
  '23', // integrity constraint violation
  '27', // triggered data change violation
  '2F', // SQL routine exception
  '42', // syntax error or access rule violation
  '44', // WITH CHECK OPTION violation
  '54', // program limit exceeded
  'P0', // PL/pgSQL
  'XX', // internal error
]);

const SQLSTATE = /^[0-9A-Z]{5}$/;

// a wrapper chain longer than this is a cycle or a bug; stop and call it unknown
const MAX_CAUSES = 8;

/** Classifies a store error (following `cause` through wrappers); anything unrecognised is 'unavailable'. */
export function storeFailureKind(err: unknown): StoreFailureKind {
  let e = err;
  for (let depth = 0; depth < MAX_CAUSES && typeof e === 'object' && e !== null; depth++) {
    // by name too, for an instance from another copy of this module (src and dist in one process)
    const name = (e as { name?: unknown }).name;
    if (e instanceof CommitOutcomeUnknown || name === 'CommitOutcomeUnknown') return 'ambiguous';
    if (e instanceof StoreClosed || name === 'StoreClosed') return 'unavailable';
    if (e instanceof StaleEpoch || name === 'StaleEpoch') return 'invalid';
    if (e instanceof StockConflict || name === 'StockConflict') return 'invalid';
    if (e instanceof HeldUnits || name === 'HeldUnits') return 'invalid';
    // EPIPE is shaped like a SQLSTATE too, but no SQLSTATE class starts with E
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && SQLSTATE.test(code)) return INVALID_CLASSES.has(code.slice(0, 2)) ? 'invalid' : 'unavailable';
    e = (e as { cause?: unknown }).cause;
  }
  return 'unavailable';
}

/** True when the server answered with an error that rolled the whole transaction back (so a failed COMMIT is not ambiguous). */
export function rolledBackForSure(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && SQLSTATE.test(code) && (INVALID_CLASSES.has(code.slice(0, 2)) || code.startsWith('40'));
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
