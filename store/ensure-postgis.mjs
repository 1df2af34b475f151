// Makes sure the local PostgreSQL the store suites use has PostGIS: Debian's postgresql-<major>-postgis-3.
// Run by `npm test` (pretest). Installs it with apt-get when a PostgreSQL server is on the machine, PostGIS is
// missing and we may (root, apt present); otherwise says exactly what to install. The suites create the
// extension themselves (vitest.global-setup.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

const ROOT = '/usr/share/postgresql';
const majors = existsSync(ROOT) ? readdirSync(ROOT).filter((d) => /^\d+$/.test(d)) : [];
const missing = majors.filter((m) => !existsSync(`${ROOT}/${m}/extension/postgis.control`));

if (majors.length > 0 && missing.length > 0) {
  const packages = missing.map((m) => `postgresql-${m}-postgis-3`);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && existsSync('/usr/bin/apt-get')) {
    console.log(`installing ${packages.join(' ')} for the PostgreSQL store tests (apt-get) …`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', ...packages], { stdio: 'inherit', env });
  } else {
    console.warn(`note: PostGIS is missing for PostgreSQL ${missing.join(', ')}; the PostgreSQL store tests will fail. Install it with: sudo apt-get install -y ${packages.join(' ')}`);
  }
}
