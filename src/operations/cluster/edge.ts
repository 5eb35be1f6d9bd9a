// NGINX's view of the instances during a rolling restart. NGINX (open source) learns that an
// instance is gone only from requests that fail on it; after max_fails of them it leaves the
// instance out for fail_timeout (30 s), even once it is back, and logs "upstream server
// temporarily disabled". Restarting the instances one after another faster than that would leave
// none in rotation ("no live upstreams": a 502 for everything). A reload would make NGINX forget,
// but it also closes every idle client keep-alive connection, and a client that reuses one at
// that instant gets a socket error. So the roll reads NGINX's error log instead, and stops an
// instance only while another one is in rotation.
import { existsSync, readFileSync } from 'node:fs';
import { nginxLayout } from './nginx.js';
import { sleep } from './processes.js';
import { running } from './roles.js';
import type { ClusterState, ProcessRecord } from './state.js';

// NGINX writes its error log in UTC (nginxCommand sets TZ), to the second.
const DISABLED = /^(\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d) \[warn\].*upstream server temporarily disabled.*upstream: "http:\/\/([^/"]+)/;

/** When NGINX last took each upstream (host:port) out of rotation, in ms since the epoch. */
export function lastDisabled(errorLog: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of errorLog.split('\n')) {
    const m = DISABLED.exec(line);
    if (!m) continue;
    const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    const at = Date.UTC(y, mo - 1, d, h, mi, s);
    out.set(m[7]!, Math.max(out.get(m[7]!) ?? 0, at));
  }
  return out;
}

const addressOf = (rec: ProcessRecord) => new URL(rec.urls.url ?? '').host;

/** fail_timeout of the rendered site, in ms (NGINX's default, 10 s, when it says none). */
function failTimeoutMs(siteFile: string): number {
  const m = /fail_timeout=(\d+)s/.exec(existsSync(siteFile) ? readFileSync(siteFile, 'utf8') : '');
  return (m ? Number(m[1]) : 10) * 1000;
}

/**
 * Returns once an API instance other than `rec` runs and NGINX has not left it out for the last
 * fail_timeout (plus 2 s: the log's seconds are truncated), or after maxWaitMs; at once when
 * there is no NGINX or no other instance.
 */
export async function waitForAnotherInRotation(state: ClusterState, rec: ProcessRecord, say: (line: string) => void, maxWaitMs = 120_000): Promise<void> {
  const edge = state.processes.find((p) => p.role === 'nginx');
  // Behind the gateway, another instance of the same service.
  const others = state.processes.filter((p) => p.role === 'api' && p !== rec && p.service === rec.service && running(p));
  if (!edge?.site || !running(edge) || others.length === 0) return;
  const layout = nginxLayout(edge.site.dir);
  const leftOutFor = failTimeoutMs(layout.site) + 2000;
  const deadline = Date.now() + maxWaitMs;
  let told = false;
  for (;;) {
    const disabled = lastDisabled(existsSync(layout.errorLog) ? readFileSync(layout.errorLog, 'utf8') : '');
    const backAt = Math.min(...others.map((o) => (disabled.get(addressOf(o)) ?? 0) + leftOutFor));
    const now = Date.now();
    if (backAt <= now || now > deadline) return;
    if (!told) say(`waiting ${Math.ceil((backAt - now) / 1000)} s until NGINX has another instance than ${rec.name} in rotation`);
    told = true;
    await sleep(Math.min(backAt - now, 1000));
  }
}
