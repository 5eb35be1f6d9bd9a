// Small HTTP servers on loopback that record what the API sends out: an OTLP/HTTP receiver for
// exported spans (JSON bodies, gzip or not) and a webhook receiver.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
}

/** A received span, with its scope's name and its resource's service.name. */
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** 1 internal, 2 server, 3 client, 4 producer, 5 consumer */
  kind: number;
  attributes?: { key: string; value: OtlpValue }[];
  scope: string;
  service: string | undefined;
}

interface OtlpBody {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value: OtlpValue }[] };
    scopeSpans?: { scope?: { name?: string }; spans?: Omit<OtlpSpan, 'scope' | 'service'>[] }[];
  }[];
}

export const SPAN_KIND = { server: 2, client: 3, producer: 4, consumer: 5 } as const;

/** A string attribute of a span. */
export const attr = (s: OtlpSpan, key: string) => s.attributes?.find((a) => a.key === key)?.value.stringValue;

/** An HTTP server on a free loopback port; its base URL. */
async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

const closing = (server: Server) => () => new Promise<void>((resolve) => server.close(() => resolve()));

export interface OtlpReceiver {
  /** For OTEL_EXPORTER_OTLP_ENDPOINT (spans arrive at <endpoint>/v1/traces). */
  endpoint: string;
  spans: OtlpSpan[];
  /** Every POST: method and path, content type. */
  posts: { path: string; contentType: string | undefined }[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: OtlpSpan[] = [];
  const posts: OtlpReceiver['posts'] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      posts.push({ path: `${req.method} ${req.url}`, contentType: req.headers['content-type'] });
      if (req.url === '/v1/traces' && body.length > 0 && req.headers['content-type']?.includes('json')) {
        const parsed = JSON.parse(body.toString('utf8')) as OtlpBody;
        for (const rs of parsed.resourceSpans ?? []) {
          const service = rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue;
          for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) spans.push({ ...s, scope: ss.scope?.name ?? '', service });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return { endpoint: await listen(server), spans, posts, close: closing(server) };
}

export interface WebhookReceiver {
  /** The receiver's base URL; any path is accepted. */
  url: string;
  received: { path: string; headers: IncomingHttpHeaders; body: string }[];
  close(): Promise<void>;
}

/** Answers every request 204 and records it. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: WebhookReceiver['received'] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  return { url: await listen(server), received, close: closing(server) };
}
