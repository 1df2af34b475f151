/**
 * The dispatcher's live map (web/, bundled into dist/web by web/build.mjs) served from memory.
 *
 *   start ─► read every file under dir once ─► exact GET routes: `/` (index.html), `/<file>`, `/config.json`
 *   GET   ─► bytes from memory with their content type; anything else falls through to the API's 404
 *
 * Only files present at start are routed, so a path can never reach outside `dir` (no traversal to refuse).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type uWS from '@trufflesuite/uws-js-unofficial';

/** What the page is told at `/config.json`. */
export interface WebConfig {
  /** A MapLibre style URL for the base map; the page uses its offline style when absent. */
  mapStyleUrl?: string;
}

/** dist/web next to dist/api (where `npm run build:web` writes the bundle). */
export const DEFAULT_WEB_DIR = fileURLToPath(new URL('../web/', import.meta.url));

/**
 * Routes GET for every file under `dir` (read once, now) plus `/config.json`; returns how many files were found.
 * Without a built page `/` answers 503 with how to build it, so the API still runs.
 */
export function registerStaticFiles(app: uWS.TemplatedApp, dir: string = DEFAULT_WEB_DIR, web: WebConfig = {}): number {
  const files = readTree(dir);
  for (const [path, body] of files) {
    const type = CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
    const route = (res: uWS.HttpResponse): void => send(res, '200 OK', type, body, path.endsWith('.html') ? 'no-cache' : 'max-age=60');
    app.get(`/${path}`, route);
    if (path === 'index.html') app.get('/', route);
  }
  if (!files.has('index.html')) {
    const hint = Buffer.from(`the live map is not built: run \`npm run build:web\` (expected ${join(dir, 'index.html')})\n`);
    app.get('/', (res) => send(res, '503 Service Unavailable', 'text/plain; charset=utf-8', hint, 'no-store'));
  }
  const config = Buffer.from(JSON.stringify(web));
  app.get('/config.json', (res) => send(res, '200 OK', 'application/json; charset=utf-8', config, 'no-cache'));
  return files.size;
}

// why a table: the bundle only holds these kinds, and an unknown one must not be sniffed as HTML
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

function send(res: uWS.HttpResponse, status: string, type: string, body: Buffer, cache: string): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader('content-type', type).writeHeader('cache-control', cache).writeHeader('x-content-type-options', 'nosniff').end(body);
  });
}

/** Every regular file under dir by its URL path (`/`-separated); empty when dir does not exist. */
function readTree(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const name of names) {
      const full = join(d, name);
      const st = statSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isFile()) out.set(relative(dir, full).split(sep).join('/'), readFileSync(full));
    }
  };
  walk(dir);
  return out;
}
