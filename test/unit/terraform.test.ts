// deploy/terraform, checked without Terraform's providers (`terraform init` downloads the AWS
// provider, which this network cannot reach, so `terraform validate` cannot run): every .tf file
// parses with HashiCorp's HCL parser (@cdktf/hcl2json, its Go code compiled to WebAssembly); each
// module declares exactly the variables it uses; every module call passes known arguments and all
// required ones; every module output the root reads exists; references name declared resources;
// the settings handed to the container are variables of src/config.ts; and the files are laid out
// as `terraform fmt` writes them (checked by `terraform fmt -check` itself where the binary is
// installed, and by the indentation rules below everywhere).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../../src/config.js';

// Loaded by a name TypeScript does not follow: the package's declarations pull in the DOM library
// (`/// <reference lib="dom" />`), whose fetch types would then apply to the whole project.
const HCL2JSON = '@cdktf/hcl2json';
const { parse } = (await import(HCL2JSON)) as { parse: (file: string, text: string) => Promise<Record<string, unknown>> };

const TF = path.resolve(import.meta.dirname, '../../deploy/terraform');
const MODULES = ['network', 'alb', 'service', 'database', 'cache', 'broker'];
const ROOT_DIR = path.join(TF, 'envs/production');

type Blocks = Record<string, Record<string, Record<string, unknown>[]>>;
interface Dir {
  files: Record<string, string>;
  /** The parsed configuration, each block type's labels merged over the files. */
  hcl: Blocks & { resource?: Record<string, Record<string, unknown[]>>; data?: Record<string, Record<string, unknown[]>> };
}

const tfFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.tf'));

async function load(dir: string): Promise<Dir> {
  const files: Record<string, string> = {};
  const hcl: Record<string, Record<string, unknown>> = {};
  for (const f of tfFiles(dir)) {
    files[f] = readFileSync(path.join(dir, f), 'utf8');
    const parsed = (await parse(f, files[f])) as Record<string, Record<string, unknown>>;
    for (const [type, byLabel] of Object.entries(parsed)) hcl[type] = { ...hcl[type], ...byLabel };
  }
  return { files, hcl: hcl as Dir['hcl'] };
}

/** The text of a directory's files other than the given ones, comments removed. */
const code = (d: Dir, except: string[] = []) =>
  Object.entries(d.files)
    .filter(([f]) => !except.includes(f))
    .map(([, text]) => text.replace(/^\s*#.*$/gm, ''))
    .join('\n');
const refs = (text: string, re: RegExp) => new Set([...text.matchAll(re)].map((m) => m[1]!));

/** Resource and data addresses used (aws_x.name, data.aws_x.name) that no block declares. */
function undeclaredReferences(d: Dir): string[] {
  const text = code(d);
  const declared = new Set([
    ...Object.entries(d.hcl.resource ?? {}).flatMap(([type, byName]) => Object.keys(byName).map((n) => `${type}.${n}`)),
    ...Object.entries(d.hcl.data ?? {}).flatMap(([type, byName]) => Object.keys(byName).map((n) => `data.${type}.${n}`)),
  ]);
  const used = [...refs(text, /(?<![\w."])((?:data\.)?aws_[a-z0-9_]+\.[a-z0-9_]+)/g)];
  return used.filter((u) => !declared.has(u));
}

/** Lines that `terraform fmt` would indent differently: 2 spaces a nesting level, no tabs, no trailing blanks (alignment of `=` is not checked). */
function layoutProblems(file: string, text: string): string[] {
  const problems: string[] = [];
  if (!text.endsWith('\n') || text.endsWith('\n\n')) problems.push(`${file}: must end with exactly one newline`);
  let depth = 0;
  text.split('\n').forEach((line, i) => {
    const where = `${file}:${i + 1}`;
    if (/\t/.test(line)) problems.push(`${where}: tab`);
    if (/[ \t]+$/.test(line)) problems.push(`${where}: trailing whitespace`);
    const bare = line.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/#.*$/, '');
    const closesFirst = /^\s*[}\])]/.test(bare);
    const expected = 2 * (depth - (closesFirst ? 1 : 0));
    const indent = line.length - line.trimStart().length;
    if (line.trim() !== '' && indent !== expected) problems.push(`${where}: indented ${indent}, expected ${expected}`);
    // As terraform fmt indents: a line that opens more than it closes (`merge(var.x, {`) nests the
    // following lines one level, and the line that closes them (`})`) comes back one level.
    depth += Math.sign((bare.match(/[{[(]/g) ?? []).length - (bare.match(/[}\])]/g) ?? []).length);
  });
  if (depth !== 0) problems.push(`${file}: unbalanced brackets`);
  return problems;
}

const dirs = new Map<string, Dir>();
for (const m of MODULES) dirs.set(m, await load(path.join(TF, 'modules', m)));
const root = await load(ROOT_DIR);
const variablesOf = (d: Dir) => d.hcl['variable'] ?? {};

describe.each(MODULES)('module %s', (m) => {
  const d = dirs.get(m)!;

  it('has main.tf, variables.tf and outputs.tf, each parsed by the HCL parser', () => {
    expect(Object.keys(d.files).sort()).toEqual(['main.tf', 'outputs.tf', 'variables.tf']);
    expect(Object.keys(d.hcl.resource ?? {}).length).toBeGreaterThan(0);
    expect(Object.keys(d.hcl['output'] ?? {}).length).toBeGreaterThan(0);
  });

  it('declares every variable it uses and uses every variable it declares', () => {
    const declared = Object.keys(variablesOf(d)).sort();
    const used = [...refs(code(d, ['variables.tf']), /\bvar\.([a-z0-9_]+)/g)].sort();
    expect(used).toEqual(declared);
    for (const [name, [v]] of Object.entries(variablesOf(d))) expect((v as { description?: string }).description, name).toBeTruthy();
  });

  it('references only resources and data sources it declares', () => {
    expect(undeclaredReferences(d)).toEqual([]);
  });
});

describe('envs/production (the root)', () => {
  const modules = root.hcl['module'] ?? {};

  it('pins Terraform and the AWS provider', () => {
    const tf = (root.hcl['terraform'] as unknown as { required_version: string; required_providers: { aws: { source: string; version: string } }[] }[])[0]!;
    expect(tf.required_version).toMatch(/^>= 1\.\d+/);
    expect(tf.required_providers[0]!.aws).toEqual({ source: 'hashicorp/aws', version: expect.stringMatching(/^~> 5\.\d+$/) });
  });

  it('calls every module once, with known arguments and every required one', () => {
    expect(Object.keys(modules).sort()).toEqual([...MODULES].sort());
    for (const [name, [call]] of Object.entries(modules)) {
      const args = call as Record<string, unknown>;
      const target = path.resolve(ROOT_DIR, args['source'] as string);
      const d = dirs.get(path.basename(target))!;
      expect(target, name).toBe(path.join(TF, 'modules', path.basename(target)));
      const given = Object.keys(args).filter((k) => !['source', 'version', 'providers', 'depends_on', 'count', 'for_each'].includes(k));
      const vars = variablesOf(d);
      expect(given.filter((k) => !(k in vars)), `${name}: unknown arguments`).toEqual([]);
      const required = Object.entries(vars).filter(([, [v]]) => !('default' in (v as object))).map(([k]) => k);
      expect(required.filter((k) => !given.includes(k)), `${name}: missing required arguments`).toEqual([]);
    }
  });

  it('reads only outputs the modules have, and declares the variables it uses', () => {
    for (const ref of refs(code(root), /\bmodule\.([a-z0-9_]+\.[a-z0-9_]+)/g)) {
      const [mod, output] = ref.split('.') as [string, string];
      const source = (modules[mod]?.[0] as { source?: string } | undefined)?.source;
      expect(source, `module ${mod}`).toBeDefined();
      expect(Object.keys(dirs.get(path.basename(source!))!.hcl['output'] ?? {}), ref).toContain(output);
    }
    expect([...refs(code(root, ['variables.tf']), /\bvar\.([a-z0-9_]+)/g)].sort()).toEqual(Object.keys(variablesOf(root)).sort());
    expect(undeclaredReferences(root)).toEqual([]);
  });

  it('hands the container only settings that src/config.ts reads', () => {
    const service = modules['service']![0] as { environment: Record<string, unknown>[] | Record<string, unknown> };
    const env = Array.isArray(service.environment) ? service.environment[0]! : service.environment;
    const secrets = [...root.files['main.tf']!.matchAll(/toset\(\[([^\]]+)\]\)/g)].flatMap((m) => [...m[1]!.matchAll(/"([A-Z_]+)"/g)].map((s) => s[1]!));
    const fixed = [...dirs.get('service')!.files['main.tf']!.matchAll(/^\s{4}([A-Z_]+)\s+= /gm)].map((m) => m[1]!);
    const names = [...Object.keys(env), ...secrets, ...fixed];
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((n) => !CONFIG_VARIABLES.includes(n))).toEqual([]);
  });
});

describe('layout', () => {
  const all = [...MODULES.map((m) => path.join('modules', m)), 'envs/production'].flatMap((dir) =>
    tfFiles(path.join(TF, dir)).map((f) => [path.join(dir, f), readFileSync(path.join(TF, dir, f), 'utf8')] as const),
  );

  it('every file is indented two spaces a level, without tabs or trailing blanks', () => {
    expect(all.flatMap(([f, text]) => layoutProblems(f, text))).toEqual([]);
  });

  it('a broken file is refused: by the parser, by the layout check', async () => {
    await expect(parse('broken.tf', 'module "x" {\n  source = \n')).rejects.toThrow(/Invalid expression/);
    expect(layoutProblems('bad.tf', 'resource "a" "b" {\n    x = 1\n}\n')).toEqual(['bad.tf:2: indented 4, expected 2']);
  });

  const terraform = spawnSync('terraform', ['version'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!terraform)('terraform fmt -check finds nothing to change (where terraform is installed)', () => {
    const res = spawnSync('terraform', ['fmt', '-check', '-recursive', '-diff', TF], { encoding: 'utf8' });
    expect(res.stdout).toBe('');
    expect(res.status).toBe(0);
  });
});
