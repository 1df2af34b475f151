/**
 * `stock.low`: a bank's available units of one product and blood type fell below the configured level
 * (STOCK_LOW_UNITS). Judged on a change — a reservation (dispatch transition) or an inventory PUT — from the
 * availability before and after it, so one drop below the level is one event, not one per later change.
 * Issuing reserved units changes nothing here: they stopped being available when they were reserved.
 *
 *   before: units per product/type ─┐
 *                                   ├─► keys with before ≥ level > after ─► [{ type: 'stock.low', payload }]
 *   after:  units per product/type ─┘
 */

/** A lot as SiteIndex.lots shows it (only what availability needs). */
export interface AvailableLot {
  product: string;
  bloodType: string;
  available: number;
}

/** A stock.low event as the store writes it (no lifecycle seq: the outbox numbers it). */
export interface StockLowEvent {
  at: number;
  type: 'stock.low';
  payload: { siteId: string; product: string; bloodType: string; available: number; level: number };
}

/** Available units per `product/bloodType` key. */
export function availableByType(lots: readonly AvailableLot[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const l of lots) {
    const key = keyOf(l.product, l.bloodType);
    out.set(key, (out.get(key) ?? 0) + l.available);
  }
  return out;
}

/** The `product/bloodType` key of the maps above. */
export function keyOf(product: string, bloodType: string): string {
  return `${product}/${bloodType}`;
}

/** One event per key whose availability went from at least `level` to below it; a level of 0 never fires. */
export function stockLowEvents(siteId: string, before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>, level: number, at: number): StockLowEvent[] {
  const out: StockLowEvent[] = [];
  for (const [key, was] of before) {
    const now = after.get(key) ?? 0;
    if (was >= level && now < level) {
      const [product, bloodType] = key.split('/');
      out.push({ at, type: 'stock.low', payload: { siteId, product, bloodType, available: now, level } });
    }
  }
  return out;
}
