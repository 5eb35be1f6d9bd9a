// NGINX in front of the API instances. deploy/nginx/task-api.conf.template is the one site
// configuration: production renders it with `task-api cluster nginx-config`, the local topology
// with the instances' loopback ports, and wraps it in a main context of its own (pid file, temp
// paths and logs under the cluster's directory; `daemon off`, so the launched pid is the master's).
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EdgeSettings } from '../../cluster-config.js';
import type { CommandLine } from './processes.js';

export const NGINX_TEMPLATE = fileURLToPath(new URL('../../../deploy/nginx/task-api.conf.template', import.meta.url));

export interface SiteOptions {
  /** `listen` argument: 80, or 127.0.0.1:8080. */
  listen: string;
  serverName: string;
  /** The API instances, host:port each. */
  upstreams: string[];
  /** Where the JSON access log goes (a path, or off). */
  accessLog: string;
  edge: EdgeSettings;
}

/** A value goes into the config as one token: no whitespace, quotes, braces or semicolons. */
function token(name: string, value: string): string {
  if (!/^[^\s;{}"'#]+$/.test(value)) throw new Error(`nginx: ${name} "${value}" cannot go into the configuration as one word`);
  return value;
}

/** The template with its placeholders filled in; the {{UPSTREAM}} line once per instance. */
export function renderSite(template: string, o: SiteOptions): string {
  if (o.upstreams.length === 0) throw new Error('nginx: at least one upstream instance is needed');
  const values: Record<string, string> = {
    LISTEN: token('listen', o.listen),
    SERVER_NAME: token('server name', o.serverName),
    ACCESS_LOG: token('access log', o.accessLog),
    EDGE_RATE_LIMIT: String(o.edge.ratePerSecond),
    EDGE_RATE_BURST: String(o.edge.burst),
  };
  const lines = template.split('\n').flatMap((line) =>
    line.includes('{{UPSTREAM}}') && !line.trimStart().startsWith('#')
      ? o.upstreams.map((u) => line.replace('{{UPSTREAM}}', token('upstream', u)))
      : [line],
  );
  return lines.join('\n').replace(/\{\{([A-Z_]+)\}\}/g, (whole, name: string) => {
    const v = values[name];
    if (v !== undefined) return v;
    // The template's comments name {{UPSTREAM}} and {{NAME}}; anything else unknown is a mistake.
    if (name === 'UPSTREAM' || name === 'NAME') return whole;
    throw new Error(`nginx: the template has an unknown placeholder ${whole}`);
  });
}

export interface NginxLayout {
  dir: string;
  /** The main configuration (-c). */
  conf: string;
  /** The rendered site, included by conf. */
  site: string;
  pidFile: string;
  errorLog: string;
  accessLog: string;
}

export function nginxLayout(dir: string): NginxLayout {
  return {
    dir,
    conf: path.join(dir, 'nginx.conf'),
    site: path.join(dir, 'task-api.conf'),
    pidFile: path.join(dir, 'nginx.pid'),
    errorLog: path.join(dir, 'error.log'),
    accessLog: path.join(dir, 'access.log'),
  };
}

/** The main context around the site for one NGINX of our own, everything under its directory. */
export function mainConfig(l: NginxLayout): string {
  const temp = (name: string) => token('temp path', path.join(l.dir, 'temp', name));
  return [
    '# Written by task-api cluster: the main context around task-api.conf (the rendered',
    '# deploy/nginx/task-api.conf.template) for one NGINX whose files are all in this directory.',
    '# In the foreground: the pid the cluster launched is the master, which it signals (QUIT).',
    'daemon off;',
    'worker_processes 2;',
    `pid ${token('pid file', l.pidFile)};`,
    `error_log ${token('error log', l.errorLog)} warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '    default_type application/octet-stream;',
    // Workers (nobody, as root) write request bodies and buffered answers here; the master
    // creates these and gives them to the workers' user.
    `    client_body_temp_path ${temp('client_body')};`,
    `    proxy_temp_path ${temp('proxy')};`,
    `    fastcgi_temp_path ${temp('fastcgi')};`,
    `    uwsgi_temp_path ${temp('uwsgi')};`,
    `    scgi_temp_path ${temp('scgi')};`,
    `    include ${token('site', l.site)};`,
    '}',
    '',
  ].join('\n');
}

/**
 * Writes a rendered site and the main configuration around it into dir. The directory is left
 * readable and searchable by everyone: the workers run as nobody when the master is root.
 */
export async function writeNginxFiles(dir: string, siteText: string): Promise<NginxLayout> {
  const l = nginxLayout(dir);
  mkdirSync(path.join(dir, 'temp'), { recursive: true });
  chmodSync(dir, 0o755);
  chmodSync(path.join(dir, 'temp'), 0o755);
  await writeFile(l.site, siteText);
  await writeFile(l.conf, mainConfig(l));
  return l;
}

/** The template rendered for the local topology, its access log beside it, written into dir. */
export function writeNginxConfig(dir: string, site: Omit<SiteOptions, 'accessLog'>): Promise<NginxLayout> {
  const siteText = renderSite(readFileSync(NGINX_TEMPLATE, 'utf8'), { ...site, accessLog: nginxLayout(dir).accessLog });
  return writeNginxFiles(dir, siteText);
}

export function nginxCommand(l: NginxLayout, nginxBin: string, pathEnv: string): CommandLine {
  // -e: the error log from the first line on, never the build's default (/var/log/nginx). TZ:
  // its timestamps in UTC, which edge.ts reads.
  return { command: nginxBin, args: ['-p', l.dir, '-e', l.errorLog, '-c', l.conf], env: { PATH: pathEnv, TZ: 'UTC' } };
}

/** `nginx -t` on the configuration: whether it is valid, and what NGINX said. */
export function testNginxConfig(l: NginxLayout, nginxBin: string): { ok: boolean; output: string } {
  const res = spawnSync(nginxBin, ['-t', '-p', l.dir, '-e', l.errorLog, '-c', l.conf], { encoding: 'utf8' });
  return { ok: res.status === 0, output: `${res.stdout}${res.stderr}` };
}
