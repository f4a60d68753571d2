/** Column and constraint helpers shared by every table of the registry. */
import { sql, type SQL } from 'drizzle-orm';
import { bigint, check, timestamp, type AnyPgColumn } from 'drizzle-orm/pg-core';

/** A surrogate key; bigint because versions, releases and audit entries grow without bound. */
export const id = () => bigint({ mode: 'number' }).primaryKey().generatedAlwaysAsIdentity();

/** A foreign key column holding another table's `id`. */
export const ref = () => bigint({ mode: 'number' });

/** A counter (tokens, milliseconds) that fits in a JavaScript number. */
export const count = () => bigint({ mode: 'number' });

/** When the row was written; the database clock, so every writer agrees. */
export const createdAt = () => timestamp({ withTimezone: true, mode: 'date' }).notNull().defaultNow();

/** A timestamp column with time zone, read as a Date. */
export const instant = () => timestamp({ withTimezone: true, mode: 'date' });

/** The one format of content digests: sha256 as 64 lower-case hex characters, no `sha256:` prefix. */
export const DIGEST_PATTERN = '^[0-9a-f]{64}$';

/**
 * Check that a digest column holds exactly a sha256 hex digest (a path-traversal string can never be one).
 * Spelled as a length test plus an unbounded class: PostgreSQL's regex engine takes ~20 µs for `{64}`, which
 * made bulk inserts ten times slower.
 */
export const digestCheck = (name: string, column: AnyPgColumn): ReturnType<typeof check> =>
  check(name, sql`char_length(${column}) = 64 and ${column} ~ '^[0-9a-f]+$'`);

/** Names of lines, channels, suites and applications: lower-case, no `@` or `/`, so `line@channel` parses. */
export const NAME_PATTERN = '^[a-z][a-z0-9_-]{0,62}$';

/** Check that a name column is a well-formed registry name (NAME_PATTERN, without a bounded repeat; see digestCheck). */
export const nameCheck = (name: string, column: AnyPgColumn): ReturnType<typeof check> =>
  check(name, sql`char_length(${column}) <= 63 and ${column} ~ '^[a-z][a-z0-9_-]*$'`);

/** Check that a numeric column is not negative. */
export const nonNegative = (name: string, column: AnyPgColumn): ReturnType<typeof check> => check(name, sql`${column} >= 0`);

/** Check that a text column is not blank (actors and reasons must say something). */
export const notBlank = (name: string, column: AnyPgColumn): ReturnType<typeof check> => check(name, sql`length(btrim(${column})) > 0`);

export type { SQL };
