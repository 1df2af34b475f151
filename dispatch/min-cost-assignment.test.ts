import { describe, expect, it } from 'vitest';
import { buildProblem, solveAssignment, type AssignmentProblem, type AssignmentResult } from './min-cost-assignment.js';
import { seededRandom } from '../fixtures/prng.js';

type Edge = [row: number, col: number, cost: number];


/** Exhaustive optimum over every injective partial assignment (each edge tried separately, so duplicates count). */
function bruteForceOptimum(p: AssignmentProblem): number {
  const used = new Uint8Array(p.cols);
  const walk = (row: number): number => {
    if (row === p.rows) return 0;
    let best = p.unassignedCost[row] + walk(row + 1);
    for (let e = p.rowStart[row]; e < p.rowStart[row + 1]; e++) {
      const c = p.colIndex[e];
      if (used[c]) continue;
      used[c] = 1;
      best = Math.min(best, p.cost[e] + walk(row + 1));
      used[c] = 0;
    }
    return best;
  };
  return walk(0);
}

/**
 * Independent exact oracle for medium sizes: successive shortest paths with Bellman–Ford on the plain residual
 * graph (no potentials, no heap), rows matched in reverse order to exercise different paths.
 */
function bellmanFordOptimum(p: AssignmentProblem): number {
  const colOwner = new Int32Array(p.cols).fill(-1);
  const rowCol = new Int32Array(p.rows).fill(-1);
  const rowCost = new Float64Array(p.rows);
  for (let s = p.rows - 1; s >= 0; s--) {
    // labels on rows: cost to make row `r` give up its current match (or, for s, to be matched)
    const rowDist = new Float64Array(p.rows).fill(Infinity);
    const rowPrev = new Int32Array(p.rows).fill(-1);
    const rowPrevCol = new Int32Array(p.rows).fill(-1);
    const rowPrevCost = new Float64Array(p.rows);
    rowDist[s] = 0;
    for (let round = 0; round <= p.rows; round++) {
      let changed = false;
      for (let r = 0; r < p.rows; r++) {
        if (rowDist[r] === Infinity) continue;
        const release = r === s ? 0 : rowCost[r];
        for (let e = p.rowStart[r]; e < p.rowStart[r + 1]; e++) {
          const c = p.colIndex[e];
          const owner = colOwner[c];
          if (owner === -1 || owner === r) continue;
          const d = rowDist[r] - release + p.cost[e];
          if (d < rowDist[owner] - 1e-12) {
            rowDist[owner] = d;
            rowPrev[owner] = r;
            rowPrevCol[owner] = c;
            rowPrevCost[owner] = p.cost[e];
            changed = true;
          }
        }
      }
      if (!changed) break;
    }
    // end: some labelled row r moves to a free column or to unassigned
    let best = Infinity;
    let bestRow = -1;
    let bestCol = -1;
    let bestCost = 0;
    for (let r = 0; r < p.rows; r++) {
      if (rowDist[r] === Infinity) continue;
      const release = r === s ? 0 : rowCost[r];
      const drop = rowDist[r] - release + p.unassignedCost[r];
      if (rowCol[r] !== -2 && drop < best) [best, bestRow, bestCol, bestCost] = [drop, r, -2, p.unassignedCost[r]];
      for (let e = p.rowStart[r]; e < p.rowStart[r + 1]; e++) {
        const c = p.colIndex[e];
        if (colOwner[c] !== -1) continue;
        const d = rowDist[r] - release + p.cost[e];
        if (d < best) [best, bestRow, bestCol, bestCost] = [d, r, c, p.cost[e]];
      }
    }
    let r = bestRow;
    let col = bestCol;
    let cost = bestCost;
    for (;;) {
      const old = rowCol[r];
      if (old >= 0) colOwner[old] = -1;
      rowCol[r] = col;
      rowCost[r] = cost;
      if (col >= 0) colOwner[col] = r;
      if (r === s) break;
      [r, col, cost] = [rowPrev[r], rowPrevCol[r], rowPrevCost[r]];
    }
  }
  return rowCost.reduce((a, b) => a + b, 0);
}

/** Asserts each column is used once, every pair is a real edge, and the cost recomputes to totalCost. */
function expectValid(p: AssignmentProblem, result: AssignmentResult): void {
  expect(result.rowToCol.length).toBe(p.rows);
  const seen = new Set<number>();
  let total = 0;
  for (let r = 0; r < p.rows; r++) {
    const c = result.rowToCol[r];
    if (c === -1) {
      total += p.unassignedCost[r];
      continue;
    }
    expect(seen.has(c)).toBe(false);
    seen.add(c);
    total += cheapestEdge(p, r, c);
  }
  expect(result.totalCost).toBeCloseTo(total, 9);
}

function cheapestEdge(p: AssignmentProblem, row: number, col: number): number {
  let best = Infinity;
  for (let e = p.rowStart[row]; e < p.rowStart[row + 1]; e++) if (p.colIndex[e] === col) best = Math.min(best, p.cost[e]);
  if (best === Infinity) throw new Error(`row ${row} was assigned column ${col}, which is not one of its candidates`);
  return best;
}

function randomSmallProblem(rand: () => number): AssignmentProblem {
  const rows = 1 + Math.floor(rand() * 6);
  const cols = 1 + Math.floor(rand() * 7);
  const density = rand();
  const integerCosts = rand() < 0.5; // small integers force many equal costs and ties
  const draw = () => (integerCosts ? Math.floor(rand() * 5) : rand() * 100);
  const edges: Edge[] = [];
  for (let r = 0; r < rows; r++) {
    if (rand() < 0.1) continue; // a row with no candidates at all
    for (let c = 0; c < cols; c++) {
      if (rand() < density) edges.push([r, c, draw()]);
      if (rand() < 0.05) edges.push([r, c, draw()]); // duplicate edge to the same column
    }
  }
  const penalties = Array.from({ length: rows }, () => (rand() < 0.2 ? 1000 : draw() * 1.5));
  return buildProblem(rows, cols, edges, penalties);
}

/** A geometric instance: points in a 10 km square, each row's candidates its k nearest columns by distance. */
function randomGeometricProblem(rand: () => number, rows: number, cols: number, k: number, penalty: number): AssignmentProblem {
  const colX = Array.from({ length: cols }, () => rand() * 10_000);
  const colY = Array.from({ length: cols }, () => rand() * 10_000);
  const edges: Edge[] = [];
  for (let r = 0; r < rows; r++) {
    const x = rand() * 10_000;
    const y = rand() * 10_000;
    const near = colX
      .map((cx, c) => [c, Math.hypot(cx - x, colY[c] - y)] as const)
      .sort((a, b) => a[1] - b[1])
      .slice(0, k);
    for (const [c, d] of near) edges.push([r, c, d]);
  }
  return buildProblem(rows, cols, edges, new Array(rows).fill(penalty));
}

describe('solveAssignment', () => {
  it('matches the exhaustive optimum on 600 small random instances with ties, empty rows and duplicate edges', () => {
    const rand = seededRandom(20240601);
    for (let n = 0; n < 600; n++) {
      const p = randomSmallProblem(rand);
      const result = solveAssignment(p);
      expect(result.totalCost, `instance ${n}`).toBeCloseTo(bruteForceOptimum(p), 9);
      expectValid(p, result);
      expect(result.augmentations).toBe(p.rows);
    }
  });

  it('matches the exhaustive optimum when rows outnumber columns', () => {
    const rand = seededRandom(7);
    for (let n = 0; n < 200; n++) {
      const rows = 4 + Math.floor(rand() * 3);
      const cols = 1 + Math.floor(rand() * 3);
      const edges: Edge[] = [];
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) if (rand() < 0.8) edges.push([r, c, Math.floor(rand() * 10)]);
      const p = buildProblem(rows, cols, edges, Array.from({ length: rows }, () => Math.floor(rand() * 12)));
      const result = solveAssignment(p);
      expect(result.totalCost).toBeCloseTo(bruteForceOptimum(p), 9);
      expectValid(p, result);
    }
  });

  it('matches an independent Bellman-Ford oracle on medium geometric instances', () => {
    const rand = seededRandom(99);
    for (let n = 0; n < 5; n++) {
      // more rows than the area's couriers can serve well, so paths reroute and some rows drop
      const p = randomGeometricProblem(rand, 60, 50, 6, 2_500);
      const result = solveAssignment(p);
      expect(result.totalCost).toBeCloseTo(bellmanFordOptimum(p), 6);
      expectValid(p, result);
    }
  });

  it('returns an assignment no single move or pairwise swap can improve on a larger instance', () => {
    const p = randomGeometricProblem(seededRandom(4242), 300, 600, 10, 3_000);
    const result = solveAssignment(p);
    expectValid(p, result);
    const { rowToCol } = result;
    const owner = new Int32Array(p.cols).fill(-1);
    rowToCol.forEach((c, r) => c >= 0 && (owner[c] = r));
    const current = (r: number) => (rowToCol[r] === -1 ? p.unassignedCost[r] : cheapestEdge(p, r, rowToCol[r]));
    for (let r = 0; r < p.rows; r++) {
      expect(p.unassignedCost[r]).toBeGreaterThanOrEqual(current(r) - 1e-9);
      for (let e = p.rowStart[r]; e < p.rowStart[r + 1]; e++) {
        const c = p.colIndex[e];
        const other = owner[c];
        if (other === r) continue;
        if (other === -1) {
          expect(p.cost[e]).toBeGreaterThanOrEqual(current(r) - 1e-9);
          continue;
        }
        // swap: r takes c, `other` takes r's column (or goes unassigned if r had none / no such edge)
        const mine = rowToCol[r];
        const otherAlt = mine === -1 ? p.unassignedCost[other] : tryEdge(p, other, mine);
        const before = current(r) + current(other);
        expect(p.cost[e] + Math.min(otherAlt, p.unassignedCost[other])).toBeGreaterThanOrEqual(before - 1e-9);
      }
    }
  });

  it('leaves a row with no candidates unassigned at its penalty', () => {
    const p = buildProblem(2, 2, [[0, 1, 5]], [100, 7]);
    const result = solveAssignment(p);
    expect(Array.from(result.rowToCol)).toEqual([1, -1]);
    expect(result.totalCost).toBe(12);
  });

  it('drops a row when its penalty is cheaper than any candidate', () => {
    const p = buildProblem(1, 1, [[0, 0, 50]], [20]);
    expect(Array.from(solveAssignment(p).rowToCol)).toEqual([-1]);
  });

  it('moves an earlier row to its second choice when a later row needs the shared courier more', () => {
    // row 0 prefers col 0 (1) over col 1 (2); row 1 has only col 0 (1) and a huge emergency penalty
    const p = buildProblem(2, 2, [[0, 0, 1], [0, 1, 2], [1, 0, 1]], [10, 1e9]);
    const result = solveAssignment(p);
    expect(Array.from(result.rowToCol)).toEqual([1, 0]);
    expect(result.totalCost).toBe(3);
  });

  it('gives the only courier to the emergency and drops the routine request', () => {
    const p = buildProblem(2, 1, [[0, 0, 10], [1, 0, 400]], [30, 1e9]);
    const result = solveAssignment(p);
    expect(Array.from(result.rowToCol)).toEqual([-1, 0]);
    expect(result.totalCost).toBe(430);
  });

  it('assigns rather than drops when the penalty equals the edge cost, and breaks cost ties by lower column', () => {
    expect(Array.from(solveAssignment(buildProblem(1, 1, [[0, 0, 5]], [5])).rowToCol)).toEqual([0]);
    expect(Array.from(solveAssignment(buildProblem(1, 3, [[0, 2, 4], [0, 1, 4]], [9])).rowToCol)).toEqual([1]);
  });

  it('returns the same assignment for the same input every time', () => {
    const p = randomGeometricProblem(seededRandom(5), 80, 40, 5, 4_000);
    const a = solveAssignment(p);
    const b = solveAssignment(p);
    expect(Array.from(a.rowToCol)).toEqual(Array.from(b.rowToCol));
    expect(a.totalCost).toBe(b.totalCost);
  });

  it('solves an empty batch and ignores columns that appear in no edge', () => {
    expect(solveAssignment(buildProblem(0, 5, [], []))).toEqual({ rowToCol: new Int32Array(0), totalCost: 0, augmentations: 0 });
    const result = solveAssignment(buildProblem(1, 1000, [[0, 999, 3]], [10]));
    expect(Array.from(result.rowToCol)).toEqual([999]);
  });

  it('keeps edges in CSR order per row when building a problem from an unordered edge list', () => {
    const p = buildProblem(3, 4, [[2, 0, 1], [0, 3, 2], [2, 1, 3], [0, 2, 4]], [1, 2, 3]);
    expect(Array.from(p.rowStart)).toEqual([0, 2, 2, 4]);
    expect(Array.from(p.colIndex)).toEqual([3, 2, 0, 1]);
    expect(Array.from(p.cost)).toEqual([2, 4, 1, 3]);
  });
});

describe('solveAssignment input validation', () => {
  const good = () => buildProblem(2, 2, [[0, 0, 1], [1, 1, 2]], [5, 5]);
  const cases: Array<[string, (p: AssignmentProblem) => AssignmentProblem, RegExp]> = [
    ['a negative row count', (p) => ({ ...p, rows: -1 }), /rows must be a non-negative integer/],
    ['a fractional column count', (p) => ({ ...p, cols: 1.5 }), /cols must be a non-negative integer/],
    ['a rowStart of the wrong length', (p) => ({ ...p, rowStart: new Int32Array([0, 1]) }), /rowStart.length must be rows \+ 1/],
    ['a rowStart that does not start at 0', (p) => ({ ...p, rowStart: new Int32Array([1, 1, 2]) }), /rowStart\[0\] must be 0/],
    ['a decreasing rowStart', (p) => ({ ...p, rowStart: new Int32Array([0, 2, 1]) }), /non-decreasing/],
    ['a rowStart that does not end at the edge count', (p) => ({ ...p, rowStart: new Int32Array([0, 1, 1]) }), /must equal the edge count/],
    ['colIndex and cost of different lengths', (p) => ({ ...p, cost: new Float64Array([1]) }), /must equal cost.length/],
    ['a column index out of range', (p) => ({ ...p, colIndex: new Int32Array([0, 2]) }), /colIndex\[1\] = 2 is out of range/],
    ['a negative cost', (p) => ({ ...p, cost: new Float64Array([-1, 2]) }), /cost\[0\] must be a finite non-negative/],
    ['a NaN cost', (p) => ({ ...p, cost: new Float64Array([1, NaN]) }), /cost\[1\] must be a finite non-negative/],
    ['an infinite penalty', (p) => ({ ...p, unassignedCost: new Float64Array([5, Infinity]) }), /unassignedCost\[1\] must be a finite/],
    ['a penalty array of the wrong length', (p) => ({ ...p, unassignedCost: new Float64Array([5]) }), /unassignedCost.length must equal rows/],
    ['a plain array instead of Int32Array', (p) => ({ ...p, colIndex: [0, 1] as unknown as Int32Array }), /must be Int32Array/],
  ];
  for (const [what, corrupt, message] of cases) {
    it(`throws on ${what}`, () => {
      expect(() => solveAssignment(corrupt(good()))).toThrow(message);
    });
  }

  it('throws from buildProblem on an edge whose row is out of range', () => {
    expect(() => buildProblem(1, 1, [[1, 0, 1]], [1])).toThrow(/edge 0 has row 1/);
  });
});

function tryEdge(p: AssignmentProblem, row: number, col: number): number {
  for (let e = p.rowStart[row]; e < p.rowStart[row + 1]; e++) if (p.colIndex[e] === col) return p.cost[e];
  return Infinity;
}
