// Makes sure the browser the live-map test drives is on the machine: Debian's Chromium at /usr/bin/chromium.
// Run by `npm test` (pretest). Installs it with apt-get when it is missing and we may (root, apt present);
// otherwise says exactly what to install. Never downloads a browser from anywhere but Debian's packages.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CHROMIUM = '/usr/bin/chromium';

if (!existsSync(CHROMIUM)) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = existsSync('/usr/bin/apt-get');
  if (isRoot && hasApt) {
    console.log('installing Debian chromium for the live-map browser test (apt-get) …');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'inherit', env });
  } else {
    console.warn(`note: ${CHROMIUM} is missing and cannot be installed from here; the live-map test will fail. Install it with: sudo apt-get install -y chromium`);
  }
}
