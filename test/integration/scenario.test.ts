import { describe, it } from 'vitest';
import { createTestApp } from '../helpers/app.js';
import { runScenario } from '../helpers/scenario.js';

describe('the whole API scenario', () => {
  it('runs on PostgreSQL and Redis', async () => {
    const t = await createTestApp();
    try {
      await runScenario(t);
    } finally {
      await t.close();
    }
  });

  it('runs on the embedded stack (PGlite, in-process token store)', async () => {
    const t = await createTestApp({ embedded: true });
    try {
      await runScenario(t);
    } finally {
      await t.close();
    }
  });
});
