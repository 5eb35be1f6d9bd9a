// The keys the rows rotate over, read from the seeded database: list pages (user + cursor, so
// every request of the cache-miss row is a distinct cache key), tasks to get, tasks to patch.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import postgres from 'postgres';
import { ROOT } from './procs.js';
import type { Session } from './setup.js';
import { shuffle } from './stats.js';

export interface Page {
  user: number;
  /** Absent for page 1. */
  cursor?: string;
  keyset?: [string, string];
}
export interface TaskRef {
  user: number;
  taskId: string;
}
export interface Pools {
  sessions: Session[];
  pages: Page[];
  gets: TaskRef[];
  patches: TaskRef[];
}

const PAGE = 20;

export async function buildPools(databaseUrl: string, sessions: Session[]): Promise<Pools> {
  const { encodeCursor } = (await import(pathToFileURL(path.join(ROOT, 'dist/shared/cursor.js')).href)) as {
    encodeCursor: (tag: string, values: string[]) => string;
  };
  const index = new Map(sessions.map((s, i) => [s.userId, i]));
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => undefined });
  try {
    const rows = await sql<{ user_id: string; id: string; created_at: Date; rn: string; total: string }[]>`
      select user_id, id, created_at, rn, total from (
        select user_id, id, created_at,
               row_number() over (partition by user_id order by created_at desc, id desc) as rn,
               count(*) over (partition by user_id) as total
        from tasks where user_id = any(${sessions.map((s) => s.userId)}::uuid[])
      ) t
      where rn % ${PAGE} in (0, 10, 15)`;
    const pages: Page[] = sessions.map((_, user) => ({ user }));
    const gets: TaskRef[] = [];
    const patches: TaskRef[] = [];
    for (const r of rows) {
      const user = index.get(r.user_id)!;
      const rn = Number(r.rn);
      if (rn % PAGE === 0 && rn + PAGE <= Number(r.total)) {
        const keyset: [string, string] = [r.created_at.toISOString(), r.id];
        pages.push({ user, keyset, cursor: encodeCursor('-createdAt', keyset) });
      } else if (rn % PAGE === 10) gets.push({ user, taskId: r.id });
      else if (rn % PAGE === 15) patches.push({ user, taskId: r.id });
    }
    if (gets.length === 0 || patches.length === 0) throw new Error('pools: the seeded users have too few tasks');
    return { sessions, pages: shuffle(pages, 1), gets: shuffle(gets, 2), patches: shuffle(patches, 3) };
  } finally {
    await sql.end({ timeout: 5 });
  }
}
