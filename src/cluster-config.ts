// `task-api cluster`'s own settings, read once from its environment and validated like
// src/config.ts reads the server's: the edge's rate limit, and which of its variables the API
// instances it starts inherit. The one other place that reads the environment.
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { CONFIG_VARIABLES, ConfigError } from './config.js';

// Each variable's allowed range: EDGE_RATE_LIMIT requests a second per client address at NGINX,
// and EDGE_RATE_BURST requests above it answered at once.
const BOUNDS = { EDGE_RATE_LIMIT: [1, 1_000_000], EDGE_RATE_BURST: [0, 1_000_000] } as const;
const Count = Type.String({ pattern: '^[0-9]+$' });
const ClusterEnvSchema = Type.Object({ EDGE_RATE_LIMIT: Type.Optional(Count), EDGE_RATE_BURST: Type.Optional(Count) });
type ClusterEnv = Static<typeof ClusterEnvSchema>;

export interface EdgeSettings {
  /** limit_req rate, per second per client address (the seed's 10). */
  ratePerSecond: number;
  /** limit_req burst, answered without delay (the seed's 20). */
  burst: number;
}

export interface ClusterConfig {
  edge: EdgeSettings;
  /**
   * What of this process's environment each API instance is given: the variables `serve` reads
   * (src/config.ts), the OpenTelemetry SDK's own OTEL_* settings (OTEL_BSP_SCHEDULE_DELAY, ...),
   * and PATH. The cluster sets the ones its topology decides on top.
   */
  inherited: Record<string, string>;
}

export const EDGE_DEFAULTS: EdgeSettings = { ratePerSecond: 10, burst: 20 };

/** Reads and validates the cluster's environment; throws ConfigError naming every bad variable. */
export function loadClusterConfig(source: NodeJS.ProcessEnv = process.env): ClusterConfig {
  const raw: Record<string, string> = {};
  for (const key of Object.keys(ClusterEnvSchema.properties)) {
    const v = source[key];
    if (v !== undefined && v !== '') raw[key] = v;
  }
  const problems = new Set<string>();
  for (const e of Value.Errors(ClusterEnvSchema, raw)) if (e.instancePath !== '') problems.add(`${e.instancePath.slice(1)}: ${e.message}`);
  for (const [name, [minimum, maximum]] of Object.entries(BOUNDS)) {
    const v = raw[name];
    if (v === undefined || !/^[0-9]+$/.test(v)) continue;
    if (Number(v) < minimum || Number(v) > maximum) problems.add(`${name}: must be between ${minimum} and ${maximum} (got ${v})`);
  }
  if (problems.size > 0) throw new ConfigError([...problems]);
  const env = raw as ClusterEnv;

  const inherited: Record<string, string> = {};
  for (const key of ['PATH', ...CONFIG_VARIABLES]) {
    const v = source[key];
    if (v !== undefined) inherited[key] = v;
  }
  // With tracing on (OTEL_EXPORTER_OTLP_ENDPOINT), the SDK reads the rest of its settings itself.
  for (const [key, v] of Object.entries(source)) if (key.startsWith('OTEL_') && v !== undefined) inherited[key] = v;
  return {
    edge: {
      ratePerSecond: env.EDGE_RATE_LIMIT === undefined ? EDGE_DEFAULTS.ratePerSecond : Number(env.EDGE_RATE_LIMIT),
      burst: env.EDGE_RATE_BURST === undefined ? EDGE_DEFAULTS.burst : Number(env.EDGE_RATE_BURST),
    },
    inherited,
  };
}
