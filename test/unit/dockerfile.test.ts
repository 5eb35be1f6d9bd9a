// The container image's Dockerfile, checked without a Docker daemon (none on these machines, and
// hadolint cannot be installed here: docs/decisions.md, "The image runs Node 24 LTS"). It is
// parsed with dockerfile-ast and validated by dockerfile-utils (the parser and checks of the
// Dockerfile language server), and the rules we care about are checked on its instructions.
import { existsSync, readFileSync } from 'node:fs';
import { DockerfileParser, ModifiableInstruction, type Instruction } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/node-flags.js';

const root = new URL('../..', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, root), 'utf8');
const DOCKERFILE = 'deploy/docker/Dockerfile';
const text = read(DOCKERFILE);
const dockerfile = DockerfileParser.parse(text);

interface Stage {
  name: string | null;
  from: string;
  instructions: Instruction[];
}

/** The build stages in order, each with its own instructions (FROM first). */
function stages(): Stage[] {
  const out: Stage[] = [];
  for (const i of dockerfile.getInstructions()) {
    if (i.getKeyword() === 'FROM') {
      const from = dockerfile.getFROMs().find((f) => f.getRange().start.line === i.getRange().start.line)!;
      out.push({ name: from.getBuildStage(), from: from.getImage() ?? '', instructions: [i] });
    } else {
      out.at(-1)?.instructions.push(i);
    }
  }
  return out;
}

const of = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.getKeyword() === keyword);
const args = (i: Instruction) => i.getArguments().map((a) => a.getValue());
/** A flag's value (COPY --from=build: 'build'); the parser keeps flags apart from the arguments. */
const flag = (i: Instruction, name: string) =>
  (i instanceof ModifiableInstruction ? i.getFlags() : []).find((f) => f.getName() === name)?.getValue() ?? undefined;
/** An exec-form (JSON array) instruction's words (HEALTHCHECK's after CMD). */
function execForm(i: Instruction): string[] {
  const raw = (i.getArgumentsContent() ?? '').replace(/^CMD\s+/, '');
  expect(raw.startsWith('['), `${i.getKeyword()} in exec form: ${raw}`).toBe(true);
  return JSON.parse(raw) as string[];
}

/** The stage a stage is built FROM, followed to the image it starts from. */
function baseImage(all: Stage[], stage: Stage): string {
  const parent = all.find((s) => s.name === stage.from);
  return parent ? baseImage(all, parent) : stage.from;
}

const ciNodeVersion = () => /^NODE_LTS_VERSION=(\d+\.\d+\.\d+)$/m.exec(read('.ci/node-lts'))?.[1];

describe('deploy/docker/Dockerfile', () => {
  const all = stages();
  const final = all.at(-1)!;

  it('has no problem the Dockerfile validator reports', () => {
    expect(validate(text).map((d) => `${d.range.start.line + 1}: ${typeof d.message === 'string' ? d.message : d.message.value}`)).toEqual([]);
  });

  it('builds every stage on one pinned Node image of the LTS line CI tests on', () => {
    const bases = new Set(all.map((s) => baseImage(all, s)));
    expect(bases.size).toBe(1);
    const [image] = [...bases];
    const m = /^node:(\d+)\.(\d+)\.(\d+)-([a-z]+)-slim$/.exec(image!);
    expect(m, `a full version and a Debian release in the tag: ${image}`).not.toBeNull();
    expect(image).not.toMatch(/latest/);
    // The same release as .ci/node-lts, which checks that its binary reports an LTS codename.
    expect(`${m![1]}.${m![2]}.${m![3]}`).toBe(ciNodeVersion());
    expect(Number(m![1]) % 2, 'an even major: only those become LTS').toBe(0);
    expect(Number(m![1])).toBeGreaterThan(20); // Node 20 reached its end of life in April 2026
    expect(dockerfile.getInitialARGs()).toEqual([]); // no build argument can swap the base
  });

  it('runs as the unprivileged node user', () => {
    const users = of(final, 'USER').map((u) => args(u)[0]);
    expect(users.at(-1)).toBe('node');
    expect(users).not.toContain('root');
    expect(users).not.toContain('0');
  });

  it('holds only the production dependencies, dist/ and migrations/', () => {
    const copies = of(final, 'COPY');
    const fromStage = (dest: string) => {
      const copy = copies.find((c) => args(c).at(-1) === dest);
      return copy && flag(copy, 'from');
    };
    const depsStage = all.find((s) => s.name === fromStage('./node_modules'))!;
    expect(depsStage, 'node_modules copied from a stage').toBeDefined();
    expect(of(depsStage, 'RUN').map((r) => r.getArgumentsContent()).join('\n')).toMatch(/npm ci --omit=dev\b/);
    expect(fromStage('./dist')).toBe('build');
    expect(copies.map((c) => args(c).join(' '))).toEqual([
      'package.json ./',
      '/app/node_modules ./node_modules',
      '/src/dist ./dist',
      'migrations/ ./migrations/',
    ]);
  });

  it('has a HEALTHCHECK that runs the CLI probe, and no curl', () => {
    const checks = of(final, 'HEALTHCHECK');
    expect(checks).toHaveLength(1);
    expect(args(checks[0]!)[0]).toBe('CMD');
    expect(execForm(checks[0]!)).toEqual(['node', 'dist/cli.js', 'healthcheck']);
    const commands = dockerfile.getInstructions().map((i) => `${i.getKeyword()} ${i.getArgumentsContent() ?? ''}`);
    expect(commands.filter((c) => /\b(curl|wget)\b/.test(c))).toEqual([]);
  });

  it('starts the task-api CLI as PID 1 with the server V8 flags, serve by default', () => {
    const [entrypoint] = of(final, 'ENTRYPOINT');
    expect(execForm(entrypoint!)).toEqual(['node', ...NODE_FLAGS, 'dist/cli.js']);
    expect(execForm(of(final, 'CMD').at(-1)!)).toEqual(['serve']);
    expect(of(final, 'STOPSIGNAL').map(args)).toEqual([['SIGTERM']]);
  });

  it('copies from the build context only what .dockerignore lets in', () => {
    const ignore = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    expect(ignore[0], 'everything is left out unless let in').toBe('*');
    const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
    const sources = all.flatMap((s) =>
      of(s, 'COPY')
        .filter((c) => flag(c, 'from') === undefined)
        .flatMap((c) => args(c).slice(0, -1)),
    );
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(existsSync(new URL(source, root)), `${source} exists`).toBe(true);
      expect(allowed.some((a) => source === a || source.startsWith(a.endsWith('/') ? a : `${a}/`)), `${source} let in by .dockerignore`).toBe(true);
    }
  });
});
