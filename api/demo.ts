/**
 * A simulated city against the real server, so a newcomer sees the product work end to end.
 *
 *   startInstance (the same server `npm start` runs, fixture city loaded)
 *     ├─ N simulated drivers ── real WebSockets ─► loc every second; offer ─► accept (or decline);
 *     │                                            drive to pickup ─► POST progress picked_up ─► dropoff ─► delivered
 *     ├─ a requester ── HTTP ─► delivery, rescue and blood requests from the fixture's day, every few seconds
 *     └─ a dispatcher ── WebSocket watch over the city ─► a summary line every 5 s
 *
 *   npm run demo                       (PORT=8080, 40 drivers, until Ctrl-C)
 *   npm run demo -- --drivers 100 --seconds 60 --speed 40
 *
 * Fixture couriers that are not simulated are set offline, so every offer reaches a driver who answers.
 */
import WebSocket from 'ws';
import { distanceMeters } from '../engine/geodesy.js';
import type { CourierFixture, RequestFixture } from '../fixtures/city-scenario.js';
import { Prng } from '../fixtures/prng.js';
import { Authenticator } from './auth.js';
import { loadConfig } from './config.js';
import { type Instance, printAccess, startInstance } from './main.js';

interface Options {
  drivers: number;
  seconds: number;
  /** Simulated driving speed in m/s: a time-lapse, so deliveries finish in a minute or two. */
  speed: number;
  /** Seconds between requests. */
  every: number;
}

/** Runs the demo until `seconds` pass (0 = until SIGINT / SIGTERM). */
export async function runDemo(options: Options): Promise<void> {
  const config = loadConfig({ LOG_LEVEL: 'warn', ...process.env });
  if (!config.jwt.secret) throw new Error('the demo signs HS256 tokens for its drivers: unset JWT_PUBLIC_KEY (or set JWT_SECRET)');
  const instance = await startInstance(config);
  const scenario = instance.scenario;
  if (scenario === undefined) throw new Error('the demo drives the fixture city: unset SEED_CITY=none');
  printAccess(instance);
  const auth = new Authenticator(config.jwt, config.apiKeys);
  const base = `http://127.0.0.1:${instance.port}`;
  const rng = new Prng(7);
  const stats = { offers: 0, accepted: 0, declined: 0, revoked: 0, delivered: 0, requests: 0, refused: 0, fenceEvents: 0, deltas: 0 };

  const chosen = pickDrivers(scenario.couriers, options.drivers);
  const simulated = new Set(chosen.map((c) => c.id));
  // through the same verb a dispatcher's PUT .../status takes: stored, and known to the dispatch lifecycle
  const others = scenario.couriers.filter((c) => !simulated.has(c.id) && instance.engine.couriers.get(c.id)?.status !== 'offline');
  await instance.server.pump.setCourierStatuses(others.map((c) => c.id), 'offline').acknowledged;
  const drivers = await Promise.all(chosen.map((c) => SimDriver.start(c, base, auth.signToken({ sub: c.id, role: 'driver' }, 24 * 3600), new Prng(1000 + rng.int(1_000_000)), options.speed, stats)));
  console.log(`demo: ${drivers.length} simulated drivers on real WebSockets (${drivers.filter((d) => d.coldChain).length} with cold chain); a request every ${options.every} s`);

  const dispatcher = watchCity(instance, auth.signToken({ sub: 'demo-dispatcher', role: 'dispatcher' }, 24 * 3600), stats);
  const requester = auth.signToken({ sub: 'demo-requester', role: 'requester' }, 24 * 3600);
  const queue = interleave(scenario.requests);
  let next = 0;
  const requestTimer = setInterval(() => {
    const r = queue[next++ % queue.length];
    void submit(base, requester, r, instance, next).then((ok) => {
      stats.requests++;
      if (!ok) stats.refused++;
    });
  }, options.every * 1000);
  const moveTimer = setInterval(() => {
    for (const d of drivers) d.step();
  }, 1000);
  const summaryTimer = setInterval(() => {
    const s = stats;
    console.log(`demo: requests ${s.requests} (refused ${s.refused}) · offers ${s.offers} · accepted ${s.accepted} · declined ${s.declined} · expired/revoked ${s.revoked} · delivered ${s.delivered} · map deltas ${s.deltas} · fence crossings ${s.fenceEvents}`);
  }, 5000);

  await new Promise<void>((resolve) => {
    if (options.seconds > 0) setTimeout(resolve, options.seconds * 1000);
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  clearInterval(requestTimer);
  clearInterval(moveTimer);
  clearInterval(summaryTimer);
  for (const d of drivers) d.close();
  dispatcher.close();
  await instance.stop();
  console.log(`demo finished: ${stats.delivered} deliveries completed by simulated drivers`);
}

/** One simulated driver: a phone app on a real WebSocket. */
class SimDriver {
  lat: number;
  lng: number;
  private job: { requestId: string; pickup: { lat: number; lng: number }; dropoff: { lat: number; lng: number }; pickedUp: boolean } | undefined;
  private ts = Date.now();

  private constructor(
    readonly id: string,
    readonly coldChain: boolean,
    private readonly socket: WebSocket,
    private readonly base: string,
    private readonly token: string,
    private readonly rng: Prng,
    private readonly speed: number,
    private readonly stats: Record<string, number>,
    start: { lat: number; lng: number },
  ) {
    this.lat = start.lat;
    this.lng = start.lng;
    socket.on('message', (data) => this.onFrame(JSON.parse(String(data))));
  }

  static async start(c: CourierFixture, base: string, token: string, rng: Prng, speed: number, stats: Record<string, number>): Promise<SimDriver> {
    await fetch(`${base}/v1/couriers/${c.id}/status`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ status: 'available' }) });
    const socket = new WebSocket(`${base.replace('http', 'ws')}/v1/stream?access_token=${token}`);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new SimDriver(c.id, c.capabilities.includes('cold_chain'), socket, base, token, rng, speed, stats, c);
  }

  /** One second of driving: toward the job's next stop, or a wander; then a `loc` frame. */
  step(): void {
    const target = this.job === undefined ? undefined : this.job.pickedUp ? this.job.dropoff : this.job.pickup;
    if (target === undefined) {
      this.lat += (this.rng.next() - 0.5) * 0.0006;
      this.lng += (this.rng.next() - 0.5) * 0.0009;
    } else {
      const d = distanceMeters(this.lat, this.lng, target.lat, target.lng);
      const f = d <= this.speed ? 1 : this.speed / d;
      this.lat += (target.lat - this.lat) * f;
      this.lng += (target.lng - this.lng) * f;
      if (f === 1) this.arrive();
    }
    this.ts = Math.max(this.ts + 1, Date.now());
    this.send({ t: 'loc', lat: round(this.lat), lng: round(this.lng), ts: this.ts });
  }

  close(): void {
    this.socket.close();
  }

  private onFrame(f: { t: string; offerId?: string; requestId?: string; pickup?: { lat: number; lng: number }; dropoff?: { lat: number; lng: number }; reason?: string }): void {
    if (f.t === 'offer') {
      this.stats.offers++;
      const accept = this.rng.next() < 0.85;
      // a human reads the offer before tapping
      setTimeout(() => this.send({ t: accept ? 'accept' : 'decline', offerId: f.offerId }), 300 + this.rng.next() * 900);
      if (accept) this.job = { requestId: f.requestId!, pickup: f.pickup!, dropoff: f.dropoff!, pickedUp: false };
      else this.stats.declined++;
    } else if (f.t === 'assigned') {
      this.stats.accepted++;
    } else if (f.t === 'revoked') {
      this.stats.revoked++;
      if (this.job?.requestId === f.requestId) this.job = undefined;
    }
  }

  private arrive(): void {
    const job = this.job!;
    const status = job.pickedUp ? 'delivered' : 'picked_up';
    if (job.pickedUp) this.job = undefined;
    else job.pickedUp = true;
    void fetch(`${this.base}/v1/requests/${encodeURIComponent(job.requestId)}/progress`, {
      method: 'POST', headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ status }),
    }).then((r) => {
      if (r.ok && status === 'delivered') this.stats.delivered++;
      if (!r.ok) this.job = undefined; // cancelled or revoked meanwhile
    }, () => undefined);
  }

  private send(frame: unknown): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }
}

/** The first `n` couriers, a quarter of them with cold chain so blood can move. */
function pickDrivers(couriers: readonly CourierFixture[], n: number): CourierFixture[] {
  const cold = couriers.filter((c) => c.capabilities.includes('cold_chain')).slice(0, Math.ceil(n / 4));
  const rest = couriers.filter((c) => !cold.includes(c)).slice(0, n - cold.length);
  return [...cold, ...rest];
}

/** The fixture's requests with the three kinds taking turns. */
function interleave(requests: readonly RequestFixture[]): RequestFixture[] {
  const byKind = (k: string) => requests.filter((r) => r.kind === k);
  const lists = [byKind('delivery'), byKind('rescue'), byKind('blood')];
  const out: RequestFixture[] = [];
  for (let i = 0; out.length < requests.length; i++) for (const l of lists) if (i < l.length) out.push(l[i]);
  return out;
}

/** Posts one fixture request, times shifted to now. */
async function submit(base: string, token: string, r: RequestFixture, instance: Instance, n: number): Promise<boolean> {
  const now = Date.now();
  let body: Record<string, unknown>;
  if (r.kind === 'delivery') body = { kind: 'delivery', pickup: r.pickup, dropoff: r.dropoff, readyAt: now + 30_000 };
  else if (r.kind === 'rescue') body = { kind: 'rescue', pickup: r.pickup, ...(r.coldChain ? { coldChain: true } : {}) };
  else {
    const hospital = r.dropoffSiteId !== undefined && instance.engine.sites.has(r.dropoffSiteId) ? { hospitalSiteId: r.dropoffSiteId } : { dropoff: r.dropoff ?? r.pickup };
    body = { kind: 'blood', ...hospital, product: r.blood!.product, bloodType: r.blood!.bloodType, units: r.blood!.units, urgency: n % 9 === 0 ? 'emergency' : r.urgency };
  }
  const res = await fetch(`${base}/v1/requests`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': `demo-${n}` }, body: JSON.stringify(body),
  });
  const reply = (await res.json()) as { id?: string; error?: { code: string } };
  console.log(`demo: ${String(body.kind).padEnd(8)} request ${res.status === 201 ? reply.id : `refused (${reply.error?.code})`}`);
  return res.status === 201;
}

/** A dispatcher watching the whole city, counting deltas and fence crossings. */
function watchCity(instance: Instance, token: string, stats: Record<string, number>): WebSocket {
  const city = instance.scenario!.cities[0];
  const socket = new WebSocket(`ws://127.0.0.1:${instance.port}/v1/stream?access_token=${token}`);
  socket.on('open', () => socket.send(JSON.stringify({ t: 'watch', bbox: [city.lng - 0.6, city.lat - 0.4, city.lng + 0.6, city.lat + 0.4], hz: 2 })));
  socket.on('message', (data) => {
    const f = JSON.parse(String(data)) as { t: string; couriers?: unknown[]; fences?: unknown[] };
    if (f.t === 'snapshot') console.log(`demo: dispatcher watching ${city.name}: ${f.couriers?.length ?? 0} couriers, ${f.fences?.length ?? 0} fences`);
    if (f.t === 'delta') {
      stats.deltas++;
      stats.fenceEvents += f.fences?.length ?? 0;
    }
  });
  return socket;
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v >= 0 ? v : fallback;
}

runDemo({ drivers: arg('drivers', 40), seconds: arg('seconds', 0), speed: arg('speed', 150), every: arg('every', 2) }).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
