/**
 * Exact min-cost assignment of requests (rows) to couriers (columns) over a sparse candidate graph, where a
 * row may also stay unassigned at its own penalty.
 *
 *   rows (requests)           real columns (couriers)       private dummy columns
 *
 *        ┌──── c(0,0) ───────▶ col 0
 *     r0 ┼──── c(0,2) ───────▶ col 2                    ┌──▶ d0   cost unassignedCost[0]
 *        └──────────────────────────────────────────────┘
 *        ┌──── c(1,0) ───────▶ col 0   (shared candidate: contention)
 *     r1 ┼──── c(1,1) ───────▶ col 1                    ┌──▶ d1   cost unassignedCost[1]
 *        └──────────────────────────────────────────────┘
 *                              col 3   (no edge: never touched, costs nothing)
 *
 *   Each row adds one augmenting path: Dijkstra from the new row over
 *   row ─edge─▶ column ─matched─▶ row ─edge─▶ … until it pops a free column (real or its own/another row's
 *   dummy), then flips the path, so earlier rows may move to other couriers or to "unassigned".
 *
 * Why successive shortest augmenting paths (the sparse Jonker–Volgenant / Hungarian family):
 * - Exact. Giving every row a private dummy column at its penalty makes a perfect row matching always exist,
 *   so "leave unassigned" is just another edge and the optimum over both choices is the true minimum.
 * - Sparse. Each row has only k ≈ 10–30 candidates, so Dijkstra with a binary heap over reduced costs
 *   c(i,j) − u[i] − v[j] ≥ 0 touches only edges it needs; a dense O(n³) Hungarian over 2,000 × 20,000
 *   would not fit the 100 ms batch budget.
 * - Fast in practice. Worst case O(R · E log V), but each search stops at the first free column it pops,
 *   and with little contention that is usually a row's own cheapest candidate, so most rows cost O(k log k).
 *   Potentials are updated only on the columns a search finalised, and buffers are reset through a
 *   touched-list, so a search costs what it visits, not O(V).
 * - Deterministic. The heap orders by (distance, matched-after-free, column index), so equal-cost instances
 *   always yield the same assignment; a free real column beats a dummy at equal cost (assign over drop).
 */

/** A sparse assignment instance in CSR form: row i's candidates are edges rowStart[i] .. rowStart[i+1]-1. */
export interface AssignmentProblem {
  readonly rows: number;
  readonly cols: number;
  readonly rowStart: Int32Array;
  readonly colIndex: Int32Array;
  readonly cost: Float64Array;
  readonly unassignedCost: Float64Array;
}

/** The optimum: each row's column (−1 = unassigned), its total cost, and augmenting paths run (one per row). */
export interface AssignmentResult {
  rowToCol: Int32Array;
  totalCost: number;
  augmentations: number;
}

/** Solves the problem exactly; throws Error on malformed input. */
export function solveAssignment(problem: AssignmentProblem): AssignmentResult {
  validateProblem(problem);
  const solver = new ShortestPathSolver(problem);
  for (let row = 0; row < problem.rows; row++) solver.augmentFrom(row);
  return solver.result();
}

/** Builds a CSR problem from an edge list (for tests and small callers); edges keep their order within a row. */
export function buildProblem(
  rows: number,
  cols: number,
  edges: ReadonlyArray<readonly [row: number, col: number, cost: number]>,
  unassignedCost: ArrayLike<number>,
): AssignmentProblem {
  if (!Number.isInteger(rows) || rows < 0) throw new Error(`buildProblem: rows must be a non-negative integer, got ${rows}`);
  const rowStart = new Int32Array(rows + 1);
  for (let e = 0; e < edges.length; e++) {
    const row = edges[e][0];
    if (!Number.isInteger(row) || row < 0 || row >= rows) {
      throw new Error(`buildProblem: edge ${e} has row ${row}, expected an integer in [0, ${rows})`);
    }
    rowStart[row + 1]++;
  }
  for (let r = 0; r < rows; r++) rowStart[r + 1] += rowStart[r];
  const next = rowStart.slice(0, rows);
  const colIndex = new Int32Array(edges.length);
  const cost = new Float64Array(edges.length);
  for (const [row, col, c] of edges) {
    const at = next[row]++;
    colIndex[at] = col;
    cost[at] = c;
  }
  return { rows, cols, rowStart, colIndex, cost, unassignedCost: Float64Array.from(unassignedCost) };
}

/**
 * State of one solve. Columns 0..cols-1 are real; column cols + r is row r's private "unassigned" column.
 * Invariant between searches: for every edge (i, j), c(i,j) − v[j] ≥ u[i], with equality on matched edges,
 * where u[i] = matchedCost[i] − v[rowToCol[i]] is implied rather than stored.
 */
class ShortestPathSolver {
  private readonly p: AssignmentProblem;
  private readonly v: Float64Array;
  private readonly colToRow: Int32Array;
  private readonly rowToCol: Int32Array;
  private readonly matchedCost: Float64Array;
  private readonly dist: Float64Array;
  private readonly predRow: Int32Array;
  private readonly predCost: Float64Array;
  private readonly done: Uint8Array;
  private readonly touched: Int32Array;
  private touchedCount = 0;
  private readonly heap: ColumnHeap;
  private augmentations = 0;

  constructor(problem: AssignmentProblem) {
    this.p = problem;
    const n = problem.cols + problem.rows;
    this.v = new Float64Array(n);
    this.colToRow = new Int32Array(n).fill(-1);
    this.rowToCol = new Int32Array(problem.rows).fill(-1);
    this.matchedCost = new Float64Array(problem.rows);
    this.dist = new Float64Array(n).fill(Infinity);
    this.predRow = new Int32Array(n);
    this.predCost = new Float64Array(n);
    this.done = new Uint8Array(n);
    this.touched = new Int32Array(n);
    this.heap = new ColumnHeap(n, this.dist, this.colToRow);
  }

  /** One Dijkstra search from the free row `source` to the nearest free column, then flip the path. */
  augmentFrom(source: number): void {
    const { dist, done, colToRow, v, matchedCost, heap } = this;
    this.relaxRow(source, 0);
    let free = -1;
    while (heap.size > 0) {
      const j = heap.pop();
      done[j] = 1;
      if (colToRow[j] === -1) {
        free = j;
        break;
      }
      const i = colToRow[j];
      // offset = dist[j] − u[i], so dist via i to k = offset + c(i,k) − v[k]
      this.relaxRow(i, dist[j] - (matchedCost[i] - v[j]));
    }
    // unreachable: the source's own dummy column is always free and always labelled
    if (free < 0) throw new Error('solveAssignment: internal error, no free column reached');
    this.updatePotentialsAndReset(dist[free]);
    this.flipPath(free);
    this.augmentations++;
  }

  result(): AssignmentResult {
    const { rows, cols } = this.p;
    const rowToCol = new Int32Array(rows);
    let totalCost = 0;
    for (let r = 0; r < rows; r++) {
      const c = this.rowToCol[r];
      rowToCol[r] = c >= cols ? -1 : c;
      totalCost += this.matchedCost[r];
    }
    return { rowToCol, totalCost, augmentations: this.augmentations };
  }

  // Hot loop: inlined edge scan plus the row's dummy edge; no allocation.
  private relaxRow(i: number, offset: number): void {
    const { rowStart, colIndex, cost, cols, unassignedCost } = this.p;
    const end = rowStart[i + 1];
    for (let e = rowStart[i]; e < end; e++) this.relax(colIndex[e], offset + cost[e] - this.v[colIndex[e]], i, cost[e]);
    const dummy = cols + i;
    this.relax(dummy, offset + unassignedCost[i] - this.v[dummy], i, unassignedCost[i]);
  }

  private relax(k: number, nd: number, row: number, edgeCost: number): void {
    const { dist } = this;
    if (this.done[k] === 1 || !(nd < dist[k])) return;
    if (dist[k] === Infinity) this.touched[this.touchedCount++] = k;
    dist[k] = nd;
    this.predRow[k] = row;
    this.predCost[k] = edgeCost;
    this.heap.upsert(k);
  }

  /** v[j] += dist[j] − D on finalised columns keeps every reduced cost ≥ 0 and the new path tight. */
  private updatePotentialsAndReset(pathLength: number): void {
    const { touched, done, dist, v } = this;
    for (let t = 0; t < this.touchedCount; t++) {
      const j = touched[t];
      if (done[j] === 1) v[j] += dist[j] - pathLength;
      dist[j] = Infinity;
      done[j] = 0;
    }
    this.touchedCount = 0;
    this.heap.clear();
  }

  private flipPath(free: number): void {
    const { predRow, predCost, rowToCol, colToRow, matchedCost } = this;
    let j = free;
    for (;;) {
      const i = predRow[j];
      const previous = rowToCol[i];
      rowToCol[i] = j;
      colToRow[j] = i;
      matchedCost[i] = predCost[j];
      if (previous === -1) return;
      j = previous;
    }
  }
}

/**
 * Indexed binary min-heap of columns keyed by (dist, matched after free, column index), with decrease-key.
 * Keys live in the solver's arrays; the heap holds column ids and each column's heap slot.
 */
class ColumnHeap {
  size = 0;
  private readonly items: Int32Array;
  private readonly slot: Int32Array;
  private readonly dist: Float64Array;
  private readonly colToRow: Int32Array;

  constructor(capacity: number, dist: Float64Array, colToRow: Int32Array) {
    this.items = new Int32Array(capacity);
    this.slot = new Int32Array(capacity).fill(-1);
    this.dist = dist;
    this.colToRow = colToRow;
  }

  /** Inserts column j, or restores order after its key decreased. */
  upsert(j: number): void {
    let at = this.slot[j];
    if (at < 0) {
      at = this.size++;
      this.items[at] = j;
      this.slot[j] = at;
    }
    this.siftUp(at);
  }

  pop(): number {
    const { items, slot } = this;
    const top = items[0];
    slot[top] = -1;
    const last = items[--this.size];
    if (this.size > 0) {
      items[0] = last;
      slot[last] = 0;
      this.siftDown(0);
    }
    return top;
  }

  clear(): void {
    for (let at = 0; at < this.size; at++) this.slot[this.items[at]] = -1;
    this.size = 0;
  }

  private less(a: number, b: number): boolean {
    const da = this.dist[a];
    const db = this.dist[b];
    if (da !== db) return da < db;
    const ma = this.colToRow[a] === -1 ? 0 : 1;
    const mb = this.colToRow[b] === -1 ? 0 : 1;
    if (ma !== mb) return ma < mb;
    return a < b;
  }

  private siftUp(at: number): void {
    const { items, slot } = this;
    const j = items[at];
    while (at > 0) {
      const parent = (at - 1) >> 1;
      const pj = items[parent];
      if (!this.less(j, pj)) break;
      items[at] = pj;
      slot[pj] = at;
      at = parent;
    }
    items[at] = j;
    slot[j] = at;
  }

  private siftDown(at: number): void {
    const { items, slot } = this;
    const j = items[at];
    const half = this.size >> 1;
    while (at < half) {
      let child = 2 * at + 1;
      const right = child + 1;
      if (right < this.size && this.less(items[right], items[child])) child = right;
      const cj = items[child];
      if (!this.less(cj, j)) break;
      items[at] = cj;
      slot[cj] = at;
      at = child;
    }
    items[at] = j;
    slot[j] = at;
  }
}

function validateProblem(p: AssignmentProblem): void {
  const { rows, cols, rowStart, colIndex, cost, unassignedCost } = p;
  if (!Number.isInteger(rows) || rows < 0) throw new Error(`solveAssignment: rows must be a non-negative integer, got ${rows}`);
  if (!Number.isInteger(cols) || cols < 0) throw new Error(`solveAssignment: cols must be a non-negative integer, got ${cols}`);
  if (rows + cols > 0x3fffffff) throw new Error(`solveAssignment: rows + cols = ${rows + cols} is too large; split the batch`);
  if (!(rowStart instanceof Int32Array) || !(colIndex instanceof Int32Array)) {
    throw new Error('solveAssignment: rowStart and colIndex must be Int32Array');
  }
  if (!(cost instanceof Float64Array) || !(unassignedCost instanceof Float64Array)) {
    throw new Error('solveAssignment: cost and unassignedCost must be Float64Array');
  }
  if (rowStart.length !== rows + 1) throw new Error(`solveAssignment: rowStart.length must be rows + 1 = ${rows + 1}, got ${rowStart.length}`);
  if (unassignedCost.length !== rows) throw new Error(`solveAssignment: unassignedCost.length must equal rows = ${rows}, got ${unassignedCost.length}`);
  if (colIndex.length !== cost.length) {
    throw new Error(`solveAssignment: colIndex.length (${colIndex.length}) must equal cost.length (${cost.length})`);
  }
  if (rowStart[0] !== 0) throw new Error(`solveAssignment: rowStart[0] must be 0, got ${rowStart[0]}`);
  for (let r = 0; r < rows; r++) {
    if (rowStart[r + 1] < rowStart[r]) {
      throw new Error(`solveAssignment: rowStart must be non-decreasing, but rowStart[${r + 1}] = ${rowStart[r + 1]} < rowStart[${r}] = ${rowStart[r]}`);
    }
    const penalty = unassignedCost[r];
    if (!Number.isFinite(penalty) || penalty < 0) {
      throw new Error(`solveAssignment: unassignedCost[${r}] must be a finite non-negative number, got ${penalty}`);
    }
  }
  if (rowStart[rows] !== colIndex.length) {
    throw new Error(`solveAssignment: rowStart[rows] (${rowStart[rows]}) must equal the edge count colIndex.length (${colIndex.length})`);
  }
  for (let e = 0; e < colIndex.length; e++) {
    const c = colIndex[e];
    if (c < 0 || c >= cols) throw new Error(`solveAssignment: colIndex[${e}] = ${c} is out of range [0, ${cols})`);
    const w = cost[e];
    if (!Number.isFinite(w) || w < 0) throw new Error(`solveAssignment: cost[${e}] must be a finite non-negative number, got ${w}`);
  }
}
