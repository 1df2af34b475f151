/**
 * The fleet API end to end (PRODUCT §4, "More HTTP a team runs a fleet with"): bulk onboarding, reads, deletes
 * that survive a restart, lists paged while others write (checked against a brute-force list), and a courier's
 * track against the points it pinged — on the instance as `npm start` builds it, on every store in TEST_STORES.
 *
 * The world of these tests sits in Lisbon.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropTestSchema, testSchemaName } from '../store/test-database.js';
import { type HttpReply, type TestServer, type TestStore, TEST_STORES, call, eventually, startTestServer } from './test-server.js';

const LISBON = { lat: 38.7223, lng: -9.1393 };
const FAST = { RATE_PER_SEC: '100000', RATE_BURST: '100000', POSITION_FLUSH_MS: '100' };

function ok(r: HttpReply, status: number, what: string): any {
  expect(r.status, `${what}: ${JSON.stringify(r.body)?.slice(0, 400)}`).toBe(status);
  return r.body;
}

const profile = (id: string, i = 0) => ({ id, vehicle: (['bike', 'car', 'van'] as const)[i % 3], capabilities: i % 2 === 0 ? ['cold_chain'] : [], capacity: 1 + (i % 5) });

describe.each(TEST_STORES)('the fleet API on %s', (store) => {
  let t: TestServer;
  let admin: string;
  let desk: string;
  const req = (method: string, path: string, body?: unknown, token = admin) => call(t.base, method, path, { token, body });

  beforeAll(async () => {
    t = await startTestServer(FAST, store);
    admin = t.token('admin', 'ops');
    desk = t.token('dispatcher', 'desk');
  });
  afterAll(async () => t?.close());

  it('onboards a batch in one call, rejecting bad items by index and storing the good ones', async () => {
    const items = [profile('bk-1', 0), { id: 'bk-bad', vehicle: 'rocket', capacity: 1 }, profile('bk-2', 1), { vehicle: 'car', capacity: 2 }, profile('bk-3', 2)];
    const r = ok(await req('PUT', '/v1/couriers', items, desk), 200, 'bulk upsert');
    expect(r.accepted).toBe(3);
    expect(r.rejected.map((x: { index: number; code: string }) => [x.index, x.code])).toEqual([[1, 'E_VALIDATION'], [3, 'E_VALIDATION']]);
    const one = ok(await req('GET', '/v1/couriers/bk-2', undefined, desk), 200, 'read back');
    expect(one).toMatchObject({ id: 'bk-2', vehicle: 'car', capabilities: [], capacity: 2, status: 'offline' });
    expect(ok(await req('PUT', '/v1/couriers', { items: [profile('bk-4', 4)] }), 200, '{ items } form').accepted).toBe(1);
    expect(ok(await req('GET', '/v1/couriers/bk-bad'), 404, 'rejected item').error.code).toBe('E_NOT_FOUND');
  });

  it('refuses a batch over 10,000 items as a whole, and drivers and requesters entirely', async () => {
    const tooMany = Array.from({ length: 10_001 }, (_, i) => profile(`big-${i}`));
    const r = await req('PUT', '/v1/couriers', tooMany);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('E_VALIDATION');
    expect(ok(await req('GET', '/v1/couriers/big-0'), 404, 'nothing of it stored').error.code).toBe('E_NOT_FOUND');
    for (const token of [t.token('driver', 'bk-1'), t.token('requester', 'ward')]) {
      expect((await req('PUT', '/v1/couriers', [profile('x-1')], token)).status).toBe(403);
    }
  });

  it('shows a courier with its last position and ping time, a site with its stock, a donor to admins only', async () => {
    const ts = Date.now() - 1000;
    ok(await req('POST', '/v1/couriers/bk-1/location', { ...LISBON, ts }), 204, 'ping');
    expect(ok(await req('GET', '/v1/couriers/bk-1', undefined, desk), 200, 'courier')).toMatchObject({ id: 'bk-1', lat: LISBON.lat, lng: LISBON.lng, ts });
    const soon = Date.now() + 5 * 86_400_000;
    ok(await req('PUT', '/v1/sites/rd-bank', { kind: 'blood_bank', name: 'Banco', ...LISBON }), 200, 'site');
    const gone = Date.now() + 300; // expires during the test
    ok(await req('PUT', '/v1/sites/rd-bank/inventory', { units: [{ product: 'red_cells', bloodType: 'O-', count: 4, expiresAt: soon }, { product: 'plasma', bloodType: 'A+', count: 3, expiresAt: gone }] }), 200, 'stock');
    await new Promise((r) => setTimeout(r, 400));
    const site = ok(await req('GET', '/v1/sites/rd-bank', undefined, desk), 200, 'site read');
    expect(site).toMatchObject({ id: 'rd-bank', kind: 'blood_bank', name: 'Banco', open: true });
    // an expired lot is still on the shelf, but none of it is available (dispatch never uses it)
    expect(site.lots).toEqual([
      { product: 'plasma', bloodType: 'A+', expiresAt: gone, available: 0, reserved: 0, expired: true },
      { product: 'red_cells', bloodType: 'O-', expiresAt: soon, available: 4, reserved: 0 },
    ]);
    ok(await req('PUT', '/v1/donors/rd-don', { bloodType: 'A+', ...LISBON, available: true }), 200, 'donor');
    expect(ok(await req('GET', '/v1/donors/rd-don'), 200, 'donor for admin')).toMatchObject({ id: 'rd-don', bloodType: 'A+' });
    expect(ok(await req('GET', '/v1/donors/rd-don', undefined, desk), 403, 'donor for a dispatcher').error.code).toBe('E_FORBIDDEN');
    for (const path of ['/v1/couriers/nobody', '/v1/sites/nowhere', '/v1/donors/no-one']) expect(ok(await req('GET', path), 404, path).error.code).toBe('E_NOT_FOUND');
  });

  it('refuses to delete a courier holding a live offer, and a site whose units are reserved', async () => {
    ok(await req('PUT', '/v1/couriers', [profile('hd-1', 1)]), 200, 'courier');
    ok(await req('PUT', '/v1/couriers/hd-1/status', { status: 'available' }), 200, 'on shift');
    ok(await req('POST', '/v1/couriers/hd-1/location', { lat: LISBON.lat + 0.3, lng: LISBON.lng, ts: Date.now() }), 204, 'placed');
    const ward = t.token('requester', 'hd-ward');
    ok(await req('POST', '/v1/requests', { kind: 'delivery', pickup: { lat: LISBON.lat + 0.301, lng: LISBON.lng }, dropoff: { lat: LISBON.lat + 0.31, lng: LISBON.lng } }, ward), 201, 'delivery');
    const offered = await eventually(async () => (await req('GET', '/v1/couriers/hd-1')).body.offerId as string | undefined, 'an offer to hd-1', 10_000);
    expect(offered).toBeTruthy();
    expect(ok(await req('DELETE', '/v1/couriers/hd-1', undefined, desk), 409, 'delete while offered').error.code).toBe('E_COURIER_BUSY');
    expect(ok(await req('GET', '/v1/couriers/hd-1'), 200, 'still there').offerId).toBe(offered);

    ok(await req('PUT', '/v1/sites/hd-bank', { kind: 'blood_bank', name: 'Held', lat: LISBON.lat - 0.3, lng: LISBON.lng }), 200, 'bank');
    const expiresAt = Date.now() + 3 * 86_400_000;
    ok(await req('PUT', '/v1/sites/hd-bank/inventory', { units: [{ product: 'platelets', bloodType: 'AB+', count: 3, expiresAt }] }), 200, 'stock');
    ok(await req('PUT', '/v1/sites/hd-hosp', { kind: 'hospital', name: 'Hosp', lat: LISBON.lat - 0.31, lng: LISBON.lng }), 200, 'hospital');
    ok(await req('POST', '/v1/requests', { kind: 'blood', hospitalSiteId: 'hd-hosp', product: 'platelets', bloodType: 'AB+', units: 2, urgency: 'urgent' }, ward), 201, 'blood');
    expect(ok(await req('GET', '/v1/sites/hd-bank'), 200, 'bank').lots[0].reserved).toBe(2);
    expect(ok(await req('DELETE', '/v1/sites/hd-bank'), 409, 'delete a bank holding units').error.code).toBe('E_SITE_RESERVED');
    expect(ok(await req('GET', '/v1/sites/hd-bank'), 200, 'bank still there').lots[0].available).toBe(1);
    // the reserved units stay on their lot: renaming it (another expiry), emptying or shrinking it below them is refused
    for (const units of [[{ product: 'platelets', bloodType: 'AB+', count: 3, expiresAt: expiresAt + 60_000 }], [], [{ product: 'platelets', bloodType: 'AB+', count: 1, expiresAt }]]) {
      expect(ok(await req('PUT', '/v1/sites/hd-bank/inventory', { units }), 409, 'a PUT dropping reserved units').error.code).toBe('E_SITE_RESERVED');
    }
    expect(ok(await req('PUT', '/v1/sites/hd-bank/inventory', { units: [{ product: 'platelets', bloodType: 'AB+', count: 2, expiresAt }] }), 200, 'kept').lots[0]).toMatchObject({ reserved: 2, available: 0 });
  });

  it('lists couriers page by page while others are added and deleted: each one present throughout is seen exactly once', async () => {
    const base = Array.from({ length: 240 }, (_, i) => profile(`pg-${String(i * 2).padStart(4, '0')}`, i));
    ok(await req('PUT', '/v1/couriers', base), 200, 'fleet');
    const deleted = new Set<string>();
    const seen: string[] = [];
    let cursor: string | undefined;
    let page = 0;
    do {
      const r = ok(await req('GET', `/v1/couriers?limit=17${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, undefined, desk), 200, `page ${page}`);
      seen.push(...r.items.map((c: { id: string }) => c.id));
      cursor = r.next;
      // between pages: an odd id slips in everywhere, and one of the base couriers far ahead leaves
      ok(await req('PUT', '/v1/couriers', [profile(`pg-${String(page * 16 + 1).padStart(4, '0')}`), profile(`pg-${String(470 - page * 2).padStart(4, '0')}`)]), 200, 'added meanwhile');
      const gone = `pg-${String(460 - page * 6).padStart(4, '0')}`;
      if (!deleted.has(gone) && (await req('DELETE', `/v1/couriers/${gone}`)).status === 204) deleted.add(gone);
      page++;
    } while (cursor !== undefined && page < 100);
    expect(cursor).toBeUndefined();
    const listed = seen.filter((id) => id.startsWith('pg-'));
    expect(new Set(listed).size).toBe(listed.length);
    expect(listed).toEqual([...listed].sort());
    const throughout = base.map((c) => c.id).filter((id) => !deleted.has(id));
    const missing = throughout.filter((id) => !listed.includes(id));
    expect(missing).toEqual([]);
    expect(deleted.size).toBeGreaterThan(5);
  });

  it('filters couriers by status, capability and bbox as a brute force over the same couriers does', async () => {
    const fleet = Array.from({ length: 30 }, (_, i) => profile(`bb-${i}`, i));
    ok(await req('PUT', '/v1/couriers', fleet), 200, 'fleet');
    const where = new Map<string, { lat: number; lng: number }>();
    for (let i = 0; i < 30; i++) {
      const p = { lat: LISBON.lat + (i % 6) * 0.01, lng: LISBON.lng + Math.floor(i / 6) * 0.01 };
      where.set(`bb-${i}`, p);
      ok(await req('POST', `/v1/couriers/bb-${i}/location`, { ...p, ts: Date.now() }), 204, 'ping');
      if (i % 4 === 0) ok(await req('PUT', `/v1/couriers/bb-${i}/status`, { status: 'available' }), 200, 'on shift');
    }
    const box = [LISBON.lng - 0.001, LISBON.lat + 0.015, LISBON.lng + 0.025, LISBON.lat + 0.045];
    const r = ok(await req('GET', `/v1/couriers?status=available&capability=cold_chain&bbox=${box.join(',')}&limit=500`, undefined, desk), 200, 'filtered');
    const expected = fleet
      .filter((c, i) => i % 4 === 0 && c.capabilities.includes('cold_chain'))
      .filter((c) => { const p = where.get(c.id)!; return p.lng >= box[0] && p.lat >= box[1] && p.lng <= box[2] && p.lat <= box[3]; })
      .map((c) => c.id).sort();
    expect(expected.length).toBeGreaterThan(0);
    expect(r.items.map((c: { id: string }) => c.id)).toEqual(expected);
    expect(r.next).toBeUndefined();
  });

  it('refuses a cursor edited by hand or replayed with other filters', async () => {
    const first = ok(await req('GET', '/v1/couriers?limit=2', undefined, desk), 200, 'first page');
    expect(typeof first.next).toBe('string');
    const next: string = first.next;
    const edited = (next[0] === 'e' ? 'f' : 'e') + next.slice(1);
    expect(ok(await req('GET', `/v1/couriers?limit=2&cursor=${encodeURIComponent(edited)}`, undefined, desk), 400, 'edited').error.code).toBe('E_BAD_CURSOR');
    expect(ok(await req('GET', `/v1/couriers?limit=2&status=busy&cursor=${encodeURIComponent(next)}`, undefined, desk), 400, 'other filters').error.code).toBe('E_BAD_CURSOR');
    expect(ok(await req('GET', `/v1/sites?cursor=${encodeURIComponent(next)}`, undefined, desk), 400, 'other list').error.code).toBe('E_BAD_CURSOR');
    expect(ok(await req('GET', '/v1/couriers?limit=501', undefined, desk), 400, 'limit').error.code).toBe('E_VALIDATION');
  });

  it('lists sites by kind, and geofences to admins', async () => {
    for (const [id, kind] of [['ls-a', 'shelter'], ['ls-b', 'restaurant'], ['ls-c', 'shelter']] as const) {
      ok(await req('PUT', `/v1/sites/${id}`, { kind, name: id, ...LISBON }), 200, id);
    }
    const shelters = ok(await req('GET', '/v1/sites?kind=shelter&limit=500', undefined, desk), 200, 'shelters');
    expect(shelters.items.map((s: { id: string }) => s.id).filter((id: string) => id.startsWith('ls-'))).toEqual(['ls-a', 'ls-c']);
    expect(shelters.items.every((s: { kind: string }) => s.kind === 'shelter')).toBe(true);
    const square = { type: 'Polygon', coordinates: [[[-9.2, 38.7], [-9.1, 38.7], [-9.1, 38.8], [-9.2, 38.8], [-9.2, 38.7]]] };
    ok(await req('PUT', '/v1/geofences/ls-zone', { kind: 'zone', geometry: square }), 200, 'fence');
    const fences = ok(await req('GET', '/v1/geofences'), 200, 'fences');
    expect(fences.items).toContainEqual({ id: 'ls-zone', kind: 'zone', geometry: square });
    expect((await req('GET', '/v1/geofences', undefined, desk)).status).toBe(403);
  });

  it('lists requests newest first: a requester its own only, a dispatcher everyone\'s, paged while more arrive', async () => {
    const mine = t.token('requester', 'lr-mine');
    const other = t.token('requester', 'lr-other');
    const create = async (token: string) => ok(await req('POST', '/v1/requests', { kind: 'delivery', pickup: { lat: 10, lng: 10 }, dropoff: { lat: 10.01, lng: 10 } }, token), 201, 'create').id as string;
    const made: string[] = [];
    for (let i = 0; i < 7; i++) made.push(await create(i % 3 === 2 ? other : mine));
    const own = ok(await req('GET', '/v1/requests?limit=500', undefined, mine), 200, 'own');
    expect(own.items.map((r: { id: string }) => r.id)).toEqual(made.filter((_, i) => i % 3 !== 2).reverse());

    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const r = ok(await req('GET', `/v1/requests?kind=delivery&limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, undefined, desk), 200, 'page');
      seen.push(...r.items.map((x: { id: string }) => x.id));
      cursor = r.next;
      if (pages++ < 3) await create(mine); // newer than every page: never on a later one
    } while (cursor !== undefined);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.filter((id) => made.includes(id))).toEqual([...made].reverse());

    const cancelled = made[0];
    ok(await req('POST', `/v1/requests/${cancelled}/cancel`, undefined, mine), 200, 'cancel');
    const onlyCancelled = ok(await req('GET', '/v1/requests?status=cancelled&limit=500', undefined, mine), 200, 'cancelled');
    expect(onlyCancelled.items.map((r: { id: string }) => r.id)).toEqual([cancelled]);
    expect(ok(await req('GET', '/v1/requests', undefined, t.token('driver', 'bk-1')), 403, 'driver').error.code).toBe('E_FORBIDDEN');
  });

  it('draws a courier\'s track from its stored history, exactly the points it pinged', async () => {
    ok(await req('PUT', '/v1/couriers', [profile('tr-1')]), 200, 'courier');
    const start = Date.now() - 20 * 60_000;
    // 31 s apart: every ping is a history sample (one per courier per 30 s)
    const pings = Array.from({ length: 8 }, (_, i) => ({ lat: LISBON.lat + i * 0.001, lng: LISBON.lng - i * 0.002, ts: start + i * 31_000 }));
    for (const p of pings) ok(await req('POST', '/v1/couriers/tr-1/location', p), 204, 'ping');
    const url = `/v1/couriers/tr-1/history?from=${start}&to=${Date.now()}`;
    const track = await eventually(async () => {
      const r = await req('GET', url, undefined, desk);
      return r.status === 200 && r.body.properties.times.length === pings.length ? r.body : undefined;
    }, 'the track written behind', 10_000);
    expect(track.type).toBe('Feature');
    expect(track.geometry.type).toBe('LineString');
    expect(track.properties.times).toEqual(pings.map((p) => p.ts));
    track.geometry.coordinates.forEach(([lng, lat]: number[], i: number) => {
      expect(lat).toBeCloseTo(pings[i].lat, 9);
      expect(lng).toBeCloseTo(pings[i].lng, 9);
    });
    const part = ok(await req('GET', `/v1/couriers/tr-1/history?from=${pings[2].ts}&to=${pings[4].ts}`), 200, 'a window');
    expect(part.properties.times).toEqual([pings[2].ts, pings[3].ts, pings[4].ts]);
    expect(ok(await req('GET', `/v1/couriers/tr-1/history?from=${start - 8 * 86_400_000}&to=${start}`), 400, 'too long').error.code).toBe('E_RANGE_TOO_LONG');
    expect(ok(await req('GET', '/v1/couriers/nobody/history'), 404, 'unknown').error.code).toBe('E_NOT_FOUND');
  });

  it('describes every fleet route in /openapi.json', async () => {
    const doc = ok(await call(t.base, 'GET', '/openapi.json'), 200, 'openapi');
    expect(Object.keys(doc.paths['/v1/couriers']).sort()).toEqual(['get', 'put']);
    expect(Object.keys(doc.paths['/v1/couriers/{id}']).sort()).toEqual(['delete', 'get', 'put']);
    expect(Object.keys(doc.paths['/v1/sites/{id}']).sort()).toEqual(['delete', 'get', 'put']);
    expect(Object.keys(doc.paths['/v1/donors/{id}']).sort()).toEqual(['delete', 'get', 'put']);
    expect(Object.keys(doc.paths['/v1/geofences/{id}']).sort()).toEqual(['delete', 'put']);
    for (const path of ['/v1/sites', '/v1/geofences', '/v1/couriers/{id}/history']) expect(doc.paths[path].get).toBeDefined();
    expect(doc.paths['/v1/requests'].get.parameters.map((p: { name: string }) => p.name)).toEqual(['status', 'kind', 'since', 'limit', 'cursor']);
  });
});

describe.each(TEST_STORES)('fleet deletes on %s', (store) => {
  it('keep a deleted courier, site, donor and geofence deleted after a restart, and a late position flush does not bring the courier back', async () => {
    const place = placeOf(store);
    let t = await startTestServer({ ...FAST, ...place.env }, store);
    try {
      const admin = t.token('admin', 'ops');
      const req = (method: string, path: string, body?: unknown) => call(t.base, method, path, { token: admin, body });
      ok(await req('PUT', '/v1/couriers', [profile('dl-gone'), profile('dl-kept')]), 200, 'couriers');
      ok(await req('PUT', '/v1/sites/dl-site', { kind: 'food_bank', name: 'gone', ...LISBON }), 200, 'site');
      ok(await req('PUT', '/v1/donors/dl-don', { bloodType: 'B-', ...LISBON, available: true }), 200, 'donor');
      const square = { type: 'Polygon', coordinates: [[[-9.2, 38.7], [-9.1, 38.7], [-9.1, 38.8], [-9.2, 38.8], [-9.2, 38.7]]] };
      ok(await req('PUT', '/v1/geofences/dl-zone', { kind: 'zone', geometry: square }), 200, 'fence');
      ok(await req('POST', '/v1/couriers/dl-kept/location', { ...LISBON, ts: Date.now() }), 204, 'kept pinged');
      // a ping still waiting in the write-behind when the delete lands
      ok(await req('POST', '/v1/couriers/dl-gone/location', { ...LISBON, ts: Date.now() }), 204, 'gone pinged');
      for (const path of ['/v1/couriers/dl-gone', '/v1/sites/dl-site', '/v1/donors/dl-don', '/v1/geofences/dl-zone']) ok(await req('DELETE', path), 204, `delete ${path}`);
      for (const path of ['/v1/couriers/dl-gone', '/v1/sites/dl-site', '/v1/donors/dl-don']) expect(ok(await req('GET', path), 404, path).error.code).toBe('E_NOT_FOUND');
      expect(ok(await req('DELETE', '/v1/couriers/dl-gone'), 404, 'twice').error.code).toBe('E_NOT_FOUND');
      expect((await req('POST', '/v1/couriers/dl-gone/location', { ...LISBON, ts: Date.now() })).status).toBe(404);
      await new Promise((r) => setTimeout(r, 400)); // several flushes of POSITION_FLUSH_MS
      await t.close();

      t = await startTestServer({ ...FAST, ...place.env }, store);
      for (const path of ['/v1/couriers/dl-gone', '/v1/sites/dl-site', '/v1/donors/dl-don']) expect(ok(await req('GET', path), 404, `${path} after restart`).error.code).toBe('E_NOT_FOUND');
      expect(ok(await req('GET', '/v1/geofences'), 200, 'fences after restart').items).toEqual([]);
      expect(ok(await req('GET', '/v1/couriers/dl-kept'), 200, 'kept after restart')).toMatchObject({ id: 'dl-kept', lat: LISBON.lat, lng: LISBON.lng });
      expect(ok(await req('GET', '/v1/couriers'), 200, 'list after restart').items.map((c: { id: string }) => c.id)).toEqual(['dl-kept']);
    } finally {
      await t.close();
      await place.cleanup();
    }
  });

  it('gives a courier deleted and re-created under the same id none of the old courier\'s unwritten pings', async () => {
    const place = placeOf(store);
    // nothing is flushed until the server stops: the old ping is still waiting when the id is re-created
    const env = { ...FAST, POSITION_FLUSH_MS: '60000', ...place.env };
    let t = await startTestServer(env, store);
    try {
      const admin = t.token('admin', 'ops');
      const req = (method: string, path: string, body?: unknown) => call(t.base, method, path, { token: admin, body });
      ok(await req('PUT', '/v1/couriers', [profile('re-made')]), 200, 'courier');
      ok(await req('POST', '/v1/couriers/re-made/location', { ...LISBON, ts: Date.now() }), 204, 'old courier pinged');
      ok(await req('DELETE', '/v1/couriers/re-made'), 204, 'delete');
      ok(await req('PUT', '/v1/couriers', [profile('re-made')]), 200, 're-created');
      await t.close(); // the write-behind's last flush
      t = await startTestServer(env, store);
      const after = ok(await req('GET', '/v1/couriers/re-made'), 200, 're-created after restart');
      expect(after.lat, JSON.stringify(after)).toBeUndefined();
      const history = ok(await req('GET', `/v1/couriers/re-made/history?from=${Date.now() - 3600_000}`), 200, 'history');
      expect(history.geometry?.coordinates ?? [], JSON.stringify(history)).toEqual([]);
    } finally {
      await t.close();
      await place.cleanup();
    }
  });
});

/** One store both servers of a restart test open: a copy of the empty PGlite template, or a PostgreSQL schema. */
function placeOf(store: TestStore): { env: Record<string, string>; cleanup: () => Promise<void> } {
  if (store === 'pg') {
    const schema = testSchemaName('gd_fleet');
    return { env: { DATABASE_SCHEMA: schema }, cleanup: () => dropTestSchema(process.env.TEST_DATABASE_URL!, schema) };
  }
  const dir = mkdtempSync(join(tmpdir(), 'geodispatch-fleet-'));
  if (process.env.TEST_PGLITE_TEMPLATE !== undefined) cpSync(process.env.TEST_PGLITE_TEMPLATE, dir, { recursive: true });
  return { env: { DATA_DIR: dir }, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
}

describe('the price of onboarding in rate-limit tokens', () => {
  it('charges a batch one token per 1,000 couriers: a burst of 10 takes two batches of 5,000, not a third', async () => {
    const t = await startTestServer({ RATE_PER_SEC: '1', RATE_BURST: '10' });
    try {
      const admin = t.token('admin', 'onboarding');
      const batch = (n: number) => Array.from({ length: 5000 }, (_, i) => profile(`rl-${n}-${String(i).padStart(4, '0')}`, i));
      expect(ok(await call(t.base, 'PUT', '/v1/couriers', { token: admin, body: batch(1) }), 200, 'first 5,000').accepted).toBe(5000);
      expect(ok(await call(t.base, 'PUT', '/v1/couriers', { token: admin, body: batch(2) }), 200, 'second 5,000').accepted).toBe(5000);
      const third = await call(t.base, 'PUT', '/v1/couriers', { token: admin, body: batch(3) });
      expect(ok(third, 429, 'third 5,000').error.code).toBe('E_RATE_LIMITED');
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(ok(await call(t.base, 'GET', '/v1/couriers/rl-3-0000', { token: t.token('admin', 'other') }), 404, 'nothing of the refused batch').error.code).toBe('E_NOT_FOUND');
    } finally {
      await t.close();
    }
  });
});
