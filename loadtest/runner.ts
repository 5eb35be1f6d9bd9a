// The executor: starts VUs at the arrival times (open model), caps them at --max-vus, and ends
// the run at the hard limit (arrivals + grace), abandoning what is still in flight.
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { arrivalTimes, totalSeconds } from './arrivals.js';
import { HttpClient, RunAborted } from './http.js';
import type { Options } from './options.js';
import { userStory, type Step, type VirtualUser } from './scenario.js';
import type { Recorder } from './stats.js';

export interface VuCounts {
  /** Arrivals the schedule produced before the run ended. */
  arrivals: number;
  started: number;
  completed: number;
  /** Arrivals that found --max-vus VUs running: never started. */
  dropped: number;
  /** VUs still running at the hard limit (or at Ctrl-C): their requests were aborted. */
  abandoned: number;
  /** VUs that saw at least one failed request. */
  failed: number;
  /** Stories that threw (a bug in the scenario, or an answer of an unexpected shape). */
  crashed: number;
  maxConcurrent: number;
  /** Successful registrations. */
  registrations: number;
}

export interface RunOutcome {
  vus: VuCounts;
  runId: string;
  elapsedSeconds: number;
  /** 'completed', 'hard-limit' (VUs abandoned after the grace period) or 'interrupted' (Ctrl-C). */
  ending: 'completed' | 'hard-limit' | 'interrupted';
  crashSamples: string[];
}

export interface RunHooks {
  /** Aborting it ends the run now, as the hard limit does (Ctrl-C). */
  interrupt: AbortSignal;
  progress?: (line: string) => void;
}

const isAbort = (err: unknown) => err instanceof RunAborted || (err instanceof Error && err.name === 'AbortError');

export async function runLoad(opts: Options, baseUrl: string, recorder: Recorder, startedAt: number, hooks: RunHooks): Promise<RunOutcome> {
  const runId = randomBytes(4).toString('hex');
  const hardLimitMs = (totalSeconds(opts.phases) + opts.graceSeconds) * 1000;
  const run = new AbortController();
  // Every request and every think time of every running VU listens to it.
  setMaxListeners(0, run.signal);
  let ending: RunOutcome['ending'] = 'completed';
  const hardTimer = setTimeout(() => {
    ending = 'hard-limit';
    run.abort();
  }, Math.max(0, startedAt + hardLimitMs - performance.now()));
  const onInterrupt = () => {
    ending = 'interrupted';
    run.abort();
  };
  hooks.interrupt.addEventListener('abort', onInterrupt, { once: true });

  const client = new HttpClient(baseUrl, recorder, opts.timeoutMs, run.signal);
  const vus: VuCounts = { arrivals: 0, started: 0, completed: 0, dropped: 0, abandoned: 0, failed: 0, crashed: 0, maxConcurrent: 0, registrations: 0 };
  const crashSamples: string[] = [];
  const active = new Set<Promise<void>>();

  const playOne = async (id: number): Promise<void> => {
    let failedRequests = 0;
    const vu: VirtualUser = {
      id,
      email: `lt-${runId}-${id}@loadtest.example.com`,
      async call<T>(step: Step, method: string, path: string, o = {}) {
        const answer = await client.request<T>(step, method, path, o);
        const ok = answer !== undefined && answer.status >= 200 && answer.status <= 299;
        if (!ok) failedRequests += 1;
        else if (step === 'register') vus.registrations += 1;
        return ok ? answer : undefined;
      },
      async think() {
        if (opts.thinkMs > 0) await sleep(opts.thinkMs * (0.5 + Math.random()), undefined, { signal: run.signal });
      },
      random: Math.random,
    };
    try {
      await userStory(vu, { tasksPerUser: opts.tasksPerUser, refreshRatio: opts.refreshRatio });
      vus.completed += 1;
    } catch (err) {
      if (isAbort(err) && run.signal.aborted) vus.abandoned += 1;
      else {
        vus.crashed += 1;
        const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        if (crashSamples.length < 5 && !crashSamples.includes(text)) crashSamples.push(text);
      }
    }
    if (failedRequests > 0) vus.failed += 1;
  };

  const progress = hooks.progress
    ? setInterval(() => {
        const t = Math.round((performance.now() - startedAt) / 1000);
        const o = recorder.overall;
        const p95 = o.latency.percentile(95);
        hooks.progress?.(
          `t=${t}s vus: ${active.size} running, ${vus.started} started, ${vus.dropped} dropped | ` +
            `requests ${o.count}, errors ${o.errors} (429: ${o.rateLimited}) | p95 ${p95 === undefined ? '-' : `${Math.round(p95)} ms`}`,
        );
      }, 5000)
    : undefined;
  progress?.unref();

  try {
    // Arrivals: one VU per scheduled time; late timers catch up at once (no arrival is lost).
    for (const at of arrivalTimes(opts.phases)) {
      const wait = startedAt + at * 1000 - performance.now();
      if (wait > 1) {
        try {
          await sleep(wait, undefined, { signal: run.signal });
        } catch {
          break; // hard limit or Ctrl-C: no more arrivals
        }
      }
      if (run.signal.aborted) break;
      vus.arrivals += 1;
      if (active.size >= opts.maxVus) {
        vus.dropped += 1;
        continue;
      }
      vus.started += 1;
      const p: Promise<void> = playOne(vus.started).finally(() => active.delete(p));
      active.add(p);
      vus.maxConcurrent = Math.max(vus.maxConcurrent, active.size);
    }
    // VUs still running finish, or are abandoned at the hard limit (every wait observes it).
    // The backstop covers a request that ignored its abort signal.
    let backstop: NodeJS.Timeout | undefined;
    const stuck = new Promise<void>((resolve) => {
      backstop = setTimeout(resolve, Math.max(0, startedAt + hardLimitMs + 5000 - performance.now()));
    });
    await Promise.race([Promise.allSettled([...active]), stuck]);
    clearTimeout(backstop);
    vus.abandoned += active.size;
  } finally {
    clearTimeout(hardTimer);
    if (progress) clearInterval(progress);
    hooks.interrupt.removeEventListener('abort', onInterrupt);
  }
  return { vus, runId, elapsedSeconds: (performance.now() - startedAt) / 1000, ending, crashSamples };
}
