// The built server as a real process: GET /metrics on the metrics port (a free one per test
// process, never the default 9464), nothing at /metrics on the public port, and the metrics
// server closed on shutdown.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { uniqueEmail } from '../helpers/app.js';
import { jsonRequest, startServer } from '../helpers/process.js';
import { servicesEnv } from '../helpers/server-fixture.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

describe('task-api serve: metrics', () => {
  it('serves Prometheus text on the metrics port only, and closes it on SIGTERM', async () => {
    const server = await startServer(servicesEnv(db));
    try {
      const reg = await jsonRequest(`${server.url}/v1/auth/register`, 'POST', { email: uniqueEmail('scrape'), password: 'scrape password' });
      expect(reg.status).toBe(201);
      const created = await jsonRequest(`${server.url}/v1/tasks`, 'POST', { title: 'scraped' }, reg.body!.accessToken as string);
      expect(created.status).toBe(201);

      expect((await fetch(`${server.url}/metrics`)).status).toBe(404);

      const res = await fetch(server.metricsUrl);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
      const text = await res.text();
      expect(text).toContain('http_request_duration_seconds_count{service="task-api",method="POST",route="/v1/tasks",status_code="201"} 1');
      expect(text).toContain('http_request_duration_seconds_count{service="task-api",method="GET",route="unmatched",status_code="404"} 1');
      expect(text).toMatch(/^db_query_duration_seconds_count\{service="task-api",operation="insert tasks"\} 1$/m);
      expect(text).toMatch(/^db_pool_max\{service="task-api"\} 10$/m);
      expect(text).toMatch(/^process_cpu_user_seconds_total\{service="task-api"\} \S+$/m);
      expect(text).not.toContain(created.body!.id as string);
      expect(server.logs().some((l) => l.msg === 'metrics listening')).toBe(true);

      expect(await server.kill('SIGTERM')).toBe(0);
      await expect(fetch(server.metricsUrl)).rejects.toThrow();
    } finally {
      await server.kill('SIGKILL');
    }
  });
});
