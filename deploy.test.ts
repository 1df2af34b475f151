/**
 * Deployment wiring, checked by reading the files (no Docker engine runs here): docker-compose.yml parsed with
 * `yaml`, the Dockerfile read line by line, .env.example against every setting api/config.ts reads.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = dirname(fileURLToPath(import.meta.url));
const read = (file: string): string => readFileSync(join(root, file), 'utf8');

interface Service {
  build?: unknown;
  image?: string;
  environment?: Record<string, string> | string[];
  depends_on?: Record<string, { condition?: string }> | string[];
  healthcheck?: { test?: string | string[]; interval?: string; retries?: number };
  ports?: string[];
  volumes?: string[];
  profiles?: string[];
  restart?: string;
  command?: string[];
}
const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
const services = compose.services;

function envOf(s: Service): Record<string, string> {
  if (Array.isArray(s.environment)) return Object.fromEntries(s.environment.map((kv) => [kv.split('=')[0], kv.slice(kv.indexOf('=') + 1)]));
  return s.environment ?? {};
}

describe('docker-compose.yml', () => {
  it('has the engine built from this directory, postgis/postgis and redis; the cluster only under its profile', () => {
    const always = Object.entries(services).filter(([, s]) => s.profiles === undefined).map(([name]) => name);
    expect(always.sort()).toEqual(['engine', 'postgis', 'redis']);
    const cluster = Object.entries(services).filter(([, s]) => s.profiles?.includes('cluster')).map(([name]) => name);
    expect(cluster.sort()).toEqual(['cluster-seed', 'core-1', 'core-2', 'edge-a', 'edge-b']);
    expect(services.engine.build).toBe('.');
    expect(services.postgis.image).toMatch(/^postgis\/postgis(:|$)/);
    expect(services.redis.image).toMatch(/^redis(:|$)/);
  });

  it('gives every long-running service a health check', () => {
    for (const [name, s] of Object.entries(services).filter(([, s]) => s.restart !== 'no')) {
      expect(s.healthcheck?.test, `${name} has no healthcheck.test`).toBeDefined();
    }
    expect(String(services.postgis.healthcheck!.test)).toContain('pg_isready');
    expect(String(services.redis.healthcheck!.test)).toContain('ping');
    expect(String(services.engine.healthcheck!.test)).toContain('/ready');
  });

  it('starts the engine only once postgis and redis are healthy', () => {
    expect(services.engine.depends_on).toEqual({ postgis: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } });
  });

  it('wires DATABASE_URL to the postgis service, REDIS_URL to redis and JWT_SECRET from the environment', () => {
    const env = envOf(services.engine);
    const pg = envOf(services.postgis);
    const db = new URL(env.DATABASE_URL.replace(/\$\{POSTGRES_PASSWORD[^}]*\}/, 'pw'));
    expect(db.protocol).toBe('postgres:');
    expect(db.hostname).toBe('postgis');
    expect(db.port).toBe('5432');
    expect(db.username).toBe(pg.POSTGRES_USER);
    expect(db.pathname).toBe(`/${pg.POSTGRES_DB}`);
    expect(env.DATABASE_URL).toContain('${POSTGRES_PASSWORD');
    expect(pg.POSTGRES_PASSWORD).toContain('${POSTGRES_PASSWORD');
    expect(new URL(env.REDIS_URL).hostname).toBe('redis');
    expect(new URL(env.REDIS_URL).port).toBe('6379');
    expect(env.JWT_SECRET).toMatch(/^\$\{JWT_SECRET(:\?|\})/);
  });

  it('runs the cluster profile as PRODUCT §7 says: two cores, two edges, on its own schema and Redis prefix, after seeding', () => {
    const roles = Object.fromEntries(['core-1', 'core-2', 'edge-a', 'edge-b'].map((n) => [n, envOf(services[n])]));
    expect(Object.values(roles).map((e) => e.GD_ROLE)).toEqual(['core', 'core', 'edge', 'edge']);
    expect(Object.entries(roles).every(([name, e]) => e.GD_NODE_NAME === name)).toBe(true);
    for (const e of [...Object.values(roles), envOf(services['cluster-seed'])]) {
      expect(e.DATABASE_SCHEMA).toBe('cluster');
      expect(e.GD_CLUSTER_PREFIX).toBe('gdc:');
      expect(new URL(e.REDIS_URL).hostname).toBe('redis');
      expect(new URL(e.DATABASE_URL.replace(/\$\{POSTGRES_PASSWORD[^}]*\}/, 'pw')).hostname).toBe('postgis');
      expect(e.JWT_SECRET).toMatch(/^\$\{JWT_SECRET(:\?|\})/);
    }
    for (const n of ['core-1', 'core-2', 'edge-a', 'edge-b']) expect(services[n].depends_on).toEqual({ 'cluster-seed': { condition: 'service_completed_successfully' } });
    expect(services['cluster-seed'].command).toEqual(['node', 'dist/cluster/run-local.js', '--seed-only']);
    expect(services['edge-a'].ports?.[0]).toMatch(/:8080$/);
    expect(services['edge-b'].ports?.[0]).toMatch(/:8080$/);
  });

  it('publishes the engine port and keeps data in named volumes', () => {
    expect(services.engine.ports?.some((p) => p.endsWith(':8080'))).toBe(true);
    expect(envOf(services.engine).PORT).toBe('8080');
    const named = Object.keys(compose.volumes ?? {});
    for (const s of [services.engine, services.postgis]) {
      const source = s.volumes?.[0]?.split(':')[0];
      expect(named).toContain(source);
    }
  });
});

describe('Dockerfile', () => {
  const lines = read('Dockerfile').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const runs = lines.filter((l) => l.startsWith('RUN ')).join('\n');

  it('starts from Node 20 on glibc (uWebSockets.js needs it), not alpine', () => {
    const from = lines.filter((l) => l.startsWith('FROM '));
    expect(from.length).toBeGreaterThan(0);
    for (const f of from) expect(f).toMatch(/^FROM node:20[-\w.]*(\s+AS\s+\w+)?$/i);
    for (const f of from) expect(f).not.toMatch(/alpine/);
  });

  it('installs from the lockfile and builds', () => {
    expect(lines).toContain('COPY package.json package-lock.json ./');
    expect(runs).toMatch(/npm (ci|install)\b/);
    expect(runs).toContain('npm run build');
  });

  it('runs dist/api/main.js', () => {
    const cmd = lines.filter((l) => l.startsWith('CMD ')).at(-1);
    expect(cmd).toBe('CMD ["node", "dist/api/main.js"]');
    expect(lines.some((l) => /^EXPOSE 8080$/.test(l))).toBe(true);
  });

  it('copies every source folder tsconfig.json compiles', () => {
    const include = (JSON.parse(read('tsconfig.json')) as { include: string[] }).include;
    for (const dir of include) expect(lines, `Dockerfile does not copy ${dir}/`).toContain(`COPY ${dir} ./${dir}`);
  });
});

describe('.env.example', () => {
  it('lists every setting api/config.ts reads', () => {
    const source = read('api/config.ts');
    const settings = new Set<string>();
    for (const m of source.matchAll(/read\.\w+(?:<[^>]*>)?\('([A-Z][A-Z0-9_]*)'/g)) settings.add(m[1]);
    for (const m of source.matchAll(/\benv\.([A-Z][A-Z0-9_]*)/g)) settings.add(m[1]);
    expect(settings.size).toBeGreaterThan(20);
    const listed = new Set(read('.env.example').split('\n').map((l) => /^([A-Z][A-Z0-9_]*)=/.exec(l.trim())?.[1]).filter((k): k is string => k !== undefined));
    expect([...settings].filter((s) => !listed.has(s))).toEqual([]);
  });

  it('names the settings docker-compose.yml interpolates', () => {
    const listed = read('.env.example');
    for (const m of read('docker-compose.yml').matchAll(/\$\{([A-Z][A-Z0-9_]*)/g)) expect(listed).toMatch(new RegExp(`^${m[1]}=`, 'm'));
  });
});
