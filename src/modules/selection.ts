// Which feature modules a `serve` process runs (`task-api serve --modules auth,users`): the same
// code deploys as one monolith or as separate services behind a gateway.
export const MODULE_NAMES = ['auth', 'users', 'tasks', 'notifications'] as const;
export type ModuleName = (typeof MODULE_NAMES)[number];

export const ALL_MODULES: ReadonlySet<ModuleName> = new Set(MODULE_NAMES);

const isModule = (name: string): name is ModuleName => (MODULE_NAMES as readonly string[]).includes(name);

/** Parses a comma-separated list; throws naming the first unknown module. */
export function parseModules(list: string): ReadonlySet<ModuleName> {
  const names = list
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n.length > 0);
  if (names.length === 0) throw new Error(`--modules: name at least one of ${MODULE_NAMES.join(', ')}`);
  const unknown = names.find((n) => !isModule(n));
  if (unknown !== undefined) throw new Error(`--modules: unknown module "${unknown}" (known: ${MODULE_NAMES.join(', ')})`);
  return new Set(names.filter(isModule));
}
