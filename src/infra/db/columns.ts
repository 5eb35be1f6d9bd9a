// Column helpers every table definition shares.
import type { ColumnBaseConfig, ColumnBuilderBaseConfig } from 'drizzle-orm';
import { PgTimestamp, PgTimestampBuilder, type AnyPgTable, type PgTimestampBuilderInitial } from 'drizzle-orm/pg-core';
import { readTimestamptz } from './timestamps.js';

/** Drizzle's timestamp column, reading the driver's text exactly instead of with new Date. */
class ExactTimestamp extends PgTimestamp<ColumnBaseConfig<'date', 'PgTimestamp'>> {
  override mapFromDriverValue(value: Date | string): Date {
    return typeof value === 'string' ? readTimestamptz(value) : value;
  }
}

class ExactTimestampBuilder extends PgTimestampBuilder<ColumnBuilderBaseConfig<'date', 'PgTimestamp'>> {
  /** Called by Drizzle when it builds the table (internal in its typings): the column above. */
  build(table: AnyPgTable<{ name: string }>): ExactTimestamp {
    return new ExactTimestamp(table, this.config);
  }
}

/**
 * timestamptz(3): millisecond precision, so that values round-trip exactly through JSON and
 * cursors; read with src/infra/db/timestamps.ts, exact for years 0001-0099 and any session time zone.
 */
export const ts = <TName extends string>(name: TName): PgTimestampBuilderInitial<TName> =>
  new ExactTimestampBuilder(name, true, 3) as unknown as PgTimestampBuilderInitial<TName>;
