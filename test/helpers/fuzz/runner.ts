// Runs the fuzzer's plans against the app (app.inject, real users on PostgreSQL and Redis) and
// checks every answer: (a) never a 5xx, (b) a status and body docs/openapi.json promises, (c) what a
// write acknowledged is what every later read returns, field by field, twice (the second read
// comes from the response cache). The runner keeps the pools the plans pick ids from and the
// acknowledged state (the model) that reads are compared with.
import { randomUUID } from 'node:crypto';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { register, registerAdmin, type SessionBody, type TestApp, uniqueEmail } from '../app.js';
import type { TaskBody, UserBody } from '../bodies.js';
import type { Operation } from './openapi.js';
import { responseProblem } from './openapi.js';
import { FRESH_IDEMPOTENCY_KEY, type Body, type CursorRef, type IdRef, type ParamValue, type Plan } from './requests.js';
import { comparator, createDiffs, fieldDiffs, keeps, patchDiffs, type Json, type ListFilter } from './tasks-model.js';
import { CANONICAL_UUID, instantOf, spell } from './values.js';

export interface Account {
  session: SessionBody;
  email: string;
  password: string;
}

export interface Stats {
  cases: number;
  requests: number;
  serverErrors: number;
  mismatches: number;
  statuses: Map<number, number>;
}

/** A finding: the property fails with this message (fast-check adds the seed, path and counterexample). */
/** A request as the fuzzer sends it: always a URL string and, when there is one, a text body. */
export interface Request {
  method: InjectOptions['method'];
  url: string;
  headers?: Record<string, string>;
  payload?: string;
}

export class Finding extends Error {
  override name = 'Finding';
}

const PASSWORD = 'fuzz password 1';
const JSON_TYPE = { 'content-type': 'application/json' };
const GARBAGE_TOKEN = 'eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAiLCJyb2xlIjoiYWRtaW4ifQ.';

/** Percent-encodes the UTF-8 bytes of s (an unpaired surrogate goes as U+FFFD, as any client would send it). */
export const pct = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');

export class FuzzRunner {
  readonly stats: Stats = { cases: 0, requests: 0, serverErrors: 0, mismatches: 0, statuses: new Map() };
  /** Acknowledged tasks by id, with their owner's user id. */
  readonly tasks = new Map<string, { owner: string; ack: TaskBody }>();
  readonly goneTasks: string[] = [];
  readonly webhooks = new Map<string, { owner: string; ack: Json }>();
  readonly goneWebhooks: string[] = [];
  /** Accounts the admin operations may change or delete. */
  readonly victims: Account[] = [];
  readonly goneUsers: string[] = [];
  private disposable: Account | undefined;
  private readonly cursors = new Map<string, string>();

  private constructor(
    readonly t: TestApp,
    readonly user: Account,
    readonly other: Account,
    readonly admin: Account,
  ) {}

  static async start(t: TestApp): Promise<FuzzRunner> {
    const account = async (): Promise<Account> => {
      const email = uniqueEmail('fuzz');
      return { session: await register(t.app, email, PASSWORD), email, password: PASSWORD };
    };
    const adminSession = await registerAdmin(t);
    const admin = { session: adminSession, email: adminSession.user.email, password: 'admin password 1' };
    return new FuzzRunner(t, await account(), await account(), admin);
  }

  async newAccount(): Promise<Account> {
    const email = uniqueEmail('fuzz');
    const session = await register(this.t.app, email, PASSWORD);
    await this.t.deliverAccountEvents(); // the other modules hear of the account (user.created)
    return { session, email, password: PASSWORD };
  }

  // ---- requests

  async inject(opts: Request): Promise<LightMyRequestResponse> {
    const res = await this.t.app.inject(opts);
    // An account's change reaches the other modules by its event (the relay's work, here at once).
    if (opts.method !== 'GET' && /^\/v1\/(users|auth)\b/.test(opts.url)) await this.t.deliverAccountEvents();
    this.stats.requests++;
    this.stats.statuses.set(res.statusCode, (this.stats.statuses.get(res.statusCode) ?? 0) + 1);
    if (res.statusCode >= 500) {
      this.stats.serverErrors++;
      throw new Finding(`${opts.method} ${opts.url} answered ${res.statusCode}: ${res.body.slice(0, 500)}`);
    }
    return res;
  }

  /** A read that must succeed: 200 with a JSON body. */
  async read<T = Json>(token: string, url: string): Promise<T> {
    const res = await this.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
    if (res.statusCode !== 200) this.mismatch(`GET ${url} after the write answered ${res.statusCode}: ${res.body.slice(0, 300)}`);
    return res.json<T>();
  }

  mismatch(message: string): never {
    this.stats.mismatches++;
    throw new Finding(message);
  }

  /** Reads url twice (the second from the response cache) and compares each read with `want`. */
  async readBack(token: string, url: string, want: Json, what: string, fields?: string[]): Promise<void> {
    for (const attempt of ['first read', 'second read (cache)']) {
      const got = await this.read(token, url);
      const diffs = fieldDiffs(want, got, fields);
      if (diffs.length) this.mismatch(`${what}: GET ${url} ${attempt} differs from the acknowledgement:\n  ${diffs.join('\n  ')}`);
    }
  }

  private async disposableAccount(): Promise<Account> {
    this.disposable ??= await this.newAccount();
    return this.disposable;
  }

  private async victim(pick: number): Promise<Account> {
    if (this.victims.length < 3 || pick % 4 === 0) this.victims.push(await this.newAccount());
    return this.victims[pick % this.victims.length]!;
  }

  private async actorOf(plan: Plan): Promise<Account | undefined> {
    switch (plan.who) {
      case 'user':
        return this.user;
      case 'other':
        return this.other;
      case 'admin':
        return this.admin;
      case 'disposable':
        return this.disposableAccount();
      case 'none':
      case 'garbage':
        return undefined;
    }
  }

  private authorization(plan: Plan, actor: Account | undefined): string | undefined {
    if (plan.who === 'none') return undefined;
    const token = actor?.session.accessToken ?? GARBAGE_TOKEN;
    switch (plan.auth) {
      case 'Bearer':
        return `Bearer ${token}`;
      case 'bearer':
        return `bearer ${token}`;
      case 'BEARER':
        return `BEARER ${token}`;
      case 'double-space':
        return `Bearer  ${token}`;
      case 'trailing-space':
        return `Bearer ${token} `;
      case 'bare':
        return token;
      case 'basic':
        return `Basic ${Buffer.from('a:b').toString('base64')}`;
      case 'two-tokens':
        return `Bearer ${token}, Bearer ${token}`;
    }
  }

  /** The ids a path parameter of this operation picks from. */
  private async pool(op: Operation, param: string, ref: IdRef, actor: Account | undefined): Promise<string[]> {
    const me = actor?.session.user.id;
    if (ref.from === 'stranger') return [];
    if (op.path.startsWith('/v1/tasks/')) {
      if (ref.from === 'gone') return this.goneTasks;
      return [...this.tasks].filter(([, v]) => (ref.from === 'own') === (v.owner === me)).map(([id]) => id);
    }
    if (op.path.startsWith('/v1/webhooks/') && param === 'id') {
      if (ref.from === 'gone') return this.goneWebhooks;
      return [...this.webhooks].filter(([, v]) => (ref.from === 'own') === (v.owner === me)).map(([id]) => id);
    }
    if (op.path.startsWith('/v1/users/')) {
      if (ref.from === 'gone') return this.goneUsers;
      // Changing or deleting an account happens to victims only; reading may see anyone.
      if (op.method !== 'GET') return [(await this.victim(ref.pick)).session.user.id];
      return ref.from === 'own' ? [this.user.session.user.id, this.other.session.user.id, ...this.victims.map((v) => v.session.user.id)] : [this.admin.session.user.id];
    }
    if (param === 'userId') {
      if (ref.from === 'gone') return this.goneUsers;
      return ref.from === 'foreign' ? [this.user.session.user.id, this.other.session.user.id] : [this.admin.session.user.id];
    }
    return [];
  }

  private async idText(op: Operation, param: string, ref: IdRef, actor: Account | undefined): Promise<string> {
    const pool = await this.pool(op, param, ref, actor);
    const id = pool.length ? pool[ref.pick % pool.length]! : ref.stranger;
    return spell(id, ref.spelling);
  }

  private cursorText(op: Operation, ref: CursorRef): string {
    const issued = this.cursors.get(op.key);
    switch (ref.how) {
      case 'issued':
        if (issued) return issued;
        return Buffer.from(JSON.stringify(ref.value)).toString('base64url');
      case 'tampered': {
        const base = issued ?? Buffer.from(JSON.stringify(ref.value)).toString('base64url');
        const i = ref.flip % base.length;
        return `${base.slice(0, i)}${base[i] === 'A' ? 'B' : 'A'}${base.slice(i + 1)}`;
      }
      case 'forged':
        return Buffer.from(JSON.stringify(ref.value) ?? 'null').toString('base64url');
      case 'text':
        return typeof ref.value === 'string' ? ref.value : (JSON.stringify(ref.value) ?? '');
    }
  }

  private async paramText(op: Operation, name: string, v: ParamValue, actor: Account | undefined): Promise<string> {
    if (v.kind === 'id') return this.idText(op, name, v, actor);
    if (v.kind === 'cursor') return this.cursorText(op, v);
    return v.text;
  }

  /** The request a plan describes, and the JSON body the server will read (when it is JSON). */
  async render(op: Operation, plan: Plan): Promise<Rendered> {
    const actor = await this.actorOf(plan);
    let url = op.path;
    const pathIds: Record<string, string> = {};
    const ids: string[] = [];
    for (const [name, ref] of Object.entries(plan.path)) {
      const text = await this.idText(op, name, ref, actor);
      const raw = !ref.encode && /^[A-Za-z0-9\-._~:{}+%]+$/.test(text) && /^[^%]*(%[0-9A-Fa-f]{2}[^%]*)*$/.test(text);
      // What the router hands the route: a path parameter is percent-decoded.
      pathIds[name] = raw ? decodeURIComponent(text) : text;
      ids.push(pathIds[name]);
      url = url.replace(`{${name}}`, raw ? text : pct(text));
    }
    const query: [string, string][] = [];
    for (const [name, v] of plan.query) {
      const text = await this.paramText(op, name, v, actor);
      query.push([name, text]);
      if (v.kind === 'id') ids.push(text);
    }
    // A value that is itself percent-escapes goes as is: broken UTF-8 (%ED%A0%80) reaches the server.
    const qs = query.map(([k, v]) => `${pct(k)}=${/^(%[0-9A-Fa-f]{2})+$/.test(v) ? v : pct(v)}`).join('&');
    if (qs) url += `?${qs}`;
    const headers: Record<string, string> = { ...plan.headers };
    if (headers['idempotency-key'] === FRESH_IDEMPOTENCY_KEY) headers['idempotency-key'] = randomUUID();
    const authorization = this.authorization(plan, actor);
    if (authorization !== undefined) headers.authorization = authorization;
    const { payload, input } = bodyText(plan.body);
    if (payload !== undefined && plan.contentType !== undefined) headers['content-type'] = plan.contentType;
    return { opts: { method: op.method, url, headers, ...(payload !== undefined ? { payload } : {}) }, actor, input: input as Json, query, pathIds, ids };
  }

  // ---- one case

  /** Sends one plan and checks the answer and every read it makes possible. */
  async run(op: Operation, plan: Plan): Promise<void> {
    this.stats.cases++;
    const rendered = await this.render(op, plan);
    const { opts } = rendered;
    let res: LightMyRequestResponse;
    try {
      res = await this.inject(opts);
    } catch (err) {
      if (err instanceof Finding) throw new Finding(`${err.message}\n  request: ${describeRequest(opts)}`);
      throw err;
    }
    const problem = responseProblem(op, res);
    // Reads back what a write acknowledged, and keeps the model in step with the server, before
    // anything else can fail the case (a failing case is replayed while shrinking).
    if (!problem) {
      try {
        await this.followUp(op, res, rendered);
      } catch (err) {
        if (err instanceof Finding) throw new Finding(`${err.message}\n  after: ${describeRequest(opts)} -> ${res.statusCode} ${res.body.slice(0, 400)}`);
        throw err;
      }
    }
    if (problem) this.mismatch(`${op.key}: ${problem}\n  request: ${describeRequest(opts)}`);
    // One canonical spelling per id: any other is refused before it can name a resource (or a
    // cache entry, or whose sessions to end) in a spelling the rest of the system does not use.
    const other = rendered.ids.find((id) => !CANONICAL_UUID.test(id));
    if (other !== undefined && ((res.statusCode >= 200 && res.statusCode < 300) || [404, 409, 412].includes(res.statusCode))) {
      this.mismatch(`${op.key}: the id ${JSON.stringify(other)} is not in the canonical spelling, yet answered ${res.statusCode}\n  request: ${describeRequest(opts)}`);
    }
  }

  private async followUp(op: Operation, res: LightMyRequestResponse, { actor, input, query, pathIds }: Rendered): Promise<void> {
    const ok = res.statusCode >= 200 && res.statusCode < 300;
    if (!ok) return;
    if (op.key === 'POST /v1/auth/register') return this.afterRegister(res, input);
    if (!actor) return;
    const token = actor.session.accessToken;
    const me = actor.session.user.id;
    const body = res.body === '' ? undefined : res.json<Json>();
    const idOf = () => (pathIds.id ?? '').toLowerCase();
    switch (op.key) {
      case 'POST /v1/tasks': {
        const ack = body as unknown as TaskBody;
        // The model follows what the server acknowledged, also when a check below fails (a failing
        // case is replayed while shrinking, and later cases must compare with the real state).
        this.tasks.set(ack.id, { owner: me, ack });
        const diffs = createDiffs(input, ack);
        if (diffs.length) this.mismatch(`create acknowledged other than it was asked:\n  ${diffs.join('\n  ')}`);
        await this.readBack(token, `/v1/tasks/${ack.id}`, ack, 'created task');
        return;
      }
      case 'PATCH /v1/tasks/{id}': {
        const ack = body as unknown as TaskBody;
        const before = this.tasks.get(ack.id);
        this.tasks.set(ack.id, { owner: me, ack });
        if (before) {
          const diffs = patchDiffs(before.ack, input, ack);
          if (diffs.length) this.mismatch(`patch acknowledged other than it was asked:\n  ${diffs.join('\n  ')}`);
        }
        await this.readBack(token, `/v1/tasks/${ack.id}`, ack, 'patched task');
        return;
      }
      case 'DELETE /v1/tasks/{id}': {
        const id = idOf();
        this.tasks.delete(id);
        this.goneTasks.push(id);
        for (let i = 0; i < 2; i++) {
          const again = await this.inject({ method: 'GET', url: `/v1/tasks/${id}`, headers: { authorization: `Bearer ${token}` } });
          if (again.statusCode !== 404) this.mismatch(`deleted task ${id} reads as ${again.statusCode}`);
        }
        return;
      }
      case 'GET /v1/tasks/{id}': {
        const got = body as unknown as TaskBody;
        const known = this.tasks.get(got.id);
        if (known && known.owner === me) {
          const diffs = fieldDiffs(known.ack, got);
          if (diffs.length) this.mismatch(`GET ${op.path} (${idOf()}) differs from the last acknowledgement:\n  ${diffs.join('\n  ')}`);
        }
        return;
      }
      case 'GET /v1/tasks':
        return this.checkListPage(op, body as { data: TaskBody[]; nextCursor: string | null }, me, query);
      case 'GET /v1/admin/tasks': {
        const page = body as { data: (TaskBody & { owner: { id: string } })[]; nextCursor: string | null };
        if (page.nextCursor) this.cursors.set(op.key, page.nextCursor);
        for (const item of page.data) {
          const known = this.tasks.get(item.id);
          if (!known) continue;
          const { owner, ...task } = item;
          if (owner.id !== known.owner) this.mismatch(`admin list shows task ${item.id} owned by ${owner.id}, not ${known.owner}`);
          const diffs = fieldDiffs(known.ack, task);
          if (diffs.length) this.mismatch(`admin list differs from the acknowledgement of ${item.id}:\n  ${diffs.join('\n  ')}`);
        }
        const sorted = [...page.data].sort(comparator('-createdAt'));
        if (sorted.some((t, i) => t.id !== page.data[i]!.id)) this.mismatch('admin list is not in -createdAt order');
        return;
      }
      case 'POST /v1/webhooks': {
        const ack = body!;
        const want = { url: input.url, events: [...new Set(input.events as string[])], active: input.active ?? true, ...(input.secret !== undefined ? { secret: input.secret } : {}) };
        this.webhooks.set(String(ack.id), { owner: me, ack });
        const diffs = fieldDiffs(want, ack);
        if (diffs.length) this.mismatch(`webhook acknowledged other than it was asked:\n  ${diffs.join('\n  ')}`);
        await this.readBack(token, `/v1/webhooks/${String(ack.id)}`, ack, 'created webhook', Object.keys(ack).filter((k) => k !== 'secret'));
        return;
      }
      case 'PATCH /v1/webhooks/{id}': {
        const ack = body!;
        const want: Json = {};
        if (input.url !== undefined) want.url = input.url;
        if (input.events !== undefined) want.events = [...new Set(input.events as string[])];
        if (input.active !== undefined) want.active = input.active;
        this.webhooks.set(String(ack.id), { owner: me, ack });
        const diffs = fieldDiffs(want, ack);
        if (diffs.length) this.mismatch(`webhook patch acknowledged other than it was asked:\n  ${diffs.join('\n  ')}`);
        await this.readBack(token, `/v1/webhooks/${String(ack.id)}`, ack, 'patched webhook');
        return;
      }
      case 'DELETE /v1/webhooks/{id}': {
        const id = idOf();
        this.webhooks.delete(id);
        this.goneWebhooks.push(id);
        return;
      }
      case 'GET /v1/webhooks/{id}': {
        const known = this.webhooks.get(String(body!.id));
        if (known && known.owner === me) {
          const diffs = fieldDiffs(body!, known.ack, Object.keys(body!));
          if (diffs.length) this.mismatch(`GET ${op.path} (${idOf()}) differs from the last acknowledgement:\n  ${diffs.join('\n  ')}`);
        }
        return;
      }
      case 'PATCH /v1/users/me': {
        if (input.name !== undefined && body!.name !== input.name) this.mismatch(`name sent ${JSON.stringify(input.name)}, acknowledged ${JSON.stringify(body!.name)}`);
        if (input.password !== undefined) {
          actor.password = input.password as string;
          return; // every session ended: the next case registers a new disposable account
        }
        await this.readBack(token, '/v1/users/me', body!, 'profile');
        return;
      }
      case 'DELETE /v1/users/me': {
        this.goneUsers.push(me);
        if (actor === this.disposable) this.disposable = undefined;
        const again = await this.inject({ method: 'GET', url: '/v1/users/me', headers: { authorization: `Bearer ${token}` } });
        if (again.statusCode !== 401) this.mismatch(`a deleted account's token reads its profile: ${again.statusCode}`);
        return;
      }
      case 'PATCH /v1/users/{id}': {
        const ack = body as unknown as UserBody;
        for (const f of ['name', 'role'] as const) {
          if (input[f] !== undefined && ack[f] !== input[f]) this.mismatch(`${f} sent ${JSON.stringify(input[f])}, acknowledged ${JSON.stringify(ack[f])}`);
        }
        await this.readBack(token, `/v1/users/${ack.id}`, ack as unknown as Json, 'user (admin view)');
        const victim = this.victims.find((v) => v.session.user.id === ack.id);
        if (victim) await this.readBack(victim.session.accessToken, '/v1/users/me', ack as unknown as Json, "the user's own profile");
        return;
      }
      case 'DELETE /v1/users/{id}': {
        const at = this.victims.findIndex((v) => idOf() === v.session.user.id);
        if (at === -1) return;
        const [victim] = this.victims.splice(at, 1);
        this.goneUsers.push(victim!.session.user.id);
        const refresh = await this.inject({ method: 'POST', url: '/v1/auth/refresh', headers: JSON_TYPE, payload: JSON.stringify({ refreshToken: victim!.session.refreshToken }) });
        if (refresh.statusCode !== 401) this.mismatch(`a deleted account's refresh token answers ${refresh.statusCode}`);
        const me2 = await this.inject({ method: 'GET', url: '/v1/users/me', headers: { authorization: `Bearer ${victim!.session.accessToken}` } });
        if (me2.statusCode !== 401) this.mismatch(`a deleted account's access token reads its profile: ${me2.statusCode}`);
        return;
      }
      case 'PATCH /v1/users/me/notification-preferences': {
        const diffs = fieldDiffs(input, body!);
        if (diffs.length) this.mismatch(`preferences acknowledged other than they were asked:\n  ${diffs.join('\n  ')}`);
        await this.readBack(token, '/v1/users/me/notification-preferences', body!, 'preferences');
        return;
      }
      default:
        if (body && typeof body.nextCursor === 'string') this.cursors.set(op.key, body.nextCursor);
    }
  }

  /** Registration: what it acknowledged is the profile, and the credentials sent log in. */
  async afterRegister(res: LightMyRequestResponse, input: Json): Promise<void> {
    if (res.statusCode !== 201) return;
    const session = res.json<SessionBody>();
    await this.readBack(session.accessToken, '/v1/users/me', session.user, 'registered user');
    const login = await this.inject({ method: 'POST', url: '/v1/auth/login', headers: JSON_TYPE, payload: JSON.stringify({ email: input.email, password: input.password }) });
    if (login.statusCode !== 200) this.mismatch(`registered with ${JSON.stringify(input.email)}, but logging in with the same answers ${login.statusCode}: ${login.body}`);
  }

  private checkListPage(op: Operation, page: { data: TaskBody[]; nextCursor: string | null }, me: string, query: [string, string][]): void {
    if (page.nextCursor) this.cursors.set(op.key, page.nextCursor);
    for (const item of page.data) {
      const known = this.tasks.get(item.id);
      if (known && known.owner !== me) this.mismatch(`list shows task ${item.id} of another user`);
      if (!known) continue;
      const diffs = fieldDiffs(known.ack, item);
      if (diffs.length) this.mismatch(`list differs from the acknowledgement of ${item.id}:\n  ${diffs.join('\n  ')}`);
    }
    const single = (name: string) => {
      const vs = query.filter(([k]) => k === name).map(([, v]) => v);
      return vs.length === 1 ? vs[0] : undefined;
    };
    const limit = Number(single('limit') ?? 20);
    if (Number.isInteger(limit) && page.data.length > limit) this.mismatch(`page of ${page.data.length} tasks for limit ${limit}`);
    const sort = single('sort') ?? '-createdAt';
    const sorted = [...page.data].sort(comparator(sort));
    if (sorted.some((t, i) => t.id !== page.data[i]!.id)) this.mismatch(`page is not in ${sort} order: ${page.data.map((t) => t.id).join(', ')}`);
    const filter: ListFilter = {};
    for (const k of ['status', 'priority', 'tag'] as const) if (single(k) !== undefined) filter[k] = single(k);
    for (const k of ['dueBefore', 'dueAfter'] as const) {
      const v = single(k);
      if (v !== undefined && instantOf(v) !== undefined) filter[k] = v;
    }
    const wrong = page.data.filter((t) => !keeps(filter, t));
    if (wrong.length) this.mismatch(`list with ${JSON.stringify(filter)} shows ${wrong.map((t) => JSON.stringify(t)).join(', ')}`);
  }

  /** Tasks of `owner` in the model, as a list with this filter and sort should show them. */
  expectedList(owner: string, filter: ListFilter, sort: string): TaskBody[] {
    return [...this.tasks.values()].filter((v) => v.owner === owner && keeps(filter, v.ack)).map((v) => v.ack).sort(comparator(sort));
  }

  /** Walks every page of a list (twice: the second walk from the cache) and compares it with `want`. */
  async walk(token: string, path: string, params: [string, string][], want: Json[], what: string): Promise<void> {
    const limit = Number(params.find(([k]) => k === 'limit')?.[1] ?? 20);
    for (const attempt of ['first walk', 'second walk (cache)']) {
      const seen: Json[] = [];
      let cursor: string | null = null;
      for (let pages = 0; ; pages++) {
        const qs: string = [...params, ...(cursor ? [['cursor', cursor] as [string, string]] : [])].map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&');
        const page: { data: Json[]; nextCursor: string | null } = await this.read(token, `${path}?${qs}`);
        const from = seen.length;
        seen.push(...page.data);
        const expected = want.slice(from, from + limit);
        const diffs = page.data.flatMap((item, i) => (expected[i] === undefined ? [`extra ${String(item.id)}`] : expected[i].id !== item.id ? [`position ${from + i}: ${String(item.id)} where ${String(expected[i].id)} belongs`] : fieldDiffs(expected[i], item).map((d) => `${String(item.id)} ${d}`)));
        if (page.data.length < expected.length) diffs.push(`page ${pages} has ${page.data.length} tasks, ${expected.length} belong on it`);
        if (diffs.length) this.mismatch(`${what}, ${attempt}, page ${pages} (${path}?${qs}):\n  ${diffs.join('\n  ')}`);
        cursor = page.nextCursor;
        if (cursor === null) break;
        if (pages > 200) this.mismatch(`${what}: more than 200 pages`);
      }
      if (seen.length !== want.length) this.mismatch(`${what}, ${attempt}: ${seen.length} tasks over all pages, ${want.length} expected`);
    }
  }
}

interface Rendered {
  opts: Request;
  actor: Account | undefined;
  /** The body as the server parses it (undefined when it is not JSON). */
  input: Json;
  /** The query parameters sent, in order. */
  query: [string, string][];
  /** The path parameters as the route reads them (percent-decoded). */
  pathIds: Record<string, string>;
  /** Every id sent, path and query, as the route reads it. */
  ids: string[];
}

function bodyText(body: Body): { payload: string | undefined; input: unknown } {
  switch (body.kind) {
    case 'none':
      return { payload: undefined, input: undefined };
    case 'raw': {
      let input: unknown;
      try {
        input = JSON.parse(body.text.replace(/^\ufeff/, '')); // the server reads past a byte order mark
      } catch {
        input = undefined;
      }
      return { payload: body.text, input };
    }
    case 'json': {
      let value = body.value;
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        const copy: Json = { ...(value as Json) };
        for (const k of body.drop) delete copy[k];
        for (const [k, v] of body.extra) Object.defineProperty(copy, k, { value: v, enumerable: true, configurable: true, writable: true });
        value = copy;
      }
      const payload = JSON.stringify(value) ?? 'null';
      return { payload, input: JSON.parse(payload) };
    }
  }
}

const printable = (s: string) => JSON.stringify(s.length > 300 ? `${s.slice(0, 300)}...(${s.length} chars)` : s);

export function describeRequest(opts: Request): string {
  const headers = Object.entries(opts.headers ?? {})
    .filter(([k]) => k !== 'authorization')
    .map(([k, v]) => `${k}: ${printable(v)}`);
  const auth = opts.headers?.authorization;
  return `${opts.method} ${printable(opts.url)}${auth ? ` [auth: ${auth.split(' ')[0]}]` : ' [no auth]'}${headers.length ? ` {${headers.join(', ')}}` : ''}${opts.payload !== undefined ? ` body ${printable(opts.payload)}` : ''}`;
}

