// Patches postgres.js 3.4.9 in node_modules (run by `npm install` / `npm ci` as postinstall) for
// a defect that ends the process: porsager/postgres#1208 (also #1066, #1154; fixes proposed in
// #1168, #1209, #1215, none released). When a connection is lost inside a transaction (a
// PostgreSQL failover, PgBouncer's "server conn crashed?"), the transaction's own ROLLBACK is
// written to it after `closed()` has set its socket to null; the deferred flush (`nextWrite`, from
// setImmediate) then throws a TypeError no caller can catch, and Node exits: every API instance
// died at once on the first Patroni failover (test/system/pg-failover.test.ts). Had the flush been
// guarded alone, the connection would stay wedged: the spent timer handle blocks every later
// flush, so its reconnects never send their startup message (CONNECT_TIMEOUT forever).
//
// The patch: a flush with no socket drops the bytes and rejects the statements waiting on that
// connection with CONNECTION_CLOSED (the caller's error, a 503); closing or terminating a
// connection forgets its pending bytes and its timer. Plain JavaScript, Node built-ins only;
// idempotent; it fails loudly when the code it patches is not there (another version of
// postgres.js: look at the issue again before changing this file).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const MARKER = 'task-api patch (tools/patch-postgres.mjs)';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkgDir = path.join(root, 'node_modules', 'postgres');

const GUARD = `  // ${MARKER}: a flush after the connection closed (porsager/postgres#1208)
  function closedWrite() {
    chunk = nextWriteTimer = null
    const err = Errors.connection('CONNECTION_CLOSED', options)
    query && queryError(query, err)
    while (sent.length)
      queryError(sent.shift(), err)
    return false
  }

  function nextWrite(fn) {
    if (!socket)
      return closedWrite()
    const x = socket.write(chunk, fn)`;

const NEXT_WRITE = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`;

const CLEAR = '    clearImmediate(nextWriteTimer)\n';
const CLEAR_AND_FORGET = `    clearImmediate(nextWriteTimer), chunk = nextWriteTimer = null // ${MARKER}\n`;

/** Patches one copy of connection.js; returns what it did. */
export function patchConnection(text) {
  if (text.includes(MARKER)) return { text, changed: false };
  const clears = text.split(CLEAR).length - 1;
  if (!text.includes(NEXT_WRITE) || clears !== 2) {
    throw new Error('postgres.js connection.js is not the 3.4.9 code this patch was written for (nextWrite, terminate, closed)');
  }
  return { text: text.replace(NEXT_WRITE, GUARD).split(CLEAR).join(CLEAR_AND_FORGET), changed: true };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!existsSync(pkgDir)) process.exit(0); // not installed (yet): nothing to patch
  const { version } = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  try {
    for (const dir of ['src', 'cjs/src', 'cf/src']) {
      const file = path.join(pkgDir, dir, 'connection.js');
      if (!existsSync(file)) continue;
      const { text, changed } = patchConnection(readFileSync(file, 'utf8'));
      if (changed) writeFileSync(file, text);
      process.stdout.write(`postgres ${version} ${dir}/connection.js: ${changed ? 'patched' : 'already patched'} (porsager/postgres#1208)\n`);
    }
  } catch (err) {
    process.stderr.write(`tools/patch-postgres.mjs: postgres ${version}: ${err.message}\n`);
    process.exit(1);
  }
}
