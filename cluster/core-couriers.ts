/**
 * Couriers across a cluster's cores (PRODUCT §7): each courier is held by the core its pings reach, its profile is
 * in PostgreSQL, and the commands an edge sends about it land here.
 *
 *   shift (every core asked) ─► the holder runs it through the region's dispatch; the others: E_NOT_HELD_HERE
 *   profile, batch (any core) ─► stored ─► `couriers:profile` {ids} ─► the holders read them again (deleted: dropped)
 *   delete (every core asked) ─► the holder refuses while a region here has it on an offer or leg, or the store
 *                                 holds it on one (a region of another core); else deletes; `{ stored: true }`
 *                                 (nobody holds it) ─► any core, with the same store check
 *   read (every core asked) ─► the holder's live view; `{ stored: true }` ─► as PostgreSQL has it
 *   `couriers:status` {core, courierId, status} ─► a copy this core holds follows another core's dispatch
 */
import { pack } from 'msgpackr';
import { ApiError } from '../api/api-error.js';
import { storeDown } from '../api/dispatch-pump.js';
import { courierView, storedCourierView } from '../api/entity-routes.js';
import { courierBatchRows } from '../api/fleet-routes.js';
import type { Reply } from '../api/http-routes.js';
import type { CourierBatchBody } from '../api/schemas.js';
import type { CourierProfile, CourierStatus } from '../engine/courier-attributes.js';
import { encodeAttr } from '../engine/courier-filter.js';
import type { CourierIndex } from '../engine/courier-index.js';
import type { Store, StoredCourier } from '../store/store.js';
import { type Bus, type BusHandler, decodeMessage } from './bus.js';
import type { ForwardedCall } from './owner-commands.js';
import type { RegionDispatch } from './region-dispatch.js';

/**
 * A core whose dispatch changed a courier's status says so here: another core holding that courier (its pings
 * land in that core's regions) sets it too, so it is not offered while busy elsewhere, nor left busy once free.
 */
export const COURIER_STATUS = 'couriers:status';

/** A core stored couriers' profiles (payload: their ids): the cores holding them read them again. */
export const COURIER_PROFILE = 'couriers:profile';

/** What a core answers for a courier whose pings reach another core (an edge asks every core; one holds it). */
export const NOT_HELD_HERE = 'E_NOT_HELD_HERE';

const COURIER_STATUSES: ReadonlySet<string> = new Set(['available', 'offered', 'busy', 'offline']);

export interface CoreCouriersOptions {
  /** This core's name (its own status messages are not followed). */
  name: string;
  bus: Bus;
  store: Store;
  couriers: CourierIndex;
  /** The dispatch of a region this core holds, and all of them. */
  regionDispatch: (region: string) => RegionDispatch | undefined;
  regionDispatches: () => Iterable<RegionDispatch>;
  /** The region of a courier this core holds as its own (its pings reach this core), or undefined. */
  regionOfCourier: (courierId: string) => string | undefined;
  /** Drops a deleted courier from this core (index, held set, unwritten positions). */
  forgetCourier: (courierId: string) => void;
  onError: (err: unknown) => void;
}

/** One core's side of the courier commands and of the couriers' profile and status messages. */
export class CoreCouriers {
  private readonly profileHandler: BusHandler = (_c, payload) => void this.profilesChanged(payload).catch(this.options.onError);
  private readonly statusHandler: BusHandler = (_c, payload) => this.followStatus(payload);

  constructor(private readonly options: CoreCouriersOptions) {}

  async start(): Promise<void> {
    await this.options.bus.subscribe(COURIER_STATUS, this.statusHandler);
    await this.options.bus.subscribe(COURIER_PROFILE, this.profileHandler);
  }

  async stop(): Promise<void> {
    await this.options.bus.unsubscribe(COURIER_STATUS, this.statusHandler).catch(this.options.onError);
    await this.options.bus.unsubscribe(COURIER_PROFILE, this.profileHandler).catch(this.options.onError);
  }

  /** A courier's status changed in a region here (stored): the other cores holding it follow. */
  statusChanged(courierId: string, status: CourierStatus): void {
    this.options.bus.publish(COURIER_STATUS, pack({ core: this.options.name, courierId, status })).catch(this.options.onError);
  }

  /**
   * A courier on or off shift, asked of every core: the one whose region the courier's pings reach runs it through
   * that region's dispatch (committed like one process's); the others answer E_NOT_HELD_HERE.
   */
  async shift(call: ForwardedCall): Promise<Reply> {
    const id = String(call.params[0]);
    const status = (call.body as { status?: unknown } | undefined)?.status;
    if (status !== 'available' && status !== 'offline') throw new ApiError(400, 'E_VALIDATION', 'status must be available or offline');
    const region = this.options.regionOfCourier(id);
    if (region === undefined) throw new ApiError(404, NOT_HELD_HERE, `courier '${id}' is not held by this core`);
    const dispatch = this.options.regionDispatch(region);
    if (dispatch === undefined) throw new ApiError(503, 'E_REGION_UNAVAILABLE', `region ${region} is moving between cores; nothing was done, retry in a few seconds`);
    try {
      return await dispatch.setCourierStatus(id, status);
    } catch (err) {
      // handed to another core while this ran (its pings now reach that one): that core answers instead
      if (err instanceof ApiError && err.code === 'E_UNKNOWN_COURIER') throw new ApiError(404, NOT_HELD_HERE, `courier '${id}' moved to another core`);
      throw err;
    }
  }


  /** Couriers registered or changed in bulk: stored here (any core), reloaded by the cores holding them. */
  async batch(call: ForwardedCall): Promise<Reply> {
    const { good, rejected } = courierBatchRows(call.body as CourierBatchBody);
    if (good.length > 0) {
      try {
        await this.options.store.upsertCouriers(good);
      } catch (err) {
        throw storeDown(err);
      }
      await this.options.bus.publish(COURIER_PROFILE, pack({ ids: good.map((c) => c.id) })).catch(this.options.onError);
    }
    return { status: 200, body: { accepted: good.length, rejected } };
  }

  /**
   * A courier deleted, asked of every core: the one holding it refuses while a region here has it on an offer or
   * a leg, else deletes it (stored, then dropped from the index); with `{ stored: true }` (no core holds it) any
   * core deletes the stored courier. The cores holding a copy drop it (COURIER_PROFILE finds no profile).
   */
  async delete(call: ForwardedCall): Promise<Reply> {
    const id = String(call.params[0]);
    const stored = (call.body as { stored?: unknown } | undefined)?.stored === true;
    if (!stored) {
      if (this.options.regionOfCourier(id) === undefined) throw new ApiError(404, NOT_HELD_HERE, `courier '${id}' is not held by this core`);
      const held = [...this.options.regionDispatches()].map((r) => r.courierHold(id)).find((h) => h !== undefined);
      if (held?.requestId !== undefined || held?.offerId !== undefined) throw busy(id, held);
    }
    let deleted: boolean;
    try {
      // a region on another core may hold it (it carries a leg there and pings into this core's regions now):
      // what the store holds is what every core committed
      const held = await this.options.store.courierCommitment(id);
      if (held !== undefined) throw busy(id, held);
      deleted = await this.options.store.deleteCourier(id);
    } catch (err) {
      if (err instanceof ApiError) throw err;
      throw storeDown(err);
    }
    if (!deleted) throw new ApiError(404, 'E_NOT_FOUND', `no courier '${id}'`);
    if (this.options.couriers.has(id)) this.options.forgetCourier(id);
    await this.options.bus.publish(COURIER_PROFILE, pack({ ids: [id] })).catch(this.options.onError);
    return { status: 204 };
  }

  /**
   * A courier registered or changed: stored here (any core), then every core holding it reloads its profile
   * (COURIER_PROFILE); a new courier is placed by its first ping, as any courier a core has not seen.
   */
  async profile(call: ForwardedCall): Promise<Reply> {
    const id = String(call.params[0]);
    const profile = call.body as CourierProfile;
    encodeAttr(profile, 'offline'); // E_BAD_PROFILE before the store, as one process
    const { store } = this.options;
    let row: StoredCourier | undefined;
    try {
      await store.upsertCouriers([{ ...profile, id }]);
      [row] = await store.loadCouriers({ ids: [id] });
    } catch (err) {
      throw storeDown(err);
    }
    await this.options.bus.publish(COURIER_PROFILE, pack({ ids: [id] })).catch(this.options.onError);
    return { status: 200, body: storedCourierView(row ?? { ...profile, id }) };
  }

  /**
   * A courier's view: live (position, status, the offer or leg a region here holds it on) from the core its pings
   * reach; with `{ stored: true }` (no core holds it) as PostgreSQL has it, or 404.
   */
  async read(call: ForwardedCall): Promise<Reply> {
    const id = String(call.params[0]);
    if ((call.body as { stored?: unknown } | undefined)?.stored === true) {
      let row: StoredCourier | undefined;
      try {
        [row] = await this.options.store.loadCouriers({ ids: [id] });
      } catch (err) {
        throw storeDown(err);
      }
      if (row === undefined) throw new ApiError(404, 'E_UNKNOWN_COURIER', `courier '${id}' is not registered`);
      return { status: 200, body: storedCourierView(row) };
    }
    if (this.options.regionOfCourier(id) === undefined) throw new ApiError(404, NOT_HELD_HERE, `courier '${id}' is not held by this core`);
    const held = [...this.options.regionDispatches()].map((r) => r.courierHold(id)).find((h) => h !== undefined);
    return { status: 200, body: { ...courierView(this.options.couriers, id), ...held } };
  }

  /** Profiles stored by a core: the ones this core holds are read again (status and position stay this core's). */
  private async profilesChanged(payload: Buffer): Promise<void> {
    const ids = decodeMessage(payload)?.ids;
    if (!Array.isArray(ids)) return;
    const held = ids.filter((id): id is string => typeof id === 'string' && this.options.couriers.has(id));
    if (held.length === 0) return;
    const rows = await this.options.store.loadCouriers({ ids: held });
    // deleted: no profile any more, so no copy either (its pings are dropped as unknown from now on)
    const found = new Set(rows.map((c) => c.id));
    for (const id of held) if (!found.has(id) && this.options.couriers.has(id)) this.options.forgetCourier(id);
    for (const c of rows) {
      if (!this.options.couriers.has(c.id)) continue;
      const status = this.options.couriers.get(c.id)?.status;
      this.options.couriers.upsert(c.id, { vehicle: c.vehicle, capabilities: c.capabilities, capacity: c.capacity, ...(status !== undefined ? { status } : {}) });
    }
  }


  /** Another core's dispatch changed a courier's status: this core's copy follows, unless one of its own regions holds the courier. */
  private followStatus(payload: Buffer): void {
    const m = decodeMessage(payload);
    if (m === undefined || m.core === this.options.name || typeof m.courierId !== 'string' || !COURIER_STATUSES.has(m.status as string)) return;
    const id = m.courierId;
    if (!this.options.couriers.has(id) || [...this.options.regionDispatches()].some((r) => r.holdsCourier(id))) return;
    this.options.couriers.setStatus(id, m.status as CourierStatus);
  }
}

function busy(id: string, held: { requestId?: string; offerId?: string }): ApiError {
  return held.offerId !== undefined
    ? new ApiError(409, 'E_COURIER_BUSY', `courier '${id}' holds live offer '${held.offerId}': wait for its answer or expiry, or set the courier offline first`)
    : new ApiError(409, 'E_COURIER_BUSY', `courier '${id}' carries request '${held.requestId}': deliver, or cancel it, first`);
}
