/**
 * The client processes of the sockets bench, seen from the parent: forks one sockets-holder.js per block,
 * sends each the same command and gathers their answers.
 *
 *   ClientFleet.start(plan) ─► fork ×P ─ init ─► ready
 *   open(upTo) / count() / probe() ─► the command to every holder ─► one answer each (or an Error naming the holder)
 *   stop() ─► exit to each ─► SIGKILL whoever is still there after 3 s
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Role } from './dev-tokens.js';
import type { ClientCommand, ClientReport } from './sockets-holder.js';
import type { SocketPlan } from './sockets-plan.js';

/** How the holders connect. */
export interface FleetOptions {
  port: number;
  secret: string;
  role: Role;
  /** Socket i authenticates as sub `${subPrefix}${i}`. */
  subPrefix: string;
  /** Connects in flight per holder. */
  concurrency: number;
  timeoutMs: number;
  tokenTtlSec: number;
}

type Answer<T extends ClientReport['t']> = Extract<ClientReport, { t: T }>;

// a holder that does not answer a count or a probe in this long is stuck (opening has its own deadline)
const ANSWER_TIMEOUT_MS = 30_000;

/** The forked holders of one run. */
export class ClientFleet {
  private readonly children: ChildProcess[];

  private constructor(children: ChildProcess[]) {
    this.children = children;
  }

  /** Forks one holder per block of the plan and initialises it; resolves when all are ready. */
  static async start(plan: SocketPlan, o: FleetOptions): Promise<ClientFleet> {
    const entry = fileURLToPath(new URL('./sockets-holder.js', import.meta.url));
    // no inspector or profiler flags of the parent: a holder is a plain client
    const children = plan.blocks.map(() => fork(entry, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    // a send racing a holder's exit emits 'error' on the ChildProcess: the exit is what gets reported
    for (const c of children) c.on('error', () => {});
    const fleet = new ClientFleet(children);
    try {
      await Promise.all(
        children.map((c, k) => {
          const init: ClientCommand = { t: 'init', ...o, block: plan.blocks[k], addresses: plan.addresses };
          return fleet.ask(c, init, 'ready', ANSWER_TIMEOUT_MS);
        }),
      );
    } catch (e) {
      await fleet.stop();
      throw e;
    }
    return fleet;
  }

  /** Process ids of the holders. */
  get pids(): number[] {
    return this.children.map((c) => c.pid ?? -1);
  }

  /** Every holder opens its block's sockets until `upTo(blockIndex)` were tried. */
  open(upTo: (k: number) => number, timeoutMs: number): Promise<Answer<'opened'>[]> {
    return Promise.all(this.children.map((c, k) => this.ask(c, { t: 'open', upTo: upTo(k) }, 'opened', timeoutMs)));
  }

  /** Sockets each holder still has open, and why the others closed. */
  count(): Promise<Answer<'count'>[]> {
    return Promise.all(this.children.map((c) => this.ask(c, { t: 'count' }, 'count', ANSWER_TIMEOUT_MS)));
  }

  /** Each holder sends the probe frame on `sockets` of its sockets and checks the answers. */
  probe(sockets: number, timeoutMs: number): Promise<Answer<'probe'>[]> {
    return Promise.all(this.children.map((c) => this.ask(c, { t: 'probe', sockets, timeoutMs }, 'probe', timeoutMs + ANSWER_TIMEOUT_MS)));
  }

  /** Tells every holder to drop its sockets and exit; kills those still there after 3 s. */
  async stop(): Promise<void> {
    await Promise.all(this.children.map((c) => stopChild(c)));
  }

  private ask<T extends ClientReport['t']>(child: ChildProcess, cmd: ClientCommand, answer: T, timeoutMs: number): Promise<Answer<T>> {
    return new Promise((resolve, reject) => {
      if (!child.connected) return reject(new Error(`socket holder ${child.pid} is gone (exit ${child.signalCode ?? child.exitCode}); asked '${cmd.t}'`));
      const onMessage = (m: ClientReport): void => {
        if (m.t !== answer) return;
        cleanup();
        resolve(m as Answer<T>);
      };
      const onExit = (code: number | null, signal: string | null): void => {
        cleanup();
        reject(new Error(`socket holder ${child.pid} exited with ${signal ?? code} while asked '${cmd.t}'`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`socket holder ${child.pid} did not answer '${cmd.t}' within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        child.off('message', onMessage).off('exit', onExit);
      };
      child.on('message', onMessage).on('exit', onExit);
      child.send(cmd);
    });
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.connected) child.send({ t: 'exit' } satisfies ClientCommand);
  else child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(timer);
}
