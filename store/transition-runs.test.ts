/**
 * Transitions merged into runs must store exactly what they store one at a time. The oracle: the same random
 * dispatch histories (requests, offers, accepts, declines, deliveries, cancels, blood reservations on shared
 * lots, couriers reused) committed in random groups to one embedded store and one transition per call to
 * another; every table, in insertion order, must come out the same. A third store gets each group twice and
 * some groups again inside the next one (a retry after a lost answer), which must change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../fixtures/prng.js';
import { PGliteStore } from './pglite-store.js';
import type { SqlDriver } from './sql.js';
import type { Transition } from './store.js';
import { keysOf, transitionRuns } from './transition-runs.js';

const T0 = Date.UTC(2030, 0, 1);
const COURIERS = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5'];
const LOTS = [0, 1, 2].map((i) => ({ siteId: 'bank', product: 'red_cells', bloodType: i === 2 ? 'O-' : 'A+', expiresAt: T0 + i * 86_400_000 }));

const request = (id: string, at: number) => ({ id, kind: 'delivery' as const, urgency: 'routine' as const, status: 'pending' as const, requesterId: 'u1', payload: {}, createdAt: at, updatedAt: at });

describe('transitionRuns', () => {
  it('starts a new run exactly where a transition names a row the run holds, keeping every row in order', () => {
    const ts: Transition[] = [
      { seq: 1, at: 10, requests: [request('r1', 10)] },
      { seq: 2, at: 11, requests: [request('r2', 11)] },
      { seq: 3, at: 12, offers: [{ id: 'o1', requestId: 'r1', courierId: 'c1', status: 'live', createdAt: 12, expiresAt: 99 }], requestStatus: [{ id: 'r1', status: 'offered' }] },
      { seq: 4, at: 13, offerStatus: [{ id: 'o9', status: 'accepted' }], courierStatus: [{ id: 'c2', status: 'busy' }] },
      { seq: 5, at: 14, courierStatus: [{ id: 'c2', status: 'available' }] },
    ];
    const runs = transitionRuns(ts);
    expect(runs.map((r) => r.applied.map((a) => a.seq))).toEqual([[1, 2], [3, 4], [5]]);
    expect(runs[0].requests).toEqual([request('r1', 10), request('r2', 11)]);
    // stamped steps carry their own transition's time; unstamped rows are passed as they are
    expect(runs[1].requestStatus).toEqual([{ id: 'r1', status: 'offered', txAt: 12 }]);
    expect(runs[1].offerStatus).toEqual([{ id: 'o9', status: 'accepted', txAt: 13 }]);
    expect(runs[1].offers?.[0]).toBe(ts[2].offers?.[0]);
    expect(transitionRuns(ts, true).map((r) => r.applied.map((a) => a.seq))).toEqual([[1], [2], [3], [4], [5]]);
  });

  it('names lots, idempotency keys and parents as well as requests, offers and couriers', () => {
    const t: Transition = {
      seq: 1,
      at: 1,
      requests: [{ ...request('leg', 1), parentId: 'parent' }],
      idempotency: [{ principal: 'p', key: 'k', requestId: 'leg', bodyHash: 'h', status: 201, reply: {}, createdAt: 1 }],
      reservationsMade: [{ requestId: 'leg', ...LOTS[0], count: 1 }],
      events: [{ at: 1, type: 'stock.low', courierId: 'c3' }],
    };
    expect(new Set(keysOf(t))).toEqual(new Set(['r:leg', 'r:parent', 'k:p\u0000k', `l:bank\u0000red_cells\u0000A+\u0000${T0}`, 'c:c3']));
  });
});

describe('runs against one transition at a time, on the embedded store', () => {
  const stores: PGliteStore[] = [];
  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      const s = await PGliteStore.open('memory://');
      await s.migrate();
      stores.push(s);
    }
  }, 120_000);
  afterAll(async () => {
    for (const s of stores) await s.close();
  });

  it.each([1, 2, 3])('seed %i: every table the same, retries and regroupings included', async (seed) => {
    const rng = seededRandom(seed);
    const prefix = `s${seed}-`;
    const history = randomHistory(rng, prefix, 400, seed * 100_000);
    const [merged, single, retried] = stores;
    for (const s of stores) {
      await s.upsertCouriers(COURIERS.map((id) => ({ id: prefix + id, vehicle: 'bike', capabilities: ['cold_chain'], capacity: 1 })));
      await s.upsertSites([{ id: prefix + 'bank', kind: 'blood_bank', name: 'Bank', lat: 1, lng: 1 }]);
      await s.upsertInventory(prefix + 'bank', LOTS.map((l) => ({ product: l.product, bloodType: l.bloodType, expiresAt: l.expiresAt, count: 50 })));
    }
    let groups = 0;
    let previous: Transition[] = [];
    for (let i = 0; i < history.length; ) {
      const group = history.slice(i, i + 1 + Math.floor(rng() * 40));
      i += group.length;
      groups++;
      await merged.commitTransitions(group);
      for (const t of group) await single.commitTransition(t);
      // the retried store: sometimes the previous group again in front of this one (a lost answer, regrouped), then this one twice
      await retried.commitTransitions(rng() < 0.5 ? [...previous, ...group] : group);
      await retried.commitTransitions(group);
      previous = group;
    }
    expect(groups).toBeGreaterThan(10);
    const want = await dump(single, prefix);
    expect(want.requests.length).toBeGreaterThan(50);
    expect(want.assignments.length).toBeGreaterThan(10);
    expect(want.reservations.length).toBeGreaterThan(10);
    expect(await dump(merged, prefix)).toEqual(want);
    expect(await dump(retried, prefix)).toEqual(want);
    // the merge did merge: far fewer runs than transitions
    expect(transitionRuns(history).length).toBeLessThan(history.length * 0.8);
  }, 120_000);
});

/** A valid random dispatch history over a few couriers and three shared lots. */
function randomHistory(rng: () => number, prefix: string, n: number, seq0: number): Transition[] {
  const out: Transition[] = [];
  const pending: string[] = [];
  const offered = new Map<string, { offer: string; courier: string }>();
  const assigned = new Map<string, { courier: string }>();
  const held = new Map<string, (typeof LOTS)[number]>();
  const idle = new Set(COURIERS.map((c) => prefix + c));
  let seq = seq0;
  let made = 0;
  const pick = <T>(xs: T[]): T => xs[Math.floor(rng() * xs.length)];
  for (let i = 0; i < n; i++) {
    const at = T0 + i * 7;
    const t: Transition = { seq: ++seq, at };
    const ev = (type: string, requestId?: string, courierId?: string) => (t.events ??= []).push({ seq: t.seq, at, type, requestId, courierId, payload: { p: prefix, i } });
    const roll = rng();
    if (roll < 0.3 || (pending.length === 0 && offered.size === 0 && assigned.size === 0)) {
      const id = `${prefix}r${made++}`;
      t.requests = [request(id, at)];
      if (rng() < 0.4) {
        const lot = pick(LOTS);
        held.set(id, lot);
        t.reservationsMade = [{ requestId: id, ...lot, siteId: prefix + lot.siteId, count: 1 + Math.floor(rng() * 2) }];
      }
      if (rng() < 0.3) t.idempotency = [{ principal: 'u1', key: `${prefix}k${made}`, requestId: id, bodyHash: 'h', status: 201, reply: { id }, createdAt: at }];
      ev('request.created', id);
      pending.push(id);
    } else if (roll < 0.5 && pending.length > 0 && idle.size > 0) {
      const id = pending.splice(Math.floor(rng() * pending.length), 1)[0];
      const courier = pick([...idle]);
      idle.delete(courier);
      const offer = `${id}-o${t.seq}`;
      t.offers = [{ id: offer, requestId: id, courierId: courier, status: 'live', createdAt: at, expiresAt: at + 15_000 }];
      t.requestStatus = [{ id, status: 'offered' }];
      t.courierStatus = [{ id: courier, status: 'offered' }];
      ev('request.offered', id, courier);
      offered.set(id, { offer, courier });
    } else if (roll < 0.7 && offered.size > 0) {
      const [id, o] = pick([...offered]);
      offered.delete(id);
      if (rng() < 0.7) {
        t.offerStatus = [{ id: o.offer, status: 'accepted' }];
        t.requestStatus = [{ id, status: 'assigned' }];
        t.assignmentsStarted = [{ requestId: id, courierId: o.courier, offerId: o.offer, createdAt: at }];
        t.courierStatus = [{ id: o.courier, status: 'busy' }];
        ev('request.assigned', id, o.courier);
        assigned.set(id, { courier: o.courier });
      } else {
        t.offerStatus = [{ id: o.offer, status: 'declined' }];
        t.requestStatus = [{ id, status: 'pending' }];
        t.courierStatus = [{ id: o.courier, status: 'available' }];
        ev('offer.declined', id, o.courier);
        idle.add(o.courier);
        pending.push(id);
      }
    } else if (roll < 0.9 && assigned.size > 0) {
      const [id, a] = pick([...assigned]);
      assigned.delete(id);
      t.assignmentsEnded = [{ requestId: id }];
      t.requestStatus = [{ id, status: 'delivered' }];
      t.courierStatus = [{ id: a.courier, status: 'available' }];
      const lot = held.get(id);
      if (lot) t.reservationsIssued = [{ requestId: id, ...lot, siteId: prefix + lot.siteId, count: 1 }];
      held.delete(id);
      ev('request.delivered', id, a.courier);
      idle.add(a.courier);
    } else if (pending.length > 0) {
      const id = pending.splice(Math.floor(rng() * pending.length), 1)[0];
      t.requestStatus = [{ id, status: 'cancelled' }];
      const lot = held.get(id);
      if (lot) t.reservationsReleased = [{ requestId: id, ...lot, siteId: prefix + lot.siteId, count: 1 }];
      held.delete(id);
      ev('request.cancelled', id);
    } else {
      t.events = [{ at, type: 'stock.low', payload: { p: prefix, i } }];
    }
    out.push(t);
  }
  return out;
}

/** Every row the history could touch, in insertion order (serial ids and the outbox number order them, then are dropped). */
async function dump(store: PGliteStore, prefix: string): Promise<Record<string, unknown[]>> {
  const db = (store as unknown as { db: SqlDriver }).db;
  const like = `${prefix}%`;
  const q = (sql: string) => db.query<Record<string, unknown>>(sql, [like]);
  return {
    requests: await q('SELECT id, status, created_at, updated_at, payload FROM requests WHERE id LIKE $1 ORDER BY id'),
    offers: await q('SELECT id, request_id, courier_id, status, created_at, closed_at FROM offers WHERE id LIKE $1 ORDER BY id'),
    assignments: await q('SELECT request_id, courier_id, offer_id, created_at, ended_at FROM assignments WHERE request_id LIKE $1 ORDER BY id'),
    reservations: await q('SELECT request_id, site_id, blood_type, count, created_at, released_at, issued_at FROM reservations WHERE request_id LIKE $1 ORDER BY id'),
    lots: await q('SELECT blood_type, expires_at, count, reserved FROM inventory_units WHERE site_id LIKE $1 ORDER BY blood_type, expires_at'),
    couriers: await q('SELECT id, status FROM couriers WHERE id LIKE $1 ORDER BY id'),
    keys: await q('SELECT principal, key, request_id FROM idempotency_keys WHERE key LIKE $1 ORDER BY key'),
    events: await q("SELECT seq, at, type, request_id, courier_id, payload FROM events WHERE payload->>'p' || '%' = $1 ORDER BY outbox_seq"),
  };
}
