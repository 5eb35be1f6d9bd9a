// Opaque keyset cursors (src/shared/cursor.ts): what a list hands out it takes back, and anything
// else is a 400 naming `cursor` before a value can reach SQL.
import { describe, expect, it } from 'vitest';
import { decodeCursor, decodeIdCursor, encodeCursor, encodeIdCursor, pageOf, type CursorCheck } from '../../src/shared/cursor.js';
import { AppError } from '../../src/shared/errors.js';
import { isUuid } from '../../src/shared/ids.js';

const ID = '0192f7a0-0000-7000-8000-000000000001';
const anything: CursorCheck = () => true;
const digits: CursorCheck = (v) => /^\d+$/.test(v);

/** A cursor as a client could forge it: base64url of any JSON. */
const forge = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** The AppError a call throws (fails the test when it does not throw one). */
function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected the call to throw');
}

function expectCursorRefused(fn: () => unknown): AppError {
  const err = refusal(fn);
  expect(err.status).toBe(400);
  expect(err.code).toBe('validation-error');
  expect(err.errors).toEqual([{ in: 'query', field: 'cursor', message: expect.any(String) }]);
  expect(err.message).toMatch(/^cursor is invalid: /);
  return err;
}

describe('encodeCursor / decodeCursor', () => {
  it('round-trips the values of its tag, in order', () => {
    const values = ['2024-03-01T10:00:00.000Z', ID];
    const cursor = encodeCursor('-createdAt', values);
    expect(decodeCursor(cursor, '-createdAt', [anything, isUuid])).toEqual(values);
  });

  it('is opaque URL-safe text (no +, / or = to escape in a query string)', () => {
    // Characters whose base64 has + and /, and a length that standard base64 pads.
    const cursor = encodeCursor('t', ['>>>???', 'ÿþ', 'a']);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor, 't', [anything, anything, anything])).toEqual(['>>>???', 'ÿþ', 'a']);
  });

  it('refuses what is not base64 JSON', () => {
    for (const cursor of ['not a cursor', '!!!', Buffer.from('[1,').toString('base64url'), Buffer.from('{"a":1}').toString('base64url')]) {
      const err = expectCursorRefused(() => decodeCursor(cursor, 't', [anything]));
      expect(err.errors?.[0]?.message, cursor).toBe('not a cursor returned by this API');
    }
  });

  it('refuses a cursor with too few or too many values for the checks', () => {
    expectCursorRefused(() => decodeCursor(forge(['t']), 't', [anything]));
    expectCursorRefused(() => decodeCursor(forge(['t', 'a']), 't', [anything, anything]));
    expectCursorRefused(() => decodeCursor(forge(['t', 'a', 'b', 'c']), 't', [anything, anything]));
    expectCursorRefused(() => decodeCursor(forge([]), 't', []));
  });

  it('refuses values that are not strings, the tag included', () => {
    for (const forged of [['t', 1], ['t', null], ['t', ['a']], ['t', { v: 'a' }], ['t', true], [1, 'a'], [null, 'a']]) {
      expectCursorRefused(() => decodeCursor(forge(forged), 't', [anything]));
    }
  });

  it('refuses a cursor made for another tag, naming it', () => {
    const cursor = encodeCursor('createdAt', ['x']);
    const err = expectCursorRefused(() => decodeCursor(cursor, '-createdAt', [anything]));
    expect(err.errors?.[0]?.message).toContain('another sort order (createdAt)');
  });

  it('refuses a value that fails its check, whichever position it is in', () => {
    expect(decodeCursor(forge(['t', '12', ID]), 't', [digits, isUuid])).toEqual(['12', ID]);
    expectCursorRefused(() => decodeCursor(forge(['t', '12x', ID]), 't', [digits, isUuid]));
    expectCursorRefused(() => decodeCursor(forge(['t', '12', 'not-a-uuid']), 't', [digits, isUuid]));
    // A value made to look like SQL never passes a check.
    expectCursorRefused(() => decodeCursor(forge(['t', "1') or ('1'='1", ID]), 't', [digits, isUuid]));
  });
});

describe('encodeIdCursor / decodeIdCursor', () => {
  it('round-trips the id of the last row', () => {
    const cursor = encodeIdCursor('users', { id: ID });
    expect(decodeIdCursor(cursor, 'users')).toBe(ID);
  });

  it('refuses a value that is not a UUID, and a cursor of another list', () => {
    for (const id of ['42', '', `${ID}0`, ID.replaceAll('-', ''), `{${ID}}`, ID.toUpperCase(), 'zzzzzzzz-0000-7000-8000-000000000001']) {
      expectCursorRefused(() => decodeIdCursor(encodeCursor('users', [id]), 'users'));
    }
    expectCursorRefused(() => decodeIdCursor(encodeIdCursor('webhooks', { id: ID }), 'users'));
  });
});

describe('pageOf', () => {
  const rows = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
  const cursorOf = (last: { id: string }) => `after:${last.id}`;

  it('with limit + 1 rows: shows limit rows and a cursor made from the last one shown', () => {
    expect(pageOf(rows, 2, cursorOf)).toEqual({ data: [{ id: 'a' }, { id: 'b' }], nextCursor: 'after:b' });
  });

  it('with limit rows or fewer: no next page', () => {
    expect(pageOf(rows, 3, cursorOf)).toEqual({ data: rows, nextCursor: null });
    expect(pageOf(rows.slice(0, 1), 3, cursorOf)).toEqual({ data: [{ id: 'a' }], nextCursor: null });
    expect(pageOf([], 3, cursorOf)).toEqual({ data: [], nextCursor: null });
  });

  it('does not call cursorOf when there is no next page', () => {
    let calls = 0;
    pageOf(rows, 3, (last) => {
      calls++;
      return last.id;
    });
    expect(calls).toBe(0);
  });
});
