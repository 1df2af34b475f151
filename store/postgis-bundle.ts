/**
 * A slim PostGIS bundle for the embedded store: the files GeoDispatch uses, cut from the bundle that
 * @electric-sql/pglite-postgis ships, so PGlite keeps ~35 MB in its in-memory file system instead of ~91 MB
 * and compiles one extension library instead of three.
 *
 *   pglite-postgis/dist/postgis.tar.gz (19.8 MB: postgis, raster, topology, tiger, every upgrade script)
 *     ─► gunzip ─► keep directories, postgis-3.so, postgis.control, the current install script, proj data
 *     ─► gzip ─► <cache dir>/postgis-<version>-slim.tar.gz (made once per package version, atomically)
 *
 * Nothing is downloaded: the slim bundle is made from the installed package. Entries are copied byte for byte
 * (headers included), so the archive stays a valid tar that PGlite's own reader unpacks.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Extension } from '@electric-sql/pglite';
import { postgis } from '@electric-sql/pglite-postgis';

const BLOCK = 512;
// node_modules/@electric-sql/pglite-postgis/dist: the full bundle and, one up, its package.json
const POSTGIS_DIST = dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite-postgis'));

/** Whether a bundle path is one the embedded store needs (install script of the bundled version only). */
export function keepInSlimBundle(p: string, version: string): boolean {
  return (
    p === 'lib/postgresql/postgis-3.so' ||
    p === 'share/postgresql/extension/postgis.control' ||
    p === `share/postgresql/extension/postgis--${version}.sql` ||
    p.startsWith('share/proj/')
  );
}

/** One archive member: its path (long names applied), type flag, body, and its bytes with any pax/long-name header. */
interface TarEntry {
  path: string;
  type: string;
  body: Uint8Array;
  raw: Uint8Array[];
}

/** The members of an uncompressed tar, in order; a pax ('x') or GNU long-name ('L') header joins its member. */
function* tarEntries(tar: Uint8Array): Generator<TarEntry> {
  let pending: Uint8Array[] = [];
  let longName: string | undefined;
  for (let at = 0; at + BLOCK <= tar.length; ) {
    const header = tar.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) return;
    const size = parseInt(text(header, 124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 48);
    const whole = tar.subarray(at, at + BLOCK + Math.ceil(size / BLOCK) * BLOCK);
    const body = whole.subarray(BLOCK, BLOCK + size);
    at += whole.length;
    if (type === 'x' || type === 'L') {
      pending.push(whole);
      longName = type === 'x' ? (paxPath(body) ?? longName) : text(body, 0, size);
      continue;
    }
    const prefix = text(header, 345, 155);
    const path = longName ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100));
    yield { path: path.replace(/^\.\//, ''), type, body, raw: [...pending, whole] };
    pending = [];
    longName = undefined;
  }
}

/** Copies the members for which `keep(path)` holds, plus every directory, byte for byte, into a new tar. */
export function filterTar(tar: Uint8Array, keep: (path: string) => boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of tarEntries(tar)) if (e.type === '5' || keep(e.path)) parts.push(...e.raw);
  parts.push(new Uint8Array(2 * BLOCK));
  return concat(parts);
}

/** The PostGIS extension for PGlite, reading the slim bundle (made on first use into `cacheDir`). */
export function slimPostgis(cacheDir: string = defaultCacheDir()): Extension {
  return {
    name: 'postgis',
    setup: async (pg, emscriptenOpts) => {
      const full = await postgis.setup(pg, emscriptenOpts);
      return { ...full, bundlePath: pathToFileURL(slimBundle(cacheDir)) };
    },
  };
}

/** Path of the slim bundle for the installed pglite-postgis, made when missing. */
export function slimBundle(cacheDir: string = defaultCacheDir()): string {
  const source = join(POSTGIS_DIST, 'postgis.tar.gz');
  const pkg = JSON.parse(readFileSync(join(POSTGIS_DIST, '..', 'package.json'), 'utf8')) as { version: string };
  const target = join(cacheDir, `pglite-postgis-${pkg.version}-slim.tar.gz`);
  if (existsSync(target)) return target;
  const tar = gunzipSync(readFileSync(source));
  const version = postgisVersion(tar);
  const slim = filterTar(tar, (p) => keepInSlimBundle(p, version));
  try {
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${target}.${process.pid}.tmp`;
    writeFileSync(tmp, gzipSync(slim, { level: 6 }));
    renameSync(tmp, target); // atomic: two servers starting at once never read half a file
    return target;
  } catch (err) {
    // a read-only install (an image's node_modules owned by another user): the temp dir instead
    const fallback = join(tmpdir(), 'geodispatch-cache');
    if (cacheDir === fallback) throw err;
    return slimBundle(fallback);
  }
}

function defaultCacheDir(): string {
  // beside the installed packages (node_modules/.cache): made by the install that owns them, removed with them
  return join(POSTGIS_DIST, '..', '..', '..', '.cache', 'geodispatch');
}

/** The default version named by postgis.control (`default_version = '3.6.2'`). */
function postgisVersion(tar: Uint8Array): string {
  const control = entryText(tar, 'share/postgresql/extension/postgis.control');
  const m = /default_version\s*=\s*'([^']+)'/.exec(control);
  if (!m) throw new Error('postgis.control names no default_version');
  return m[1];
}

function entryText(tar: Uint8Array, path: string): string {
  for (const e of tarEntries(tar)) if (e.path === path) return Buffer.from(e.body).toString('utf8');
  throw new Error(`${path} is not in the bundle`);
}

function paxPath(body: Uint8Array): string | undefined {
  const m = /\d+ path=([^\n]*)\n/.exec(Buffer.from(body).toString('utf8'));
  return m?.[1];
}

function text(b: Uint8Array, offset: number, length: number): string {
  const s = b.subarray(offset, offset + length);
  const end = s.indexOf(0);
  return Buffer.from(end >= 0 ? s.subarray(0, end) : s).toString('utf8');
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
