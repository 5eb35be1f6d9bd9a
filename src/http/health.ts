// Liveness and readiness. Readiness is what load balancers probe: 503 while draining or when
// the database cannot be reached, so traffic goes elsewhere.
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';

export interface HealthCheck {
  name: string;
  /** Critical checks take the instance out of rotation when they fail. */
  critical: boolean;
  check(): Promise<void>;
}

export interface HealthState {
  draining: boolean;
}

const Check = Type.Object({ status: Type.Enum(['up', 'down']), critical: Type.Boolean(), error: Type.Optional(Type.String()) });
const Health = Type.Object({
  status: Type.Enum(['ok', 'degraded', 'unavailable']),
  draining: Type.Boolean(),
  checks: Type.Record(Type.String(), Check),
});

const CHECK_TIMEOUT_MS = 2000;

interface CheckResult {
  status: 'up' | 'down';
  critical: boolean;
  error?: string;
}

function withTimeout(p: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), CHECK_TIMEOUT_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function healthRoutes(app: FastifyInstance, opts: { checks: HealthCheck[]; state: HealthState }): void {
  app.get(
    '/health/live',
    { schema: { tags: ['operations'], summary: 'Liveness: the process is running', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/health',
    {
      schema: {
        tags: ['operations'],
        summary: 'Readiness: this instance can serve traffic now',
        response: { 200: Health, 503: Health },
      },
    },
    async (_request, reply) => {
      const results = await Promise.all(
        opts.checks.map(async (c) => {
          try {
            await withTimeout(c.check());
            return [c.name, { status: 'up', critical: c.critical }] as [string, CheckResult];
          } catch (err) {
            return [c.name, { status: 'down', critical: c.critical, error: (err as Error).message }] as [string, CheckResult];
          }
        }),
      );
      const checks = Object.fromEntries<CheckResult>(results);
      const criticalDown = results.some(([, r]) => r.critical && r.status === 'down');
      const anyDown = results.some(([, r]) => r.status === 'down');
      const ready = !opts.state.draining && !criticalDown;
      void reply.code(ready ? 200 : 503).header('cache-control', 'no-store');
      const status: 'ok' | 'degraded' | 'unavailable' = ready ? (anyDown ? 'degraded' : 'ok') : 'unavailable';
      return { status, draining: opts.state.draining, checks };
    },
  );
}
