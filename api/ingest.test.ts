import { describe, expect, it } from 'vitest';
import { CourierIndex } from '../engine/courier-index.js';
import { GeofenceIndex } from '../engine/geofence-index.js';
import { MAX_FUTURE_MS, PositionIngest } from './ingest.js';
import { ApiMetrics } from './metrics.js';

const NOW = Date.UTC(2026, 5, 1, 12);

function setup() {
  const fences = new GeofenceIndex();
  fences.put('zone', { kind: 'zone', geometry: { type: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]] } });
  const crossings: string[] = [];
  const couriers = new CourierIndex({ fences, onFenceEvent: (e) => crossings.push(`${e.type}:${e.courierId}`) });
  for (const id of ['a', 'b']) couriers.upsert(id, { vehicle: 'bike', capabilities: [], capacity: 1 });
  const recorded: [string, number, number, number][] = [];
  const changed: string[] = [];
  let drains = 0;
  const metrics = new ApiMetrics();
  const ingest = new PositionIngest({
    couriers,
    positions: { record: (id, lat, lng, ts) => recorded.push([id, lat, lng, ts]) },
    fanOut: { courierChanged: (id) => changed.push(id), drainFences: () => void drains++ },
    metrics,
    clock: () => NOW,
  });
  const count = async (name: string): Promise<number> => {
    const m = (await metrics.render()).split('\n').find((l) => l.startsWith(name));
    return Number(m?.split(' ').at(-1) ?? 0);
  };
  return { ingest, couriers, recorded, changed, crossings, drains: () => drains, count };
}

describe('PositionIngest', () => {
  it('applies a ping to the index, writes it behind, fans it out and routes fence crossings once per call', () => {
    const w = setup();
    w.ingest.one('a', 0.5, 0.5, NOW - 1000);
    expect(w.couriers.get('a')).toMatchObject({ lat: 0.5, lng: 0.5, ts: NOW - 1000 });
    expect(w.recorded).toEqual([['a', 0.5, 0.5, NOW - 1000]]);
    expect(w.changed).toEqual(['a']);
    expect(w.crossings).toEqual(['enter:a']);
    expect(w.drains()).toBe(1);
  });

  it('refuses a ping from the future, reports a stale one, and changes nothing for either', () => {
    const w = setup();
    w.ingest.one('a', 0.5, 0.5, NOW);
    expect(() => w.ingest.one('a', 0.6, 0.6, NOW + MAX_FUTURE_MS + 1)).toThrow(expect.objectContaining({ status: 400, code: 'E_FUTURE_TIMESTAMP' }));
    expect(() => w.ingest.one('a', 0.7, 0.7, NOW - 1)).toThrow(expect.objectContaining({ status: 409, code: 'E_STALE' }));
    w.ingest.one('a', 0.8, 0.8, NOW + MAX_FUTURE_MS); // at the limit is fine
    expect(w.recorded.map((r) => r[1])).toEqual([0.5, 0.8]);
    expect(w.couriers.get('a')).toMatchObject({ lat: 0.8 });
  });

  it('answers a batch item by item with the same codes as single pings, applying every good one', async () => {
    const w = setup();
    w.ingest.one('b', 10, 10, NOW - 10);
    const out = w.ingest.batch([
      ['a', 0.5, 0.5, NOW],
      ['ghost', 0.5, 0.5, NOW],
      ['a', 95, 0.5, NOW],
      ['a', 0.5, 0.5, NOW + MAX_FUTURE_MS + 1],
      ['b', 10, 10, NOW - 20],
      'junk',
      ['bad id!', 0.5, 0.5, NOW],
      ['a', 0.5, 0.5, 5e-324],
      ['b', 10.001, 10, NOW],
    ], [{ index: 5, code: 'E_VALIDATION' }]);
    expect(out).toEqual({
      accepted: 2,
      rejected: [
        { index: 1, code: 'E_UNKNOWN_COURIER' }, { index: 2, code: 'E_BAD_COORDINATE' }, { index: 3, code: 'E_FUTURE_TIMESTAMP' },
        { index: 4, code: 'E_STALE' }, { index: 5, code: 'E_VALIDATION' }, { index: 6, code: 'E_VALIDATION' }, { index: 7, code: 'E_BAD_TIMESTAMP' },
      ],
    });
    expect(w.recorded.map((r) => r[0])).toEqual(['b', 'a', 'b']);
    expect(w.changed).toEqual(['b', 'a', 'b']);
    expect(w.drains()).toBe(2);
    expect(await w.count('geodispatch_pings_accepted_total')).toBe(3);
    expect(await w.count('geodispatch_pings_rejected_total')).toBe(7);
  });
});
