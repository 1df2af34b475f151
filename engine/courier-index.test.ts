import { booleanPointInPolygon } from '@turf/turf';
import { describe, expect, it } from 'vitest';
import { Prng } from '../fixtures/prng.js';
import { CellSpeeds } from './cell-speeds.js';
import { CAPABILITIES, COURIER_STATUSES, type Capability, type CourierStatus, VEHICLES, type Vehicle } from './courier-attributes.js';
import { CourierIndex, type FenceEvent, type NearbyOptions } from './courier-index.js';
import { EngineError } from './errors.js';
import { distanceMeters } from './geodesy.js';
import { GeofenceIndex } from './geofence-index.js';

interface Truth {
  id: string;
  lat: number;
  lng: number;
  status: CourierStatus;
  vehicle: Vehicle;
  capabilities: Capability[];
  capacity: number;
}

// brute force over the same data: every courier, exact distance, sorted by distance then insertion order
function oracle(truth: Map<string, Truth>, lat: number, lng: number, o: NearbyOptions): { id: string; distance: number }[] {
  const k = o.k ?? 10;
  const radius = o.radius ?? Infinity;
  const statuses = o.status === undefined ? undefined : ([] as CourierStatus[]).concat(o.status);
  const vehicles = o.vehicle === undefined ? undefined : ([] as Vehicle[]).concat(o.vehicle);
  const caps = o.capability === undefined ? [] : ([] as Capability[]).concat(o.capability);
  const hits: { id: string; distance: number }[] = [];
  for (const t of truth.values()) {
    if (statuses && !statuses.includes(t.status)) continue;
    if (vehicles && !vehicles.includes(t.vehicle)) continue;
    if (!caps.every((c) => t.capabilities.includes(c))) continue;
    if (o.minCapacity !== undefined && t.capacity < o.minCapacity) continue;
    if (o.exclude?.has(t.id)) continue;
    const d = distanceMeters(lat, lng, t.lat, t.lng);
    if (d <= radius) hits.push({ id: t.id, distance: d });
  }
  hits.sort((a, b) => a.distance - b.distance);
  return hits.slice(0, k);
}

function expectSameHits(actual: { id: string; distance: number }[], expected: { id: string; distance: number }[]): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(actual[i].distance).toBeCloseTo(expected[i].distance, 6);
  }
  // ids must match exactly except where distances tie, where order within the tie is free
  const key = (h: { id: string; distance: number }): string => `${h.distance.toFixed(6)}|${h.id}`;
  const tieFree = (hs: { id: string; distance: number }[]): string[] => {
    const last = hs.length > 0 ? hs[hs.length - 1].distance : 0;
    return hs.filter((h) => Math.abs(h.distance - last) > 1e-6).map(key).sort();
  };
  expect(tieFree(actual)).toEqual(tieFree(expected));
}

function randomCity(rng: Prng, n: number, centre: [number, number], spreadDeg: number): { index: CourierIndex; truth: Map<string, Truth> } {
  const index = new CourierIndex({ initialCapacity: 16 });
  const truth = new Map<string, Truth>();
  for (let i = 0; i < n; i++) {
    const id = `c${i}`;
    const r = spreadDeg * Math.abs(rng.normal());
    const a = rng.next() * 2 * Math.PI;
    const lat = Math.max(-90, Math.min(90, centre[0] + r * Math.sin(a)));
    let lng = centre[1] + r * Math.cos(a);
    if (lng > 180) lng -= 360;
    if (lng < -180) lng += 360;
    const t: Truth = {
      id,
      lat,
      lng,
      status: COURIER_STATUSES[rng.int(4)],
      vehicle: VEHICLES[rng.int(3)],
      capabilities: CAPABILITIES.filter(() => rng.next() < 0.3),
      capacity: 1 + rng.int(6),
    };
    index.upsert(id, t);
    index.move(id, lat, lng, 1000);
    truth.set(id, t);
  }
  return { index, truth };
}

// every ancestor's packed child records (what the nearest walk reads) equal its children's own table rows
function kidRecordsOutOfStep(index: CourierIndex): string[] {
  const cells = index.internals.cells;
  const wrong: string[] = [];
  for (let p = 0; p < cells.children.length; p++) {
    const kids = cells.children[p];
    if (kids === undefined || cells.cells[p] === undefined) continue;
    const rec = cells.kidRecords[p] as number[];
    if (rec.length !== 8 * kids.length) wrong.push(`node ${p}: ${rec.length} numbers for ${kids.length} children`);
    kids.forEach((c, i) => {
      if (cells.kidSlot[c] !== i) wrong.push(`node ${c}: slot ${cells.kidSlot[c]}, is child ${i}`);
      for (let f = 0; f < 4; f++) {
        if (rec[8 * i + f] !== cells.geo[4 * c + f]) wrong.push(`node ${c}: geo[${f}]`);
        if (rec[8 * i + 4 + f] !== cells.statusCounts[4 * c + f]) wrong.push(`node ${c}: count[${f}]`);
      }
    });
  }
  return wrong;
}

describe('CourierIndex.nearby', () => {
  it('matches the brute-force oracle on random cities with random filters', () => {
    const rng = new Prng(7);
    const centres: [number, number][] = [[51.5, -0.12], [40.7, -74.0], [-33.87, 151.2], [-1.29, 36.82]];
    for (let round = 0; round < 12; round++) {
      const centre = centres[round % centres.length];
      const { index, truth } = randomCity(rng, 300 + rng.int(1500), centre, 0.02 + rng.next() * 0.1);
      for (let q = 0; q < 40; q++) {
        const lat = centre[0] + rng.normal() * 0.05;
        const lng = centre[1] + rng.normal() * 0.05;
        const options: NearbyOptions = { k: 1 + rng.int(30) };
        if (rng.next() < 0.6) options.status = 'available';
        if (rng.next() < 0.2) options.capability = 'cold_chain';
        if (rng.next() < 0.2) options.vehicle = ['car', 'van'];
        if (rng.next() < 0.2) options.minCapacity = 3;
        if (rng.next() < 0.3) options.radius = rng.next() * 3000;
        if (rng.next() < 0.1) options.exclude = new Set(['c1', 'c2', 'c3']);
        expectSameHits(index.nearby(lat, lng, options), oracle(truth, lat, lng, options));
      }
    }
  });

  it('keeps matching the oracle while couriers move, change status and leave', () => {
    const rng = new Prng(11);
    const { index, truth } = randomCity(rng, 800, [48.85, 2.35], 0.05);
    let ts = 2000;
    for (let step = 0; step < 4000; step++) {
      const id = `c${rng.int(800)}`;
      const t = truth.get(id);
      const roll = rng.next();
      if (t === undefined) {
        const fresh: Truth = { id, lat: 48.85 + rng.normal() * 0.05, lng: 2.35 + rng.normal() * 0.05, status: 'available', vehicle: 'bike', capabilities: [], capacity: 1 };
        index.upsert(id, fresh);
        index.move(id, fresh.lat, fresh.lng, ts++);
        truth.set(id, fresh);
      } else if (roll < 0.8) {
        // mostly small steps inside the cell, sometimes a jump across the city
        const step = roll < 0.7 ? 0.0005 : 0.05;
        t.lat += rng.normal() * step;
        t.lng += rng.normal() * step;
        expect(['moved', 'moved-cell']).toContain(index.move(id, t.lat, t.lng, ts++));
      } else if (roll < 0.95) {
        t.status = COURIER_STATUSES[rng.int(4)];
        index.setStatus(id, t.status);
      } else {
        expect(index.remove(id)).toBe(true);
        truth.delete(id);
      }
      if (step % 100 === 0) {
        const lat = 48.85 + rng.normal() * 0.05;
        const lng = 2.35 + rng.normal() * 0.05;
        const options: NearbyOptions = { k: 10, status: rng.next() < 0.5 ? 'available' : undefined };
        expectSameHits(index.nearby(lat, lng, options), oracle(truth, lat, lng, options));
      }
    }
    expect(index.size).toBe(truth.size);
    expect(index.stats().cellChanges).toBeGreaterThan(0);
    expect(kidRecordsOutOfStep(index)).toEqual([]);
  });

  it('stays exact after thousands of cells empty out and are pruned from the tree', () => {
    const rng = new Prng(99);
    const index = new CourierIndex();
    const truth = new Map<string, Truth>();
    // couriers scattered over a wide area leave >1024 cells empty when they all regroup downtown
    for (let i = 0; i < 3000; i++) {
      const t: Truth = { id: `m${i}`, lat: 40 + rng.next() * 2, lng: -75 + rng.next() * 2, status: 'available', vehicle: 'car', capabilities: [], capacity: 1 };
      index.upsert(t.id, t);
      index.move(t.id, t.lat, t.lng, 1);
      truth.set(t.id, t);
    }
    const cellsBefore = index.stats().cells;
    for (const t of truth.values()) {
      t.lat = 40.7 + rng.normal() * 0.01;
      t.lng = -74 + rng.normal() * 0.01;
      index.move(t.id, t.lat, t.lng, 2);
    }
    expect(index.stats().cells).toBeLessThan(cellsBefore);
    expect(kidRecordsOutOfStep(index)).toEqual([]);
    for (let q = 0; q < 50; q++) {
      const lat = 40 + rng.next() * 2;
      const lng = -75 + rng.next() * 2;
      expectSameHits(index.nearby(lat, lng, { k: 7 }), oracle(truth, lat, lng, { k: 7 }));
    }
    // and the emptied area fills again
    for (const t of [...truth.values()].slice(0, 1500)) {
      t.lat = 40 + rng.next() * 2;
      t.lng = -75 + rng.next() * 2;
      index.move(t.id, t.lat, t.lng, 3);
    }
    for (let q = 0; q < 50; q++) {
      const lat = 40 + rng.next() * 2;
      const lng = -75 + rng.next() * 2;
      expectSameHits(index.nearby(lat, lng, { k: 12, radius: 20_000 }), oracle(truth, lat, lng, { k: 12, radius: 20_000 }));
    }
  });

  it('finds couriers across the antimeridian before nearer-looking ones on the same side', () => {
    const index = new CourierIndex();
    const points: [string, number, number][] = [['east', -16.5, 179.999], ['west', -16.5, -179.995], ['far', -16.5, 179.9]];
    for (const [id, lat, lng] of points) {
      index.upsert(id, { vehicle: 'car', capabilities: [], capacity: 1, status: 'available' });
      index.move(id, lat, lng, 1);
    }
    const hits = index.nearby(-16.5, -179.999, { k: 3 });
    expect(hits.map((h) => h.id)).toEqual(['east', 'west', 'far']);
    expect(hits[0].distance).toBeCloseTo(distanceMeters(-16.5, -179.999, -16.5, 179.999), 6);
    expect(hits[0].distance).toBeLessThan(250);
  });

  it('answers near the poles exactly, where longitudes converge', () => {
    const rng = new Prng(3);
    const index = new CourierIndex();
    const truth = new Map<string, Truth>();
    for (let i = 0; i < 400; i++) {
      const t: Truth = { id: `p${i}`, lat: 89.5 + rng.next() * 0.5, lng: -180 + rng.next() * 360, status: 'available', vehicle: 'van', capabilities: [], capacity: 2 };
      index.upsert(t.id, t);
      index.move(t.id, t.lat, t.lng, 1);
      truth.set(t.id, t);
    }
    for (const [lat, lng] of [[90, 0], [89.99, 45], [89.7, -179.9], [89.7, 179.9], [89.2, 10]] as [number, number][]) {
      expectSameHits(index.nearby(lat, lng, { k: 15 }), oracle(truth, lat, lng, { k: 15 }));
    }
  });

  it('handles k beyond the population, radius 0, an empty index and duplicate points', () => {
    const index = new CourierIndex();
    expect(index.nearby(10, 10, { k: 5 })).toEqual([]);
    for (const id of ['a', 'b', 'c']) {
      index.upsert(id, { vehicle: 'bike', capabilities: [], capacity: 1, status: 'available' });
      index.move(id, 10, 10, 1);
    }
    index.upsert('d', { vehicle: 'bike', capabilities: [], capacity: 1, status: 'available' });
    index.move('d', 10.001, 10, 1);
    const all = index.nearby(10, 10, { k: 1000 });
    expect(all.map((h) => h.id)).toEqual(['a', 'b', 'c', 'd']);
    expect(all.slice(0, 3).map((h) => h.distance)).toEqual([0, 0, 0]);
    expect(index.nearby(10, 10, { radius: 0 }).map((h) => h.id)).toEqual(['a', 'b', 'c']);
    expect(index.nearby(10, 10.0001, { radius: 0 })).toEqual([]);
    expect(index.nearby(10, 10, { k: 0 })).toEqual([]);
    expect(() => index.nearby(10, 10, { k: -1 })).toThrow(EngineError);
    expect(() => index.nearby(10, 10, { radius: NaN })).toThrow(EngineError);
  });
});

describe('CourierIndex.move', () => {
  it('rejects bad coordinates with E_BAD_COORDINATE and leaves the courier untouched', () => {
    const index = new CourierIndex();
    index.upsert('a', { vehicle: 'car', capabilities: ['cold_chain'], capacity: 2, status: 'available' });
    index.move('a', 51.5, -0.1, 100);
    const before = index.get('a');
    for (const [lat, lng] of [[NaN, 0], [0, Infinity], [90.0001, 0], [-91, 0], [0, 180.5], [0, -181], ['51' as unknown as number, 0]] as [number, number][]) {
      try {
        index.move('a', lat, lng, 200);
        expect.unreachable('move should have thrown');
      } catch (e) {
        expect((e as EngineError).code).toBe('E_BAD_COORDINATE');
      }
    }
    expect(index.get('a')).toEqual(before);
    expect(() => index.move('a', 1, 1, NaN)).toThrowError(expect.objectContaining({ code: 'E_BAD_TIMESTAMP' }));
    expect(() => index.move('ghost', 1, 1, 1)).toThrowError(expect.objectContaining({ code: 'E_UNKNOWN_COURIER' }));
  });

  it('ignores and counts a ping older than the last accepted one', () => {
    const index = new CourierIndex();
    index.upsert('a', { vehicle: 'car', capabilities: [], capacity: 2, status: 'available' });
    expect(index.move('a', 51.5, -0.1, 1000)).toBe('moved-cell');
    expect(index.move('a', 52.5, -0.1, 999)).toBe('stale');
    expect(index.get('a')).toMatchObject({ lat: 51.5, lng: -0.1, ts: 1000 });
    expect(index.stats().staleIgnored).toBe(1);
    expect(index.move('a', 51.5001, -0.1, 1000)).not.toBe('stale'); // an equal timestamp is not older
  });

  it('keeps a bad ping from one courier away from every other courier', () => {
    const index = new CourierIndex();
    for (const id of ['a', 'b']) {
      index.upsert(id, { vehicle: 'car', capabilities: [], capacity: 2, status: 'available' });
      index.move(id, 40, -74, 1);
    }
    const b = index.get('b');
    expect(() => index.move('a', 100, 0, 2)).toThrow(EngineError);
    expect(index.get('b')).toEqual(b);
    expect(index.nearby(40, -74, { k: 5 }).map((h) => h.id)).toEqual(['a', 'b']);
  });

  it('moves inside a cell without changing cells, and across cells when far', () => {
    const index = new CourierIndex();
    index.upsert('a', { vehicle: 'bike', capabilities: [], capacity: 1, status: 'available' });
    index.move('a', 51.5, -0.1, 1);
    const cell = index.get('a')?.cell;
    expect(index.move('a', 51.50001, -0.10001, 2)).toBe('moved');
    expect(index.get('a')?.cell).toBe(cell);
    expect(index.move('a', 51.6, -0.1, 3)).toBe('moved-cell');
    expect(index.get('a')?.cell).not.toBe(cell);
  });

  it('peeks a courier\'s position and status into a caller\'s object, and says when there is none', () => {
    const index = new CourierIndex();
    const out = { lat: 0, lng: 0, status: 'offline' as CourierStatus };
    expect(index.peek('a', out)).toBe(false);
    index.upsert('a', { vehicle: 'car', capabilities: [], capacity: 1, status: 'available' });
    expect(index.peek('a', out)).toBe(false); // registered, no ping yet
    index.move('a', 48.85, 2.35, 1);
    index.setStatus('a', 'busy');
    expect(index.peek('a', out)).toBe(true);
    expect(out).toEqual({ lat: 48.85, lng: 2.35, status: 'busy' });
  });

  it('rejects an unknown vehicle or capability with E_BAD_PROFILE and keeps the old profile', () => {
    const index = new CourierIndex();
    index.upsert('a', { vehicle: 'van', capabilities: ['medical'], capacity: 4 });
    expect(() => index.upsert('a', { vehicle: 'rocket' as Vehicle, capabilities: [], capacity: 1 })).toThrowError(expect.objectContaining({ code: 'E_BAD_PROFILE' }));
    expect(() => index.upsert('a', { vehicle: 'car', capabilities: ['teleport' as Capability], capacity: 1 })).toThrowError(expect.objectContaining({ code: 'E_BAD_PROFILE' }));
    expect(() => index.upsert('a', { vehicle: 'car', capabilities: [], capacity: -1 })).toThrowError(expect.objectContaining({ code: 'E_BAD_PROFILE' }));
    expect(index.get('a')).toMatchObject({ vehicle: 'van', capabilities: ['medical'], capacity: 4, status: 'offline' });
  });

  it('learns per-cell speeds from consecutive pings', () => {
    const speeds = new CellSpeeds();
    const index = new CourierIndex({ speeds });
    index.upsert('a', { vehicle: 'car', capabilities: [], capacity: 1, status: 'available' });
    index.move('a', 51.5, -0.1, 0);
    index.move('a', 51.5, -0.1 + 100 / (111_195 * Math.cos((51.5 * Math.PI) / 180)), 10_000); // ~100 m in 10 s
    const est = speeds.speedAt(51.5, -0.1);
    expect(est?.samples).toBe(1);
    expect(est?.metersPerSecond).toBeCloseTo(10, 1);
  });

  it('gives each nearest hit its cell\'s learned speed when asked, NaN where the cell has none', () => {
    const speeds = new CellSpeeds();
    const index = new CourierIndex({ speeds });
    for (const id of ['a', 'far']) index.upsert(id, { vehicle: 'car', capabilities: [], capacity: 1, status: 'available' });
    index.move('a', 51.5, -0.1, 0);
    index.move('a', 51.5, -0.1 + 100 / (111_195 * Math.cos((51.5 * Math.PI) / 180)), 10_000);
    index.move('far', 48.85, 2.35, 0); // Paris: a cell nobody has driven through
    const hits = index.nearby(51.5, -0.1, { k: 2, speeds });
    expect(hits.map((h) => h.id)).toEqual(['a', 'far']);
    expect(hits[0].speed).toBeCloseTo(speeds.speedAt(hits[0].lat, hits[0].lng)!.metersPerSecond, 5);
    expect(hits[1].speed).toBeNaN();
    expect(index.nearby(51.5, -0.1, { k: 1 })[0]).not.toHaveProperty('speed');
  });
});

describe('CourierIndex geofence events', () => {
  it('reports enter and exit exactly when a courier crosses a fence, like a brute-force point-in-polygon check', () => {
    const fences = new GeofenceIndex();
    const square = { type: 'Polygon' as const, coordinates: [[[-0.11, 51.49], [-0.09, 51.49], [-0.09, 51.51], [-0.11, 51.51], [-0.11, 51.49]]] };
    fences.put('zone', { kind: 'restricted', geometry: square });
    const events: FenceEvent[] = [];
    const index = new CourierIndex({ fences, onFenceEvent: (e) => events.push(e) });
    index.upsert('a', { vehicle: 'bike', capabilities: [], capacity: 1, status: 'available' });
    const path: [number, number, boolean][] = [[51.48, -0.1, false], [51.495, -0.1, true], [51.5, -0.1, true], [51.52, -0.1, false], [51.5, -0.105, true]];
    let ts = 0;
    for (const [lat, lng, inside] of path) {
      index.move('a', lat, lng, ts++);
      expect(index.fencesOf('a')).toEqual(inside ? ['zone'] : []);
    }
    expect(events.map((e) => `${e.type}:${e.fenceId}:${e.ts}`)).toEqual(['enter:zone:1', 'exit:zone:3', 'enter:zone:4']);
    index.remove('a');
    expect(events.at(-1)).toMatchObject({ type: 'exit', courierId: 'a' });
  });
});

describe('CourierIndex.within', () => {
  it('returns exactly the couriers inside a bbox, a crossing bbox or a polygon', () => {
    const rng = new Prng(5);
    const index = new CourierIndex();
    const pts: Truth[] = [];
    for (let i = 0; i < 2000; i++) {
      const t: Truth = { id: `w${i}`, lat: -20 + rng.next() * 10, lng: 170 + rng.next() * 20, status: 'available', vehicle: 'car', capabilities: [], capacity: 1 };
      if (t.lng > 180) t.lng -= 360;
      index.upsert(t.id, t);
      index.move(t.id, t.lat, t.lng, 1);
      pts.push(t);
    }
    const box = [175, -18, -178, -12] as const; // crosses ±180
    const expected = pts.filter((p) => p.lat >= -18 && p.lat <= -12 && (p.lng >= 175 || p.lng <= -178)).map((p) => p.id).sort();
    expect(index.within(box).sort()).toEqual(expected);
    const tri = { type: 'Polygon' as const, coordinates: [[[171, -19], [179, -19], [175, -11], [171, -19]]] };
    const inTri = index.within(tri).sort();
    expect(inTri.length).toBeGreaterThan(0);
    expect(inTri.every((id) => { const p = pts.find((q) => q.id === id) as Truth; return p.lng >= 171 && p.lng <= 179; })).toBe(true);
    for (let q = 0; q < 40; q++) {
      const minLat = -20 + rng.next() * 9;
      const maxLat = minLat + rng.next();
      const wrap = (l: number): number => (l > 180 ? l - 360 : l);
      const west = 170 + rng.next() * 19;
      const minLng = wrap(west);
      const maxLng = wrap(west + 0.1 + rng.next() * 3);
      const inBox = (p: Truth): boolean => p.lat >= minLat && p.lat <= maxLat && (minLng <= maxLng ? p.lng >= minLng && p.lng <= maxLng : p.lng >= minLng || p.lng <= maxLng);
      expect(index.within([minLng, minLat, maxLng, maxLat]).sort()).toEqual(pts.filter(inBox).map((p) => p.id).sort());
    }
    expect(inTri).toEqual(pts.filter((p) => booleanPointInPolygon([p.lng, p.lat], tri)).map((p) => p.id).sort());
    expect(() => index.within([0, 10, 1, 5])).toThrowError(expect.objectContaining({ code: 'E_BAD_GEOMETRY' }));
  });
});
