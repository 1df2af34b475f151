/**
 * The admin side of the random operations: the world built at the start, and the entity writes (courier
 * profiles, pings, statuses, sites, stock, donors, fences) that keep changing it, each recorded in its History.
 */
import { Prng, streamSeed } from '../../fixtures/prng.js';
import type { CrashState } from './crash-state.js';
import { round6 } from './equality.js';
import { type CourierProfile, type DonorValue, type FenceValue, type History, type Lot, type Op, type SiteValue, describeOp, history, lotKey } from './model.js';
import { BANKS, BLOOD_TYPES, CENTER, COURIERS, DAY, DONORS, FENCES, FIRST_COURIERS, FIRST_DONORS, FIRST_FENCES, SITES, SPREAD } from './world.js';

/** Writes entities through the admin API (and a courier's own pings and statuses), each one into the model first. */
export class AdminOperations {
  constructor(private readonly state: CrashState) {}

  /** Cycle 0: the first couriers (placed and available), sites, stock, donors and fences; every write must be acknowledged. */
  async buildWorld(): Promise<void> {
    const rng = new Prng(streamSeed(this.state.seed, 2));
    const setup: (Promise<unknown> | undefined)[] = [];
    for (const id of COURIERS.slice(0, FIRST_COURIERS)) setup.push(this.putCourier(rng, id));
    for (const s of SITES.filter((x) => x.setup)) setup.push(this.putSite(rng, s.id));
    for (const id of DONORS.slice(0, FIRST_DONORS)) setup.push(this.putDonor(rng, id));
    for (const id of FENCES.slice(0, FIRST_FENCES)) setup.push(this.putFence(rng, id));
    await Promise.all(setup);
    await Promise.all(BANKS.map((id) => this.putInventory(rng, id)));
    await Promise.all(COURIERS.slice(0, FIRST_COURIERS).map(async (id) => {
      await this.ping(rng, id);
      await this.setStatus(id, 'available');
    }));
    const ops: Op[] = [this.state.profiles, this.state.sites, this.state.inventories, this.state.donors, this.state.fences, this.state.statuses].flatMap((m: Map<string, History<unknown>>) => [...m.values()].flatMap((h) => h.writes.map((w) => w.op)));
    const failed = ops.filter((op) => op.outcome !== 'acked');
    if (failed.length > 0) throw new Error(`building the world failed: ${failed.map(describeOp).join('; ')}`);
  }

  /** PUT a random profile of courier `id`. */
  putCourier(rng: Prng, id: string): Promise<unknown> | undefined {
    return this.state.locked(`courier:${id}`, async () => {
      const i = COURIERS.indexOf(id);
      const profile: CourierProfile = {
        vehicle: rng.pick(['bike', 'car', 'van'] as const),
        // over half the fleet carries cold chain: blood legs need it
        capabilities: i % 2 === 0 || rng.chance(0.3) ? ['cold_chain'] : rng.chance(0.5) ? ['insulated'] : [],
        capacity: 1 + rng.int(3),
      };
      const op = this.state.begin(`PUT /v1/couriers/${id} ${JSON.stringify(profile)}`);
      history(this.state.profiles, id).add(op, profile);
      await this.state.send(op, rng.chance(0.5) ? this.state.admin : this.state.dispatcher, 'PUT', `/v1/couriers/${id}`, profile, [200]);
    });
  }

  /** POST a random position of courier `id`, as its driver. */
  ping(rng: Prng, id: string | undefined): Promise<unknown> | undefined {
    if (id === undefined) return undefined;
    return this.state.locked(`ping:${id}`, async () => {
      const list = this.state.pings.get(id) ?? [];
      this.state.pings.set(id, list);
      const last = list[list.length - 1];
      const ping = { lat: round6(CENTER.lat + rng.range(-SPREAD, SPREAD)), lng: round6(CENTER.lng + rng.range(-SPREAD, SPREAD)), ts: Math.max(Date.now(), (last?.ts ?? 0) + 1) };
      const op = this.state.begin(`POST /v1/couriers/${id}/location ${JSON.stringify(ping)}`);
      list.push({ op, ...ping, durable: false });
      // a courier whose profile write is still unanswered may not exist yet: 404 then
      const known = this.state.profiles.get(id)?.candidates().absentOk === false;
      await this.state.send(op, this.state.driverWho(id), 'POST', `/v1/couriers/${id}/location`, ping, known ? [204] : [204, 404]);
    });
  }

  /** PUT courier `id`'s status, as its driver. */
  setStatus(id: string | undefined, status: 'available' | 'offline'): Promise<unknown> | undefined {
    if (id === undefined) return undefined;
    return this.state.locked(`status:${id}`, async () => {
      const op = this.state.begin(`PUT /v1/couriers/${id}/status {status:${status}}`);
      history(this.state.statuses, id, 'offline').add(op, status);
      const known = this.state.profiles.get(id)?.candidates().absentOk === false;
      // going offline while carrying a leg is refused (409 courier-busy)
      const expected = status === 'offline' ? [200, 409] : [200];
      await this.state.send(op, this.state.driverWho(id), 'PUT', `/v1/couriers/${id}/status`, { status }, known ? expected : [...expected, 404]);
    });
  }

  /** A random site write: now and then a refused one on a fresh id. */
  siteWrite(rng: Prng): Promise<unknown> | undefined {
    if (rng.chance(0.15)) {
      // refused: a latitude out of range on a fresh id, which must never appear
      const id = `bad-site-${this.state.opCount + 1}`;
      const op = this.state.begin(`PUT /v1/sites/${id} {lat: 95}`);
      this.state.refusedSites.push({ id, op });
      return this.state.send(op, this.state.admin, 'PUT', `/v1/sites/${id}`, { kind: 'restaurant', name: 'nowhere', lat: 95, lng: 0 }, [400]);
    }
    return this.putSite(rng, rng.pick(SITES).id);
  }

  /** PUT site `id`, now and then moved a little or (recipients) closed. */
  putSite(rng: Prng, id: string): Promise<unknown> | undefined {
    return this.state.locked(`site:${id}`, async () => {
      const def = SITES.find((s) => s.id === id)!;
      const pos = this.state.sitePos.get(id)!;
      const moved = rng.chance(0.3);
      const value: SiteValue = {
        kind: def.kind, name: `${id} #${this.state.opCount + 1}`,
        lat: moved ? round6(pos.lat + rng.range(-0.001, 0.001)) : pos.lat, lng: moved ? round6(pos.lng + rng.range(-0.001, 0.001)) : pos.lng,
        // recipients close now and then (a rescue without dropoff may then be refused with E_NO_RECIPIENT)
        open: def.kind === 'food_bank' || def.kind === 'shelter' ? rng.chance(0.85) : true,
        ...(def.kind === 'food_bank' || def.kind === 'shelter' ? { capacity: 100_000 } : {}),
      };
      const op = this.state.begin(`PUT /v1/sites/${id} ${JSON.stringify(value)}`);
      history(this.state.sites, id).add(op, value);
      await this.state.send(op, this.state.admin, 'PUT', `/v1/sites/${id}`, value, [200]);
    });
  }

  /** A random stock write: now and then one on a site that does not exist. */
  inventoryWrite(rng: Prng): Promise<unknown> | undefined {
    if (rng.chance(0.15)) {
      const id = `ghost-site-${this.state.opCount + 1}`;
      const op = this.state.begin(`PUT /v1/sites/${id}/inventory (no such site)`);
      this.state.refusedSites.push({ id, op });
      return this.state.send(op, this.state.admin, 'PUT', `/v1/sites/${id}/inventory`, { units: [] }, [404]);
    }
    return this.putInventory(rng, rng.pick(BANKS));
  }

  /** PUT the next stock of bank `id`. */
  putInventory(rng: Prng, id: string): Promise<unknown> | undefined {
    return this.state.locked(`inventory:${id}`, async () => {
      const lots = this.nextLots(rng, id);
      const op = this.state.begin(`PUT /v1/sites/${id}/inventory ${lots.map((l) => `${l.product}/${l.bloodType}/+${Math.round((l.expiresAt - this.state.expiryBase) / 3_600_000)}h×${l.count}`).join(' ')}`);
      history(this.state.inventories, id).add(op, lots);
      await this.state.send(op, this.state.admin, 'PUT', `/v1/sites/${id}/inventory`, { units: lots }, [200]);
    });
  }

  /** The next stock of a bank: every lot ever written, each at least as high as ever sent, sometimes a new lot. */
  private nextLots(rng: Prng, siteId: string): Lot[] {
    const mine = [...this.state.lotHigh.entries()].filter(([k]) => k.startsWith(`${siteId}|`)).map(([, l]) => l);
    if (mine.length === 0) {
      const at = (days: number): number => this.state.expiryBase + days * DAY;
      mine.push(
        { product: 'red_cells', bloodType: 'O+', count: 30, expiresAt: at(10) },
        { product: 'red_cells', bloodType: 'A+', count: 20, expiresAt: at(12) },
        { product: 'red_cells', bloodType: 'O-', count: 10, expiresAt: at(15) },
        { product: 'red_cells', bloodType: 'B+', count: 10, expiresAt: at(11) },
        { product: 'plasma', bloodType: 'AB+', count: 10, expiresAt: at(200) },
        { product: 'whole_blood', bloodType: 'O+', count: 5, expiresAt: at(20) },
        { product: 'whole_blood', bloodType: 'A-', count: 3, expiresAt: at(21) },
      );
    } else {
      for (let i = 0; i < mine.length; i++) mine[i] = { ...mine[i], count: mine[i].count + rng.int(6) };
      if (rng.chance(0.2)) mine.push({ product: 'red_cells', bloodType: rng.pick(['O+', 'A+', 'B+', 'O-']), count: 5 + rng.int(10), expiresAt: this.state.expiryBase + (25 + rng.int(500)) * 3_600_000 });
    }
    const out: Lot[] = [];
    for (const l of mine) {
      const key = lotKey(siteId, l);
      const high = this.state.lotHigh.get(key);
      const lot = { ...l, count: Math.max(l.count, high?.count ?? 0) };
      this.state.lotHigh.set(key, lot);
      if (!out.some((o) => lotKey(siteId, o) === key)) out.push(lot);
    }
    return out;
  }

  /** PUT a random donor `id`. */
  putDonor(rng: Prng, id: string): Promise<unknown> | undefined {
    return this.state.locked(`donor:${id}`, async () => {
      const value: DonorValue = {
        bloodType: rng.pick(BLOOD_TYPES), lat: round6(CENTER.lat + rng.range(-SPREAD, SPREAD)), lng: round6(CENTER.lng + rng.range(-SPREAD, SPREAD)),
        available: rng.chance(0.8),
        ...(rng.chance(0.5) ? { lastDonationAt: Date.now() - (rng.chance(0.5) ? 100 : 10) * DAY } : {}),
      };
      const op = this.state.begin(`PUT /v1/donors/${id} ${JSON.stringify(value)}`);
      history(this.state.donors, id).add(op, value);
      await this.state.send(op, this.state.admin, 'PUT', `/v1/donors/${id}`, value, [200]);
    });
  }

  /** PUT a random square fence `id`. */
  putFence(rng: Prng, id: string): Promise<unknown> | undefined {
    return this.state.locked(`fence:${id}`, async () => {
      const lat = round6(CENTER.lat + rng.range(-SPREAD, SPREAD));
      const lng = round6(CENTER.lng + rng.range(-SPREAD, SPREAD));
      const d = round6(0.002 + rng.range(0, 0.004));
      const ring = [[lng - d, lat - d], [lng + d, lat - d], [lng + d, lat + d], [lng - d, lat + d], [lng - d, lat - d]].map(([x, y]) => [round6(x), round6(y)]);
      const value: FenceValue = { kind: rng.pick(['low_emission', 'no_go', 'depot']), geometry: { type: 'Polygon', coordinates: [ring] } };
      const op = this.state.begin(`PUT /v1/geofences/${id} ${value.kind} around ${lat},${lng}`);
      history(this.state.fences, id).add(op, value);
      await this.state.send(op, this.state.admin, 'PUT', `/v1/geofences/${id}`, value, [200]);
    });
  }
}
