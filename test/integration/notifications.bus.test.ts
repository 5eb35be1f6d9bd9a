// End to end through the event side: a task written over HTTP reaches the notifications consumer
// through the outbox, the relay and the in-process bus, and becomes one in-app notification.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEvents, type EventsRuntime } from '../../src/events/runtime.js';
import { InProcessEventBus } from '../../src/events/bus.js';
import { EventRetries } from '../../src/events/retries.js';
import { as, createTestApp, register, type TestApp } from '../helpers/app.js';
import type { PageBody, TaskBody } from '../helpers/bodies.js';

let t: TestApp;
let events: EventsRuntime;
let bus: InProcessEventBus;

beforeAll(async () => {
  t = await createTestApp();
  bus = new InProcessEventBus({ retries: new EventRetries(t.database.db) });
  events = await startEvents({ config: t.config, database: t.database, log: pino({ level: 'silent' }), bus, consumers: t.app.modules.consumers(new Set(['notifications'])), relay: true });
});
afterAll(async () => {
  await events.stop();
  await t.close();
});

describe('notifications behind the event bus', () => {
  it('a task created and completed over HTTP becomes two notifications', async () => {
    const s = await register(t.app);
    const req = as(t.app, s.accessToken);
    const task = (await req({ method: 'POST', url: '/v1/tasks', payload: { title: 'Through the bus' } })).json<TaskBody>();
    await req({ method: 'PATCH', url: `/v1/tasks/${task.id}`, payload: { status: 'done' } });
    const deadline = Date.now() + 20_000;
    let list: PageBody<{ type: string; taskId: string; title: string }>;
    for (;;) {
      list = (await req({ method: 'GET', url: '/v1/notifications' })).json();
      if (list.data.length >= 2) break;
      if (Date.now() > deadline) throw new Error(`notifications did not arrive within 20 s: ${JSON.stringify(list)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(list.data.map((n) => n.type)).toEqual(['task.completed', 'task.created']);
    expect(list.data.every((n) => n.taskId === task.id && n.title.includes('Through the bus'))).toBe(true);
    expect(await t.database.raw.query('select consumer, event_id from event_retries')).toEqual([]);
  });
});
