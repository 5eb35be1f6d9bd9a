// app.inject's promise form over real HTTP: the helpers written for app.inject (register, as,
// runScenario) walk a running deployment with it, e.g. NGINX in front of a cluster.
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { Injector } from './app.js';

function bodyOf(payload: InjectOptions['payload']): { body: string | Buffer | undefined; json: boolean } {
  if (payload === undefined) return { body: undefined, json: false };
  if (typeof payload === 'string' || Buffer.isBuffer(payload)) return { body: payload, json: false };
  return { body: JSON.stringify(payload), json: true };
}

/** An Injector whose requests go to baseUrl over HTTP; the response has the fields tests read. */
export function httpInjector(baseUrl: string): Injector {
  const inject = async (opts: InjectOptions): Promise<LightMyRequestResponse> => {
    if (typeof opts.url !== 'string') throw new Error('httpInjector: give url as a string');
    const url = new URL(opts.url, baseUrl);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.append(k, String(v));
    const { body, json } = bodyOf(opts.payload);
    const headers: Record<string, string> = json ? { 'content-type': 'application/json' } : {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k.toLowerCase()] = String(v);
    const res = await fetch(url, { method: opts.method ?? 'GET', headers, body, redirect: 'manual' });
    const text = await res.text();
    const responseHeaders: Record<string, string> = {};
    res.headers.forEach((value, name) => (responseHeaders[name] = value));
    const response = {
      statusCode: res.status,
      statusMessage: res.statusText,
      headers: responseHeaders,
      body: text,
      payload: text,
      rawPayload: Buffer.from(text),
      json: () => JSON.parse(text) as unknown,
      cookies: [],
      trailers: {},
    };
    // The fields above are the ones a test reads; raw (the Node request and response) has no equivalent.
    return response as unknown as LightMyRequestResponse;
  };
  // Only app.inject's promise form (one argument) is offered, which is all the helpers call.
  return { inject: inject as unknown as Injector['inject'] };
}
