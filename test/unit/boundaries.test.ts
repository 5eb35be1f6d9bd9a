// The layering rules of .dependency-cruiser.cjs (run by `npm run lint`) hold on src/, and each
// of them bites: a fixture that breaks every rule once is reported, rule by rule.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseResult, type IConfiguration } from 'dependency-cruiser';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/boundaries', import.meta.url));
const config = createRequire(import.meta.url)(`${ROOT}.dependency-cruiser.cjs`) as IConfiguration;

async function violations(baseDir: string): Promise<string[]> {
  const { output } = await cruise(['src'], {
    ...config.options,
    baseDir,
    tsConfig: { fileName: `${ROOT}tsconfig.json` },
    validate: true,
    ruleSet: { forbidden: config.forbidden },
  });
  const result = output as ICruiseResult;
  return result.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();
}

describe('import boundaries', () => {
  it('src/ keeps every rule', async () => {
    expect(await violations(ROOT)).toEqual([]);
  });

  it('every rule reports its break in the fixture', async () => {
    const found = await violations(FIXTURE);
    expect(found).toEqual(
      expect.arrayContaining([
        'base-imports-base-only: src/shared/errors.ts -> src/http/problem.ts',
        'platform-never-imports-features: src/http/rate-limit.ts -> src/modules/auth/service.ts',
        'platform-never-imports-features: src/events/consumers.ts -> src/modules/notifications/register.ts',
        'observability-reads-recorders: src/observability/metrics.ts -> src/http/rate-limit.ts',
        'infra-takes-observers: src/infra/db/database.ts -> src/observability/spans.ts',
        'events-plumbing-is-not-http: src/events/relay.ts -> src/http/problem.ts',
        'module-meets-module-through-contract: src/modules/tasks/repository.ts -> src/modules/users/repository.ts',
        'modules-never-import-entry-points: src/modules/tasks/routes.ts -> src/server.ts',
        'module-contract-is-only-types-of-contracts: src/modules/module.ts -> src/modules/tasks/repository.ts',
        'registry-takes-entries: src/modules/registry.ts -> src/modules/tasks/routes.ts',
        'only-the-registry-knows-module-entries: src/server.ts -> src/modules/tasks/index.ts',
      ]),
    );
    // Both circles: the plumbing and its consumer, and the type-only one inside tasks.
    expect(found.filter((v) => v.startsWith('no-circular: src/events/consumers.ts') || v.startsWith('no-circular: src/modules/notifications/register.ts')).length).toBeGreaterThan(0);
    expect(found.filter((v) => v.startsWith('no-circular: src/modules/tasks/')).length).toBeGreaterThan(0);
    // Every rule is exercised by the fixture.
    const rules = new Set(found.map((v) => v.split(':')[0]));
    expect([...rules].sort()).toEqual(config.forbidden!.map((r) => r.name).sort());
  });
});
