// Prometheus for the local topology: scrapes every API instance's metrics port (job task-api,
// as deploy/monitoring/prometheus.yml names it) and evaluates deploy/monitoring/alerts.yml, so
// the alerts of the runbooks (TaskApiInstanceDown, ...) can be watched firing on one machine.
import { mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpOk, LOOPBACK, type CommandLine } from './processes.js';

export const ALERT_RULES = fileURLToPath(new URL('../../../deploy/monitoring/alerts.yml', import.meta.url));

export interface ScrapeTarget {
  /** The instance's name (api-1), kept as a label beside host:port. */
  name: string;
  port: number;
}

/** prometheus.yml, as JSON (which YAML reads as is). Scrapes every 5 s: a local topology is watched live. */
export function prometheusConfig(targets: ScrapeTarget[], selfPort: number): string {
  const config = {
    global: { scrape_interval: '5s', evaluation_interval: '5s', scrape_timeout: '4s' },
    rule_files: [ALERT_RULES],
    scrape_configs: [
      {
        job_name: 'task-api',
        metrics_path: '/metrics',
        static_configs: targets.map((t) => ({ targets: [`${LOOPBACK}:${t.port}`], labels: { name: t.name } })),
      },
      { job_name: 'prometheus', static_configs: [{ targets: [`${LOOPBACK}:${selfPort}`] }] },
    ],
  };
  return `# Written by task-api cluster start.\n${JSON.stringify(config, null, 2)}\n`;
}

/** Writes <dir>/prometheus.yml; returns the command that serves it on the port. */
export async function preparePrometheus(dir: string, port: number, targets: ScrapeTarget[], binary: string, pathEnv: string): Promise<CommandLine> {
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  const configFile = path.join(dir, 'prometheus.yml');
  await writeFile(configFile, prometheusConfig(targets, port));
  return {
    command: binary,
    args: [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=${LOOPBACK}:${port}`],
    env: { PATH: pathEnv },
    cwd: dir,
  };
}

/** Prometheus answers /-/ready with 200 once it has loaded its configuration and storage. */
export const prometheusReady = (port: number) => httpOk(`http://${LOOPBACK}:${port}/-/ready`);
