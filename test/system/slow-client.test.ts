// Slow clients against a real listening server (127.0.0.1, a free port) with short timeouts: a
// client that trickles or never finishes its headers, or sends its body slower than its
// Content-Length promised (or stops), is cut off (408, then the socket closes), while ordinary
// requests and idle keep-alive connections are not. Every wait is bounded: BOUND_MS is well
// below the defaults (headers 10 s, request 30 s), so without the configured timeouts these
// tests fail instead of hanging.
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

const HEADERS_MS = 500;
const REQUEST_MS = 1000;
const BOUND_MS = 8000;

let t: TestApp;
let port: number;
beforeAll(async () => {
  t = await createTestApp({ env: { HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_MS), HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_MS) } });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  port = (t.app.server.address() as AddressInfo).port;
});
afterAll(() => t?.close());

interface Client {
  socket: Socket;
  /** Everything the server sent so far. */
  received(): string;
  /** Resolves true when the server closes the connection, false if it is still open after ms. */
  closedWithin(ms: number): Promise<boolean>;
  /** Writes `chunk` every `everyMs` until the connection closes (or the client is destroyed). */
  trickle(chunk: string, everyMs: number): void;
  destroy(): void;
}

async function client(): Promise<Client> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let data = '';
  let timer: NodeJS.Timeout | undefined;
  socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
  socket.on('error', () => undefined); // writes after the server's close: expected here
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  void closed.then(() => clearInterval(timer));
  return {
    socket,
    received: () => data,
    async closedWithin(ms) {
      let bound: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => (bound = setTimeout(() => r(false), ms)))]);
      clearTimeout(bound);
      return outcome;
    },
    trickle(chunk, everyMs) {
      timer = setInterval(() => {
        if (!socket.destroyed) socket.write(chunk);
      }, everyMs);
    },
    destroy() {
      clearInterval(timer);
      socket.destroy();
    },
  };
}

/** Cut off: answered 408 and closed by the server within the bound. */
async function expectCutOff(c: Client): Promise<void> {
  try {
    expect(await c.closedWithin(BOUND_MS), 'the server closed the connection').toBe(true);
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
  } finally {
    c.destroy();
  }
}

const head = () => `POST /v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`;

describe('slow clients', () => {
  it('a client that trickles its headers, never ending them, is cut off', async () => {
    const c = await client();
    c.socket.write(head());
    c.trickle('X-Pad: still coming\r\n', 50); // steady traffic: only the headers' deadline can end it
    await expectCutOff(c);
  });

  it('a client that stops in the middle of its headers, or never sends any, is cut off', async () => {
    const partial = await client();
    partial.socket.write(`${head()}Content-Type: appl`);
    const silent = await client();
    await Promise.all([expectCutOff(partial), expectCutOff(silent)]);
  });

  it('a body sent slower than its Content-Length promised is cut off', async () => {
    const c = await client();
    c.socket.write(`${head()}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"email":"`);
    c.trickle('a', 50); // 20 bytes a second: 1000 bytes would take 50 s
    await expectCutOff(c);
  });

  it('a body that stops short of its Content-Length is cut off', async () => {
    const c = await client();
    c.socket.write(`${head()}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"email":"slow@example.test",`);
    await expectCutOff(c);
  });

  it('ordinary requests are answered, and an idle keep-alive connection outlives the header timeout', async () => {
    const c = await client();
    try {
      const body = JSON.stringify({ email: 'nobody@example.test', password: 'wrong password' });
      const request = `${head()}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      const answered = async (count: number) => {
        for (let i = 0; i < 200 && (c.received().match(/HTTP\/1\.1 401 /g) ?? []).length < count; i++) await new Promise((r) => setTimeout(r, 25));
        return (c.received().match(/HTTP\/1\.1 401 /g) ?? []).length;
      };
      c.socket.write(request);
      expect(await answered(1)).toBe(1);
      // Idle for three header timeouts: the keep-alive timeout (72 s) governs an idle connection.
      expect(await c.closedWithin(3 * HEADERS_MS)).toBe(false);
      c.socket.write(request);
      expect(await answered(2)).toBe(2);
    } finally {
      c.destroy();
    }
  });
});
