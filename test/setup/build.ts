// Process-level tests run the built CLI; rebuild dist/ when any source file is newer.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

export function ensureBuilt(root: string): void {
  let built = 0;
  try {
    built = statSync(path.join(root, 'dist', 'cli.js')).mtimeMs;
  } catch {
    built = 0;
  }
  if (built >= newestMtime(path.join(root, 'src'))) return;
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
}
