// Checks of the Kubernetes manifests (deploy/k8s) without a cluster: the rendered objects against
// the Kubernetes OpenAPI schemas (kubernetes-models 5.1.0: the schemas of Kubernetes 1.36.0, with
// the APIs removed since 1.15 merged in) and the prometheus-operator CRDs (v0.91.0), both compiled
// to ajv validators by those packages; unknown fields by TypeScript's excess-property check
// against the same packages' types; and NetworkPolicies by a small evaluator of their rules.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const K8S_DIR = path.join(ROOT, 'deploy/k8s');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

/** Every apiVersion the manifests may use: GA and served by every Kubernetes since 1.30 (the preStop sleep). */
export const SERVED_API_VERSIONS: Record<string, string> = {
  Namespace: 'v1',
  ConfigMap: 'v1',
  Secret: 'v1',
  Service: 'v1',
  Deployment: 'apps/v1',
  Job: 'batch/v1',
  HorizontalPodAutoscaler: 'autoscaling/v2',
  PodDisruptionBudget: 'policy/v1',
  NetworkPolicy: 'networking.k8s.io/v1',
  Ingress: 'networking.k8s.io/v1',
  ServiceMonitor: 'monitoring.coreos.com/v1',
};

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join('; '));
    return doc.toJS() as K8sObject;
  });
}

export const loadRendered = (overlay: string): K8sObject[] =>
  parseManifests(readFileSync(path.join(K8S_DIR, 'rendered', `${overlay}.yaml`), 'utf8'));

/** The package module of an object's model: kubernetes-models/<group>/<version>/<Kind>. */
function modelModule(o: Pick<K8sObject, 'apiVersion' | 'kind'>): string {
  if (o.apiVersion === 'monitoring.coreos.com/v1') return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${o.kind}`;
  return `kubernetes-models/${o.apiVersion}/${o.kind}`;
}

/** Schema errors of one object (empty: valid); an unknown apiVersion/kind is an error too. */
export async function schemaErrors(o: K8sObject): Promise<string[]> {
  const where = `${o.kind}/${o.metadata?.name}`;
  if (SERVED_API_VERSIONS[o.kind] !== o.apiVersion) return [`${where}: apiVersion ${o.apiVersion} is not the one served for ${o.kind}`];
  let Model: new (data: unknown) => { validate(): void };
  try {
    const mod = (await import(modelModule(o))) as Record<string, new (data: unknown) => { validate(): void }>;
    Model = mod[o.kind]!;
  } catch (err) {
    return [`${where}: no schema (${(err as Error).message})`];
  }
  try {
    new Model(o).validate();
    return [];
  } catch (err) {
    return [`${where}: ${(err as Error).message}`];
  }
}

/**
 * Unknown fields: the schemas allow additional properties (as the API server does unless
 * asked for strict field validation), so each object is written out as a TypeScript literal
 * that must satisfy the package's interface, where a misspelt or misplaced field is an
 * excess-property error. Returns tsc's messages, one per problem.
 */
export function unknownFieldErrors(objects: K8sObject[]): string[] {
  const file = path.join(K8S_DIR, '__manifests_strict__.ts');
  const lines: string[] = [];
  objects.forEach((o, i) => {
    const iface = `I${o.kind}`;
    lines.push(`import type { ${iface} as T${i} } from '${modelModule(o)}';`);
    lines.push(`export const o${i} = ${JSON.stringify(o)} satisfies T${i};`);
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, ...rest) =>
    path.resolve(name) === file ? ts.createSourceFile(name, source, version, true) : getSourceFile(name, version, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => path.resolve(name) === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const sf = program.getSourceFile(file)!;
  return ts.getPreEmitDiagnostics(program, sf).map((d) => {
    const line = d.start === undefined ? 0 : sf.getLineAndCharacterOfPosition(d.start).line;
    const obj = objects[Math.floor(line / 2)];
    return `${obj ? `${obj.kind}/${obj.metadata.name}` : '?'}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

// --- NetworkPolicy evaluation -------------------------------------------------------------

interface LabelSelector {
  matchLabels?: Record<string, string>;
}
interface Peer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}
interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: { protocol?: string; port?: number | string }[];
}
interface PolicySpec {
  podSelector: LabelSelector;
  policyTypes: ('Ingress' | 'Egress')[];
  ingress?: Rule[];
  egress?: Rule[];
}

export const selects = (sel: LabelSelector | undefined, labels: Record<string, string>): boolean =>
  Object.entries(sel?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);

/** One allowed connection, as text: "pod{...}" / "ns=NAME" / "cidr=X" with ":port/proto". */
export interface Allowed {
  peer: Peer;
  port: string;
}

/**
 * What the policies of the namespace allow a pod with these labels, in one direction. Undefined:
 * no policy of that type selects the pod (everything is allowed).
 */
export function allowed(policies: K8sObject[], labels: Record<string, string>, direction: 'Ingress' | 'Egress'): Allowed[] | undefined {
  const specs = policies.map((p) => p['spec'] as PolicySpec).filter((s) => s.policyTypes.includes(direction) && selects(s.podSelector, labels));
  if (specs.length === 0) return undefined;
  const out: Allowed[] = [];
  for (const s of specs) {
    for (const rule of (direction === 'Ingress' ? s.ingress : s.egress) ?? []) {
      const peers = (direction === 'Ingress' ? rule.from : rule.to) ?? [{}];
      const ports = rule.ports?.map((p) => `${p.port ?? '*'}/${p.protocol ?? 'TCP'}`) ?? ['*'];
      for (const peer of peers) for (const port of ports) out.push({ peer, port });
    }
  }
  return out;
}

/** Whether an allowed peer (in this namespace unless namespaceSelector) admits a pod with these labels. */
export const peerIsPod = (peer: Peer, labels: Record<string, string>): boolean =>
  peer.ipBlock === undefined && peer.namespaceSelector === undefined && peer.podSelector !== undefined && selects(peer.podSelector, labels);
