// The task event contract as a consumer checks it (src/shared/events.ts parseTaskEvent): what the
// producer builds passes unchanged; anything a retry cannot fix is poison, with its reason.
import { describe, expect, it } from 'vitest';
import { taskEvent } from '../../src/modules/tasks/events.js';
import { EVENT_SCHEMA_VERSION, parseTaskEvent, TASK_EVENT_TYPES, type TaskEvent } from '../../src/shared/events.js';
import { isPoisonMessage, PoisonMessageError } from '../../src/shared/poison.js';
import { makeTask } from './support/tasks.js';

const USER = '0192f7a0-0000-7000-8000-0000000000f1';
const occurredAt = new Date('2024-03-01T10:00:05.000Z');

/** An event exactly as the tasks module writes it to the outbox, as a consumer receives it (JSON). */
function producedEvent(type: TaskEvent['type'] = 'task.updated'): Record<string, unknown> {
  const task = makeTask({
    title: 'Ship it',
    description: 'All of it',
    status: type === 'task.completed' ? 'done' : 'in_progress',
    priority: 'urgent',
    dueAt: new Date('2024-03-10T00:00:00.000Z'),
    tags: ['work', 'q1'],
    completedAt: type === 'task.completed' ? occurredAt : null,
    version: 3,
  });
  const changes = type === 'task.updated' || type === 'task.completed' ? ['status', 'priority'] : undefined;
  return JSON.parse(JSON.stringify(taskEvent(type, USER, task, occurredAt, changes))) as Record<string, unknown>;
}

/** An event as JSON that a test breaks on purpose: any field, any value. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the point is to write what the type forbids
type Loose = Record<string, any>;

/** A fresh produced event with one change applied. */
function mutated(change: (e: Loose) => void): Record<string, unknown> {
  const e = producedEvent();
  change(e);
  return e;
}

function poisonOf(message: unknown): PoisonMessageError {
  try {
    parseTaskEvent(message);
  } catch (err) {
    expect(err).toBeInstanceOf(PoisonMessageError);
    return err as PoisonMessageError;
  }
  throw new Error(`expected poison: ${JSON.stringify(message)}`);
}

const expectMalformed = (message: unknown, label?: string) => expect(poisonOf(message).reason, label).toBe('malformed');

describe('parseTaskEvent: what the producer builds', () => {
  it('passes for every event type and is returned unchanged', () => {
    for (const type of TASK_EVENT_TYPES) {
      const event = producedEvent(type);
      const copy = structuredClone(event);
      expect(parseTaskEvent(event), type).toBe(event);
      expect(event, type).toEqual(copy);
      expect(event.schemaVersion).toBe(EVENT_SCHEMA_VERSION);
    }
  });

  it('passes a task with no description, due date or tags', () => {
    const event = taskEvent('task.created', USER, makeTask(), occurredAt);
    expect(parseTaskEvent(event)).toBe(event);
    expect(event.data.task).toMatchObject({ description: null, dueAt: null, completedAt: null, tags: [] });
  });

  it('passes with trace context', () => {
    const event = mutated((e) => (e.traceContext = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'a=b' }));
    expect(parseTaskEvent(event)).toBe(event);
  });

  it('tolerates unknown extra properties at every level (additive changes keep version 1)', () => {
    const event = mutated((e) => {
      e.source = 'tasks';
      e.data.actor = { id: USER };
      e.data.task.estimate = 5;
    });
    expect(parseTaskEvent(event)).toBe(event);
    expect(event).toMatchObject({ source: 'tasks', data: { actor: { id: USER }, task: { estimate: 5 } } });
  });
});

describe('parseTaskEvent: malformed events are poison', () => {
  it('a missing required field', () => {
    for (const field of ['id', 'type', 'occurredAt', 'userId', 'taskId', 'data']) {
      expectMalformed(mutated((e) => delete e[field]), field);
    }
    for (const field of ['id', 'title', 'description', 'status', 'priority', 'dueAt', 'tags', 'createdAt', 'updatedAt', 'completedAt', 'version']) {
      expectMalformed(mutated((e) => delete e.data.task[field]), `task.${field}`);
    }
  });

  it('a mistyped field', () => {
    const cases: [string, (e: Loose) => void][] = [
      ['type unknown', (e) => (e.type = 'task.archived')],
      ['userId number', (e) => (e.userId = 42)],
      ['data not an object', (e) => (e.data = 'task')],
      ['title null', (e) => (e.data.task.title = null)],
      ['description number', (e) => (e.data.task.description = 5)],
      ['tags of numbers', (e) => (e.data.task.tags = [1, 2])],
      ['tags a string', (e) => (e.data.task.tags = 'work')],
      ['version a string', (e) => (e.data.task.version = '3')],
      ['version fractional', (e) => (e.data.task.version = 1.5)],
      ['changes not an array', (e) => (e.data.changes = 'status')],
      ['changes of numbers', (e) => (e.data.changes = [1])],
      ['occurredAt number', (e) => (e.occurredAt = Date.parse('2024-03-01T10:00:05.000Z'))],
      ['dueAt number', (e) => (e.data.task.dueAt = 0)],
      ['traceContext without traceparent', (e) => (e.traceContext = { tracestate: 'a=b' })],
    ];
    for (const [label, change] of cases) expectMalformed(mutated(change), label);
  });

  it('an id that is not a UUID, wherever it is', () => {
    for (const bad of ['', 'not-a-uuid', '0192f7a0000070008000000000000001', '0192f7a0-0000-7000-8000-00000000000g']) {
      expectMalformed(mutated((e) => (e.id = bad)), `id ${bad}`);
      expectMalformed(mutated((e) => (e.userId = bad)), `userId ${bad}`);
      expectMalformed(mutated((e) => (e.taskId = bad)), `taskId ${bad}`);
      expectMalformed(mutated((e) => (e.data.task.id = bad)), `task.id ${bad}`);
    }
  });

  it('an unknown status or priority', () => {
    for (const status of ['blocked', 'DONE', 'in-progress', '']) expectMalformed(mutated((e) => (e.data.task.status = status)), status);
    for (const priority of ['critical', 'Low', '']) expectMalformed(mutated((e) => (e.data.task.priority = priority)), priority);
  });

  it('an occurredAt that is not a date', () => {
    for (const v of ['', 'yesterday-ish', 'not a date']) {
      const err = poisonOf(mutated((e) => (e.occurredAt = v)));
      expect(err.reason, v).toBe('malformed');
      expect(err.message, v).toMatch(/occurredAt/);
    }
  });

  it('what is not an object: null, primitives, arrays', () => {
    for (const message of [null, undefined, 'task.created', 42, true, [], [producedEvent()]]) {
      const err = poisonOf(message);
      expect(err.reason, JSON.stringify(message)).toBe('malformed');
      expect(err.message).toBe('task event is not an object');
    }
  });

  it('names where the first problem is', () => {
    expect(poisonOf(mutated((e) => (e.data.task.status = 'blocked'))).message).toMatch(/^malformed task event: \/data\/task\/status /);
  });

  const notInstants = [
    'x',
    '1', // Date.parse reads 2001-01-01
    '2024-03-01', // a date, not an instant
    '2024-03-01T10:00:05', // no offset: local time of an unknown place
    '2024-03-01 10:00:05Z', // a space is RFC 3339's note, not its grammar
    '2024-02-30T00:00:00Z', // Date.parse rolls it over to March 1
    '2023-02-29T00:00:00.000Z', // not a leap year
    '2024-13-01T00:00:00.000Z',
    '2024-03-01T24:00:00.000Z',
    '2024-03-01T10:60:00.000Z',
    '2016-12-31T23:59:60Z', // a leap second, which Date cannot hold
    '2024-03-01T10:00:05.0001Z', // finer than the milliseconds stored
    '2024-03-01T10:00:05+01', // hour-only offset
    '2024-03-01T10:00:05+24:00',
    '0000-01-01T00:00:00.000Z',
    '+002024-03-01T10:00:05.000Z', // toISOString's expanded years are outside RFC 3339
    'Fri, 01 Mar 2024 10:00:05 GMT',
    ' 2024-03-01T10:00:05.000Z',
  ];

  it('data.task timestamps (createdAt, updatedAt, dueAt, completedAt) must be RFC 3339 instants', () => {
    for (const field of ['createdAt', 'updatedAt', 'dueAt', 'completedAt']) {
      for (const bad of notInstants) {
        const err = poisonOf(mutated((e) => (e.data.task[field] = bad)));
        expect(err.reason, `${field} ${bad}`).toBe('malformed');
        expect(err.message, `${field} ${bad}`).toContain(`/data/task/${field}`);
      }
    }
  });

  it('occurredAt must be an RFC 3339 instant: what Date.parse takes is not enough', () => {
    for (const bad of notInstants) {
      const err = poisonOf(mutated((e) => (e.occurredAt = bad)));
      expect(err.reason, bad).toBe('malformed');
      expect(err.message, bad).toContain('/occurredAt');
    }
  });

  it('RFC 3339 spellings other than toISOString() pass: offsets, fewer fraction digits, leap days', () => {
    for (const good of ['2024-03-01T10:00:05Z', '2024-03-01T11:00:05.5+01:00', '2024-03-01t10:00:05.12z', '2024-02-29T23:59:59.999-05:30', '9999-12-31T23:59:59.999Z', '0001-01-01T00:00:00Z']) {
      const event = mutated((e) => {
        e.occurredAt = good;
        e.data.task.createdAt = good;
        e.data.task.dueAt = good;
      });
      expect(parseTaskEvent(event), good).toBe(event);
    }
  });
});

describe('parseTaskEvent: an unknown schema version is poison of its own kind', () => {
  it('for any schemaVersion but 1, before the rest is looked at', () => {
    for (const v of [2, 0, '1', 1.5, null]) {
      const err = poisonOf(mutated((e) => (e.schemaVersion = v)));
      expect(err.reason, String(v)).toBe('unknown-schema-version');
      expect(err.message).toContain(JSON.stringify(v));
    }
    // a version-2 event may look quite different: still unknown-schema-version, not malformed
    expect(poisonOf({ schemaVersion: 2, kind: 'task.created' }).reason).toBe('unknown-schema-version');
  });

  it('a missing schemaVersion counts as unknown', () => {
    expect(poisonOf(mutated((e) => delete e.schemaVersion)).reason).toBe('unknown-schema-version');
  });
});

describe('isPoisonMessage', () => {
  it('recognises what parseTaskEvent throws, and duck-typed poison from another module copy', () => {
    expect(isPoisonMessage(poisonOf(null))).toBe(true);
    expect(isPoisonMessage(new PoisonMessageError('x', 'unknown-schema-version'))).toBe(true);
    expect(isPoisonMessage({ poison: true })).toBe(true);
    expect(isPoisonMessage(Object.assign(new Error('copy'), { poison: true }))).toBe(true);
  });

  it('is false for everything else', () => {
    const others: unknown[] = [new Error('boom'), { poison: 'true' }, { poison: 1 }, { poison: false }, {}, null, undefined, 'poison', true];
    others.forEach((v, i) => expect(isPoisonMessage(v), `case ${i}`).toBe(false));
  });
});
