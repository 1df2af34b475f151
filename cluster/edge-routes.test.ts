/** An edge serves the whole API (PRODUCT §7): every route one process registers is an edge's own or forwarded. */
import { describe, expect, it } from 'vitest';
import { FORWARDED_ROUTES } from './edge-requests.js';
import { EDGE_ROUTES, apiRoutes } from './edge-routes.js';

describe('the routes of a cluster edge', () => {
  it('cover every route of one process, so none answers 501 E_NOT_ON_EDGE', () => {
    const served = new Set([...EDGE_ROUTES, ...FORWARDED_ROUTES]);
    const routes = apiRoutes().map(([method, pattern]) => `${method} ${pattern}`);
    expect(routes.length).toBeGreaterThan(30);
    expect(routes.filter((r) => !served.has(r))).toEqual([]);
  });
});
