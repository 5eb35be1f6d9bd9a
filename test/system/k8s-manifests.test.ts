// deploy/k8s, checked without a cluster (none is available here): the overlays rendered by a
// real kustomize (kubectl's) equal the committed rendered/*.yaml; every rendered object is valid
// against the Kubernetes 1.36 schemas (and the prometheus-operator CRD for the ServiceMonitor)
// with no unknown field; and the manifests agree with the code: settings, ports, probes, drain,
// the gateway's rendering, and which pods may reach what.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config.js';
import { EDGE_DEFAULTS } from '../../src/cluster-config.js';
import { MODULE_NAMES } from '../../src/modules/registry.js';
import { GATEWAY_TEMPLATE, NGINX_TEMPLATE, renderGateway, renderSite } from '../../src/operations/cluster/nginx.js';
import { allowed, K8S_DIR, loadRendered, parseManifests, peerIsPod, ROOT, schemaErrors, unknownFieldErrors, type K8sObject } from '../helpers/k8s.js';

const OVERLAYS = ['monolith', 'split'] as const;
const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, loadRendered(o)])) as Record<(typeof OVERLAYS)[number], K8sObject[]>;
const read = (rel: string) => readFileSync(path.join(ROOT, rel), 'utf8');
const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;

interface Container {
  name: string;
  image: string;
  args: string[];
  ports: { name: string; containerPort: number }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  env?: { name: string; value: string }[];
  readinessProbe: { httpGet: unknown };
  livenessProbe: { httpGet: unknown };
  lifecycle: { preStop: { sleep: { seconds: number } } };
  resources: unknown;
  securityContext: unknown;
  readinessProbes?: unknown;
}
interface Pod {
  metadata: { labels: Record<string, string> };
  spec: { containers: Container[]; securityContext: { runAsNonRoot?: boolean }; terminationGracePeriodSeconds: number };
}
const podOf = (o: K8sObject): Pod => (o['spec'] as { template: Pod }).template;
/** The spec of an object, typed as far as a check reads it. */
const specOf = <T>(o: K8sObject): T => o['spec'] as T;
const ofKind = (objs: K8sObject[], kind: string) => objs.filter((o) => o.kind === kind);
const byName = (objs: K8sObject[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name)!;

/** A workload's environment as the kubelet builds it from envFrom (ConfigMap data, Secret stringData) and env. */
function environmentOf(objs: K8sObject[], container: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    const ref = (from.configMapRef ?? from.secretRef)!;
    const src = byName(objs, from.configMapRef ? 'ConfigMap' : 'Secret', ref.name);
    expect(src, `${ref.name} exists`).toBeDefined();
    Object.assign(env, (src['data'] ?? src['stringData']) as Record<string, string>);
  }
  for (const e of container.env ?? []) env[e.name] = e.value;
  return env;
}

/** Names in ConfigMaps/Secrets that src/config.ts does not read (SHARD_<NAME>_* are per shard). */
function unknownVariables(objs: K8sObject[]): string[] {
  const known = new Set(CONFIG_VARIABLES);
  return objs
    .filter((o) => (o.kind === 'ConfigMap' && !o.metadata.name.startsWith('task-api-gateway')) || o.kind === 'Secret')
    .flatMap((o) => Object.keys((o['data'] ?? o['stringData'] ?? {})).map((k) => [o.metadata.name, k] as const))
    .filter(([, k]) => !known.has(k) && !/^SHARD_[A-Z0-9_]+_(URL|READ_URLS)$/.test(k))
    .map(([name, k]) => `${name}: ${k}`);
}

describe.skipIf(!kubectl)('kustomize (kubectl kustomize)', () => {
  it.each(OVERLAYS)('renders %s exactly as committed in deploy/k8s/rendered (else: npm run k8s:render)', (overlay) => {
    const res = spawnSync('kubectl', ['kustomize', path.join(K8S_DIR, 'overlays', overlay)], { encoding: 'utf8' });
    expect(res.stderr).toBe('');
    const committed = read(`deploy/k8s/rendered/${overlay}.yaml`).replace(/^(#.*\n)+/, '');
    expect(res.stdout).toBe(committed);
  });
});

describe('generated inputs are current (else: npm run k8s:render)', () => {
  it('the monolith gateway is deploy/nginx/task-api.conf.template rendered for the task-api Service', () => {
    const site = renderSite(read(path.relative(ROOT, NGINX_TEMPLATE)), {
      listen: '8080', serverName: '_', upstreams: ['task-api:3000'], accessLog: '/dev/stdout', edge: EDGE_DEFAULTS,
    });
    expect(read('deploy/k8s/overlays/monolith/gateway/task-api.conf')).toBe(site);
  });

  it('the split gateway is gateway.conf.template rendered with a Service per module, and serves docs/openapi.json', () => {
    const services = Object.fromEntries(MODULE_NAMES.map((m) => [m, [`task-api-${m}:3000`]])) as Parameters<typeof renderGateway>[1]['services'];
    const site = renderGateway(read(path.relative(ROOT, GATEWAY_TEMPLATE)), {
      listen: '8080', serverName: '_', services, openapiFile: '/etc/nginx/conf.d/openapi.json', accessLog: '/dev/stdout', edge: EDGE_DEFAULTS,
    });
    expect(read('deploy/k8s/overlays/split/gateway/gateway.conf')).toBe(site);
    expect(read('deploy/k8s/overlays/split/gateway/openapi.json')).toBe(read('docs/openapi.json'));
  });
});

it('no object of either overlay has a field its type does not define (one TypeScript program)', () => {
  expect(unknownFieldErrors([...rendered.monolith, ...rendered.split])).toEqual([]);
});

describe.each(OVERLAYS)('the %s overlay, rendered', (overlay) => {
  const objs = rendered[overlay];
  const apis = ofKind(objs, 'Deployment').filter((d) => d.metadata.labels?.['task-api.io/role'] === 'api');

  it('every object is valid against the Kubernetes 1.36 schemas / the prometheus-operator CRD', async () => {
    const errors = (await Promise.all(objs.map(schemaErrors))).flat();
    expect(errors).toEqual([]);
    expect(new Set(objs.map((o) => o.kind))).toEqual(new Set(['Namespace', 'ConfigMap', 'Secret', 'Service', 'Deployment', 'Job', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'NetworkPolicy', 'Ingress', 'ServiceMonitor']));
  });

  it('every ConfigMap and Secret variable is a setting of src/config.ts; Secrets hold placeholders only', () => {
    expect(unknownVariables(objs)).toEqual([]);
    for (const s of ofKind(objs, 'Secret')) {
      for (const [k, v] of Object.entries(s['stringData'] as Record<string, string>)) expect(v, `${s.metadata.name} ${k}`).toContain('REPLACE_ME');
      expect(s['data'], 'no base64 data: placeholders only').toBeUndefined();
    }
  });

  it('each API workload: its environment is a valid production configuration matching its ports, probes, drain and grace period', () => {
    expect(apis.length).toBe(overlay === 'monolith' ? 1 : MODULE_NAMES.length);
    const routes = Object.keys((JSON.parse(read('docs/openapi.json')) as { paths: object }).paths);
    for (const d of apis) {
      const pod = podOf(d);
      const c = pod.spec.containers[0]!;
      const config = loadConfig(environmentOf(objs, c)); // throws ConfigError naming any bad value
      expect(config.env).toBe('production');
      const port = (name: string) => c.ports.find((p) => p.name === name)?.containerPort;
      expect(port('http')).toBe(config.http.port);
      expect(port('metrics')).toBe(config.metrics.port);
      expect(c.readinessProbe.httpGet).toEqual({ path: '/health', port: 'http' });
      expect(c.livenessProbe.httpGet).toEqual({ path: '/health/live', port: 'http' });
      expect(routes).toEqual(expect.arrayContaining(['/health', '/health/live']));
      const preStopMs = c.lifecycle.preStop.sleep.seconds * 1000;
      expect(preStopMs).toBe(config.shutdownDrainMs);
      expect(config.shutdownDrainMs).toBe(5000);
      // SIGKILL only after preStop, the process's own drain and the longest request in flight.
      expect(pod.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(preStopMs + config.shutdownDrainMs + config.http.timeouts.requestMs);
      expect(c.resources).toEqual({ requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } });
      expect(c.image).toBe('ghcr.io/OWNER/task-api:VERSION');
      if (overlay === 'split') {
        const module = d.metadata.labels!['app.kubernetes.io/component']!;
        expect(c.args).toEqual(['serve', '--modules', module]);
        expect(config.tracing.serviceName).toBe(`task-api-${module}`);
        // Only auth signs; the others verify with auth's JWKS, straight from its Service.
        expect(config.jwt.privateKeyPem !== undefined).toBe(module === 'auth');
        if (module !== 'auth') expect(config.authService.jwksUrl).toBe('http://task-api-auth:3000/.well-known/jwks.json');
      } else {
        expect(c.args).toEqual(['serve']);
      }
    }
  });

  it('every pod runs as non-root with a read-only root, no privilege escalation and no capabilities', () => {
    for (const w of [...ofKind(objs, 'Deployment'), ...ofKind(objs, 'Job')]) {
      const pod = podOf(w);
      expect(pod.spec.securityContext.runAsNonRoot, w.metadata.name).toBe(true);
      for (const c of pod.spec.containers) {
        expect(c.securityContext, `${w.metadata.name}/${c.name}`).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
      }
    }
  });

  it('Services, PDBs and HPAs select what exists; the HPA metric is the Prometheus adapter rule', () => {
    const pods = ofKind(objs, 'Deployment').map((d) => ({ d, pod: podOf(d) }));
    const matching = (sel: Record<string, string>) => pods.filter(({ pod }) => Object.entries(sel).every(([k, v]) => pod.metadata.labels[k] === v));
    for (const s of ofKind(objs, 'Service')) {
      const spec = s['spec'] as { selector: Record<string, string>; ports: { targetPort: string }[] };
      const [target, ...more] = matching(spec.selector);
      expect(more, s.metadata.name).toEqual([]);
      const names = podOf(target!.d).spec.containers.flatMap((c) => c.ports.map((p) => p.name));
      for (const p of spec.ports) expect(names, s.metadata.name).toContain(p.targetPort);
    }
    for (const p of ofKind(objs, 'PodDisruptionBudget')) expect(matching(specOf<{ selector: { matchLabels: Record<string, string> } }>(p).selector.matchLabels)).toHaveLength(1);
    const rule = (parseYaml(read('deploy/k8s/prometheus-adapter/rules.yaml')) as { rules: { seriesQuery: string; name: { as: string } }[] }).rules[0]!;
    expect(rule.seriesQuery).toMatch(/^http_request_duration_seconds_count\{/);
    expect(read('src/observability/metrics.ts')).toContain("name: 'http_request_duration_seconds'");
    for (const h of ofKind(objs, 'HorizontalPodAutoscaler')) {
      const spec = specOf<{ scaleTargetRef: { name: string }; metrics: { resource?: { name: string }; pods?: { metric: { name: string } } }[] }>(h);
      expect(byName(objs, 'Deployment', spec.scaleTargetRef.name)).toBeDefined();
      const metrics = spec.metrics.map((m) => m.resource?.name ?? m.pods?.metric.name);
      expect(metrics).toEqual(['cpu', rule.name.as]);
    }
  });

  it('the gateway proxies to the API Services on their port; the Ingress reaches only the gateway', () => {
    const site = ofKind(objs, 'ConfigMap').find((c) => c.metadata.name.startsWith('task-api-gateway'))!['data'] as Record<string, string>;
    const conf = site[overlay === 'monolith' ? 'task-api.conf' : 'gateway.conf']!;
    const upstreams = [...conf.matchAll(/^\s*server ([\w.-]+):(\d+) /gm)].map((m) => [m[1], Number(m[2])]);
    expect(upstreams.length).toBe(apis.length);
    for (const [host, port] of upstreams) expect(specOf<{ ports: { port: number }[] }>(byName(objs, 'Service', host as string)).ports[0]!.port).toBe(port);
    type IngressSpec = { rules: { http: { paths: { backend: { service: { name: string } } }[] } }[] };
    const backends = ofKind(objs, 'Ingress').flatMap((i) => specOf<IngressSpec>(i).rules.flatMap((r) => r.http.paths.map((p) => p.backend.service.name)));
    expect(new Set(backends)).toEqual(new Set(['task-api-gateway']));
  });
});

/** What each workload's code opens (src/infrastructure.ts: Redis in every serve process for rate limits, idempotency, cache and tokens; src/server.ts: every module writes or consumes events, so all reach RabbitMQ; notifications sends webhooks and email). */
const USES: Record<string, string[]> = {
  'monolith/task-api': ['postgres', 'redis', 'rabbitmq', 'internet'],
  'split/task-api-auth': ['postgres', 'redis', 'rabbitmq'],
  'split/task-api-users': ['postgres', 'redis', 'rabbitmq', 'auth-jwks'],
  'split/task-api-tasks': ['postgres', 'redis', 'rabbitmq', 'auth-jwks'],
  'split/task-api-notifications': ['postgres', 'redis', 'rabbitmq', 'auth-jwks', 'internet'],
};
const PORTS: Record<string, string> = { postgres: '5432/TCP', redis: '6379/TCP', rabbitmq: '5671/TCP', 'auth-jwks': '3000/TCP', internet: '*' };

describe.each(OVERLAYS)('NetworkPolicies of the %s overlay', (overlay) => {
  const objs = rendered[overlay];
  const policies = ofKind(objs, 'NetworkPolicy');
  const workloads = [...ofKind(objs, 'Deployment'), ...ofKind(objs, 'Job')];
  const egressPorts = (labels: Record<string, string>) =>
    new Set(allowed(policies, labels, 'Egress')!.filter((a) => a.port !== '53/UDP' && a.port !== '53/TCP').map((a) => (a.peer.ipBlock?.cidr === '0.0.0.0/0' ? '*' : a.port)));

  it('deny by default: every pod is selected for ingress and egress, and may resolve names', () => {
    for (const w of workloads) {
      const labels = podOf(w).metadata.labels;
      expect(allowed(policies, labels, 'Ingress'), w.metadata.name).toBeDefined();
      expect(allowed(policies, labels, 'Egress')!.map((a) => a.port)).toEqual(expect.arrayContaining(['53/UDP', '53/TCP']));
    }
  });

  it('each workload reaches exactly the services its code uses; migrate Jobs only PostgreSQL; the gateway only the API pods', () => {
    for (const w of workloads) {
      const labels = podOf(w).metadata.labels;
      const role = labels['task-api.io/role'];
      const expected = role === 'migrate' ? ['postgres'] : role === 'gateway' ? [] : USES[`${overlay}/${w.metadata.name}`];
      expect(expected, w.metadata.name).toBeDefined();
      const ports = egressPorts(labels);
      if (role === 'gateway') ports.delete('3000/TCP');
      expect(ports, w.metadata.name).toEqual(new Set(expected!.map((u) => PORTS[u])));
    }
  });

  it('only the gateway admits traffic from outside (the ingress controller); the API pods only from the gateway, JWKS clients and Prometheus', () => {
    for (const w of ofKind(objs, 'Deployment')) {
      const labels = podOf(w).metadata.labels;
      const ingress = allowed(policies, labels, 'Ingress')!;
      const outside = ingress.filter((a) => a.peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'ingress-nginx');
      expect(outside.length > 0, w.metadata.name).toBe(labels['task-api.io/role'] === 'gateway');
      expect(ingress.filter((a) => a.peer.ipBlock !== undefined || (a.peer.podSelector === undefined && a.peer.namespaceSelector === undefined))).toEqual([]);
      if (labels['task-api.io/role'] !== 'api') continue;
      for (const a of ingress) {
        const fromGateway = peerIsPod(a.peer, { 'app.kubernetes.io/name': 'task-api', 'task-api.io/role': 'gateway' }) && a.port === '3000/TCP';
        const fromPrometheus = a.peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'monitoring' && a.port === '9464/TCP';
        const jwks = labels['app.kubernetes.io/component'] === 'auth' && a.peer.podSelector?.matchLabels?.['task-api.io/uses-auth-jwks'] === 'true';
        expect(fromGateway || fromPrometheus || jwks, `${w.metadata.name} admits ${JSON.stringify(a)}`).toBe(true);
      }
    }
  });
});

describe('the validators can fail', () => {
  const deployment = () => structuredClone(rendered.monolith.find((o) => o.kind === 'Deployment' && o.metadata.name === 'task-api')!);

  it('a wrong type, a missing required field and a removed apiVersion are schema errors', async () => {
    const wrongType = deployment();
    (podOf(wrongType).spec.containers[0]!.ports[0]! as { containerPort: unknown }).containerPort = 'http';
    expect((await schemaErrors(wrongType)).join()).toMatch(/containerPort must be integer/);
    const noSelector = deployment();
    delete (noSelector['spec'] as Record<string, unknown>)['selector'];
    expect((await schemaErrors(noSelector)).join()).toMatch(/must have required property '?selector/);
    const [hpa] = parseManifests('apiVersion: autoscaling/v2beta2\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\nspec: {maxReplicas: 2, scaleTargetRef: {kind: Deployment, name: x}}\n');
    expect((await schemaErrors(hpa!)).join()).toMatch(/not the one served/);
    const monitor = structuredClone(rendered.monolith.find((o) => o.kind === 'ServiceMonitor')!);
    specOf<{ endpoints: { interval: string }[] }>(monitor).endpoints[0]!.interval = 'every 15 seconds';
    expect((await schemaErrors(monitor)).join()).toMatch(/interval must match pattern/);
  });

  it('a misspelt field is an unknown-field error', () => {
    const typo = deployment();
    const c = podOf(typo).spec.containers[0]!;
    c.readinessProbes = c.readinessProbe;
    expect(unknownFieldErrors([typo]).join()).toMatch(/readinessProbes/);
  });

  it('a variable src/config.ts does not read is refused', () => {
    const [cm] = parseManifests('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: task-api-config}\ndata: {SHUTDOWN_DRAIN: "5000", PORT: "3000"}\n');
    expect(unknownVariables([cm!])).toEqual(['task-api-config: SHUTDOWN_DRAIN']);
  });
});
