/**
 * Bundles the dispatcher's live map into dist/web (served at `/` by api/static-files.ts).
 *
 *   web/main.ts ─► esbuild (ESM, browser, minified; maplibre-gl, its CSS and h3-js inlined) ─► dist/web/main.js + main.css
 *   node_modules/maplibre-gl/dist/maplibre-gl-worker.mjs ─► dist/web/ (MapLibre loads it next to main.js)
 *   web/index.html ─► dist/web/index.html
 *
 *   node web/build.mjs            (npm run build:web)
 */
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'web');
const require = createRequire(import.meta.url);
const maplibreDist = dirname(require.resolve('maplibre-gl/package.json')) + '/dist';

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await esbuild.build({
  entryPoints: { main: join(root, 'web', 'main.ts') },
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  // Chromium / Firefox / Safari of the last two years: WebGL2 and ES2022 are both there
  target: ['es2022'],
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
  metafile: true,
});
copyFileSync(join(maplibreDist, 'maplibre-gl-worker.mjs'), join(out, 'maplibre-gl-worker.mjs'));
copyFileSync(join(root, 'web', 'index.html'), join(out, 'index.html'));
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(`web: dist/web bundled (${(bytes / 1024).toFixed(0)} KiB of JS/CSS + maps)`);
