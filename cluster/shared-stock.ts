/**
 * Sites, blood stock and donors shared by every core of a cluster (blood and rescue are dispatched by the owner of
 * their region, but the banks they draw on and the sites they fill serve many regions). Each core keeps a copy and
 * follows the others; PostgreSQL is where reservations meet (store `checkStock`: a commit reserving units another
 * core took is refused with StockConflict, taken back, and the stock read again), so a stale copy costs a retry,
 * never a unit reserved twice.
 *
 *   hub: site written / deleted ─► `sites:changed` {upsert: [site], remove: [id]} ─► every copy's profile
 *   hub: donor written / deleted ─► `donors:changed` {upsert: [donor], remove: [id]} ─► every copy's donors
 *   hub: stock PUT ; core: a commit that reserved, issued or released units ─► `stock:changed` {sites} ─► every
 *        copy reads those sites' lots again (count and reserved as stored)
 *   every STOCK_REFRESH_MS ─► every blood bank's lots read again (a lost message costs seconds, not forever)
 */
import { pack } from 'msgpackr';
import type { BloodProduct, BloodType } from '../engine/blood-types.js';
import type { DonorIndex } from '../engine/donor-index.js';
import type { SiteIndex, SiteProfile } from '../engine/site-index.js';
import type { LotRow, Store, StoredState } from '../store/store.js';
import { type Bus, type BusHandler, decodeMessage } from './bus.js';

export const SITES_CHANGED = 'sites:changed';
export const DONORS_CHANGED = 'donors:changed';
export const STOCK_CHANGED = 'stock:changed';

/** Every bank's stock is read again this often whatever was heard. */
const STOCK_REFRESH_MS = 5_000;

/** A copy of the shared sites and donors: a core's dispatch engine, or the hub's. */
export interface SharedCopy {
  sites: SiteIndex;
  donors: DonorIndex;
}

export interface SharedStockOptions {
  bus: Bus;
  store: Pick<Store, 'loadStock'>;
  /** The copy to keep (undefined while there is none, e.g. a hub not held). */
  copy: () => SharedCopy | undefined;
  /** Follow site and donor profiles too (a core; the hub writes them itself). */
  profiles: boolean;
  onError: (err: unknown) => void;
}

/** Keeps one copy of the shared sites, stock and donors in step with the cluster. */
export class SharedStock {
  private timer: NodeJS.Timeout | undefined;
  private readonly stock: BusHandler = (_c, payload) => {
    const sites = decodeMessage(payload)?.sites;
    if (Array.isArray(sites)) this.reload(sites.filter((s): s is string => typeof s === 'string')).catch(this.options.onError);
  };
  private readonly sites: BusHandler = (_c, payload) => this.sitesChanged(payload);
  private readonly donors: BusHandler = (_c, payload) => this.donorsChanged(payload);

  constructor(private readonly options: SharedStockOptions) {}

  async start(): Promise<void> {
    const { bus } = this.options;
    await bus.subscribe(STOCK_CHANGED, this.stock);
    if (this.options.profiles) {
      await bus.subscribe(SITES_CHANGED, this.sites);
      await bus.subscribe(DONORS_CHANGED, this.donors);
    }
    this.timer = setInterval(() => {
      const copy = this.options.copy();
      if (copy !== undefined) this.reload(copy.sites.ids().filter((id) => copy.sites.get(id)?.kind === 'blood_bank')).catch(this.options.onError);
    }, STOCK_REFRESH_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    const { bus, onError } = this.options;
    await bus.unsubscribe(STOCK_CHANGED, this.stock).catch(onError);
    if (this.options.profiles) {
      await bus.unsubscribe(SITES_CHANGED, this.sites).catch(onError);
      await bus.unsubscribe(DONORS_CHANGED, this.donors).catch(onError);
    }
  }

  /** Reads these sites' lots again (count and reserved as PostgreSQL has them). */
  async reload(siteIds: readonly string[]): Promise<void> {
    const copy = this.options.copy();
    const known = copy === undefined ? [] : siteIds.filter((id) => copy.sites.has(id));
    if (known.length === 0) return;
    const stored = await this.options.store.loadStock(known);
    const now = this.options.copy();
    if (now === undefined) return;
    for (const id of known) {
      if (!now.sites.has(id)) continue;
      now.sites.setStock(id, storedLots(stored.get(id) ?? []));
    }
  }

  /** Tells every copy these sites' stock changed in PostgreSQL. */
  announce(siteIds: readonly string[]): void {
    if (siteIds.length > 0) this.options.bus.publish(STOCK_CHANGED, pack({ sites: [...new Set(siteIds)] })).catch(this.options.onError);
  }

  private sitesChanged(payload: Buffer): void {
    const m = decodeMessage(payload);
    const copy = this.options.copy();
    if (m === undefined || copy === undefined) return;
    for (const row of Array.isArray(m.upsert) ? m.upsert : []) {
      const { id, ...profile } = row as { id?: unknown } & SiteProfile;
      try {
        if (typeof id === 'string') copy.sites.upsert(id, profile);
      } catch (err) {
        this.options.onError(err); // checked where it was stored; a profile this copy refuses is reported
      }
    }
    for (const id of Array.isArray(m.remove) ? m.remove : []) if (typeof id === 'string') copy.sites.remove(id);
  }

  private donorsChanged(payload: Buffer): void {
    const m = decodeMessage(payload);
    const copy = this.options.copy();
    if (m === undefined || copy === undefined) return;
    for (const row of Array.isArray(m.upsert) ? m.upsert : []) {
      const { id, ...profile } = row as { id?: unknown } & Parameters<DonorIndex['upsert']>[1];
      try {
        if (typeof id === 'string') copy.donors.upsert(id, profile);
      } catch (err) {
        this.options.onError(err);
      }
    }
    for (const id of Array.isArray(m.remove) ? m.remove : []) if (typeof id === 'string') copy.donors.remove(id);
  }
}

/** Fills a copy from what the store holds (a core starting, the hub taken). */
export function fillShared(copy: SharedCopy, state: Pick<StoredState, 'sites' | 'inventory' | 'donors'>): void {
  const { sites, donors } = copy;
  for (const s of state.sites) sites.upsert(s.id, { kind: s.kind, name: s.name, lat: s.lat, lng: s.lng, capacity: s.capacity, occupancy: s.occupancy, open: s.open });
  for (const [siteId, lots] of state.inventory) if (sites.has(siteId)) sites.setStock(siteId, storedLots(lots));
  for (const d of state.donors) donors.upsert(d.id, { bloodType: d.bloodType, lat: d.lat, lng: d.lng, available: d.available, lastDonation: d.lastDonation });
}

/** Stored lots as SiteIndex.setStock takes them. */
export function storedLots(lots: readonly (LotRow & { reserved: number })[]): Parameters<SiteIndex['setStock']>[1] {
  return lots.map((l) => ({ product: l.product as BloodProduct, bloodType: l.bloodType as BloodType, count: l.count, expiresAt: l.expiresAt, reserved: l.reserved }));
}

/** The message of a site (or donor) written with `profile`, or deleted (undefined), on the hub. */
export function profileChange(id: string, profile: object | undefined): Buffer {
  return pack(profile === undefined ? { upsert: [], remove: [id] } : { upsert: [{ ...profile, id }], remove: [] });
}
