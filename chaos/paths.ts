// Where the chaos tool finds the project when it runs from build/chaos/ (npm run chaos).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (build/chaos/paths.js -> ../..). */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The built CLI the cluster is run with (npm run build). */
export const CLI = path.join(ROOT, 'dist', 'cli.js');
