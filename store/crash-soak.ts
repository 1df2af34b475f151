/**
 * The long form of the crash property (store/crash/crash-run.ts): many SIGKILL/restart cycles on one store, a progress
 * line per cycle, the store itself checked every few cycles, one summary line at the end; exit code 1 on a violation.
 *
 *   npm run soak -- --kills 500 [--seed 7] [--store-check-every 25] [--load-ms 300,1500]
 */
import { pathToFileURL } from 'node:url';
import { type CrashRunOptions, runCrashProperty, summaryLine } from './crash/crash-run.js';

/** Parses the soak's command line; throws with the usage on anything it does not know. */
export function parseSoakArgs(argv: readonly string[]): CrashRunOptions {
  const options: CrashRunOptions = { seed: Date.now() % 1_000_000, kills: 500 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const int = (): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a non-negative integer, got '${String(value)}'\n${USAGE}`);
      i++;
      return n;
    };
    if (flag === '--kills') options.kills = int();
    else if (flag === '--seed') options.seed = int();
    else if (flag === '--store-check-every') options.storeCheckEvery = int();
    else if (flag === '--max-violations') options.maxViolations = int();
    else if (flag === '--data-dir') {
      if (value === undefined) throw new Error(`--data-dir needs a directory\n${USAGE}`);
      options.dataDir = value;
      i++;
    }
    else if (flag === '--load-ms') {
      const [lo, hi] = String(value).split(',').map(Number);
      if (!(lo >= 0 && hi > lo)) throw new Error(`--load-ms needs min,max with max > min, got '${String(value)}'\n${USAGE}`);
      options.loadMs = [lo, hi];
      i++;
    } else throw new Error(`unknown argument '${flag}'\n${USAGE}`);
  }
  if (options.kills < 1) throw new Error(`--kills must be at least 1\n${USAGE}`);
  return options;
}

const USAGE = 'usage: node dist/store/crash-soak.js [--kills 500] [--seed N] [--store-check-every 25] [--load-ms 300,1500] [--max-violations 20 (kinds)] [--data-dir DIR (kept)]';

async function main(): Promise<void> {
  const options = parseSoakArgs(process.argv.slice(2));
  console.log(`crash soak: seed ${options.seed}, ${options.kills} kills (reproduce the choices with --seed ${options.seed})`);
  const report = await runCrashProperty({ ...options, log: (line) => console.log(line) });
  for (const k of report.violationKinds) console.log(`${String(k.count).padStart(6)} × ${k.kind}`);
  console.log(summaryLine(report));
  process.exitCode = report.violations.length > 0 ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // exit through process.exit so the server process's exit hook kills it rather than leaving it running
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(2);
  });
}
