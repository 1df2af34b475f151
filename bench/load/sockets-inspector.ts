/**
 * The spawned server's inspector, used for two things only: a full garbage collection before each memory
 * reading, so the readings compare what is retained rather than when V8 last collected, and the main isolate's
 * own `process.memoryUsage()`.
 *
 *   node --inspect-port=127.0.0.1:<port> (not listening) ─► SIGUSR1 once ready ─► inspector listens on <port>
 *   GET http://127.0.0.1:<port>/json/list ─► webSocketDebuggerUrl ─► ws (Chrome DevTools Protocol)
 *   collectGarbage() ─► HeapProfiler.collectGarbage
 *   memoryUsage()    ─► Runtime.evaluate("process.memoryUsage()")
 *   close()          ─► disconnect (before the server is stopped: node waits for a connected debugger on exit)
 */
import WebSocket from 'ws';

/** What `process.memoryUsage()` reports, in bytes. */
export interface MemoryUsage {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

const CALL_TIMEOUT_MS = 30_000;
// the inspector starts listening on the process's next turn after SIGUSR1: a busy server may take a while
const ACTIVATE_TIMEOUT_MS = 10_000;

/** A DevTools-protocol connection to one process. */
export class ServerInspector {
  private readonly ws: WebSocket;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer) => this.answer(data));
    ws.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('inspector connection closed'));
      this.pending.clear();
    });
  }

  /** Opens the inspector of `pid` (started with --inspect-port=127.0.0.1:`port`) with SIGUSR1 and connects to it. */
  static async activate(pid: number, port: number): Promise<ServerInspector> {
    process.kill(pid, 'SIGUSR1');
    const deadline = Date.now() + ACTIVATE_TIMEOUT_MS;
    for (;;) {
      try {
        return await ServerInspector.connect(port);
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`the inspector of ${pid} did not open on 127.0.0.1:${port} after SIGUSR1 (pass --no-gc to measure without it)`, { cause: e });
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** Connects to the inspector listening on 127.0.0.1:`port`. */
  static async connect(port: number): Promise<ServerInspector> {
    const targets = (await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(5000) }).then((r) => r.json())) as { webSocketDebuggerUrl?: string }[];
    const url = targets[0]?.webSocketDebuggerUrl;
    if (url === undefined) throw new Error(`no inspector target on 127.0.0.1:${port} (was the server started with --inspect=127.0.0.1:${port}?)`);
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new ServerInspector(ws);
  }

  /** A full, compacting collection of the main isolate's heap. */
  async collectGarbage(): Promise<void> {
    await this.call('HeapProfiler.collectGarbage', {});
  }

  /** The main isolate's `process.memoryUsage()`. */
  async memoryUsage(): Promise<MemoryUsage> {
    const r = (await this.call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as { result?: { value?: string } };
    if (typeof r.result?.value !== 'string') throw new Error('Runtime.evaluate of process.memoryUsage() returned no value');
    return JSON.parse(r.result.value) as MemoryUsage;
  }

  /** Disconnects; the server may then exit normally. */
  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => (this.ws.terminate(), resolve()), 2000);
      this.ws.once('close', () => (clearTimeout(timer), resolve()));
      this.ws.close();
    });
  }

  private call(method: string, params: Record<string, unknown>): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`inspector ${method}: no answer in ${CALL_TIMEOUT_MS / 1000} s`));
      }, CALL_TIMEOUT_MS);
      this.pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  private answer(data: Buffer): void {
    const msg = JSON.parse(data.toString('utf8')) as { id?: number; result?: unknown; error?: { message?: string } };
    if (msg.id === undefined) return; // an event
    const p = this.pending.get(msg.id);
    if (p === undefined) return;
    this.pending.delete(msg.id);
    if (msg.error !== undefined) p.reject(new Error(`inspector: ${msg.error.message ?? 'error'}`));
    else p.resolve(msg.result);
  }
}
