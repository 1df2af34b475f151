import { bbox as turfBBox, booleanPointInPolygon, kinks } from '@turf/turf';
import type { MultiPolygon, Polygon, Position } from 'geojson';
import { describe, expect, it } from 'vitest';
import { selfCrossing } from './area.js';
import { EngineError } from './errors.js';
import { GeofenceIndex } from './geofence-index.js';
import type { BBox } from './geodesy.js';
import { seededRandom } from '../fixtures/prng.js';


// fences live in a 1° × 1° "city" around (0.5, 10.5) so random points hit several of them
const CITY = { minLng: 10, minLat: 0, maxLng: 11, maxLat: 1 };

function rect(x: number, y: number, w: number, h: number): Position[] {
  return [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]];
}

function randomPart(rnd: () => number): Position[][] {
  const x = CITY.minLng + rnd() * 0.8;
  const y = CITY.minLat + rnd() * 0.8;
  const w = 0.02 + rnd() * 0.2;
  const h = 0.02 + rnd() * 0.2;
  switch (Math.floor(rnd() * 4)) {
    case 0:
      return [rect(x, y, w, h)];
    case 1:
      return [[[x, y], [x + w, y], [x + w * rnd(), y + h], [x, y]]];
    case 2: // concave L
      return [[[x, y], [x + w, y], [x + w, y + h / 3], [x + w / 3, y + h / 3], [x + w / 3, y + h], [x, y + h], [x, y]]];
    default: // square with a hole in the middle
      return [rect(x, y, w, h), rect(x + w / 4, y + h / 4, w / 2, h / 2).reverse()];
  }
}

function randomGeometry(rnd: () => number): Polygon | MultiPolygon {
  if (rnd() < 0.7) return { type: 'Polygon', coordinates: randomPart(rnd) };
  const n = 2 + Math.floor(rnd() * 3);
  return { type: 'MultiPolygon', coordinates: Array.from({ length: n }, () => randomPart(rnd)) };
}

function randomFences(seed: number, n: number): { index: GeofenceIndex; fences: Map<string, Polygon | MultiPolygon> } {
  const rnd = seededRandom(seed);
  const index = new GeofenceIndex();
  const fences = new Map<string, Polygon | MultiPolygon>();
  for (let i = 0; i < n; i++) {
    const g = randomGeometry(rnd);
    const id = `f${i}`;
    fences.set(id, g);
    index.put(id, { kind: i % 2 ? 'zone' : 'depot', geometry: g });
  }
  return { index, fences };
}

function bruteContaining(fences: Map<string, Polygon | MultiPolygon>, lat: number, lng: number): string[] {
  return [...fences].filter(([, g]) => booleanPointInPolygon([lng, lat], g)).map(([id]) => id).sort();
}

function boxesOf(g: Polygon | MultiPolygon): BBox[] {
  const polys = g.type === 'Polygon' ? [g.coordinates] : g.coordinates;
  return polys.map((c) => {
    const [minLng, minLat, maxLng, maxLat] = turfBBox({ type: 'Polygon', coordinates: c });
    return { minLng, minLat, maxLng, maxLat };
  });
}

function overlaps(a: BBox, b: BBox): boolean {
  return a.minLng <= b.maxLng && a.minLat <= b.maxLat && a.maxLng >= b.minLng && a.maxLat >= b.minLat;
}

function expectBadGeometry(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).code).toBe('E_BAD_GEOMETRY');
    return;
  }
  throw new Error('expected E_BAD_GEOMETRY');
}

describe('selfCrossing', () => {
  it('finds a ring crossing or touching itself exactly when a brute force over every pair of edges does (turf kinks agrees on crossings)', () => {
    const rnd = seededRandom(11);
    let crossed = 0;
    for (let t = 0; t < 400; t++) {
      // a star around a centre (simple) or the same points shuffled (usually not)
      const n = 4 + Math.floor(rnd() * 40);
      const pts: Position[] = Array.from({ length: n }, (_, i) => {
        const a = (2 * Math.PI * i) / n;
        const r = 0.5 + rnd();
        return [Math.round((10 + r * Math.cos(a)) * 1e4) / 1e4, Math.round((20 + r * Math.sin(a)) * 1e4) / 1e4];
      });
      if (t % 2 === 1) for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [pts[i], pts[j]] = [pts[j], pts[i]];
      }
      const ring = [...pts, pts[0]];
      const found = selfCrossing(ring);
      const brute = bruteCrossing(ring);
      expect(found !== undefined, `ring ${t}`).toBe(brute);
      if (found !== undefined) crossed++;
      if (!brute) expect(kinks({ type: 'Polygon', coordinates: [ring] }).features, `ring ${t}`).toEqual([]);
    }
    // a polygon with a hole well inside its shell is a fence
    const holed = new GeofenceIndex();
    holed.put('ring', { kind: 'zone', geometry: { type: 'Polygon', coordinates: [rect(10, 0, 1, 1), rect(10.25, 0.25, 0.5, 0.5)] } });
    expect(holed.containing(0.1, 10.1)).toEqual(['ring']);
    expect(holed.containing(0.5, 10.5)).toEqual([]);
    // a position repeated at once is no crossing (RFC 7946 allows it)
    expect(selfCrossing([[13, 52], [13, 52], [14, 52], [14, 53], [13, 53], [13, 52]])).toBeUndefined();
    expect(crossed).toBeGreaterThan(100);
    expect(crossed).toBeLessThan(400);
  });
});

function bruteCrossing(ring: Position[]): boolean {
  const n = ring.length - 1;
  const turn = (a: Position, b: Position, c: Position): number => Math.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]));
  const on = (p: Position, q: Position, r: Position): boolean => q[0] <= Math.max(p[0], r[0]) && q[0] >= Math.min(p[0], r[0]) && q[1] <= Math.max(p[1], r[1]) && q[1] >= Math.min(p[1], r[1]);
  for (let i = 0; i < n; i++) {
    for (let j = i + 2; j < n; j++) {
      if (i === 0 && j === n - 1) continue;
      const [a, b, c, d] = [ring[i], ring[i + 1], ring[j], ring[j + 1]];
      const o = [turn(a, b, c), turn(a, b, d), turn(c, d, a), turn(c, d, b)];
      if ((o[0] !== o[1] && o[2] !== o[3]) || (o[0] === 0 && on(a, c, b)) || (o[1] === 0 && on(a, d, b)) || (o[2] === 0 && on(c, a, d)) || (o[3] === 0 && on(c, b, d))) return true;
    }
  }
  return false;
}

describe('GeofenceIndex', () => {
  it('containing matches a brute-force turf check over every fence at random points', () => {
    const { index, fences } = randomFences(1, 150);
    const rnd = seededRandom(2);
    let nonEmpty = 0;
    for (let i = 0; i < 3000; i++) {
      const lat = CITY.minLat - 0.05 + rnd() * 1.1;
      const lng = CITY.minLng - 0.05 + rnd() * 1.1;
      const got = index.containing(lat, lng);
      expect(got).toEqual(bruteContaining(fences, lat, lng));
      if (got.length > 0) nonEmpty++;
    }
    expect(nonEmpty).toBeGreaterThan(500);
  });

  it('contains agrees with turf on vertices and edges, counting the boundary of outer rings and holes as inside', () => {
    const index = new GeofenceIndex();
    const holed: Polygon = { type: 'Polygon', coordinates: [rect(0, 0, 4, 4), rect(1, 1, 2, 2).reverse()] };
    index.put('h', { kind: 'zone', geometry: holed });
    const [no] = index.candidates({ minLng: 0, minLat: 0, maxLng: 4, maxLat: 4 });
    expect(index.contains(no, 0, 0)).toBe(true); // outer vertex
    expect(index.contains(no, 0, 2)).toBe(true); // outer edge
    expect(index.contains(no, 1, 2)).toBe(true); // hole edge
    expect(index.contains(no, 2, 2)).toBe(false); // inside the hole
    expect(index.contains(no, 0.5, 0.5)).toBe(true);
    expect(index.contains(no, 5, 5)).toBe(false);
  });

  it('candidates equal brute-force bbox intersection and cover every fence containing a point in the box', () => {
    const { index, fences } = randomFences(3, 120);
    const numberOf = new Map<string, number>();
    for (const no of index.candidates(CITY)) numberOf.set(index.idOf(no), no);
    expect(numberOf.size).toBe(120);
    const rnd = seededRandom(4);
    for (let q = 0; q < 300; q++) {
      const w = rnd() * 0.2;
      const h = rnd() * 0.2;
      const box = { minLng: CITY.minLng + rnd() * 0.9, minLat: CITY.minLat + rnd() * 0.9, maxLng: 0, maxLat: 0 };
      box.maxLng = box.minLng + w;
      box.maxLat = box.minLat + h;
      const got = index.candidates(box);
      const expected = [...fences]
        .filter(([, g]) => boxesOf(g).some((b) => overlaps(b, box)))
        .map(([id]) => numberOf.get(id)!)
        .sort((a, b) => a - b);
      expect([...got]).toEqual(expected);
      const set = new Set(got);
      for (let i = 0; i < 20; i++) {
        const lat = box.minLat + rnd() * h;
        const lng = box.minLng + rnd() * w;
        for (const id of bruteContaining(fences, lat, lng)) expect(set.has(numberOf.get(id)!)).toBe(true);
      }
    }
  });

  it('candidates returns the same frozen empty array when nothing intersects', () => {
    const { index } = randomFences(5, 20);
    const a = index.candidates({ minLng: -50, minLat: -50, maxLng: -40, maxLat: -40 });
    const b = new GeofenceIndex().candidates(CITY);
    expect(a).toEqual([]);
    expect(a).toBe(b);
    expect(Object.isFrozen(a)).toBe(true);
  });

  it('a fence split at the antimeridian is found from both sides and by a crossing query box', () => {
    const index = new GeofenceIndex();
    const split: MultiPolygon = { type: 'MultiPolygon', coordinates: [[rect(170, -5, 10, 10)], [rect(-180, -5, 10, 10)]] };
    index.put('pacific', { kind: 'zone', geometry: split });
    index.put('far', { kind: 'zone', geometry: { type: 'Polygon', coordinates: [rect(0, -5, 10, 10)] } });
    expect(index.containing(0, 175)).toEqual(['pacific']);
    expect(index.containing(0, -175)).toEqual(['pacific']);
    expect(index.containing(0, 180)).toEqual(['pacific']);
    const crossing = index.candidates({ minLng: 178, minLat: -1, maxLng: -178, maxLat: 1 });
    expect(crossing.map((no) => index.idOf(no))).toEqual(['pacific']);
  });

  it('rejects bad geometry with E_BAD_GEOMETRY and keeps the previous fence', () => {
    const index = new GeofenceIndex();
    const good: Polygon = { type: 'Polygon', coordinates: [rect(10, 0, 1, 1)] };
    index.put('a', { kind: 'zone', geometry: good });
    const version = index.version;
    const bad: unknown[] = [
      { type: 'Polygon', coordinates: [[[10, 0], [11, 0], [11, 1], [10, 1]]] }, // open ring
      { type: 'Polygon', coordinates: [[[10, 0], [11, 0], [10, 0]]] }, // fewer than 4 positions
      { type: 'Polygon', coordinates: [[[10, 0], [11, 0], [11, 91], [10, 0]]] }, // lat 91
      { type: 'LineString', coordinates: [[10, 0], [11, 1]] }, // wrong type
      { type: 'Polygon', coordinates: [rect(-170, 0, 340, 1)] }, // unsplit antimeridian crossing
      { type: 'MultiPolygon', coordinates: [[rect(0, 0, 1, 1)], [rect(-100, 0, 200, 1)]] }, // one part too wide
      { type: 'Polygon', coordinates: [] },
      { type: 'Polygon', coordinates: [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]] }, // a bowtie crosses itself
      { type: 'Polygon', coordinates: [[[0, 0], [2, 0], [2, 2], [1, 0], [0, 2], [0, 0]]] }, // touches itself at (1, 0)
      { type: 'Polygon', coordinates: [rect(10, 0, 1, 1), rect(20, 0, 0.1, 0.1)] }, // a hole outside its shell
      { type: 'Polygon', coordinates: [rect(10, 0, 1, 1), rect(10.5, 0.5, 1, 0.1)] }, // a hole crossing its shell
      { type: 'Polygon', coordinates: [rect(10, 0, 1, 1), rect(10.2, 0.2, 0.3, 0.3), rect(10.4, 0.4, 0.3, 0.3)] }, // two holes crossing
      null,
    ];
    for (const geometry of bad) {
      expectBadGeometry(() => index.put('a', { kind: 'zone', geometry: geometry as Polygon }));
      expectBadGeometry(() => index.put('b', { kind: 'zone', geometry: geometry as Polygon }));
    }
    expectBadGeometry(() => index.put('a', { kind: '', geometry: good }));
    expect(index.version).toBe(version);
    expect(index.size).toBe(1);
    expect(index.get('a')).toEqual({ id: 'a', kind: 'zone', geometry: good });
    expect(index.containing(0.5, 10.5)).toEqual(['a']);
  });

  it('says to split an antimeridian-crossing fence', () => {
    const index = new GeofenceIndex();
    expect(() => index.put('x', { kind: 'zone', geometry: { type: 'Polygon', coordinates: [rect(-179, 0, 358, 1)] } })).toThrow(
      /split .*MultiPolygon/,
    );
  });

  it('bumps version on every put and remove, replaces fences by id, and forgets removed ones', () => {
    const index = new GeofenceIndex();
    expect(index.version).toBe(0);
    index.put('b', { kind: 'depot', geometry: { type: 'Polygon', coordinates: [rect(0, 0, 1, 1)] } });
    index.put('a', { kind: 'zone', geometry: { type: 'Polygon', coordinates: [rect(0, 0, 2, 2)] } });
    expect(index.version).toBe(2);
    expect(index.size).toBe(2);
    expect(index.ids()).toEqual(['a', 'b']);
    expect(index.containing(0.5, 0.5)).toEqual(['a', 'b']);

    index.put('b', { kind: 'shelter', geometry: { type: 'Polygon', coordinates: [rect(5, 5, 1, 1)] } });
    expect(index.version).toBe(3);
    expect(index.size).toBe(2);
    expect(index.containing(0.5, 0.5)).toEqual(['a']);
    expect(index.containing(5.5, 5.5)).toEqual(['b']);
    const [noB] = index.candidates({ minLng: 5, minLat: 5, maxLng: 6, maxLat: 6 });
    expect(index.kindOf(noB)).toBe('shelter');
    expect(index.idOf(noB)).toBe('b');

    expect(index.remove('b')).toBe(true);
    expect(index.version).toBe(4);
    expect(index.remove('b')).toBe(false);
    expect(index.version).toBe(4);
    expect(index.get('b')).toBeUndefined();
    expect(index.size).toBe(1);
    expect(index.ids()).toEqual(['a']);
    expect(index.containing(5.5, 5.5)).toEqual([]);
    expect(index.candidates({ minLng: 5, minLat: 5, maxLng: 6, maxLat: 6 })).toEqual([]);
    expect(() => index.idOf(noB)).toThrow(/refresh candidates/);
  });

  it('accepts a Feature and keeps its own frozen copy of the geometry', () => {
    const index = new GeofenceIndex();
    const ring = rect(0, 0, 1, 1);
    index.put('f', { kind: 'zone', geometry: { type: 'Feature', properties: {}, geometry: { type: 'Polygon', coordinates: [ring] } } });
    ring[2][0] = 50; // the client mutates its object afterwards
    expect(index.get('f')!.geometry).toEqual({ type: 'Polygon', coordinates: [rect(0, 0, 1, 1)] });
    expect(Object.isFrozen(index.get('f')!.geometry)).toBe(true);
    expect(index.containing(0.9, 0.9)).toEqual(['f']);
  });

  it('stays equal to brute force through random puts, replacements and removals', () => {
    const rnd = seededRandom(9);
    const index = new GeofenceIndex();
    const fences = new Map<string, Polygon | MultiPolygon>();
    let version = 0;
    for (let step = 0; step < 600; step++) {
      const id = `f${Math.floor(rnd() * 40)}`;
      if (rnd() < 0.3) {
        const had = fences.delete(id);
        expect(index.remove(id)).toBe(had);
        if (had) version++;
      } else {
        const g = randomGeometry(rnd);
        fences.set(id, g);
        index.put(id, { kind: 'zone', geometry: g });
        version++;
      }
      expect(index.version).toBe(version);
      const lat = CITY.minLat + rnd();
      const lng = CITY.minLng + rnd();
      expect(index.containing(lat, lng)).toEqual(bruteContaining(fences, lat, lng));
    }
    expect(index.ids()).toEqual([...fences.keys()].sort());
    expect(new Set(index.candidates(CITY)).size).toBe(fences.size);
  });

  it('containing rejects an invalid coordinate with E_BAD_COORDINATE', () => {
    expect(() => new GeofenceIndex().containing(91, 0)).toThrow(expect.objectContaining({ code: 'E_BAD_COORDINATE' }));
  });
});
