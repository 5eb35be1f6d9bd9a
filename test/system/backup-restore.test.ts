// docs/runbooks/backup-restore.md's commands, run as the page gives them: a database migrated and
// filled by the built CLI (`task-api migrate`, `task-api seed`), the page's backup block (pg_dump),
// its restore block (pg_restore) into a fresh empty database, and every table's rows compared.
// Both databases have unique names on the test PostgreSQL (127.0.0.1:5432 when it answers) and
// are dropped afterwards.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmptyDatabase, type TestDatabase } from '../helpers/database.js';
import { runCli } from '../helpers/process.js';
import { ADMIN_DATABASE_URL } from '../setup/services.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RUNBOOK = 'docs/runbooks/backup-restore.md';

/** The fenced block that follows `<!-- tested: NAME ... -->` in the runbook. */
function testedBlock(md: string, name: string): string {
  const m = new RegExp(`<!-- tested: ${name}\\b[^>]*-->\\s*\\n\`\`\`sh\\n([\\s\\S]*?)\\n\`\`\``).exec(md);
  if (!m) throw new Error(`${RUNBOOK}: no block marked "tested: ${name}"`);
  return m[1]!;
}

function bash(script: string, env: Record<string, string>): Promise<{ code: number; stdout: string; output: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-euo', 'pipefail', '-c', script], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, output: `${stdout}${stderr}` });
    });
  });
}

/** Every table of the public schema with an md5 of its rows in a stable order, and the count. */
async function snapshot(url: string): Promise<Record<string, { rows: number; md5: string }>> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    // Partitions are read through their parent; the parent's rows are all of theirs.
    const tables = await sql<{ name: string }[]>`
      select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition order by 1`;
    const out: Record<string, { rows: number; md5: string }> = {};
    for (const { name } of tables) {
      const [r] = await sql.unsafe<{ rows: string; md5: string | null }[]>(
        `select count(*) as rows, md5(coalesce(string_agg(t::text, E'\\n' order by t::text), '')) as md5 from "${name}" t`,
      );
      out[name] = { rows: Number(r!.rows), md5: r!.md5 ?? '' };
    }
    return out;
  } finally {
    await sql.end();
  }
}

describe('backup and restore (docs/runbooks/backup-restore.md)', () => {
  let source: TestDatabase;
  let target: TestDatabase;
  let dir: string;
  let md: string;

  beforeAll(async () => {
    md = await readFile(join(ROOT, RUNBOOK), 'utf8');
    dir = await mkdtemp(join(tmpdir(), 'task-api-backup-'));
    source = await createEmptyDatabase();
    target = await createEmptyDatabase();
    const env = { DATABASE_URL: source.url, LOG_LEVEL: 'warn' };
    const migrated = await runCli(['migrate'], env);
    expect(migrated.code, migrated.stderr).toBe(0);
    const seeded = await runCli(['seed', '--users', '6', '--tasks-per-user', '25', '--prefix', 'backup'], env);
    expect(seeded.code, seeded.stderr).toBe(0);
    expect(JSON.parse(seeded.stdout.trim().split('\n').pop()!)).toMatchObject({ users: 6, tasks: 150 });
  });

  afterAll(async () => {
    await source?.drop();
    await target?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("restores with the page's commands exactly the rows the page's backup took", async () => {
    const file = join(dir, 'task_api.dump');
    const backup = await bash(testedBlock(md, 'backup'), { SOURCE_URL: source.url, BACKUP_FILE: file });
    expect(backup.code, backup.output).toBe(0);

    // Written after the dump: must not come back.
    const live = postgres(source.url, { max: 1, onnotice: () => undefined });
    const before = await snapshot(source.url);
    await live`delete from tasks where title is not null`;
    await live.end();

    const restore = await bash(testedBlock(md, 'restore'), { RESTORE_URL: target.url, BACKUP_FILE: file, ADMIN_URL: ADMIN_DATABASE_URL });
    expect(restore.code, restore.output).toBe(0);
    // The block's own check prints the users, the tasks and the last migration.
    expect(restore.stdout.trim().split('\n')).toEqual(['6', '150', expect.stringMatching(/^\d{4}_.*\.sql$/)]);

    const after = await snapshot(target.url);
    expect(before.tasks).toMatchObject({ rows: 150 });
    expect(before.users!.rows).toBeGreaterThanOrEqual(6);
    expect(after).toEqual(before);
  });

  it('the restore refuses a damaged archive and leaves the database empty', async () => {
    const good = join(dir, 'whole.dump');
    const file = join(dir, 'broken.dump');
    const backup = await bash(testedBlock(md, 'backup'), { SOURCE_URL: source.url, BACKUP_FILE: good });
    expect(backup.code, backup.output).toBe(0);
    const cut = await bash('head -c 4000 "$GOOD" > "$BACKUP_FILE"', { GOOD: good, BACKUP_FILE: file });
    expect(cut.code, cut.output).toBe(0);
    const scratch = await createEmptyDatabase();
    try {
      const restore = await bash(testedBlock(md, 'restore'), { RESTORE_URL: scratch.url, BACKUP_FILE: file, ADMIN_URL: ADMIN_DATABASE_URL });
      expect(restore.code).not.toBe(0);
      expect(await snapshot(scratch.url)).toEqual({});
    } finally {
      await scratch.drop();
    }
  });
});
