/**
 * Stacked deliveries end to end (PRODUCT §2 "Stacking"): the instance as `npm start` builds it, batched dispatch,
 * one car near a restaurant and two orders from it going the same way. The driver's socket gets the stack (one
 * offer frame per leg, each carrying the whole route), answers once, and reports each stop; the courier is busy
 * until its last dropoff. A restart hands both carried legs back to it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator, type Role } from './auth.js';
import { startServerProcess } from './server-process.js';
import { StreamClient, type TestServer, TEST_STORES, call, eventually, startTestServer } from './test-server.js';

const RESTAURANT = { lat: 51.5, lng: -0.12 };

describe.each(TEST_STORES)('stacks end to end on %s', (store) => {
  let t: TestServer;
  let admin: string;
  const sockets: StreamClient[] = [];
  const open = async (token: string): Promise<StreamClient> => {
    const c = await StreamClient.connect(t.ws, { token });
    sockets.push(c);
    return c;
  };
  const courier = async (id: string, lat: number, lng: number, capacity: number): Promise<void> => {
    expect((await call(t.base, 'PUT', `/v1/couriers/${id}`, { token: admin, body: { vehicle: 'car', capabilities: [], capacity } })).status).toBe(200);
    expect((await call(t.base, 'PUT', `/v1/couriers/${id}/status`, { token: t.token('driver', id), body: { status: 'available' } })).status).toBe(200);
    expect((await call(t.base, 'POST', `/v1/couriers/${id}/location`, { token: t.token('driver', id), body: { lat, lng, ts: Date.now() } })).status).toBe(204);
  };
  /** Two orders from the restaurant, to one street a kilometre apart, created together so one batch sees both. */
  const twoOrders = async (requester: string, lng = -0.12): Promise<[string, string]> => {
    const token = t.token('requester', requester);
    const order = (lat: number) => call(t.base, 'POST', '/v1/requests', { token, body: { kind: 'delivery', pickup: { ...RESTAURANT, lng }, dropoff: { lat, lng } } });
    const [near, far] = await Promise.all([order(51.52), order(51.53)]);
    expect([near.status, far.status]).toEqual([201, 201]);
    return [near.body.id as string, far.body.id as string];
  };

  beforeAll(async () => {
    t = await startTestServer({ DISPATCH_MODE: 'batched', DISPATCH_WINDOW_MS: '400', OFFER_TTL_MS: '5000' }, store);
    admin = t.token('admin', 'ops');
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await t.close();
  });

  it('offers two orders from one restaurant to one car as a stack, assigns both on one answer, and frees the car at its last dropoff', async () => {
    await courier('stk1', 51.49, -0.12, 4);
    const driver = await open(t.token('driver', 'stk1'));
    const [near, far] = await twoOrders('diner-1');
    const offers = [await driver.next((f) => f.t === 'offer', 'the first offer of the stack'), await driver.next((f) => f.t === 'offer', 'the second offer of the stack')];
    expect(offers.map((o) => o.requestId).sort()).toEqual([near, far].sort());
    expect(offers[0].stackId).toBeDefined();
    expect(offers[1].stackId).toBe(offers[0].stackId);
    const stops = offers[0].stops as { requestId: string; action: string }[];
    // both pickups at the restaurant, then the nearer door, then the farther one
    expect(stops.map((s) => `${s.action}:${s.requestId === near ? 'near' : 'far'}`).slice(2)).toEqual(['dropoff:near', 'dropoff:far']);
    expect(stops.slice(0, 2).every((s) => s.action === 'pickup')).toBe(true);
    expect((offers[1].stack as unknown[]).length).toBe(2);

    driver.send({ t: 'accept', offerId: offers[1].offerId });
    const assigned = [await driver.next((f) => f.t === 'assigned', 'assigned'), await driver.next((f) => f.t === 'assigned', 'assigned again')];
    expect(assigned.map((a) => a.requestId).sort()).toEqual([near, far].sort());
    const desk = t.token('dispatcher', 'desk');
    const drv = t.token('driver', 'stk1');
    const held = await call(t.base, 'GET', '/v1/couriers/stk1', { token: desk });
    expect(held.body.status).toBe('busy');
    expect([...(held.body.requestIds as string[])].sort()).toEqual([near, far].sort());

    // the dispatchers' map shows both legs on the car, as one stack
    const map = await open(desk);
    map.send({ t: 'watch', bbox: [-0.2, 51.4, 0, 51.6], kinds: ['requests'] });
    const snapshot = await map.next((f) => f.t === 'snapshot', 'a map snapshot');
    const onMap = (snapshot.requests as { id: string; courierId?: string; stackId?: string }[]).filter((r) => r.id === near || r.id === far);
    expect(onMap.map((r) => [r.courierId, r.stackId])).toEqual([['stk1', offers[0].stackId], ['stk1', offers[0].stackId]]);

    // a driver reconnecting mid-stack hears both legs it carries
    const again = await open(t.token('driver', 'stk1'));
    await again.next((f) => f.t === 'assigned' && f.requestId === near, 'the near leg on reconnect');
    await again.next((f) => f.t === 'assigned' && f.requestId === far, 'the far leg on reconnect');

    const progress = async (id: string, status: string) => (await call(t.base, 'POST', `/v1/requests/${id}/progress`, { token: drv, body: { status } })).body.status;
    expect(await progress(near, 'picked_up')).toBe('picked_up');
    expect(await progress(far, 'picked_up')).toBe('picked_up');
    // the far door's ETA runs through the near door first: from a point east of both, the stack's route is the near
    // door, then 1,112 m on (177 s by car at 8.5 m/s, roads 1.35× the straight line), not straight to the far door
    expect((await call(t.base, 'POST', '/v1/couriers/stk1/location', { token: drv, body: { lat: 51.52, lng: -0.1, ts: Date.now() } })).status).toBe(204);
    const etaOf = async (id: string) => (await call(t.base, 'GET', `/v1/requests/${id}`, { token: desk })).body.eta as number;
    await eventually(async () => ((await call(t.base, 'GET', `/v1/requests/${far}`, { token: desk })).body.courier?.lng === -0.1 ? true : undefined), 'the car seen east of the doors');
    const [nearEta, farEta] = [await etaOf(near), await etaOf(far)];
    expect(farEta - nearEta).toBeGreaterThanOrEqual(175);
    expect(farEta - nearEta).toBeLessThanOrEqual(179);
    expect(await progress(near, 'delivered')).toBe('delivered');
    expect((await call(t.base, 'GET', '/v1/couriers/stk1', { token: desk })).body.status).toBe('busy');
    expect(await progress(far, 'delivered')).toBe('delivered');
    await eventually(async () => ((await call(t.base, 'GET', '/v1/couriers/stk1', { token: desk })).body.status === 'available' ? true : undefined), 'the car free after its last dropoff');
  });

  it('offers a car finishing its stack the next order en route, and times that order after the stack\'s last door', async () => {
    const lng = 1.0; // 70 km from the other tests' cars
    await courier('stk3', 51.49, lng, 3);
    const driver = await open(t.token('driver', 'stk3'));
    const drv = t.token('driver', 'stk3');
    const desk = t.token('dispatcher', 'desk');
    const [near, far] = await twoOrders('diner-3', lng);
    const offer = await driver.next((f) => f.t === 'offer' && f.stackId !== undefined, 'the stack');
    driver.send({ t: 'accept', offerId: offer.offerId });
    for (const id of [near, far]) {
      await eventually(async () => ((await call(t.base, 'GET', `/v1/requests/${id}`, { token: desk })).body.status === 'assigned' ? true : undefined), `${id} assigned`);
      expect((await call(t.base, 'POST', `/v1/requests/${id}/progress`, { token: drv, body: { status: 'picked_up' } })).status).toBe(200);
    }
    expect((await call(t.base, 'POST', '/v1/couriers/stk3/location', { token: drv, body: { lat: 51.518, lng, ts: Date.now() } })).status).toBe(204);
    // picked up 111 m past the far door, as the car is about to finish its stack
    const next = await call(t.base, 'POST', '/v1/requests', { token: t.token('requester', 'diner-4'), body: { kind: 'delivery', pickup: { lat: 51.531, lng }, dropoff: { lat: 51.535, lng } } });
    expect(next.status).toBe(201);
    const enRoute = await driver.next((f) => f.t === 'offer' && f.requestId === next.body.id, 'the en-route offer');
    expect(enRoute.enRoute.finishIn).toBeGreaterThan(200); // the near door, then the far one
    expect(enRoute.eta).toBeGreaterThan(enRoute.enRoute.finishIn);
    driver.send({ t: 'accept', offerId: enRoute.offerId });
    await eventually(async () => ((await call(t.base, 'GET', `/v1/requests/${next.body.id}`, { token: desk })).body.status === 'assigned' ? true : undefined), 'the en-route order assigned');
    // near door 35 s, far door +177 s, the pickup +18 s, its door +71 s (car 8.5 m/s, roads 1.35× the line)
    const eta = (await call(t.base, 'GET', `/v1/requests/${next.body.id}`, { token: desk })).body.eta as number;
    expect(eta).toBeGreaterThanOrEqual(295);
    expect(eta).toBeLessThanOrEqual(308);
    expect((await call(t.base, 'GET', '/v1/couriers/stk3', { token: desk })).body.requestIds).toHaveLength(3);
  });

  it('declining one offer of a stack puts both orders back, never to be offered to that car again', async () => {
    await courier('stk2', 51.49, 0.5, 4); // 40 km from the first test's car, beyond the search radius
    const driver = await open(t.token('driver', 'stk2'));
    const [near, far] = await twoOrders('diner-2', 0.5);
    const first = await driver.next((f) => f.t === 'offer' && (f.requestId === near || f.requestId === far), 'the stack');
    expect(first.stackId).toBeDefined();
    driver.send({ t: 'decline', offerId: first.offerId });
    const desk = t.token('dispatcher', 'desk');
    for (const id of [near, far]) {
      await eventually(async () => ((await call(t.base, 'GET', `/v1/requests/${id}`, { token: desk })).body.status === 'pending' ? true : undefined), `order ${id} pending again`);
    }
    expect((await call(t.base, 'GET', '/v1/couriers/stk2', { token: desk })).body.status).toBe('available');
    // the only car near them declined both: they wait, and it is not asked again (the one frame left is the stack's other offer)
    await new Promise((r) => setTimeout(r, 1000));
    expect(driver.frames.filter((f) => f.t === 'offer' && (f.requestId === near || f.requestId === far)).map((f) => f.stackId)).toEqual([first.stackId]);
  });
});

describe('a stack across a SIGKILL of `node dist/api/main.js` on its embedded store', () => {
  const SECRET = 'stacks-test-secret-stacks-test-secret-stacks';
  const auth = new Authenticator({ secret: SECRET, algorithm: 'HS256' }, []);
  const token = (role: Role, sub: string): string => auth.signToken({ sub, role }, 3600);
  const env = { JWT_SECRET: SECRET, SEED_CITY: 'none', DISPATCH_MODE: 'batched', DISPATCH_WINDOW_MS: '400', OFFER_TTL_MS: '15000' };
  const dataDir = mkdtempSync(join(tmpdir(), 'geodispatch-stacks-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('hands both carried legs back to the car after the restart, and its stops still report', async () => {
    let srv = await startServerProcess({ ...env, DATA_DIR: dataDir });
    try {
      const admin = token('admin', 'ops');
      const drv = token('driver', 'crash-car');
      expect((await call(srv.base, 'PUT', '/v1/couriers/crash-car', { token: admin, body: { vehicle: 'car', capabilities: [], capacity: 3 } })).status).toBe(200);
      expect((await call(srv.base, 'PUT', '/v1/couriers/crash-car/status', { token: drv, body: { status: 'available' } })).status).toBe(200);
      expect((await call(srv.base, 'POST', '/v1/couriers/crash-car/location', { token: drv, body: { lat: 51.49, lng: -0.12, ts: Date.now() } })).status).toBe(204);
      const driver = await StreamClient.connect(srv.ws, { token: drv });
      const diner = token('requester', 'diner-9');
      // the far order's deadline passes before the kill: an accepted assignment comes back even so
      const deadline = Date.now() + 4000;
      const order = (lat: number, extra = {}) => call(srv.base, 'POST', '/v1/requests', { token: diner, body: { kind: 'delivery', pickup: RESTAURANT, dropoff: { lat, lng: -0.12 }, ...extra } });
      const ids = (await Promise.all([order(51.52), order(51.53, { deadline })])).map((r) => r.body.id as string);
      const offer = await driver.next((f) => f.t === 'offer', 'the stack', 10_000);
      expect(offer.stackId).toBeDefined();
      expect((await call(srv.base, 'POST', `/v1/offers/${offer.offerId}/accept`, { token: drv })).status).toBe(200);
      expect((await call(srv.base, 'POST', `/v1/requests/${ids[0]}/progress`, { token: drv, body: { status: 'picked_up' } })).status).toBe(200);
      driver.close();
      await new Promise((r) => setTimeout(r, Math.max(0, deadline + 500 - Date.now())));

      await srv.kill();
      srv = await startServerProcess({ ...env, DATA_DIR: dataDir });
      const desk = token('dispatcher', 'desk');
      const car = await call(srv.base, 'GET', '/v1/couriers/crash-car', { token: desk });
      expect(car.body.status).toBe('busy');
      expect([...(car.body.requestIds as string[])].sort()).toEqual([...ids].sort());
      expect((await call(srv.base, 'GET', `/v1/requests/${ids[0]}`, { token: diner })).body).toMatchObject({ status: 'picked_up', assignment: { courierId: 'crash-car' } });
      expect((await call(srv.base, 'GET', `/v1/requests/${ids[1]}`, { token: diner })).body).toMatchObject({ status: 'assigned', assignment: { courierId: 'crash-car' } });
      // still one stack on the map: the legs came back one by one, with the stack they were offered in
      const map = await StreamClient.connect(srv.ws, { token: desk });
      map.send({ t: 'watch', bbox: [-0.2, 51.4, 0, 51.6], kinds: ['requests'] });
      const snapshot = await map.next((f) => f.t === 'snapshot', 'a map snapshot after the restart');
      map.close();
      const onMap = (snapshot.requests as { id: string; courierId?: string; stackId?: string }[]).filter((r) => ids.includes(r.id));
      expect(onMap.map((r) => [r.courierId, r.stackId])).toEqual([['crash-car', offer.stackId], ['crash-car', offer.stackId]]);
      const progress = async (id: string, status: string) => (await call(srv.base, 'POST', `/v1/requests/${id}/progress`, { token: drv, body: { status } })).status;
      expect(await progress(ids[1], 'picked_up')).toBe(200);
      expect(await progress(ids[0], 'delivered')).toBe(200);
      expect((await call(srv.base, 'GET', '/v1/couriers/crash-car', { token: desk })).body.status).toBe('busy');
      expect(await progress(ids[1], 'delivered')).toBe(200);
      await eventually(async () => ((await call(srv.base, 'GET', '/v1/couriers/crash-car', { token: desk })).body.status === 'available' ? true : undefined), 'the car free after its last dropoff');
    } finally {
      await srv.kill();
    }
  });
});
