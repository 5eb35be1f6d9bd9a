// The user story every virtual user plays, start to end. Each request is named by its step; the
// summary, the JSON and `step:<name>:` thresholds use these names.
//
// A VU signs up, logs in, looks at her (empty) list, jots down a few tasks, filters them a couple
// of ways, opens one, ticks one off, deletes another, maybe comes back later with a refreshed
// token, and looks at her list once more. She pauses to think between steps. When a request
// fails she carries on with what she still can (no task created: nothing to open or delete).
import type { Answer, RequestOptions } from './http.js';

export const STEPS = ['register', 'login', 'list', 'create', 'filter', 'open', 'complete', 'delete', 'refresh', 'list_again'] as const;
export type Step = (typeof STEPS)[number];

export interface StorySettings {
  tasksPerUser: number;
  /** Share of VUs that come back later and refresh their access token. */
  refreshRatio: number;
}

/** What a story can do; the runner implements it (timing, recording, think time, abort). */
export interface VirtualUser {
  readonly id: number;
  readonly email: string;
  /** The answer when its status is 2xx; undefined when the request failed (it is recorded either way). */
  call<T>(step: Step, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, opts?: RequestOptions): Promise<Answer<T> | undefined>;
  /** Pause like a person: --think-ms on average, randomised. */
  think(): Promise<void>;
  random(): number;
}

interface Session {
  accessToken: string;
  refreshToken: string;
}
interface Task {
  id: string;
  title: string;
  tags: string[];
}

// Weighted choices: [value, weight].
const PRIORITIES = [['low', 2], ['medium', 4], ['high', 3], ['urgent', 1]] as const;
const TAGS = ['work', 'home', 'errands', 'health', 'finance'] as const;
const VERBS = ['Write', 'Review', 'Call', 'Plan', 'Fix', 'Email', 'Buy', 'Book', 'Prepare', 'Renew'] as const;
const THINGS = ['report', 'budget', 'dentist', 'groceries', 'slides', 'invoice', 'garden', 'tickets', 'release', 'passport'] as const;
type FilterKind = 'status' | 'priority' | 'tag' | 'search' | 'due-soon';
const FILTERS: readonly (readonly [FilterKind, number])[] = [['status', 3], ['priority', 2], ['tag', 2], ['search', 2], ['due-soon', 1]];

export async function userStory(vu: VirtualUser, settings: StorySettings): Promise<void> {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(vu.random() * items.length)]!;
  const weighted = <T>(items: readonly (readonly [T, number])[]): T => {
    let r = vu.random() * items.reduce((s, [, w]) => s + w, 0);
    for (const [value, w] of items) if ((r -= w) < 0) return value;
    return items[items.length - 1]![0];
  };
  const password = `load test password ${vu.id}`;

  // She signs up. Without an account there is nothing else to do.
  const signup = await vu.call<Session>('register', 'POST', '/v1/auth/register', {
    body: { email: vu.email, password, name: `Load Tester ${vu.id}` },
  });
  if (!signup?.body) return;
  let session: Session = signup.body;
  await vu.think();

  // She logs in, as she would on her phone; if that fails she still has the session from sign-up.
  const login = await vu.call<Session>('login', 'POST', '/v1/auth/login', { body: { email: vu.email, password } });
  if (login?.body) session = login.body;
  await vu.think();

  // She looks at her list: empty at first.
  await vu.call('list', 'GET', '/v1/tasks', { token: session.accessToken });
  await vu.think();

  // She jots down a few tasks.
  const tasks: Task[] = [];
  for (let i = 0; i < settings.tasksPerUser; i++) {
    const due = vu.random() < 0.7 ? new Date(Date.now() + Math.floor(vu.random() * 30 * 86400_000)).toISOString() : null;
    const created = await vu.call<Task>('create', 'POST', '/v1/tasks', {
      token: session.accessToken,
      body: {
        title: `${pick(VERBS)} the ${pick(THINGS)}`,
        ...(vu.random() < 0.5 ? { description: 'Written by the load test: a line or two of detail.' } : {}),
        priority: weighted(PRIORITIES),
        dueAt: due,
        tags: [...new Set([pick(TAGS), pick(TAGS)])],
      },
    });
    if (created?.body) tasks.push(created.body);
    await vu.think();
  }

  // She narrows the list down twice: by status, priority, tag, a word, or what is due soon.
  for (let i = 0; i < 2; i++) {
    const kind = weighted(FILTERS);
    const some = tasks.length > 0 ? pick(tasks) : undefined;
    const query: Record<string, string> =
      kind === 'status' ? { status: 'todo' }
      : kind === 'priority' ? { priority: 'high,urgent' }
      : kind === 'tag' ? { tag: some?.tags[0] ?? pick(TAGS) }
      : kind === 'search' ? { q: some?.title.split(' ').pop() ?? pick(THINGS) }
      : { dueBefore: new Date(Date.now() + 7 * 86400_000).toISOString(), sort: 'dueAt' };
    await vu.call('filter', 'GET', '/v1/tasks', { token: session.accessToken, query });
    await vu.think();
  }
  if (tasks.length === 0) return; // nothing was created: nothing to open, complete or delete

  // She opens one task, and ticks it off (If-Match: only if nobody changed it meanwhile).
  const chosen = pick(tasks);
  const opened = await vu.call<Task>('open', 'GET', `/v1/tasks/${chosen.id}`, { token: session.accessToken });
  await vu.think();
  const etag = opened?.headers.get('etag');
  await vu.call('complete', 'PATCH', `/v1/tasks/${chosen.id}`, {
    token: session.accessToken,
    body: { status: 'done' },
    ...(etag ? { headers: { 'if-match': etag } } : {}),
  });
  await vu.think();

  // She deletes another one (the same one when she made only one).
  const other = tasks.find((t) => t.id !== chosen.id) ?? chosen;
  await vu.call('delete', 'DELETE', `/v1/tasks/${other.id}`, { token: session.accessToken });
  await vu.think();

  // Some come back later: the app refreshes the access token first.
  if (vu.random() < settings.refreshRatio) {
    const refreshed = await vu.call<Session>('refresh', 'POST', '/v1/auth/refresh', { body: { refreshToken: session.refreshToken } });
    if (refreshed?.body) session = refreshed.body;
    await vu.think();
  }

  // A last look at the list, most urgent first.
  await vu.call('list_again', 'GET', '/v1/tasks', { token: session.accessToken, query: { sort: '-priority' } });
}
