import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { CommitOutcomeUnknown, StoreClosed, rolledBackForSure, storeFailureKind } from './store-errors.js';

/** An error shaped like the drivers' server errors (pg's DatabaseError, PGlite's): the SQLSTATE in `code`. */
function sqlError(code: string, message = `sqlstate ${code}`): Error {
  return Object.assign(new Error(message), { code, severity: 'ERROR' });
}

/** An error shaped like a Node socket error. */
function systemError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code, syscall: 'connect' });
}

describe('storeFailureKind', () => {
  it.each([
    ['23505', 'unique_violation'],
    ['23514', 'check_violation'],
    ['23502', 'not_null_violation'],
    ['22P02', 'invalid_text_representation'],
    ['42P01', 'undefined_table'],
    ['P0001', 'raise_exception'],
    ['XX000', 'internal_error'],
  ])('classes SQLSTATE %s (%s) as invalid', (code) => {
    expect(storeFailureKind(sqlError(code))).toBe('invalid');
  });

  it.each([
    ['08006', 'connection_failure'],
    ['57P01', 'admin_shutdown'],
    ['57014', 'query_canceled'],
    ['53300', 'too_many_connections'],
    ['40001', 'serialization_failure'],
    ['40P01', 'deadlock_detected'],
    ['25006', 'read_only_sql_transaction'],
  ])('classes SQLSTATE %s (%s) as unavailable', (code) => {
    expect(storeFailureKind(sqlError(code))).toBe('unavailable');
  });

  it.each(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'])('classes the socket error %s as unavailable', (code) => {
    expect(storeFailureKind(systemError(code))).toBe('unavailable');
  });

  it.each([
    'Connection terminated unexpectedly',
    'timeout exceeded when trying to connect',
    'Cannot use a pool after calling end on the pool',
    'PGlite is closed',
    'something nobody expected',
  ])('classes a plain Error "%s" as unavailable', (message) => {
    expect(storeFailureKind(new Error(message))).toBe('unavailable');
  });

  it('classes a lost COMMIT answer as ambiguous, whatever its cause', () => {
    expect(storeFailureKind(new CommitOutcomeUnknown(new Error('Connection terminated unexpectedly')))).toBe('ambiguous');
    expect(storeFailureKind(new CommitOutcomeUnknown(sqlError('57P01')))).toBe('ambiguous');
  });

  it('recognises its own errors by name when they come from another copy of the module', () => {
    expect(storeFailureKind(Object.assign(new Error('x'), { name: 'CommitOutcomeUnknown' }))).toBe('ambiguous');
    expect(storeFailureKind(Object.assign(new Error('x'), { name: 'StoreClosed' }))).toBe('unavailable');
  });

  it('classes a closed store as unavailable', () => {
    expect(storeFailureKind(new StoreClosed())).toBe('unavailable');
  });

  it('follows cause through wrapping errors', () => {
    expect(storeFailureKind(new Error('journal write failed', { cause: sqlError('23505') }))).toBe('invalid');
    expect(storeFailureKind(new Error('journal write failed', { cause: new CommitOutcomeUnknown(systemError('ECONNRESET')) }))).toBe('ambiguous');
    expect(storeFailureKind(new Error('journal write failed', { cause: systemError('ECONNREFUSED') }))).toBe('unavailable');
  });

  it('classes values that are not errors as unavailable', () => {
    expect(storeFailureKind(undefined)).toBe('unavailable');
    expect(storeFailureKind(null)).toBe('unavailable');
    expect(storeFailureKind('23505')).toBe('unavailable');
    expect(storeFailureKind({ code: 23505 })).toBe('unavailable');
  });

  it('stops on a cause cycle', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    Object.assign(a, { cause: b });
    expect(storeFailureKind(a)).toBe('unavailable');
  });
});

describe('rolledBackForSure', () => {
  it('is true for server answers that end the transaction and false for everything else', () => {
    expect(rolledBackForSure(sqlError('23505'))).toBe(true);
    expect(rolledBackForSure(sqlError('40001'))).toBe(true);
    expect(rolledBackForSure(sqlError('57P01'))).toBe(false);
    expect(rolledBackForSure(sqlError('08006'))).toBe(false);
    expect(rolledBackForSure(new Error('Connection terminated unexpectedly'))).toBe(false);
    expect(rolledBackForSure(undefined)).toBe(false);
  });
});

describe('CommitOutcomeUnknown', () => {
  it('keeps the driver error as cause and says what is unknown', () => {
    const cause = new Error('Connection terminated unexpectedly');
    const err = new CommitOutcomeUnknown(cause);
    expect(err.cause).toBe(cause);
    expect(err.name).toBe('CommitOutcomeUnknown');
    expect(err.message).toBe('the COMMIT failed without saying whether the transaction committed: Connection terminated unexpectedly');
  });
});

describe('the drivers\u2019 own errors', () => {
  it('PGlite raises constraint violations with their SQLSTATE (invalid) and "PGlite is closed" after close (unavailable)', async () => {
    const db = await PGlite.create({ dataDir: 'memory://' });
    await db.exec('CREATE TABLE t (id int PRIMARY KEY)');
    await db.query('INSERT INTO t VALUES (1)');
    const dup = await db.query('INSERT INTO t VALUES (1)').then(() => undefined, (e: unknown) => e);
    expect((dup as { code?: string }).code).toBe('23505');
    expect(storeFailureKind(dup)).toBe('invalid');
    await db.close();
    const closed = await db.query('SELECT 1').then(() => undefined, (e: unknown) => e);
    expect((closed as Error).message).toBe('PGlite is closed');
    expect(storeFailureKind(closed)).toBe('unavailable');
  }, 60_000);

  it('pg raises ECONNREFUSED for a closed port and a plain Error for a pool after end, both unavailable', async () => {
    const refused = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/nowhere', connectionTimeoutMillis: 1000 });
    const noServer = await refused.query('SELECT 1').then(() => undefined, (e: unknown) => e);
    expect((noServer as { code?: string }).code).toBe('ECONNREFUSED');
    expect(storeFailureKind(noServer)).toBe('unavailable');
    await refused.end();
    const ended = await refused.query('SELECT 1').then(() => undefined, (e: unknown) => e);
    expect((ended as Error).message).toBe('Cannot use a pool after calling end on the pool');
    expect(storeFailureKind(ended)).toBe('unavailable');
  });
});
