// NGINX in front of the API instances. deploy/nginx/task-api.conf.template is the one site
// configuration of the monolith, gateway.conf.template that of the split services (a service per
// module, routed by path); both put in the edge rules they share (deploy/nginx/*.conf.inc) when
// rendered. Production renders them with `task-api cluster nginx-config` / `gateway-config`, the
// local topology with the instances' loopback ports, and wraps the site in a main context of its
// own (pid file, temp paths and logs under the cluster's directory; `daemon off`, so the launched
// pid is the master's).
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EdgeSettings } from '../../cluster-config.js';
import type { CommandLine } from './processes.js';

const NGINX_DIR = fileURLToPath(new URL('../../../deploy/nginx/', import.meta.url));
export const NGINX_TEMPLATE = path.join(NGINX_DIR, 'task-api.conf.template');
/** The split topology's site: a service per module, routed by path (`cluster start --split`). */
export const GATEWAY_TEMPLATE = path.join(NGINX_DIR, 'gateway.conf.template');

/** The services behind the gateway, one per module, each its own upstream task_api_<service>. */
export const GATEWAY_SERVICES = ['auth', 'users', 'tasks', 'notifications'] as const;
export type GatewayService = (typeof GATEWAY_SERVICES)[number];

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

export interface GatewayOptions extends Omit<SiteOptions, 'upstreams'> {
  /** Each service's instances, host:port each. */
  services: Record<GatewayService, string[]>;
  /** The whole API's OpenAPI document, which the gateway serves as /openapi.json and /docs/json. */
  openapiFile: string;
}

/** A value goes into the config as one token: no whitespace, quotes, braces or semicolons. */
function token(name: string, value: string): string {
  if (!/^[^\s;{}"'#]+$/.test(value)) throw new Error(`nginx: ${name} "${value}" cannot go into the configuration as one word`);
  return value;
}

/**
 * Puts in each `{{> FILE}}` line the file of that name beside the templates (the parts both
 * templates share). `{{> upstream.conf.inc SERVICE}}` names the upstream task_api_SERVICE and
 * its instances' placeholder UPSTREAM_SERVICE; without a service, task_api and UPSTREAM.
 */
function expandIncludes(template: string): string {
  return template.replace(/^\{\{> ([\w.-]+)(?: ([a-z]+))?\}\}$/gm, (_line, file: string, service: string | undefined) =>
    readFileSync(path.join(NGINX_DIR, path.basename(file)), 'utf8')
      .replace(/\n$/, '')
      .replaceAll('{{UPSTREAM_NAME}}', service ? `task_api_${service}` : 'task_api')
      .replaceAll('{{UPSTREAM}}', service ? `{{UPSTREAM_${service.toUpperCase()}}}` : '{{UPSTREAM}}'),
  );
}

/**
 * A template with its includes put in and its placeholders filled in: a line with an upstream
 * placeholder (UPSTREAM, UPSTREAM_AUTH, ...) once per instance in `lists`, the rest from `values`.
 */
function render(template: string, values: Record<string, string>, lists: Record<string, string[]>): string {
  const lines = expandIncludes(template)
    .split('\n')
    .flatMap((line) => {
      const m = /\{\{(UPSTREAM(?:_[A-Z]+)?)\}\}/.exec(line);
      if (!m || line.trimStart().startsWith('#')) return [line];
      const list = lists[m[1]!];
      if (!list || list.length === 0) throw new Error(`nginx: at least one upstream instance is needed for ${m[0]}`);
      return list.map((u) => line.replace(m[0], token('upstream', u)));
    });
  return lines.join('\n').replace(/\{\{([A-Z_]+)\}\}/g, (whole, name: string) => {
    const v = values[name];
    if (v !== undefined) return v;
    // The template's comments name {{UPSTREAM}} and {{NAME}}; anything else unknown is a mistake.
    if (name === 'UPSTREAM' || name === 'NAME') return whole;
    throw new Error(`nginx: the template has an unknown placeholder ${whole}`);
  });
}

const edgeValues = (o: Omit<SiteOptions, 'upstreams'>, proxyTarget: string): Record<string, string> => ({
  LISTEN: token('listen', o.listen),
  SERVER_NAME: token('server name', o.serverName),
  ACCESS_LOG: token('access log', o.accessLog),
  EDGE_RATE_LIMIT: String(o.edge.ratePerSecond),
  EDGE_RATE_BURST: String(o.edge.burst),
  PROXY_TARGET: proxyTarget,
});

/** The template with its placeholders filled in; the {{UPSTREAM}} line once per instance. */
export function renderSite(template: string, o: SiteOptions): string {
  if (o.upstreams.length === 0) throw new Error('nginx: at least one upstream instance is needed');
  return render(template, edgeValues(o, 'task_api'), { UPSTREAM: o.upstreams });
}

/** gateway.conf.template rendered: each service's upstream line once per instance of it. */
export function renderGateway(template: string, o: GatewayOptions): string {
  const lists = Object.fromEntries(GATEWAY_SERVICES.map((s) => [`UPSTREAM_${s.toUpperCase()}`, o.services[s] ?? []]));
  // The request's service (the map on the path) picks the upstream.
  const values = { ...edgeValues(o, 'task_api_$task_api_service'), OPENAPI_FILE: token('openapi file', o.openapiFile) };
  return render(template, values, lists);
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

/** The gateway rendered for the local topology, its access log beside it, written into dir. */
export function writeGatewayConfig(dir: string, site: Omit<GatewayOptions, 'accessLog'>): Promise<NginxLayout> {
  const siteText = renderGateway(readFileSync(GATEWAY_TEMPLATE, 'utf8'), { ...site, accessLog: nginxLayout(dir).accessLog });
  return writeNginxFiles(dir, siteText);
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
