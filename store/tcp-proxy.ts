/**
 * A TCP proxy for outage tests: sits between a client (a pg.Pool) and a server (PostgreSQL) and can cut the
 * line without touching the server, which other test files share.
 *
 *   client ──► 127.0.0.1:<random port> ──► proxy ──► target host:port
 *                                          │
 *              cut('reset')     every open connection destroyed; new ones accepted and closed at once
 *              cut('blackhole') bytes stop flowing both ways and new connections hang (a half-open network)
 *              restore()        hung connections are closed; new connections are forwarded again
 */
import net from 'node:net';

/** How the line is cut: connections refused and reset, or silently swallowed. */
export type CutMode = 'reset' | 'blackhole';

/** A running proxy; `port` is where clients connect. */
export interface TcpProxy {
  readonly host: string;
  readonly port: number;
  /** Connections forwarded so far. */
  readonly forwarded: number;
  cut(mode?: CutMode): void;
  restore(): void;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 (a free port) in front of `target`. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: CutMode | null = null;
  let forwarded = 0;
  const open = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => s.destroy());
  };

  const server = net.createServer((client) => {
    track(client);
    if (mode === 'reset') { client.resetAndDestroy(); return; }
    if (mode === 'blackhole') { client.pause(); return; }
    forwarded++;
    const upstream = net.connect(target.port, target.host);
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  const destroyAll = () => { for (const s of open) s.destroy(); open.clear(); };
  return {
    host: '127.0.0.1',
    port,
    get forwarded() { return forwarded; },
    cut(m: CutMode = 'reset') {
      mode = m;
      if (m === 'reset') { destroyAll(); return; }
      for (const s of open) { s.unpipe(); s.pause(); }
    },
    restore() {
      if (mode === 'blackhole') destroyAll();
      mode = null;
    },
    close() {
      destroyAll();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
