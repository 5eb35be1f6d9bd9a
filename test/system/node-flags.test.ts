// The server's V8 flags are the same wherever it is started: the CLI's shebang, `npm start`, and
// the tools that spawn it with NODE_FLAGS.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/node-flags.js';

const root = new URL('../..', import.meta.url);

describe('node flags', () => {
  it('the shebang and npm start pass NODE_FLAGS', () => {
    const shebang = readFileSync(new URL('src/cli.ts', root), 'utf8').split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
    const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${NODE_FLAGS.join(' ')} dist/cli.js serve`);
  });

  it('the built CLI keeps its shebang, so the installed `task-api` program applies them', () => {
    expect(readFileSync(new URL('dist/cli.js', root), 'utf8').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
  });
});
