// Column helpers every table definition shares.
import { timestamp } from 'drizzle-orm/pg-core';

/** timestamptz(3): millisecond precision, so that values round-trip exactly through JSON and cursors. */
export const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 3, mode: 'date' });
