import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import uWS from '@trufflesuite/uws-js-unofficial';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerStaticFiles } from './static-files.js';

let base = '';
let listen: uWS.us_listen_socket | undefined;
let emptyBase = '';
let emptyListen: uWS.us_listen_socket | undefined;

async function start(dir: string, web = {}): Promise<[string, uWS.us_listen_socket]> {
  const app = uWS.App();
  registerStaticFiles(app, dir, web);
  app.any('/*', (res) => res.writeStatus('404 Not Found').end('no route'));
  return new Promise((resolve, reject) => {
    app.listen('127.0.0.1', 0, (token) => {
      if (!token) return reject(new Error('cannot listen'));
      resolve([`http://127.0.0.1:${uWS.us_socket_local_port(token as unknown as uWS.us_socket)}`, token]);
    });
  });
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gd-web-'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>map</title>');
  writeFileSync(join(dir, 'main.js'), 'console.log(1)');
  writeFileSync(join(dir, 'main.css'), 'body{}');
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'assets', 'worker.mjs'), 'export {}');
  writeFileSync(join(dir, 'blob.xyz'), 'x');
  [base, listen] = await start(dir, { mapStyleUrl: 'https://tiles.example/style.json' });
  [emptyBase, emptyListen] = await start(join(dir, 'missing'));
});

afterAll(() => {
  for (const l of [listen, emptyListen]) if (l !== undefined) uWS.us_listen_socket_close(l);
});

describe('static files of the live map', () => {
  it('serves index.html at / and at its name, as HTML that is revalidated', async () => {
    for (const path of ['/', '/index.html']) {
      const res = await fetch(base + path);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(await res.text()).toContain('<title>map</title>');
    }
  });

  it('serves the bundle with the content type of its extension, nested files included, a query string ignored', async () => {
    const cases: [string, string][] = [['/main.js', 'text/javascript; charset=utf-8'], ['/main.css', 'text/css; charset=utf-8'], ['/assets/worker.mjs?v=6', 'text/javascript; charset=utf-8'], ['/blob.xyz', 'application/octet-stream']];
    for (const [path, type] of cases) {
      const res = await fetch(base + path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe(type);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
  });

  it('answers /config.json with the base map style it was given', async () => {
    expect(await (await fetch(`${base}/config.json`)).json()).toEqual({ mapStyleUrl: 'https://tiles.example/style.json' });
  });

  it('routes nothing outside the files read at start: traversal and unknown paths fall through to 404', async () => {
    for (const path of ['/../package.json', '/%2e%2e/package.json', '/assets/../main.js.map', '/nope.js', '/assets/']) {
      expect((await fetch(base + path)).status, path).toBe(404);
    }
  });

  it('answers / with 503 and how to build the page when dist/web is missing', async () => {
    const res = await fetch(`${emptyBase}/`);
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('npm run build:web');
    expect((await fetch(`${emptyBase}/config.json`)).status).toBe(200);
  });
});
