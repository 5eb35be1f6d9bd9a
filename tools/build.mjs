// Builds dist/ (tsc -p tsconfig.build.json) only when a source is newer than the last build.
// Plain JavaScript, Node built-ins only: `npm start` runs it (prestart) on a fresh clone, before
// anything is compiled, and the tests' global setup calls ensureBuilt() for the built CLI.
//   node tools/build.mjs           build if stale, else nothing (about 30 ms)
//   node tools/build.mjs --force   build
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

/** Written after a build that succeeded: a failed build (tsc still emits) is never taken as current. */
const STAMP = path.join('dist', '.build-stamp');
/** What the build reads besides src/. */
const CONFIGS = ['tsconfig.json', 'tsconfig.build.json'];

function newestMtime(dir) {
  let newest = statSync(dir).mtimeMs; // a file deleted or renamed changes its directory
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** True when dist/ was built, successfully, after the last change to src/ and the tsconfig files. */
export function isBuilt(root) {
  let built;
  try {
    built = statSync(path.join(root, STAMP)).mtimeMs;
  } catch {
    return false;
  }
  const sources = Math.max(newestMtime(path.join(root, 'src')), ...CONFIGS.map((f) => statSync(path.join(root, f)).mtimeMs));
  return built >= sources;
}

/** Runs the TypeScript build when dist/ is stale (or always, with force); throws when tsc fails. */
export function ensureBuilt(root, { force = false } = {}) {
  if (!force && isBuilt(root)) return false;
  const started = new Date(); // a source saved during the build is newer than the stamp
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
  const stamp = path.join(root, STAMP);
  writeFileSync(stamp, `${started.toISOString()}\n`);
  utimesSync(stamp, started, started);
  return true;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    ensureBuilt(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'), { force: process.argv.includes('--force') });
  } catch {
    process.exit(1); // tsc has printed its errors
  }
}
