// npm run loadtest -- [flags]: the scenario load test (see --help and README, Load testing).
// Exit 0: every threshold held; 1: a threshold crossed, or the run crashed; 2: bad arguments.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { totalSeconds } from './arrivals.js';
import { HELP, parseOptions, UsageError, type Options } from './options.js';
import { buildReport, formatSummary, metricSource, type LoadTestReport, type Target } from './report.js';
import { runLoad } from './runner.js';
import { STEPS } from './scenario.js';
import { ROOT, startLocalServer, type LocalServer } from './server.js';
import { Recorder } from './stats.js';
import { effectiveThresholds, evaluate } from './thresholds.js';

const log = (line: string) => console.error(`[loadtest] ${line}`);

function outPath(opts: Options): string {
  if (opts.out !== undefined) return path.resolve(opts.out);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return path.join(ROOT, 'bench', 'results', `loadtest-${stamp}.json`);
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(HELP);
    return 0;
  }
  let opts: Options;
  try {
    opts = parseOptions(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`loadtest: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const thresholds = effectiveThresholds(opts.thresholds, STEPS);

  // Ctrl-C ends the run as the hard limit would: VUs are abandoned, the report is still written.
  const interrupt = new AbortController();
  const onSigint = () => {
    if (!interrupt.signal.aborted) log('interrupted: finishing the report (the local instance is stopped too)');
    interrupt.abort();
  };
  process.on('SIGINT', onSigint);

  let server: LocalServer | undefined;
  let target: Target;
  if (opts.url === undefined) {
    log('starting a local instance (node dist/cli.js serve)…');
    server = await startLocalServer(opts.serverEnv, log);
    target = { url: server.url, local: true, stack: server.stack, serverSettings: server.settings };
    log(`local instance pid ${server.pid} at ${server.url} on ${server.stack.database} + ${server.stack.redis}`);
  } else {
    target = { url: opts.url, local: false };
  }

  let report: LoadTestReport;
  try {
    if (interrupt.signal.aborted) return 1;
    const startedAt = new Date();
    const startedPerf = performance.now();
    const recorder = new Recorder(STEPS, startedPerf, totalSeconds(opts.phases) + opts.graceSeconds);
    log(`running against ${target.url} for ${totalSeconds(opts.phases)} s of arrivals (+ up to ${opts.graceSeconds} s grace)`);
    const outcome = await runLoad(opts, target.url, recorder, startedPerf, {
      interrupt: interrupt.signal,
      ...(opts.quiet ? {} : { progress: log }),
    });
    const base = buildReport({
      startedAt,
      finishedAt: new Date(),
      target,
      options: {
        phases: opts.phases,
        maxVus: opts.maxVus,
        graceSeconds: opts.graceSeconds,
        thinkMs: opts.thinkMs,
        timeoutMs: opts.timeoutMs,
        tasksPerUser: opts.tasksPerUser,
        refreshRatio: opts.refreshRatio,
        smoke: opts.smoke,
      },
      outcome,
      recorder,
    });
    const results = evaluate(thresholds, metricSource(base));
    report = { ...base, thresholds: results, passed: results.every((t) => t.ok) };
  } finally {
    if (server) {
      log(`stopping the local instance (pid ${server.pid})`);
      await server.stop();
    }
    process.off('SIGINT', onSigint);
  }

  const file = outPath(opts);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  const shown = path.relative(process.cwd(), file);
  console.log(formatSummary(report, shown.startsWith('..') || shown === '' ? file : shown));
  return report.passed ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error('loadtest: crashed:', err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  },
);
