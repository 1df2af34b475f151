/**
 * Idempotency-Keys at their edges, through the server as `npm start` wires it (a client found these by trying):
 * a key used again after its TTL makes a new request instead of a refused write that took other clients'
 * creates down with it; an empty key is refused instead of silently ignored; a token whose sub the store cannot
 * keep is refused at the door.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator, type Role } from './auth.js';
import { type ServerProcess, startServerProcess } from './server-process.js';
import { call } from './test-server.js';

const SECRET = 'idempotency-e2e-secret-idempotency-e2e-secret';
const auth = new Authenticator({ secret: SECRET, algorithm: 'HS256' }, []);
const token = (role: Role, sub: string): string => auth.signToken({ sub, role }, 3600);
const TTL_MS = 1_000;
const body = { kind: 'rescue', pickup: { lat: 59.86, lng: 10.75 }, dropoff: { lat: 59.87, lng: 10.75 } };

describe('Idempotency-Keys at their edges (shipped server)', () => {
  let srv: ServerProcess;
  const dataDir = mkdtempSync(join(tmpdir(), 'geodispatch-idem-'));
  const create = (t: string, headers?: Record<string, string>) => call(srv.base, 'POST', '/v1/requests', { token: t, body, headers });

  beforeAll(async () => {
    srv = await startServerProcess({ JWT_SECRET: SECRET, DATA_DIR: dataDir, IDEMPOTENCY_TTL_MS: String(TTL_MS), RATE_PER_SEC: '100000', RATE_BURST: '100000' });
  }, 120_000);

  afterAll(async () => {
    await srv?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('a key used again after its TTL creates a new request, and other clients creating meanwhile are not hurt', async () => {
    const ward = token('requester', 'ttl-ward');
    const first = await create(ward, { 'idempotency-key': 'daily-run' });
    expect(first.status).toBe(201);
    expect((await create(ward, { 'idempotency-key': 'daily-run' })).body.id).toBe(first.body.id);
    await new Promise((r) => setTimeout(r, TTL_MS + 300));
    const others = Array.from({ length: 20 }, (_, i) => create(token('requester', `bystander-${i}`)));
    const again = await create(ward, { 'idempotency-key': 'daily-run' });
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    expect(again.body.id).not.toBe(first.body.id);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    for (const r of await Promise.all(others)) expect(r.status, JSON.stringify(r.body)).toBe(201);
    // the new row is the key's answer from now on
    const replay = await create(ward, { 'idempotency-key': 'daily-run' });
    expect(replay.body.id).toBe(again.body.id);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((await call(srv.base, 'GET', '/ready')).status).toBe(200);
  });

  it('an empty or blank Idempotency-Key is refused (400), not taken for none', async () => {
    const ward = token('requester', 'blank-ward');
    for (const key of ['', '   ']) {
      const r = await create(ward, { 'idempotency-key': key });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('E_VALIDATION');
    }
    // no header at all is still a plain create
    expect((await create(ward)).status).toBe(201);
  });

  it('a token whose sub holds a control character or a lone surrogate is refused (401) before anything is written', async () => {
    for (const sub of ['nul\u0000sub', 'bell\u0007', 'half\ud800']) {
      const r = await create(token('requester', sub), { 'idempotency-key': 'k' });
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('E_UNAUTHENTICATED');
    }
    expect((await create(token('requester', 'plain-ward'))).status).toBe(201);
  });
});
