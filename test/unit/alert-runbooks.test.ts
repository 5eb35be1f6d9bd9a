// Every alert of deploy/monitoring/alerts.yml names its runbook (annotation runbook_url, a path
// relative to the repository root), the page exists in this repository, and the page names the
// alert it is linked from. Read as text: no YAML library among the dependencies, and promtool
// (test/system/monitoring.test.ts) already checks that the file is valid.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ALERTS = 'deploy/monitoring/alerts.yml';
const ALERT_TESTS = 'deploy/monitoring/alerts.test.yml';

interface Alert {
  name: string;
  runbook?: string;
}

/** Each `- alert:` rule with the runbook_url of its own block (up to the next rule). */
function alertsOf(text: string): Alert[] {
  const alerts: Alert[] = [];
  let current: Alert | undefined;
  for (const line of text.split('\n')) {
    const start = /^\s*- (alert|record): (\S+)\s*$/.exec(line);
    if (start) {
      current = start[1] === 'alert' ? { name: start[2]! } : undefined;
      if (current) alerts.push(current);
      continue;
    }
    const url = /^\s+runbook_url: (.*)$/.exec(line);
    if (url && current) {
      expect(current.runbook, `${current.name} has two runbook_url`).toBeUndefined();
      current.runbook = url[1]!.trim().replace(/^(["'])(.*)\1$/, '$2');
    }
  }
  return alerts;
}

describe('alert runbooks', () => {
  const alerts = alertsOf(readFileSync(`${ROOT}/${ALERTS}`, 'utf8'));

  it('reads every alert of the file', () => {
    expect(alerts.length).toBeGreaterThanOrEqual(20);
    expect(alerts.map((a) => a.name)).toContain('TaskApiHighErrorRatio');
  });

  it('every alert has a runbook_url to a page under docs/runbooks/ that exists and names the alert', () => {
    for (const a of alerts) {
      expect(a.runbook, `${a.name} has no runbook_url annotation`).toBeDefined();
      expect(a.runbook, a.name).toMatch(/^docs\/runbooks\/[a-z0-9-]+\.md$/);
      expect(existsSync(`${ROOT}/${a.runbook!}`), `${a.name}: ${a.runbook!} does not exist`).toBe(true);
      expect(readFileSync(`${ROOT}/${a.runbook!}`, 'utf8'), `${a.runbook!} does not mention ${a.name}`).toContain(a.name);
    }
  });

  it("alerts.test.yml expects each alert's own runbook_url", () => {
    const byName = new Map(alerts.map((a) => [a.name, a.runbook]));
    let alertname: string | undefined;
    let checked = 0;
    for (const line of readFileSync(`${ROOT}/${ALERT_TESTS}`, 'utf8').split('\n')) {
      const name = /^\s*alertname: (\S+)/.exec(line);
      if (name) alertname = name[1];
      const url = /^\s+runbook_url: (\S+)/.exec(line);
      if (url) {
        expect(url[1], `${ALERT_TESTS}: ${alertname}`).toBe(byName.get(alertname!));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(0);
  });

  it('a missing annotation is caught (the reader can fail)', () => {
    const broken = alertsOf(['  - alert: A', '    expr: up == 0', '    annotations:', '      summary: x', '  - alert: B', '    annotations:', '      runbook_url: docs/runbooks/b.md'].join('\n'));
    expect(broken).toEqual([{ name: 'A' }, { name: 'B', runbook: 'docs/runbooks/b.md' }]);
  });
});
