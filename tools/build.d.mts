// Types of tools/build.mjs (plain JavaScript, so that `npm start` runs it before any build).
/** True when dist/ was built, successfully, after the last change to src/ and the tsconfig files. */
export function isBuilt(root: string): boolean;
/** Runs the TypeScript build when dist/ is stale (or always, with force); true when it built. */
export function ensureBuilt(root: string, opts?: { force?: boolean }): boolean;
