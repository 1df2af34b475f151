import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Prng } from '../fixtures/prng.js';
import { CellSpeeds } from './cell-speeds.js';
import { COURIER_STATUSES, VEHICLES } from './courier-attributes.js';
import { CourierIndex } from './courier-index.js';
import { CourierSnapshot, writeCourierSnapshot } from './courier-snapshot.js';
import { distanceMeters } from './geodesy.js';

function buildIndex(seed: number, n: number): CourierIndex {
  const rng = new Prng(seed);
  const index = new CourierIndex();
  for (let i = 0; i < n; i++) {
    const id = `courier-${i}`;
    index.upsert(id, { vehicle: VEHICLES[rng.int(3)], capabilities: rng.next() < 0.2 ? ['cold_chain'] : [], capacity: 1 + rng.int(4), status: COURIER_STATUSES[rng.int(4)] });
    // two clusters, one straddling the antimeridian
    const fiji = rng.next() < 0.3;
    const lat = fiji ? -17 + rng.normal() * 0.1 : 19.43 + rng.normal() * 0.08;
    let lng = fiji ? 180 + rng.normal() * 0.1 : -99.13 + rng.normal() * 0.08;
    if (lng > 180) lng -= 360;
    index.move(id, lat, lng, 1000 + i);
  }
  return index;
}

describe('courier snapshot', () => {
  it('answers nearest queries exactly like the live index it was taken from', () => {
    const index = buildIndex(21, 3000);
    const snap = CourierSnapshot.from(writeCourierSnapshot(index, { createdAt: 42 }));
    expect(snap.count).toBe(3000);
    expect(snap.createdAt).toBe(42);
    expect(snap.indexVersion).toBe(index.version);
    const rng = new Prng(22);
    for (let q = 0; q < 200; q++) {
      const fiji = q % 3 === 0;
      const lat = fiji ? -17 + rng.normal() * 0.1 : 19.43 + rng.normal() * 0.08;
      const lng = fiji ? (q % 2 === 0 ? 179.95 : -179.95) : -99.13 + rng.normal() * 0.08;
      const filter = q % 2 === 0 ? { status: 'available' as const, k: 10 } : { k: 25, capability: 'cold_chain' as const, radius: 5000 };
      const live = index.nearby(lat, lng, filter);
      const frozen = snap.nearby(lat, lng, filter);
      expect(frozen.map((h) => h.distance)).toEqual(live.map((h) => h.distance));
      expect(frozen.map((h) => snap.id(h.index)).sort()).toEqual(live.map((h) => h.id).sort());
    }
  });

  it('carries each courier position, status and profile, and looks ids up', () => {
    const index = buildIndex(5, 500);
    const snap = CourierSnapshot.from(writeCourierSnapshot(index));
    for (let i = 0; i < snap.count; i++) {
      const view = index.get(snap.id(i));
      expect(view).toBeDefined();
      expect([snap.lat(i), snap.lng(i), snap.status(i), snap.vehicle(i), snap.capacity(i), snap.ts(i)]).toEqual([view?.lat, view?.lng, view?.status, view?.vehicle, view?.capacity, view?.ts]);
      expect(snap.capabilities(i)).toEqual(view?.capabilities);
      expect(snap.indexOf(snap.id(i))).toBe(i);
    }
    expect(snap.indexOf('nobody')).toBe(-1);
    expect(Number.isNaN(snap.localSpeed(0))).toBe(true);
  });

  it('stays exact snapshot after snapshot while couriers leave, others take their slots and cells empty and fill', () => {
    // the writer keeps encoded ids per slot and the buckets' H3 order between snapshots: both must follow the index
    const index = buildIndex(31, 800);
    const rng = new Prng(32);
    let next = 800;
    for (let round = 0; round < 12; round++) {
      for (let j = 0; j < 60; j++) {
        const victim = `courier-${rng.int(next)}`;
        if (index.get(victim) !== undefined) index.remove(victim);
        const id = `courier-${next++}-${'é'.repeat(round % 3)}`;
        index.upsert(id, { vehicle: 'bike', capabilities: [], capacity: 1, status: 'available' });
        // new couriers in a third area far from the others: fresh buckets every round
        index.move(id, 40 + rng.normal() * 0.05 + round * 0.2, -3.7 + rng.normal() * 0.05, 5000 + round);
      }
      const snap = CourierSnapshot.from(writeCourierSnapshot(index));
      const alive = index.size;
      expect(snap.count).toBe(alive);
      for (let i = 0; i < snap.count; i++) {
        const id = snap.id(i);
        expect(snap.indexOf(id)).toBe(i);
        expect([snap.lat(i), snap.lng(i)]).toEqual([index.get(id)?.lat, index.get(id)?.lng]);
      }
      for (let q = 0; q < 20; q++) {
        const lat = 40 + round * 0.2 + rng.normal() * 0.05;
        const lng = -3.7 + rng.normal() * 0.05;
        const live = index.nearby(lat, lng, { k: 8 });
        expect(snap.nearby(lat, lng, { k: 8 }).map((h) => snap.id(h.index)).sort()).toEqual(live.map((h) => h.id).sort());
      }
    }
  });

  it('carries the learned speed of each courier\'s neighbourhood', () => {
    const speeds = new CellSpeeds();
    const index = new CourierIndex({ speeds });
    index.upsert('a', { vehicle: 'car', capabilities: [], capacity: 1, status: 'available' });
    index.upsert('b', { vehicle: 'car', capabilities: [], capacity: 1, status: 'available' });
    index.move('a', 51.5, -0.1, 0);
    index.move('a', 51.5009, -0.1, 10_000); // ~100 m in 10 s
    index.move('b', 40.7, -74, 0);
    const snap = CourierSnapshot.from(writeCourierSnapshot(index, { speeds }));
    expect(snap.localSpeed(snap.indexOf('a'))).toBeCloseTo(10, 0);
    expect(Number.isNaN(snap.localSpeed(snap.indexOf('b')))).toBe(true);
  });

  it('keeps only the couriers that pass the filter, and excludes ids on request', () => {
    const index = buildIndex(9, 800);
    const snap = CourierSnapshot.from(writeCourierSnapshot(index, { filter: { status: 'available' } }));
    const available = index.within([-180, -90, 180, 90], { status: 'available' });
    expect(snap.count).toBe(available.length);
    const first = snap.nearby(19.43, -99.13, { k: 1 })[0];
    const without = snap.nearby(19.43, -99.13, { k: 1, exclude: new Set([snap.id(first.index)]) })[0];
    expect(without.index).not.toBe(first.index);
    expect(without.distance).toBeGreaterThanOrEqual(first.distance);
  });

  it('is empty-safe and refuses a foreign buffer with E_BAD_SNAPSHOT', () => {
    const snap = CourierSnapshot.from(writeCourierSnapshot(new CourierIndex()));
    expect(snap.count).toBe(0);
    expect(snap.nearby(0, 0)).toEqual([]);
    expect(() => CourierSnapshot.from(new SharedArrayBuffer(64))).toThrowError(expect.objectContaining({ code: 'E_BAD_SNAPSHOT' }));
    expect(() => CourierSnapshot.from(new SharedArrayBuffer(8))).toThrowError(expect.objectContaining({ code: 'E_BAD_SNAPSHOT' }));
  });

  it('is read from a real worker thread without copying: the worker sees what the main thread wrote', async () => {
    const compiled = fileURLToPath(new URL('../dist/engine/courier-snapshot.js', import.meta.url));
    expect(existsSync(compiled), 'run `npm run build` first (npm test does)').toBe(true);
    const index = buildIndex(31, 2000);
    const buffer = writeCourierSnapshot(index);
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       import(workerData.module).then(({ CourierSnapshot }) => {
         const snap = CourierSnapshot.from(workerData.buffer);
         const hits = snap.nearby(19.43, -99.13, { k: 5, status: 'available' });
         new Float64Array(workerData.buffer, 32, 2)[1] = 7; // write through shared memory
         parentPort.postMessage(hits.map((h) => [snap.id(h.index), h.distance]));
       });`,
      { eval: true, workerData: { buffer, module: new URL(`file://${compiled}`).href } },
    );
    const result = await new Promise<[string, number][]>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    const live = index.nearby(19.43, -99.13, { k: 5, status: 'available' });
    expect(result.map((r) => r[1])).toEqual(live.map((h) => h.distance));
    expect(result.map((r) => r[0]).sort()).toEqual(live.map((h) => h.id).sort());
    expect(CourierSnapshot.from(buffer).createdAt).toBe(7); // same memory, not a copy
    expect(distanceMeters(19.43, -99.13, live[0].lat, live[0].lng)).toBeCloseTo(live[0].distance, 6);
  });
});
