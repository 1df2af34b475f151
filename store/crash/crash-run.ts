/**
 * Crash property: the real server process (`node dist/api/main.js`, embedded PGlite in one DATA_DIR) driven by a
 * seeded random sequence of API operations across every role and request kind, killed with SIGKILL at seeded
 * moments and started again on the same store; after every restart what it shows is checked against a model of
 * what was ACKNOWLEDGED.
 *
 *   cycle 0:  start ─► build a small world through the admin API (couriers, sites, stock, donors, fences)
 *   cycle k:  start ─► retry keyed creates whose answer was lost ─► check through the API
 *               ─► drivers connect (WebSocket; accept / decline / ignore offers, then picked_up, delivered)
 *               ─► random operations, several in flight (admin writes, pings, statuses, creates with and without
 *                  Idempotency-Key, refused creates, retries, cancels, progress, reads)
 *               ─► SIGKILL at a seeded moment, answers still out
 *   every N cycles and after the last:  SIGTERM ─► open the store itself ─► check its invariants
 *
 *   The model: each operation's answer is what it proves — acknowledged (2xx: must be there), refused (4xx, 503:
 *   must have changed nothing), unknown (no answer before the kill, 504: may or may not be there).
 *
 * The seed fixes every choice (operations, bodies, driver reactions, kill moments); what the server interleaves
 * under concurrency still varies run to run, so a failure names the seed, the cycle, the operation and the
 * expectation rather than promising a replay.
 */
import { rmSync } from 'node:fs';
import { startServerProcess } from '../../api/server-process.js';
import { Prng, streamSeed } from '../../fixtures/prng.js';
import { sleep } from './client.js';
import { CrashState, type HarnessServer, type Violation, describeViolation } from './crash-state.js';
import { Drivers } from './drivers.js';
import { AdminOperations } from './operations-admin.js';
import { RequestOperations } from './operations-requests.js';
import { ApiChecks } from './api-checks.js';
import { StoreChecks } from './store-checks.js';
import { COURIERS, DONORS, DURABLE_AFTER_MS, FENCES, serverEnv } from './world.js';

export { type Violation, describeViolation };

/** How a crash property run is shaped. */
export interface CrashRunOptions {
  seed: number;
  /** SIGKILLs (one per cycle). */
  kills: number;
  /** Stop with SIGTERM and check the store itself every this many kills (and always after the last). */
  storeCheckEvery?: number;
  /** How long a cycle's load runs before the kill, [min, max) ms, drawn from the seed. */
  loadMs?: readonly [number, number];
  /** Operations in flight at once (drivers' reactions come on top). */
  maxInFlight?: number;
  /** Requests GET-checked after a restart: every one touched since its last check, then a sample up to this. */
  requestChecksPerCycle?: number;
  /** Stop once this many kinds of violation were found. */
  maxViolations?: number;
  /** A progress line per cycle. */
  log?: (line: string) => void;
  /** Run on this directory and keep it afterwards (to look at a failure); default a fresh temp dir, deleted. */
  dataDir?: string;
}

/** What a run did and found. */
export interface CrashRunReport {
  seed: number;
  cycles: number;
  operations: number;
  acknowledged: number;
  refused: number;
  unknown: number;
  requests: number;
  storeChecks: number;
  /** Examples: the first few of each kind. */
  violations: Violation[];
  /** Every violation counted by kind (its expectation with ids and numbers taken out), most frequent first. */
  violationKinds: { kind: string; count: number }[];
  durationMs: number;
}

/** The one-line summary the soak prints last. */
export function summaryLine(r: CrashRunReport): string {
  const violations = r.violationKinds.reduce((n, k) => n + k.count, 0);
  return `crash property: seed ${r.seed}, cycles ${r.cycles}, operations ${r.operations}, acknowledged ${r.acknowledged}, refused ${r.refused}, ` +
    `unknown ${r.unknown}, requests ${r.requests}, store checks ${r.storeChecks}, violations ${violations} (${r.violationKinds.length} kinds), duration ${(r.durationMs / 1000).toFixed(1)} s`;
}

/** Runs the crash property: `kills` SIGKILL/restart cycles on one store, checked after each. */
export async function runCrashProperty(options: CrashRunOptions): Promise<CrashRunReport> {
  const harness = new CrashRun(options);
  try {
    return await harness.run();
  } catch (err) {
    // a harness that cannot go on (the server would not start, a read got no answer) still names where it stopped
    const found = harness.violations.map(describeViolation).join('\n');
    throw new Error(`crash property stopped: seed ${options.seed}, cycle ${harness.cycleNow()}: ${err instanceof Error ? err.message : String(err)}${found ? `\nviolations so far:\n${found}` : ''}`, { cause: err });
  } finally {
    await harness.dispose();
  }
}

/** One run: the server started, loaded, killed and started again `kills` times, and checked after each. */
class CrashRun {
  private readonly state: CrashState;
  private readonly adminOps: AdminOperations;
  private readonly requestOps: RequestOperations;
  private readonly drivers: Drivers;
  private readonly checksThroughApi: ApiChecks;
  private readonly checksInStore: StoreChecks;
  private readonly started = Date.now();
  private storeChecks = 0;
  private kills = 0;

  constructor(options: CrashRunOptions) {
    this.state = new CrashState(options);
    this.adminOps = new AdminOperations(this.state);
    this.requestOps = new RequestOperations(this.state);
    this.drivers = new Drivers(this.state, this.requestOps);
    this.checksThroughApi = new ApiChecks(this.state);
    this.checksInStore = new StoreChecks(this.state);
  }

  /** Violations found so far. */
  get violations(): Violation[] {
    return this.state.violations;
  }

  /** Cycle 0 builds the world; each cycle restarts, checks and loads until the kill; the last ends with a clean stop and a store check. */
  async run(): Promise<CrashRunReport> {
    const { kills, storeCheckEvery } = this.state.opts;
    this.state.server = await this.start();
    await this.adminOps.buildWorld();
    for (this.state.cycle = 1; this.state.cycle <= kills && !this.state.full(); this.state.cycle++) {
      const t0 = Date.now();
      let t1 = t0;
      let t2 = t0;
      let t3 = t0;
      if (this.state.cycle > 1) {
        this.state.server = await this.start();
        t1 = Date.now();
        await this.requestOps.retryLostCreates();
        await this.checksThroughApi.checkThroughApi();
        t2 = Date.now();
        if ((this.state.cycle - 1) % storeCheckEvery === 0) await this.stopAndCheckStore();
        t3 = Date.now();
      }
      const before = { ...this.state.counts, ops: this.state.opCount };
      await this.load();
      const sec = (ms: number): string => (ms / 1000).toFixed(1);
      this.state.opts.log(
        `cycle ${this.state.cycle}/${kills}: ${this.state.opCount - before.ops} ops (${this.state.counts.acked - before.acked} acked, ${this.state.counts.refused - before.refused} refused, ` +
        `${this.state.counts.unknown - before.unknown} unknown), ${this.state.requests.size} requests (${this.state.lastChecked} checked), ${[...this.state.kinds.values()].reduce((a, b) => a + b, 0)} violations; ` +
        `restart ${sec(t1 - t0)} s, checks ${sec(t2 - t1)} s${t3 > t2 ? `, store check ${sec(t3 - t2)} s` : ''}, load ${sec(Date.now() - t3)} s`,
      );
    }
    this.state.cycle = this.kills;
    if (!this.state.full()) {
      this.state.server = await this.start();
      await this.requestOps.retryLostCreates();
      await this.checksThroughApi.checkThroughApi(true);
      await this.stopAndCheckStore(true);
    }
    return {
      seed: this.state.seed, cycles: this.kills, operations: this.state.opCount, acknowledged: this.state.counts.acked, refused: this.state.counts.refused, unknown: this.state.counts.unknown,
      requests: this.state.requests.size, storeChecks: this.storeChecks, violations: this.state.violations, violationKinds: this.state.violationKinds(), durationMs: Date.now() - this.started,
    };
  }

  /** Closes the drivers, kills a server still running, deletes a temp DATA_DIR. */
  async dispose(): Promise<void> {
    this.drivers.close();
    if (this.state.server !== undefined) await this.kill(this.state.server);
    if (!this.state.keepDataDir) rmSync(this.state.dataDir, { recursive: true, force: true });
  }

  /** The cycle running now (for messages). */
  cycleNow(): number {
    return this.state.cycle;
  }

  // ─── server process ───────────────────────────────────────────────────────────────────────────────────────

  /** Starts the server on the run's DATA_DIR; an exit the harness did not cause is a violation. */
  private async start(): Promise<HarnessServer> {
    const startedAt = Date.now();
    // a first start on an empty DATA_DIR takes ~10 s (PostGIS), restarts 2–5 s; 90 s is a machine in trouble
    const s: HarnessServer = Object.assign(await startServerProcess(serverEnv(this.state.dataDir), 90_000), { startedAt, expectExit: false });
    s.child.once('exit', (code, signal) => {
      if (!s.expectExit) this.state.violate(`server process (cycle ${this.state.cycle})`, 'it runs until the harness kills or stops it', `exit ${code ?? signal}; output:\n${tail(s.output())}`);
    });
    return s;
  }

  /** SIGKILL: nothing flushed, nothing drained. */
  private async kill(server: HarnessServer): Promise<void> {
    server.expectExit = true;
    await server.kill();
  }

  /** SIGTERM: the server drains and closes the store; resolves with its exit code, or its signal (SIGKILL after 30 s). */
  private async stop(server: HarnessServer): Promise<number | string | null> {
    server.expectExit = true;
    try {
      await server.stop(30_000);
    } catch {
      // not a clean exit: the code or signal below says how, and the caller reports it with the output
    }
    return server.child.exitCode ?? server.child.signalCode;
  }

  /** SIGTERM, then the store itself checked; then started again unless this was the last. */
  private async stopAndCheckStore(final = false): Promise<void> {
    const shown = await this.checksInStore.stockShown();
    const server = this.state.server!;
    this.state.server = undefined;
    const exit = await this.stop(server);
    if (exit !== 0) this.state.violate(`SIGTERM (cycle ${this.state.cycle})`, 'a clean exit (0) within 30 s', `${String(exit)}; output:\n${tail(server.output())}`);
    // a clean stop flushes what this server acknowledged (not what an earlier one lost in its kill)
    for (const list of this.state.pings.values()) for (const p of list) if (p.op.outcome === 'acked' && p.op.sentAt >= server.startedAt) p.durable = true;
    await this.checksInStore.checkStore(final, shown);
    this.storeChecks++;
    if (!final) this.state.server = await this.start();
  }

  /** One cycle's load: drivers on sockets, random operations until the seeded kill moment, then SIGKILL. */
  private async load(): Promise<void> {
    const rng = new Prng(streamSeed(this.state.seed, 1000 + this.state.cycle));
    const [lo, hi] = this.state.opts.loadMs;
    await this.drivers.connect();
    const until = Date.now() + rng.range(lo, hi);
    while (Date.now() < until && !this.state.full()) {
      if (this.state.inFlight.size < this.state.opts.maxInFlight) {
        const op = this.pickOperation(rng);
        if (op !== undefined) this.state.track(op);
      }
      await sleep(rng.int(25));
    }
    const server = this.state.server!;
    const killAt = Date.now();
    await this.kill(server);
    this.kills++;
    this.state.server = undefined;
    this.drivers.close();
    await Promise.allSettled([...this.state.inFlight]);
    // only what THIS server acknowledged long enough before ITS kill must have survived it
    for (const list of this.state.pings.values()) {
      for (const p of list) {
        if (p.op.outcome !== 'acked' || p.op.sentAt < server.startedAt || p.op.doneAt >= killAt - DURABLE_AFTER_MS) continue;
        p.durable = true;
        p.killAt = killAt;
      }
    }
  }

  /** One random operation, weighted (fewer creates and more cancels once many requests are open). */
  private pickOperation(rng: Prng): Promise<unknown> | undefined {
    const open = this.state.openRequests();
    const ops: [number, () => Promise<unknown> | undefined][] = [
      [20, () => this.adminOps.ping(rng, rng.pick(this.state.knownCouriers()))],
      [4, () => this.adminOps.setStatus(rng.pick(this.state.knownCouriers()), rng.chance(0.3) ? 'offline' : 'available')],
      [3, () => this.adminOps.putCourier(rng, rng.pick(COURIERS))],
      [3, () => this.adminOps.siteWrite(rng)],
      [3, () => this.adminOps.inventoryWrite(rng)],
      [3, () => this.adminOps.putDonor(rng, rng.pick(DONORS))],
      [2, () => this.adminOps.putFence(rng, rng.pick(FENCES))],
      [open.length > 150 ? 2 : 16, () => this.requestOps.createRequest(rng)],
      [3, () => this.requestOps.createRefused(rng)],
      [4, () => this.requestOps.retryCreate(rng)],
      [open.length > 100 ? 14 : 6, () => this.requestOps.cancelRequest(rng, open)],
      [3, () => this.requestOps.progressSome(rng)],
      [4, () => this.requestOps.readSome(rng)],
    ];
    return ops[rng.weighted(ops.map((o) => o[0]))][1]();
  }
}

/** The last 20 kB of a server's output, for a violation's message. */
function tail(output: string): string {
  return output.slice(-20_000);
}
