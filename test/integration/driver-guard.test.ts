// postgres.js drops the promise of the array-types query it runs on every new connection
// (porsager/postgres#1192): a connection lost during that query used to end the process with an
// unhandled rejection (every instance behind PgBouncer died on its restart). Here a proxy in front
// of the test database cuts the first connection exactly there and refuses the reconnect for a
// moment; the process lives on, the loss is reported, and the next statements run.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/infra/db/database.js';
import { isDroppedArrayTypesQuery } from '../../src/infra/db/driver-guard.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let testDb: TestDatabase;
let proxy: Server;
let proxyPort = 0;
let cuts = 0;
const sockets = new Set<Socket>();

beforeAll(async () => {
  testDb = await createTestDatabase();
  const target = new URL(testDb.url);
  proxy = createServer((client) => {
    const server = connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(server);
    client.on('data', (chunk: Buffer) => {
      // The first array-types query through the proxy: cut both sides and refuse connections for
      // a moment, as a restarting pooler does (the driver's reconnect is refused: ECONNREFUSED).
      if (cuts === 0 && chunk.includes('pg_catalog.pg_type')) {
        cuts += 1;
        proxy.close();
        client.destroy();
        server.destroy();
        setTimeout(() => proxy.listen(proxyPort, '127.0.0.1'), 500);
        return;
      }
      server.write(chunk);
    });
    server.on('data', (chunk) => client.write(chunk));
    client.on('error', () => server.destroy());
    server.on('error', () => client.destroy());
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  proxyPort = (proxy.address() as { port: number }).port;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => proxy.close(r));
  await testDb.drop();
});

describe('postgres.js array-types query lost with its connection', () => {
  it('is reported, does not end the process, and the next statements run', async () => {
    const url = new URL(testDb.url);
    url.host = `127.0.0.1:${proxyPort}`;
    const warnings: string[] = [];
    let database: Database | undefined;
    try {
      database = await openDatabase({ url: url.toString(), poolMax: 1, prepare: false, dataDir: '', warn: (_o, msg) => warnings.push(msg) });
      // The statement that opened the cut connection may fail with it (a 503 for a request).
      await database.raw.query('select 1').catch(() => undefined);
      for (let i = 0; i < 100 && warnings.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(cuts).toBe(1);
      expect(warnings).toEqual([expect.stringContaining('array-types query')]);
      let answered: unknown;
      for (let i = 0; i < 50 && answered === undefined; i++) {
        answered = await database.raw.query<{ n: number }>('select 1 as n').catch(() => undefined);
        if (answered === undefined) await new Promise((r) => setTimeout(r, 100));
      }
      expect(answered).toEqual([{ n: 1 }]);
    } finally {
      await database?.close();
    }
  });

  it('recognises only that query', () => {
    const err = new Error('connect ECONNREFUSED');
    expect(isDroppedArrayTypesQuery(err)).toBe(false);
    Object.defineProperty(err, 'query', {
      value: 'select b.oid, b.typarray from pg_catalog.pg_type a left join pg_catalog.pg_type b on b.oid = a.typelem',
    });
    expect(isDroppedArrayTypesQuery(err)).toBe(true);
    expect(isDroppedArrayTypesQuery(Object.assign(new Error('x'), { query: 'select 1' }))).toBe(false);
  });
});
