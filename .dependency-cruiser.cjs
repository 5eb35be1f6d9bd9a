// The layering of src/, checked by `npm run lint` (docs/architecture.md draws it):
//
//   entry points (cli, server, worker, app, infrastructure, operations)
//     -> feature modules (src/modules/*)
//       -> platform (src/http, src/events, src/infra, src/observability)
//         -> shared base (src/shared, config, version)
//
// An arrow may skip layers downwards, never point upwards. test/unit/boundaries.test.ts proves
// that each rule fails a fixture that breaks it.
const ENTRY = '^src/(cli|server|worker|app|infrastructure)\\.ts$|^src/operations/';
const MODULES = '^src/modules/';
const PLATFORM = '^src/(http|events|infra|observability)/';
const BASE = '^src/(shared/|config\\.ts$|version\\.ts$|node-flags\\.ts$)';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import circle, type-only imports included: a circle is one module in several files.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'base-imports-base-only',
      severity: 'error',
      comment: 'The shared base (config, errors, ids, the event contract) depends on nothing else of ours.',
      from: { path: BASE },
      to: { path: '^src/', pathNot: BASE },
    },
    {
      name: 'platform-never-imports-features',
      severity: 'error',
      comment: 'Platform code (http hooks, event plumbing, adapters, telemetry) knows no feature module and no entry point: what it needs of them it is given (a verifier, consumers, observers).',
      from: { path: PLATFORM },
      to: { path: `${MODULES}|${ENTRY}` },
    },
    {
      name: 'infra-takes-observers',
      severity: 'error',
      comment: 'Infrastructure adapters are told about observers (metrics, spans) by the entry point; they import no other platform part.',
      from: { path: '^src/infra/' },
      to: { path: '^src/(http|events|observability)/' },
    },
    {
      name: 'observability-reads-recorders',
      severity: 'error',
      comment: 'Metrics and tracing read what the HTTP and event code report through the interfaces in observability/recorders.ts, not by importing that code.',
      from: { path: '^src/observability/' },
      to: { path: '^src/(http|events)/' },
    },
    {
      name: 'events-plumbing-is-not-http',
      severity: 'error',
      comment: 'The outbox, relay and buses run in processes without HTTP (task-api worker).',
      from: { path: '^src/events/' },
      to: { path: '^src/http/' },
    },
    {
      name: 'modules-never-import-entry-points',
      severity: 'error',
      from: { path: MODULES },
      to: { path: ENTRY },
    },
    {
      name: 'module-meets-module-through-contract',
      severity: 'error',
      comment: "A module uses another only through that module's contract.ts (types and its API, handed over by the registry), never its repository, tables, service or routes.",
      from: { path: '^src/modules/([^/]+)/' },
      to: { path: '^src/modules/[^/]+/', pathNot: ['^src/modules/$1/', '^src/modules/[^/]+/contract\\.ts$'] },
    },
    {
      name: 'module-contract-is-only-types-of-contracts',
      severity: 'error',
      comment: 'module.ts (what a module is) sees only the contracts; only the registry knows the modules themselves.',
      from: { path: '^src/modules/module\\.ts$' },
      to: { path: '^src/modules/[^/]+/', pathNot: '^src/modules/[^/]+/contract\\.ts$' },
    },
    {
      name: 'registry-takes-entries',
      severity: 'error',
      comment: "The registry builds each module from its one entry (index.ts) and reads nothing else of it but contracts.",
      from: { path: '^src/modules/registry\\.ts$' },
      to: { path: '^src/modules/[^/]+/', pathNot: '^src/modules/[^/]+/(index|contract)\\.ts$' },
    },
    {
      name: 'only-the-registry-knows-module-entries',
      severity: 'error',
      comment: 'Entry points reach modules through the registry (a deployable is a selection from its table).',
      from: { path: ENTRY },
      to: { path: '^src/modules/[^/]+/index\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '\\.d\\.ts$' },
    // Type-only imports count: a circle of types is a circle of design.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
