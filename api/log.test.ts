import { Writable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { createLogger } from './log.js';

describe('createLogger', () => {
  test('authorization headers, tokens, API keys and secrets are redacted', () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } });
    const log = createLogger('info', sink);
    log.info({ headers: { authorization: 'Bearer abc.def.ghi', 'x-api-key': 'k-123' }, accessToken: 'tok', apiKey: 'k-456', config: { jwt: { secret: 'shh' } } }, 'request');
    const out = lines.join('');
    for (const secret of ['abc.def.ghi', 'k-123', 'tok"', 'k-456', 'shh']) expect(out).not.toContain(secret);
    expect(out).toContain('[redacted]');
    expect(JSON.parse(out).msg).toBe('request');
  });

  test('debug lines are dropped at info level', () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } });
    createLogger('info', sink).debug({ lat: 1, lng: 2 }, 'ping');
    expect(lines).toEqual([]);
  });
});
