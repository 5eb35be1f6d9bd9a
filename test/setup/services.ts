// Where the tests find PostgreSQL, Redis and RabbitMQ. The global setup (global.ts) settles these
// once per run: the TEST_* variable when set, else the machine's service on its default loopback
// port, else a private instance it starts (private-services.ts). It exports the result in the
// same variables, which the test workers inherit.
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';

export const ADMIN_DATABASE_URL = process.env.TEST_DATABASE_URL ?? DEFAULT_DATABASE_URL;
export const REDIS_URL = process.env.TEST_REDIS_URL ?? DEFAULT_REDIS_URL;
export const AMQP_URL = process.env.TEST_AMQP_URL ?? DEFAULT_AMQP_URL;

export function databaseUrl(name: string, server = ADMIN_DATABASE_URL): string {
  const u = new URL(server);
  u.pathname = `/${name}`;
  return u.toString();
}
