/**
 * The engine's shape, declared once: everything one instance keeps in memory, indexed. The composition
 * root (api/main.ts), recovery (store/recovery.ts) and the fixture loader build it here; the dispatch loop
 * and the API take the parts they need.
 *
 *   fences (rbush of polygons) ◄── couriers (H3 buckets; each move checks fences ─► onFenceEvent)
 *   speeds (res-7 learned m/s) ◄── couriers (consecutive pings teach it)
 *   sites (rbush + blood stock)    donors (rbush + eligibility)
 */
import { CellSpeeds } from './cell-speeds.js';
import { CourierIndex, type FenceEvent } from './courier-index.js';
import { DonorIndex } from './donor-index.js';
import { GeofenceIndex } from './geofence-index.js';
import { SiteIndex } from './site-index.js';

/** The indexes of one instance. */
export interface EngineIndexes {
  couriers: CourierIndex;
  sites: SiteIndex;
  donors: DonorIndex;
  fences: GeofenceIndex;
  speeds: CellSpeeds;
}

/** How fresh indexes are wired: learned speeds to start from, where fence crossings go, expected fleet size. */
export interface EngineIndexOptions {
  fences?: GeofenceIndex;
  speeds?: CellSpeeds;
  onFenceEvent?: (event: FenceEvent) => void;
  initialCapacity?: number;
}

/** Fresh indexes (empty unless `fences` / `speeds` are given), the courier index wired to the fences and speeds. */
export function createEngineIndexes(options: EngineIndexOptions = {}): EngineIndexes {
  const fences = options.fences ?? new GeofenceIndex();
  const speeds = options.speeds ?? new CellSpeeds();
  const couriers = new CourierIndex({ fences, speeds, onFenceEvent: options.onFenceEvent, initialCapacity: options.initialCapacity });
  return { couriers, sites: new SiteIndex(), donors: new DonorIndex(), fences, speeds };
}
