// deploy/compose/*.yml, checked without a Docker engine (none on these machines, so nothing is
// brought up): the Compose specification's JSON schema (the copy dclint ships) through Ajv,
// dclint's rules, and Debian's docker-compose 1.29 (`config`: a real Compose implementation that
// interpolates, merges the overlays and checks the references). Then the task-api services'
// environment against src/config.ts (every name a setting it reads, every value one it accepts),
// the NGINX configurations against a fresh render by the CLI, and the compose Prometheus file
// with promtool.
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, copyFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config.js';
import { parseModules } from '../../src/modules/registry.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const COMPOSE = path.join(ROOT, 'deploy/compose');
const FILES = ['docker-compose.yml', 'docker-compose-scaled.yml', 'docker-compose-split.yml', 'docker-compose-monitoring.yml'];
const TOPOLOGIES = FILES.slice(0, 3);

/** What the files interpolate, as an operator would export it. */
const OPERATOR_ENV = {
  POSTGRES_PASSWORD: 'pg-secret',
  REPLICATION_PASSWORD: 'replication-secret',
  RABBITMQ_PASSWORD: 'rabbit-secret',
  GRAFANA_ADMIN_PASSWORD: 'grafana-secret',
  JWT_PRIVATE_KEY: generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
};

function sh(command: string, args: string[], env: Record<string, string> = {}, cwd = ROOT) {
  const res = spawnSync(command, args, { cwd, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env } });
  return { code: res.status, stdout: res.stdout ?? '', stderr: res.stderr ?? '', error: res.error };
}

interface Service {
  image?: string;
  command?: string[];
  environment?: Record<string, string | number | boolean | null>;
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number; resources?: { limits?: { cpus?: string; memory?: string } } };
}

/** `docker-compose -f ... config`: the files merged and interpolated, as Compose runs them. */
function composeConfig(...files: string[]): { services: Record<string, Service> } {
  const res = sh('docker-compose', [...files.flatMap((f) => ['-f', path.join(COMPOSE, f)]), 'config'], OPERATOR_ENV);
  if (res.error) throw new Error(`docker-compose (Debian's docker-compose package) is needed: ${res.error.message}`);
  expect(res.stderr + (res.code === 0 ? '' : res.stdout), `${files.join(' + ')}`).not.toMatch(/invalid|error/i);
  expect(res.code).toBe(0);
  return parse(res.stdout) as { services: Record<string, Service> };
}

const isTaskApi = (s: Service) => s.image?.startsWith('task-api:') === true;

describe('deploy/compose', () => {
  it('each file is valid against the Compose specification schema', () => {
    const schemaFile = path.join(path.dirname(createRequire(import.meta.url).resolve('dclint/package.json')), 'schemas/compose.schema.json');
    const ajv = new Ajv({ allErrors: true, strict: false });
    // Its $schema names draft-07 by an https address Ajv does not know; draft-07 is Ajv's own.
    const { $schema: _draft, ...schema } = JSON.parse(readFileSync(schemaFile, 'utf8')) as Record<string, unknown>;
    const validate = ajv.compile(schema);
    for (const file of FILES) {
      const doc = parse(readFileSync(path.join(COMPOSE, file), 'utf8'), { merge: true }) as unknown;
      validate(doc);
      expect(validate.errors ?? [], file).toEqual([]);
    }
  });

  it("each file passes dclint's rules (deploy/compose/.dclintrc.json turns off the ordering ones)", () => {
    const res = sh(process.execPath, [path.join(ROOT, 'node_modules/dclint/bin/dclint.cjs'), '-c', path.join(COMPOSE, '.dclintrc.json'), ...FILES.map((f) => path.join(COMPOSE, f))]);
    expect(res.stdout + res.stderr).not.toMatch(/error|warning/);
    expect(res.code).toBe(0);
  });

  it('docker-compose config accepts each topology, and each with the monitoring overlay', () => {
    for (const file of TOPOLOGIES) {
      expect(Object.keys(composeConfig(file).services).length).toBeGreaterThan(3);
      const withMonitoring = composeConfig(file, 'docker-compose-monitoring.yml');
      expect(Object.keys(withMonitoring.services)).toEqual(expect.arrayContaining(['prometheus', 'grafana']));
    }
  });

  it("gives task-api services only src/config.ts's variables, each with a value it accepts, and CLI commands it has", () => {
    const known = new Set(CONFIG_VARIABLES);
    for (const file of TOPOLOGIES) {
      const services = Object.entries(composeConfig(file).services).filter(([, s]) => isTaskApi(s));
      expect(services.length, file).toBeGreaterThan(1);
      for (const [name, s] of services) {
        const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
        const unknown = Object.keys(env).filter((k) => !known.has(k) && !/^OTEL_[A-Z_]+$/.test(k));
        expect(unknown, `${file}: ${name}`).toEqual([]);
        expect(() => loadConfig(env), `${file}: ${name}`).not.toThrow();
        const [command, ...args] = s.command ?? ['serve'];
        expect(['serve', 'migrate', 'worker'], `${file}: ${name}`).toContain(command);
        if (args[0] === '--modules') expect(() => parseModules(args[1] ?? '')).not.toThrow();
        else expect(args).toEqual([]);
        // A server waits for the migrations; a migration for its database.
        if (command === 'serve') {
          const migrations = Object.entries(s.depends_on ?? {}).filter(([, d]) => d.condition === 'service_completed_successfully');
          expect(migrations.length, `${file}: ${name} after a migrate service`).toBeGreaterThan(0);
        }
      }
    }
  });

  it('scaled: five replicas of 0.5 CPU and 512M behind NGINX, PgBouncer in front of the primary, reads from the replica', () => {
    const { services } = composeConfig('docker-compose-scaled.yml');
    const api = services.api!;
    expect(api.deploy?.replicas).toBe(5);
    // docker-compose 1.29 prints cpus as a number, memory as given.
    expect(String(api.deploy?.resources?.limits?.cpus)).toBe('0.5');
    expect(api.deploy?.resources?.limits?.memory).toBe('512M');
    expect(new URL(String(api.environment!.DATABASE_URL)).host).toBe('pgbouncer:6432');
    expect(api.environment!.DATABASE_PREPARE).toBe('false');
    expect(new URL(String(api.environment!.DATABASE_READ_URLS)).hostname).toBe('postgres-replica');
    // The production pgbouncer.ini, mounted as it is, points at this file's primary.
    expect(readFileSync(path.join(ROOT, 'deploy/pgbouncer/pgbouncer.ini'), 'utf8')).toMatch(/^taskdb = host=postgres port=5432 dbname=taskdb$/m);
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['nginx', 'pgbouncer', 'postgres', 'postgres-replica', 'redis', 'rabbitmq', 'migrate']));
  });

  it('the NGINX configurations are what `task-api cluster nginx-config` / `gateway-config` render', () => {
    const cli = (args: string[]) => sh(process.execPath, ['dist/cli.js', 'cluster', ...args]);
    const edge = ['--listen', '80', '--access-log', '/dev/stdout'];
    const site = cli(['nginx-config', ...edge, '--upstream', 'api:3000']);
    expect(site.code, site.stderr).toBe(0);
    expect(site.stdout).toBe(readFileSync(path.join(COMPOSE, 'nginx/task-api.conf'), 'utf8'));
    const services = ['auth', 'users', 'tasks', 'notifications'].flatMap((s) => ['--service', `${s}=${s}:3000`]);
    const gateway = cli(['gateway-config', ...edge, ...services, '--openapi', '/etc/nginx/openapi.json']);
    expect(gateway.code, gateway.stderr).toBe(0);
    expect(gateway.stdout).toBe(readFileSync(path.join(COMPOSE, 'nginx/gateway.conf'), 'utf8'));
  });

  it("the compose Prometheus file passes promtool check config, with the project's alert rules", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'compose-prometheus-'));
    try {
      await copyFile(path.join(COMPOSE, 'prometheus/prometheus.yml'), path.join(dir, 'prometheus.yml'));
      await copyFile(path.join(ROOT, 'deploy/monitoring/alerts.yml'), path.join(dir, 'alerts.yml'));
      const res = sh('promtool', ['check', 'config', path.join(dir, 'prometheus.yml')]);
      expect(res.code, res.stdout + res.stderr).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the PostgreSQL and PgBouncer start scripts parse', () => {
    for (const script of ['deploy/compose/postgres/primary-init.sh', 'deploy/compose/postgres/replica-entrypoint.sh']) {
      expect(sh('bash', ['-n', script]).code, script).toBe(0);
    }
    expect(sh('sh', ['-n', 'deploy/docker/pgbouncer-entrypoint.sh']).code).toBe(0);
  });
});
