// The self-contained HTML report: the table, a section of their own for some comparisons (their
// rows and tables), and inline SVG bar charts (throughput, p99, each ratio against its bar) of
// every row. No external scripts or stylesheets.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RowSummary } from './report.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

/** A part of the report under a heading of its own: its rows (as the main table), then its tables. */
export interface HtmlSection {
  title: string;
  rows: RowSummary[];
  tables?: { caption: string; head: string[]; body: string[][] }[];
}

interface Bar {
  label: string;
  value: number;
  /** A marker line (the bar from performance.md). */
  target?: number;
  colour?: string;
}

function chart(title: string, unit: string, bars: Bar[]): string {
  const rowH = 22;
  const labelW = 260;
  const plotW = 520;
  const h = bars.length * rowH + 40;
  const max = Math.max(1e-9, ...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)), ...bars.map((b) => b.target ?? 0)) * 1.1;
  const x = (v: number) => labelW + (Math.max(0, v) / max) * plotW;
  const items = bars
    .map((b, i) => {
      const y = 30 + i * rowH;
      const v = Number.isFinite(b.value) ? b.value : 0;
      const target =
        b.target === undefined
          ? ''
          : `<line x1="${x(b.target)}" x2="${x(b.target)}" y1="${y - 2}" y2="${y + rowH - 4}" stroke="#d00" stroke-width="2"><title>bar ${b.target}</title></line>`;
      return (
        `<text x="${labelW - 6}" y="${y + 13}" text-anchor="end" font-size="12">${esc(b.label)}</text>` +
        `<rect x="${labelW}" y="${y}" width="${x(v) - labelW}" height="${rowH - 6}" fill="${b.colour ?? '#4a7ebb'}"><title>${esc(b.label)}: ${num(b.value, 3)} ${unit}</title></rect>` +
        `<text x="${x(v) + 4}" y="${y + 13}" font-size="11">${num(b.value, unit === 'ratio' ? 3 : 1)}</text>` +
        target
      );
    })
    .join('');
  return `<h2>${esc(title)}</h2><svg xmlns="http://www.w3.org/2000/svg" width="${labelW + plotW + 80}" height="${h}" role="img" aria-label="${esc(title)}">${items}</svg>`;
}

const HEAD = '<tr><th>row</th><th>req/s</th><th>p50 ms</th><th>p99 ms</th><th>errors</th><th>max RSS MB</th><th>ceiling</th><th>ratio</th><th>bar</th><th>result</th></tr>';

function rowTable(rows: RowSummary[]): string {
  return `<table>${HEAD}
${rows
  .map(
    (r) =>
      `<tr><td>${esc(r.name)}</td><td>${r.kind === 'figure' ? '' : num(r.rps, 0)}</td><td>${r.kind === 'figure' ? '' : num(r.p50, 2)}</td><td>${r.kind === 'figure' ? '' : num(r.p99, 2)}</td><td>${r.kind === 'figure' ? '' : r.errors}</td><td>${num(r.maxRssMb)}</td><td>${esc(r.ceiling ?? '')}</td><td>${r.ratio === undefined ? '' : num(r.ratio, 3)}</td><td>${r.bar ? esc(`${r.bar.op} ${r.bar.value}`) : ''}</td><td class="${r.pass === undefined ? '' : r.pass ? 'PASS' : 'FAIL'}">${r.pass === undefined ? '' : r.pass ? 'PASS' : 'FAIL'}</td></tr>`,
  )
  .join('\n')}
</table>`;
}

function sectionHtml(s: HtmlSection): string {
  const tables = (s.tables ?? []).map(
    (t) =>
      `<h3>${esc(t.caption)}</h3><table><tr>${t.head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>\n${t.body.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n')}\n</table>`,
  );
  return [`<h2>${esc(s.title)}</h2>`, rowTable(s.rows), ...tables].join('\n');
}

export function writeHtml(outDir: string, stamp: string, rows: RowSummary[], meta: Record<string, unknown>, printed: string, sections: HtmlSection[] = []): string {
  const everyRow = [...rows, ...sections.flatMap((s) => s.rows)];
  const measured = everyRow.filter((r) => r.kind !== 'figure' && Number.isFinite(r.rps));
  const colour = (r: RowSummary) => (r.kind === 'ceiling' ? '#999' : r.kind === 'reference' ? '#bbb' : '#4a7ebb');
  const withRatio = everyRow.filter((r) => r.ratio !== undefined);
  const ratioBar = (r: RowSummary): Bar => {
    const b: Bar = { label: r.name, value: r.ratio ?? NaN, colour: r.pass === false ? '#c44' : r.pass ? '#3a3' : '#4a7ebb' };
    if (r.bar) b.target = r.bar.value;
    return b;
  };
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>task-api bench ${esc(stamp)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}pre{background:#f6f6f6;padding:1em;overflow:auto}td,th{padding:2px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.FAIL{color:#c00;font-weight:bold}.PASS{color:#080}</style>
</head><body>
<h1>task-api benchmark, ${esc(stamp)}</h1>
<p>Every figure is measured in the same run next to its ceiling; ratios are medians over the repetitions. Red lines mark the bars of performance.md.</p>
${rows.length > 0 ? rowTable(rows) : ''}
${sections.map(sectionHtml).join('\n')}
${chart('Throughput (req/s, median)', 'req/s', measured.map((r) => ({ label: r.name, value: r.rps, colour: colour(r) })))}
${chart('p99 latency (ms, median)', 'ms', measured.filter((r) => Number.isFinite(r.p99)).map((r) => ({ label: r.name, value: r.p99, colour: colour(r) })))}
${chart('Ratios and figures against their bars', 'ratio', withRatio.map(ratioBar))}
<h2>Printed table</h2><pre>${esc(printed)}</pre>
<h2>Run</h2><pre>${esc(JSON.stringify(meta, null, 2))}</pre>
</body></html>
`;
  const file = path.join(outDir, `bench-${stamp}.html`);
  writeFileSync(file, html);
  return file;
}
