/**
 * A fleet write the store refuses changes nothing in memory: PostgreSQL reached through a TCP proxy that cuts
 * every connection, on the instance as `npm start` builds it (runs when TEST_DATABASE_URL is set).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTcpProxy, type TcpProxy } from '../store/tcp-proxy.js';
import { dropTestSchema, testSchemaName } from '../store/test-database.js';
import { type HttpReply, type TestServer, call, eventually, startTestServer } from './test-server.js';

const databaseUrl = process.env.TEST_DATABASE_URL;
const profile = (id: string) => ({ id, vehicle: 'van', capabilities: ['bulky'], capacity: 6 });

function ok(r: HttpReply, status: number, what: string): any {
  expect(r.status, `${what}: ${JSON.stringify(r.body)?.slice(0, 400)}`).toBe(status);
  return r.body;
}

describe.skipIf(databaseUrl === undefined)('fleet writes while PostgreSQL is cut off', () => {
  let proxy: TcpProxy;
  let t: TestServer;
  const schema = testSchemaName('gd_fleet_cut');

  beforeAll(async () => {
    const url = new URL(databaseUrl!);
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.host = `127.0.0.1:${proxy.port}`;
    t = await startTestServer({ DATABASE_URL: url.toString(), DATABASE_SCHEMA: schema, RATE_PER_SEC: '10000', RATE_BURST: '10000' }, 'pg');
  });
  afterAll(async () => {
    proxy?.restore();
    await t?.close();
    await proxy?.close();
    await dropTestSchema(databaseUrl!, schema);
  });

  it('answers 503 to a bulk upsert and a delete, leaves memory as it was, and takes the same writes once the store is back', async () => {
    const admin = t.token('admin', 'ops');
    const req = (method: string, path: string, body?: unknown) => call(t.base, method, path, { token: admin, body });
    ok(await req('PUT', '/v1/couriers', [profile('cut-kept')]), 200, 'before the cut');
    proxy.cut('reset');
    expect(ok(await req('PUT', '/v1/couriers', [profile('cut-new-1'), profile('cut-new-2')]), 503, 'bulk upsert while cut').error.code).toBe('E_STORE_UNAVAILABLE');
    expect(ok(await req('DELETE', '/v1/couriers/cut-kept'), 503, 'delete while cut').error.code).toBe('E_STORE_UNAVAILABLE');
    expect(ok(await req('GET', '/v1/couriers/cut-new-1'), 404, 'not applied').error.code).toBe('E_NOT_FOUND');
    ok(await req('GET', '/v1/couriers/cut-kept'), 200, 'not deleted');
    proxy.restore();
    await eventually(async () => ((await call(t.base, 'GET', '/ready')).status === 200 ? true : undefined), 'ready again', 20_000);
    expect(ok(await req('PUT', '/v1/couriers', [profile('cut-new-1'), profile('cut-new-2')]), 200, 'the same upsert').accepted).toBe(2);
    ok(await req('DELETE', '/v1/couriers/cut-kept'), 204, 'the same delete');
    expect(ok(await req('GET', '/v1/couriers?limit=10'), 200, 'list').items.map((c: { id: string }) => c.id)).toEqual(['cut-new-1', 'cut-new-2']);
  }, 60_000);
});
