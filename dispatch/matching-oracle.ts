/**
 * The brute-force oracle the matching suites check planners against (assign-batch, stacking, en-route tests): every
 * partial assignment of rows to columns enumerated. Exponential: small instances only (≤ 8 columns, ≤ 10 rows).
 */

/** Minimum over every assignment: each row takes one unused column (cost[r][c], Infinity = not allowed) or pays penalty[r]. */
export function bruteForceOptimum(cost: readonly (readonly number[])[], penalty: readonly number[]): number {
  const used = new Array(cost[0]?.length ?? 0).fill(false);
  const walk = (r: number): number => {
    if (r === cost.length) return 0;
    let best = penalty[r] + walk(r + 1);
    for (let c = 0; c < used.length; c++) {
      if (used[c] || cost[r][c] === Infinity) continue;
      used[c] = true;
      best = Math.min(best, cost[r][c] + walk(r + 1));
      used[c] = false;
    }
    return best;
  };
  return walk(0);
}
