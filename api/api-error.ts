/**
 * API errors and THE one place where error codes become HTTP statuses and WebSocket error frames.
 *
 *   EngineError (engine/errors.ts) ─┐
 *   CommitFailure (store journal) ──┤
 *   ApiError (this file) ───────────┼─► toErrorReply(err) ─► { status, code, message } ─► HTTP reply
 *   anything else ──────────────────┘        │
 *                                            └─► wsErrorFrame(err) ─► { t: 'error', code, message }
 *
 * Unknown errors never leak their message or stack: they become 500 E_INTERNAL with a generic text; the
 * caller logs the original.
 */
import { EngineError, type EngineErrorCode } from '../engine/errors.js';
import { CommitFailure, type CommitFailureKind } from '../store/dispatch-journal.js';

/** A failure at the API boundary with an HTTP status and a stable `E_…` code. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** HTTP status for every engine error code; `satisfies` makes a new engine code a compile error here. */
const ENGINE_STATUS = {
  E_BAD_COORDINATE: 400,
  E_BAD_QUERY: 400,
  E_BAD_TIMESTAMP: 400,
  E_BAD_PROFILE: 400,
  E_UNKNOWN_COURIER: 404,
  E_UNKNOWN_SITE: 404,
  E_UNKNOWN_DONOR: 404,
  E_BAD_GEOMETRY: 400,
  E_BAD_INVENTORY: 400,
  // a snapshot is built by the server itself, never sent by a client: a bad one is our bug
  E_BAD_SNAPSHOT: 500,
} as const satisfies Record<EngineErrorCode, number>;

/** What a caller hears when the store did not take its change (store/dispatch-journal.ts says what memory holds). */
const COMMIT_REPLY: Readonly<Record<CommitFailureKind, { status: number; code: string; message: string }>> = {
  refused: { status: 409, code: 'E_STORE_REFUSED', message: 'the store refused this change; nothing was stored' },
  unavailable: { status: 503, code: 'E_STORE_UNAVAILABLE', message: 'the store is unavailable; nothing was acknowledged, retry later' },
  dropped: { status: 503, code: 'E_STORE_UNAVAILABLE', message: 'not stored (an earlier change was refused); nothing was acknowledged, retry' },
  uncertain: { status: 504, code: 'E_COMMIT_UNCERTAIN', message: 'the store did not confirm in time; the change is kept and will be stored when the store answers: read it back before retrying' },
};

const INTERNAL = Object.freeze({ status: 500, code: 'E_INTERNAL', message: 'internal error' });

/** Maps any thrown value to the status, code and client-safe message of an error reply. */
export function toErrorReply(err: unknown): { status: number; code: string; message: string } {
  if (err instanceof ApiError) return { status: err.status, code: err.code, message: err.message };
  if (err instanceof CommitFailure) return { ...COMMIT_REPLY[err.kind] };
  if (err instanceof EngineError) {
    const status: number | undefined = (ENGINE_STATUS as Record<string, number>)[err.code];
    if (status === undefined || status >= 500) return { ...INTERNAL };
    return { status, code: err.code, message: err.message };
  }
  return { ...INTERNAL };
}

/** The `{ t: 'error' }` frame a WebSocket client receives for a bad frame or a failed action. */
export function wsErrorFrame(err: unknown): { t: 'error'; code: string; message: string } {
  const { code, message } = toErrorReply(err);
  return { t: 'error', code, message };
}

/** The JSON body of an HTTP error reply (PRODUCT §4: `{ error: { code, message } }`). */
export function errorBody(err: unknown): { status: number; body: { error: { code: string; message: string } } } {
  const { status, code, message } = toErrorReply(err);
  return { status, body: { error: { code, message } } };
}
