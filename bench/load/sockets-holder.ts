/**
 * One client process of the sockets bench (forked by sockets-fleet.ts): holds a block of driver sockets to
 * `/v1/stream`, each its own principal, each bound to its loopback source address, over raw `net` sockets.
 *
 *   parent ─ init ─► mint a driver JWT per socket (sub <prefix><i>) ─► ready
 *          ─ open upTo ─► `concurrency` connects in flight: TCP ─► upgrade ─► 101 held | failure counted by reason
 *          ─ count ─► sockets still open, and why the others closed (close code, TCP reset, …)
 *          ─ probe ─► `{t:"hello"}` on a few held sockets ─► the server's `{t:"error",code:"E_UNKNOWN_FRAME"}`
 *          ─ exit / IPC gone ─► every socket destroyed, process exits
 *   held socket: server ping ─► pong; server close frame ─► counted, socket ended
 */
import { connect, type Socket } from 'node:net';
import { mintToken, type Role } from './dev-tokens.js';
import { type SocketBlock, countReason, sourceAddressOf } from './sockets-plan.js';
import { FrameReader, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, acceptFor, closeCode, encodeFrame, newKey, readUpgradeReply, upgradeRequest } from './sockets-wire.js';

/** What the parent sends. */
export type ClientCommand =
  | { t: 'init'; port: number; secret: string; role: Role; subPrefix: string; block: SocketBlock; addresses: string[]; concurrency: number; timeoutMs: number; tokenTtlSec: number }
  | { t: 'open'; upTo: number }
  | { t: 'count' }
  | { t: 'probe'; sockets: number; timeoutMs: number }
  | { t: 'exit' };

/** What a client process answers. */
export type ClientReport =
  | { t: 'ready' }
  | { t: 'opened'; open: number; attempted: number; failures: Record<string, number>; elapsedMs: number }
  | { t: 'count'; open: number; closed: Record<string, number> }
  | { t: 'probe'; sent: number; ok: number; detail: string[]; maxMs: number };

/** The frame a liveness probe sends: an unknown `t`, which every role gets an error frame for. */
export const PROBE_FRAME = '{"t":"hello"}';

interface Held {
  sock: Socket;
  reader: FrameReader | undefined;
  /** Waiting for a text frame (a liveness probe). */
  onText: ((text: string) => void) | undefined;
}

type InitCommand = Extract<ClientCommand, { t: 'init' }>;

/** The sockets of one client process, what became of the others, and the verbs the parent drives. */
export class HeldSockets {
  /** Sockets still open. */
  open = 0;
  /** Sockets tried so far (held or failed), from the start of the block. */
  attempted = 0;
  /** Why sockets could not be opened, by reason. */
  readonly failures: Record<string, number> = {};
  /** Why held sockets closed, by reason. */
  readonly closed: Record<string, number> = {};
  private readonly cfg: InitCommand;
  private readonly held: Held[] = [];
  // one key per process: the server only echoes its hash, and hashing it once saves a SHA-1 per socket
  private readonly key = newKey();
  private readonly expectedAccept = acceptFor(this.key);

  constructor(cfg: InitCommand) {
    this.cfg = cfg;
  }

  /** Opens the block's sockets until `upTo` of them were tried, `concurrency` at a time. */
  async openUpTo(upTo: number): Promise<void> {
    const target = Math.min(upTo, this.cfg.block.count);
    const lane = async (): Promise<void> => {
      while (this.attempted < target) {
        const reason = await this.openOne(this.cfg.block.first + this.attempted++);
        if (reason !== undefined) countReason(this.failures, reason);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.cfg.concurrency, target - this.attempted)) }, lane));
  }

  /** Sends the probe frame on up to `n` held sockets spread over the block; each must get its error frame back. */
  async probe(n: number, timeoutMs: number): Promise<{ sent: number; ok: number; detail: string[]; maxMs: number }> {
    const live = this.held.filter((h) => !h.sock.destroyed);
    const picks = spread(n, live.length);
    let maxMs = 0;
    const results = await Promise.all(
      picks.map((k) =>
        probeOne(live[k], timeoutMs).then((r) => {
          maxMs = Math.max(maxMs, r.ms);
          return r.problem;
        }),
      ),
    );
    const detail = results.filter((r): r is string => r !== undefined);
    return { sent: picks.length, ok: picks.length - detail.length, detail, maxMs };
  }

  /** Drops every socket at once (the process is about to exit). */
  destroyAll(): void {
    for (const h of this.held) h.sock.destroy();
  }

  /** Opens socket `i`; resolves undefined when held, else the reason it failed. */
  private openOne(i: number): Promise<string | undefined> {
    const { cfg } = this;
    const token = mintToken(cfg.secret, `${cfg.subPrefix}${i}`, cfg.role, cfg.tokenTtlSec);
    return new Promise((resolve) => {
      const sock = connect({ host: '127.0.0.1', port: cfg.port, localAddress: sourceAddressOf(i, cfg.addresses) });
      let received: Buffer = Buffer.alloc(0);
      const done = (reason: string | undefined, rest?: Buffer): void => {
        clearTimeout(timer);
        sock.off('connect', onConnect).off('error', onError).off('close', onClose).off('data', onData);
        if (reason !== undefined) sock.destroy();
        else this.hold(sock, rest ?? Buffer.alloc(0));
        resolve(reason);
      };
      const onConnect = (): void => void sock.write(upgradeRequest(`/v1/stream?access_token=${token}`, `127.0.0.1:${cfg.port}`, this.key));
      const onError = (e: NodeJS.ErrnoException): void => done(e.code ?? e.message);
      const onClose = (): void => done('closed before the upgrade answer');
      const onData = (chunk: Buffer): void => {
        received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
        const reply = readUpgradeReply(received, this.expectedAccept);
        if (reply.done) done(reply.ok ? undefined : reply.reason, reply.ok ? reply.rest : undefined);
      };
      const timer = setTimeout(() => done(`timeout ${cfg.timeoutMs} ms (${received.length === 0 ? 'no answer' : 'partial answer'})`), cfg.timeoutMs);
      sock.setNoDelay(true);
      sock.on('connect', onConnect).on('error', onError).on('close', onClose).on('data', onData);
    });
  }

  /** Keeps an upgraded socket: answers pings, counts how it closes, hands text frames to a waiting probe. */
  private hold(sock: Socket, rest: Buffer): void {
    const h: Held = { sock, reader: undefined, onText: undefined };
    this.held.push(h);
    this.open++;
    let reason: string | undefined;
    const onData = (chunk: Buffer): void => {
      h.reader ??= new FrameReader(); // most held sockets never hear a frame: no reader until one does
      for (const f of h.reader.push(chunk)) {
        if (f.opcode === OP_PING) sock.write(encodeFrame(OP_PONG, f.payload));
        else if (f.opcode === OP_CLOSE) {
          reason ??= `close frame ${closeCode(f.payload) ?? '(no code)'}`;
          sock.end(encodeFrame(OP_CLOSE, f.payload.subarray(0, 2)));
        } else if (f.opcode === OP_TEXT) h.onText?.(f.payload.toString('utf8'));
      }
    };
    sock.on('data', onData);
    sock.on('error', (e: NodeJS.ErrnoException) => (reason ??= e.code ?? e.message));
    sock.once('close', () => {
      this.open--;
      countReason(this.closed, reason ?? 'TCP closed by the server');
    });
    if (rest.length > 0) onData(rest);
  }
}

// entry: driven by the parent over IPC
if (process.send !== undefined) {
  let sockets: HeldSockets | undefined;
  const send = (r: ClientReport): void => void process.send?.(r);
  const exit = (): never => {
    sockets?.destroyAll();
    process.exit(0);
  };
  // the parent is gone (crashed, killed): nothing may outlive it
  process.on('disconnect', exit);
  process.on('message', (m: ClientCommand) => {
    if (m.t === 'init') {
      sockets = new HeldSockets(m);
      return send({ t: 'ready' });
    }
    if (m.t === 'exit') return exit();
    if (sockets === undefined) throw new Error(`sockets-holder: '${m.t}' before 'init'`);
    const s = sockets;
    if (m.t === 'count') return send({ t: 'count', open: s.open, closed: s.closed });
    if (m.t === 'probe') return void s.probe(m.sockets, m.timeoutMs).then((r) => send({ t: 'probe', ...r }));
    const started = performance.now();
    void s.openUpTo(m.upTo).then(() => send({ t: 'opened', open: s.open, attempted: s.attempted, failures: s.failures, elapsedMs: performance.now() - started }));
  });
}

/** `n` indexes spread evenly over 0..length-1 (first and last included), without repeats. */
function spread(n: number, length: number): number[] {
  if (length === 0 || n < 1) return [];
  if (n === 1) return [0];
  return [...new Set(Array.from({ length: Math.min(n, length) }, (_, k) => Math.round((k * (length - 1)) / (Math.min(n, length) - 1))))];
}

function probeOne(h: Held, timeoutMs: number): Promise<{ problem: string | undefined; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const timer = setTimeout(() => {
      h.onText = undefined;
      resolve({ problem: `no reply in ${timeoutMs} ms`, ms: timeoutMs });
    }, timeoutMs);
    h.onText = (text) => {
      clearTimeout(timer);
      h.onText = undefined;
      const reply = safeJson(text);
      const ok = reply?.t === 'error' && reply.code === 'E_UNKNOWN_FRAME';
      resolve({ problem: ok ? undefined : `unexpected reply ${text.slice(0, 120)}`, ms: performance.now() - started });
    };
    h.sock.write(encodeFrame(OP_TEXT, Buffer.from(PROBE_FRAME)));
  });
}

function safeJson(text: string): { t?: unknown; code?: unknown } | undefined {
  try {
    return JSON.parse(text) as { t?: unknown; code?: unknown };
  } catch {
    return undefined;
  }
}
