import { describe, expect, test } from 'vitest';
import { EngineError } from '../engine/errors.js';
import { ApiError, errorBody, toErrorReply, wsErrorFrame } from './api-error.js';

describe('toErrorReply', () => {
  test('engine input errors are 400 with their code and message', () => {
    for (const code of ['E_BAD_COORDINATE', 'E_BAD_QUERY', 'E_BAD_PROFILE', 'E_BAD_GEOMETRY', 'E_BAD_INVENTORY', 'E_BAD_TIMESTAMP'] as const) {
      expect(toErrorReply(new EngineError(code, 'why'))).toEqual({ status: 400, code, message: 'why' });
    }
  });

  test('unknown couriers, sites and donors are 404', () => {
    for (const code of ['E_UNKNOWN_COURIER', 'E_UNKNOWN_SITE', 'E_UNKNOWN_DONOR'] as const) {
      expect(toErrorReply(new EngineError(code, 'no such thing')).status).toBe(404);
    }
  });

  test('an ApiError keeps its status and code', () => {
    expect(toErrorReply(new ApiError(429, 'E_RATE_LIMITED', 'slow down'))).toEqual({ status: 429, code: 'E_RATE_LIMITED', message: 'slow down' });
  });

  test('anything else is a generic 500 that hides the original message', () => {
    const reply = toErrorReply(new Error('connection to 10.0.0.5:5432 failed: password authentication failed'));
    expect(reply).toEqual({ status: 500, code: 'E_INTERNAL', message: 'internal error' });
    expect(toErrorReply('a string')).toEqual(reply);
    expect(toErrorReply(new EngineError('E_BAD_SNAPSHOT', 'header version 7 at offset 12'))).toEqual(reply);
  });

  test('WebSocket error frames and HTTP error bodies carry the same code and message', () => {
    const err = new EngineError('E_BAD_COORDINATE', 'lat out of range');
    expect(wsErrorFrame(err)).toEqual({ t: 'error', code: 'E_BAD_COORDINATE', message: 'lat out of range' });
    expect(errorBody(err)).toEqual({ status: 400, body: { error: { code: 'E_BAD_COORDINATE', message: 'lat out of range' } } });
  });
});
