// Every response carries Helmet's security headers, computed once from the configuration.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helmetHeaders } from '../../src/http/security-headers.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

describe('security headers', () => {
  let dev: TestApp;
  let prod: TestApp;
  beforeAll(async () => {
    [dev, prod] = await Promise.all([createTestApp({ embedded: true }), createTestApp({ embedded: true, env: { NODE_ENV: 'production' } })]);
  });
  afterAll(async () => {
    await Promise.all([dev.close(), prod.close()]);
  });

  it("are Helmet's, on success and error responses alike; HSTS only in production; no upgrade-insecure-requests", async () => {
    for (const url of ['/health/live', '/v1/tasks', '/nope']) {
      const res = await dev.app.inject({ url });
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.headers['cross-origin-opener-policy']).toBe('same-origin');
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      expect(res.headers['content-security-policy']).not.toContain('upgrade-insecure-requests');
      expect(res.headers['strict-transport-security']).toBeUndefined();
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
    const res = await prod.app.inject({ url: '/health/live' });
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
  });

  it('are exactly what Helmet itself sets for the same options', async () => {
    const expected = helmetHeaders({ hsts: false, contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } });
    expect(Object.keys(expected).length).toBeGreaterThan(8);
    const res = await dev.app.inject({ url: '/health/live' });
    for (const [name, value] of Object.entries(expected)) expect(res.headers[name], name).toBe(value);
  });
});
