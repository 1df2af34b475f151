/**
 * Shared by the browser test (web/map.e2e.test.ts) and the frame-time bench (web/frame-bench.mjs):
 * the real server running the demo city on a free port, and Debian's headless Chromium with WebGL.
 *
 *   spawnDemo(args, env) ─► node dist/api/demo.js (PORT=<free>, GEODISPATCH_DEV=1, DATA_DIR=<fresh temp dir>)
 *                          ─► parse `dev token <role>: <JWT>`; stop() also removes the store's directory
 *   launchChromium()     ─► /usr/bin/chromium, headless, SwiftShader WebGL (no GPU on CI machines)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CHROMIUM = '/usr/bin/chromium';

/** Chromium flags: headless and quiet, with WebGL2 on ANGLE's SwiftShader (CPU) since there is no GPU. */
export const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
  '--use-gl=angle', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist',
];

/** Throws with the fix when Chromium or the built page is missing (never skips). */
export function requirePrerequisites() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); the browser test does not skip`);
  if (!existsSync(join(ROOT, 'dist', 'web', 'index.html'))) throw new Error('dist/web/index.html is missing: run `npm run build:web` (node web/build.mjs) first');
  if (!existsSync(join(ROOT, 'dist', 'api', 'demo.js'))) throw new Error('dist/api/demo.js is missing: run `npm run build` first');
}

/** Launches headless Chromium. */
export function launchChromium() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** A free TCP port on loopback. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `node dist/api/demo.js <args>` on a free port; resolves once its dev tokens are printed.
 * @returns {Promise<{ base: string, port: number, tokens: Record<string, string>, output: () => string, stop: () => Promise<void> }>}
 */
export async function spawnDemo(args = [], env = {}) {
  const port = await freePort();
  // a fresh embedded store per run: the city is seeded anew and nothing leaks into ./data or between runs
  const dataDir = mkdtempSync(join(tmpdir(), 'geodispatch-web-'));
  const childEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1', GEODISPATCH_DEV: '1', LOG_LEVEL: 'warn', DATA_DIR: dataDir };
  // a CI DATABASE_URL / REDIS_URL is for the store and fan-out suites, not for a throwaway demo city
  delete childEnv.DATABASE_URL;
  delete childEnv.REDIS_URL;
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'api', 'demo.js'), ...args], {
    cwd: ROOT,
    env: { ...childEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const stop = () =>
    new Promise((resolve) => {
      const done = () => {
        rmSync(dataDir, { recursive: true, force: true });
        resolve();
      };
      if (child.exitCode !== null || child.signalCode !== null) return done();
      const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(kill);
        done();
      });
      child.kill('SIGTERM');
    });
  const tokens = await new Promise((resolve, reject) => {
    // the first start seeds the embedded store with the city: seconds, more on a loaded machine
    const timer = setTimeout(() => reject(new Error(`demo printed no dev tokens in 45 s:\n${out}`)), 45_000);
    const check = () => {
      const found = Object.fromEntries([...out.matchAll(/^dev token (\w+)[^:]*: (\S+)$/gm)].map((m) => [m[1], m[2]]));
      if (found.dispatcher && found.admin && /demo: \d+ simulated drivers/.test(out)) {
        clearTimeout(timer);
        child.stdout.off('data', check);
        resolve(found);
      }
    };
    child.stdout.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      rmSync(dataDir, { recursive: true, force: true });
      reject(new Error(`demo exited (${code}) before printing tokens:\n${out}`));
    });
  });
  return { base: `http://127.0.0.1:${port}`, port, tokens, output: () => out, stop };
}
