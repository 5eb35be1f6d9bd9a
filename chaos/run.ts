// npm run chaos -- [flags]: a Jepsen-style chaos run (see --help, README "Chaos" and
// docs/reliability.md). Progress on stderr; the last line of stdout is one JSON object with the
// checker's counts, the faults and the requests. Exit 0: no loss; 1: a loss, or the run failed;
// 2: bad arguments. The cluster it starts is stopped whatever happens (by pid, cluster stop).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { check, lossCounts, passed } from './checker.js';
import { ChaosCluster, startFlags } from './cluster.js';
import { register, runLoad, type ChaosUser, type LoadResult } from './client.js';
import { applicableFaults } from './faults.js';
import { FinalStateReader, primaryUrl } from './final-state.js';
import { clusterEnv, HELP, parseOptions, UsageError, type Options } from './options.js';
import { faultFigures, requestFigures } from './report.js';
import { runSchedule, type FaultEvent, type InForce } from './schedule.js';
import { watchCrashes } from './watch.js';

const say = (line: string) => console.error(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Load before the first fault, and after the last heal before the load stops. */
const WARMUP_MS = 5000;
const SETTLE_MS = 10_000;
/** Retries of a write in flight when the load stops. */
const RETRY_GRACE_MS = 30_000;
const OUTBOX_DRAIN_MS = 120_000;
const DELIVERY_WAIT_MS = 60_000;
const EXAMPLES = 5;

async function chaos(opts: Options, interrupt: AbortSignal): Promise<{ summary: Record<string, unknown>; ok: boolean }> {
  const dir = opts.dir ? path.resolve(opts.dir) : mkdtempSync(path.join(tmpdir(), 'task-api-chaos-'));
  const cluster = new ChaosCluster(dir, clusterEnv(process.env), say);
  const { flags, skipped: featuresSkipped } = startFlags(opts.topology);
  for (const s of featuresSkipped) say(`topology: without ${s}`);
  try {
    await cluster.start(flags);
    const state = cluster.state();
    say(`cluster up: ${state.publicUrl}; processes ${state.processes.map((p) => `${p.name}(${p.role})`).join(' ')}`);
    const { apply, skipped } = applicableFaults(state, undefined, opts.faults);
    say(`faults: ${apply.map((f) => f.name).join(', ')}; not applicable: ${skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}`);

    const runTag = `chaos-${randomBytes(4).toString('hex')}`;
    const users: ChaosUser[] = [];
    for (let i = 0; i < opts.users; i++) users.push(await register(state.publicUrl, `${runTag}-${i}@example.com`, opts.timeoutMs));

    const loadStart = Date.now();
    const durationMs = opts.durationSeconds * 1000;
    // The schedule may finish its rounds after the duration; the load outlasts it, bounded by this.
    const hardDeadline = loadStart + durationMs + 10 * 60_000;
    const stopLoad = new AbortController();
    const stopSchedule = new AbortController();
    interrupt.addEventListener('abort', () => {
      stopSchedule.abort();
      stopLoad.abort();
    });
    say(`load: ${opts.clients} clients, ${opts.users} users, ${opts.durationSeconds} s, at most ${opts.maxRequests} requests; markers ${runTag}-*`);
    const load: Promise<LoadResult> = runLoad({
      baseUrl: state.publicUrl,
      users,
      clients: opts.clients,
      deadline: hardDeadline,
      retryGraceMs: RETRY_GRACE_MS,
      maxRequests: opts.maxRequests,
      timeoutMs: opts.timeoutMs,
      runTag,
      thinkMs: opts.thinkMs,
      maxTries: 20,
      signal: stopLoad.signal,
    });
    const inForce: InForce = { busy: 0, targets: new Set() };
    const watcher = watchCrashes(cluster, inForce, say);
    await sleep(WARMUP_MS);
    const events: FaultEvent[] = await runSchedule({
      inForce,
      rows: apply,
      minRounds: opts.rounds,
      // A new round only when it likely ends within the duration (a round of the table takes about a minute).
      until: loadStart + durationMs - 60_000,
      gapMs: opts.short ? 2000 : 8000,
      context: { cluster, short: opts.short, requestTimeoutMs: opts.timeoutMs, say },
      signal: stopSchedule.signal,
    });
    const untilEnd = Math.max(SETTLE_MS, loadStart + durationMs - Date.now());
    say(`schedule done (${events.length} faults); load goes on ${Math.round(untilEnd / 1000)} s more`);
    await Promise.race([sleep(untilEnd), new Promise((r) => interrupt.addEventListener('abort', r))]);
    stopLoad.abort();
    const result = await load;
    await watcher.stop();
    const loadSeconds = (Date.now() - loadStart) / 1000;
    say(`load stopped after ${loadSeconds.toFixed(0)} s: ${result.requests.length} requests`);

    const restarted = await cluster.healAll();
    const reader = new FinalStateReader(primaryUrl(cluster.state()), users.map((u) => u.id));
    let checked;
    let outboxLeft;
    try {
      outboxLeft = await reader.waitOutboxDrained(OUTBOX_DRAIN_MS);
      say(outboxLeft === 0 ? 'outbox drained' : `outbox not drained after ${OUTBOX_DRAIN_MS / 1000} s: ${outboxLeft} events pending`);
      const final = await reader.waitDelivered(DELIVERY_WAIT_MS);
      checked = check(result, final);
    } finally {
      await reader.close();
    }
    const counts = lossCounts(checked);
    const faults = faultFigures(events, result.requests);
    const summary = {
      ...counts,
      faults,
      requests: requestFigures(result.requests),
      ok: passed(checked),
      writes: { creates: checked.creates, updates: checked.updates },
      unacknowledgedWithoutEvent: checked.unacknowledgedWithoutEvent.length,
      notFoundReads: result.notFoundReads,
      // When each hung read started, and what was in force then: where to look.
      hungReadsAt: result.requests
        .filter((r) => (r.op === 'get' || r.op === 'list') && r.outcome.kind === 'timeout')
        .slice(0, EXAMPLES)
        .map((r) => ({ op: r.op, start: new Date(r.start).toISOString(), faults: events.filter((e) => e.injectedAt <= r.end && (e.healedAt ?? Infinity) >= r.start).map((e) => e.name) })),
      outboxPendingAtCheck: outboxLeft,
      faultsNotApplicable: skipped,
      topology: { requested: opts.topology, startFlags: flags, without: featuresSkipped },
      // Processes that went down by themselves while the faults ran (and were started again), and
      // those down at the end (crashed late, or a heal that failed: see faults[].error).
      crashed: watcher.crashes.map((c) => ({ ...c, seenAt: new Date(c.seenAt).toISOString(), restartedAt: c.restartedAt ? new Date(c.restartedAt).toISOString() : null })),
      downAfterLoad: restarted,
      loadSeconds: Math.round(loadSeconds),
      examples: {
        acknowledgedMissing: checked.acknowledgedMissing.slice(0, EXAMPLES),
        eventsMissing: checked.eventsMissing.slice(0, EXAMPLES),
        phantoms: checked.phantoms.slice(0, EXAMPLES),
        duplicates: checked.duplicates.slice(0, EXAMPLES),
      },
    };
    return { summary, ok: passed(checked) };
  } finally {
    say(`stopping the cluster under ${dir}`);
    await cluster.stop();
    if (!opts.keep && !opts.dir) rmSync(dir, { recursive: true, force: true });
    else say(`kept ${dir}`);
  }
}

async function main(argv: string[]): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`chaos: ${err.message}`);
      return 2;
    }
    throw err;
  }
  if (opts.help) {
    console.log(HELP);
    return 0;
  }
  // Ctrl-C (or SIGTERM): the faults heal, the load stops, and the cluster is stopped all the same.
  const interrupt = new AbortController();
  const onSignal = (sig: string) => {
    say(`${sig}: ending the run (the cluster is stopped)`);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const { summary, ok } = await chaos(opts, interrupt.signal);
    if (opts.out) {
      await mkdir(path.dirname(path.resolve(opts.out)), { recursive: true });
      await writeFile(opts.out, `${JSON.stringify(summary, null, 2)}\n`);
    }
    const s = summary as ReturnType<typeof lossCounts> & { faults: { name: string; errorWindowSeconds: number; errorsSeen: number }[]; crashed: { name: string }[] };
    if (s.crashed.length > 0) say(`crashed during the run (not a fault): ${s.crashed.map((c) => c.name).join(', ')}`);
    say(`faults: ${s.faults.map((f) => `${f.name} ${f.errorWindowSeconds} s/${f.errorsSeen} errors`).join(', ')}`);
    say(`checker: acknowledgedMissing ${s.acknowledgedMissing}, eventsMissing ${s.eventsMissing}, phantoms ${s.phantoms}, duplicates ${s.duplicates}, hungReads ${s.hungReads}: ${ok ? 'no loss' : 'LOSS'}`);
    console.log(JSON.stringify(summary));
    return ok ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error('chaos: failed:', err instanceof Error ? (err.stack ?? err.message) : err);
    // The last line of stdout is still one JSON object: the run failed, nothing was checked.
    console.log(JSON.stringify({ ok: false, error: err instanceof Error ? err.message : String(err) }));
    process.exitCode = 1;
  },
);
