/**
 * The harness's side of the wire: one HTTP call that turns a killed connection into "no answer", and a
 * dispatcher's fence snapshot over the stream.
 */
import WebSocket from 'ws';

/** An answer: status, parsed body, and whether it was an idempotent replay. */
export interface Reply {
  status: number;
  body: any;
  replayed: boolean;
}

/** Sends one request; undefined when no answer came (no server, or killed in flight). */
export async function http(base: string | undefined, method: string, path: string, token: string, body: unknown, headers: Record<string, string>): Promise<Reply | undefined> {
  if (base === undefined) return undefined;
  try {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      // far above any answer of a live server; a kill resets the connection long before
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    let parsed: unknown = undefined;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    return { status: res.status, body: parsed, replayed: res.headers.get('idempotent-replayed') === 'true' };
  } catch {
    return undefined; // killed in flight: the answer never came
  }
}

/** A dispatcher's snapshot of every fence (the API's one way to read fences back). */
export function watchFences(wsBase: string, token: string): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsBase}?access_token=${token}`);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('no snapshot within 10 s'));
    }, 10_000);
    ws.on('open', () => ws.send(JSON.stringify({ t: 'watch', bbox: [-180, -90, 180, 90], kinds: ['fences'] })));
    ws.on('message', (data) => {
      const f = JSON.parse(String(data));
      if (f.t !== 'snapshot') return;
      clearTimeout(timer);
      ws.close();
      resolve(f.fences ?? []);
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
