import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { filterTar, keepInSlimBundle, slimBundle } from './postgis-bundle.js';

const dir = mkdtempSync(join(tmpdir(), 'gd-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Member paths of an uncompressed tar (ustar name + prefix), read independently of the module. */
function listing(tar: Uint8Array): string[] {
  const out: string[] = [];
  const str = (a: number, n: number): string => Buffer.from(tar.subarray(a, a + n)).toString('utf8').replace(/\0.*$/s, '');
  for (let at = 0; at + 512 <= tar.length; ) {
    if (tar.subarray(at, at + 512).every((b) => b === 0)) break;
    const size = parseInt(str(at + 124, 12).trim() || '0', 8);
    const prefix = str(at + 345, 155);
    out.push((prefix ? `${prefix}/` : '') + str(at, 100));
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

describe('the slim PostGIS bundle', () => {
  it('holds the one library, the control file, the current install script and proj data, and nothing else but directories', () => {
    const tar = gunzipSync(readFileSync(slimBundle(dir)));
    const files = listing(tar).filter((p) => !p.endsWith('/')).map((p) => p.replace(/^\.\//, ''));
    expect(files).toContain('lib/postgresql/postgis-3.so');
    expect(files).toContain('share/postgresql/extension/postgis.control');
    expect(files.filter((p) => /postgis--.*\.sql$/.test(p))).toHaveLength(1);
    expect(files.some((p) => p.startsWith('share/proj/'))).toBe(true);
    expect(files.some((p) => /raster|topology|tiger/.test(p))).toBe(false);
    const version = /postgis--(.+)\.sql$/.exec(files.find((p) => p.endsWith('.sql'))!)![1];
    for (const p of files) expect(keepInSlimBundle(p, version)).toBe(true);
  });

  it('copies kept members byte for byte: keeping everything gives the same archive back', () => {
    const tar = gunzipSync(readFileSync(slimBundle(dir)));
    const all = filterTar(tar, () => true);
    expect(listing(all)).toEqual(listing(tar));
    expect(Buffer.compare(Buffer.from(all.subarray(0, all.length - 1024)), Buffer.from(tar.subarray(0, all.length - 1024)))).toBe(0);
  });
});
