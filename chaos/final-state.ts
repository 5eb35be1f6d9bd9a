// The final state the checker reads, straight from PostgreSQL (the primary as state.json names it,
// not through PgBouncer): every task of the run's users, and which of them had their task.created
// recorded by the notifications consumer: its event id in processed_events (consumer
// `notifications`, written in the same transaction as the notification), or an in-app
// notification of type task.created for the task. Also the settling before it: the outbox
// drained (every event published) and the consumers caught up, each wait bounded.
import postgres from 'postgres';
import type { ClusterState } from '../src/operations/cluster/state.js';
import type { FinalState, StoredTask } from './history.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The main shard's primary server itself (state.json); a topology without one (Patroni) gives its writable URL there. */
export function primaryUrl(state: ClusterState): string {
  const main = state.shards?.[0]?.primaryUrl;
  if (main) return main;
  const rec = state.processes.find((p) => p.role === 'postgres-primary' && p.shard === undefined);
  if (!rec?.urls.url) throw new Error('state.json names no primary');
  return rec.urls.url;
}

export class FinalStateReader {
  private readonly sql: postgres.Sql;
  constructor(
    url: string,
    private readonly userIds: string[],
  ) {
    this.sql = postgres(url, { max: 2, onnotice: () => undefined, connect_timeout: 10, idle_timeout: 5 });
  }

  async unpublished(): Promise<number> {
    const [row] = await this.sql<{ n: number }[]>`select count(*)::int as n from outbox where published_at is null and user_id = any(${this.userIds}::uuid[])`;
    return row!.n;
  }

  /** Waits (at most timeoutMs) until the run's users' outbox rows are all published; returns how many are not. */
  async waitOutboxDrained(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let left = -1;
    for (;;) {
      try {
        left = await this.unpublished();
        if (left === 0) return 0;
      } catch {
        // the primary may still be recovering
      }
      if (Date.now() > deadline) return left;
      await sleep(1000);
    }
  }

  async read(): Promise<FinalState> {
    const rows = await this.sql<StoredTask[]>`
      select id::text, user_id::text as "userId", title, description from tasks where user_id = any(${this.userIds}::uuid[])`;
    const delivered = await this.sql<{ id: string }[]>`
      select o.aggregate_id::text as id from outbox o
        join processed_events p on p.event_id = o.id and p.consumer = 'notifications'
       where o.type = 'task.created' and o.user_id = any(${this.userIds}::uuid[])
      union
      select task_id::text as id from notifications
       where type = 'task.created' and task_id is not null and user_id = any(${this.userIds}::uuid[])`;
    return { rows, createdDelivered: new Set(delivered.map((d) => d.id)) };
  }

  /** Waits (at most timeoutMs) until every stored task of the run has its task.created delivered; returns the last read. */
  async waitDelivered(timeoutMs: number): Promise<FinalState> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const final = await this.read();
      if (final.rows.every((r) => final.createdDelivered.has(r.id)) || Date.now() > deadline) return final;
      await sleep(1000);
    }
  }

  close(): Promise<void> {
    return this.sql.end({ timeout: 5 });
  }
}
