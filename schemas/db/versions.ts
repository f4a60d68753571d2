/** Versions of a line, the files each one is made of, and the data drops it was trained on. */
import { sql } from 'drizzle-orm';
import { bigint, check, doublePrecision, foreignKey, index, integer, jsonb, pgTable, primaryKey, text, unique, type AnyPgColumn } from 'drizzle-orm/pg-core';
import { count, createdAt, digestCheck, id, nonNegative, notBlank, ref } from './columns.ts';
import { dataDrops } from './drops.ts';
import { lines } from './lines.ts';

/** One row per version; `(lineId, number)` is the public name `line@number`. */
export const versions = pgTable(
  'versions',
  {
    id: id(),
    lineId: ref()
      .notNull()
      .references(() => lines.id),
    number: integer().notNull(),
    // The parent is named by number within the same line; the composite key below makes a parent on
    // another line, or one that does not exist, impossible.
    parentNumber: integer(),
    foundationVersionId: ref().references((): AnyPgColumn => versions.id),
    artifactDigest: text().notNull(),
    manifestDigest: text().notNull(),
    manifestKeyId: text().notNull(),
    recipe: jsonb().$type<Record<string, unknown>>().notNull(),
    codeRevision: text().notNull(),
    seed: bigint({ mode: 'number' }).notNull(),
    backend: text().notNull(),
    computeTokens: count().notNull().default(0),
    computeFlops: doublePrecision().notNull().default(0),
    computeWallMs: count().notNull().default(0),
    computeSteps: integer().notNull().default(0),
    createdAt: createdAt(),
  },
  (t) => [
    unique('versions_line_number_key').on(t.lineId, t.number),
    foreignKey({ name: 'versions_parent_fk', columns: [t.lineId, t.parentNumber], foreignColumns: [t.lineId, t.number] }),
    index('versions_foundation_version_idx').on(t.foundationVersionId),
    check('versions_number_positive', sql`${t.number} >= 1`),
    check('versions_parent_earlier', sql`${t.parentNumber} is null or ${t.parentNumber} < ${t.number}`),
    digestCheck('versions_artifact_digest_format', t.artifactDigest),
    digestCheck('versions_manifest_digest_format', t.manifestDigest),
    digestCheck('versions_manifest_key_id_format', t.manifestKeyId),
    notBlank('versions_code_revision_not_blank', t.codeRevision),
    notBlank('versions_backend_not_blank', t.backend),
    nonNegative('versions_compute_tokens_non_negative', t.computeTokens),
    nonNegative('versions_compute_flops_non_negative', t.computeFlops),
    nonNegative('versions_compute_wall_ms_non_negative', t.computeWallMs),
    nonNegative('versions_compute_steps_non_negative', t.computeSteps),
  ],
);

/** Every file a version's signed manifest lists, mirrored here so it can be queried and cross-checked. */
export const versionFiles = pgTable(
  'version_files',
  {
    versionId: ref()
      .notNull()
      .references(() => versions.id),
    role: text().notNull(),
    digest: text().notNull(),
    size: count().notNull(),
  },
  (t) => [
    primaryKey({ name: 'version_files_pkey', columns: [t.versionId, t.role, t.digest] }),
    index('version_files_digest_idx').on(t.digest),
    digestCheck('version_files_digest_format', t.digest),
    check('version_files_role_format', sql`char_length(${t.role}) <= 63 and ${t.role} ~ '^[a-z][a-z0-9_.-]*$'`),
    nonNegative('version_files_size_non_negative', t.size),
  ],
);

/** The data drops a version was trained on. */
export const versionDrops = pgTable(
  'version_drops',
  {
    versionId: ref()
      .notNull()
      .references(() => versions.id),
    dropId: ref()
      .notNull()
      .references(() => dataDrops.id),
  },
  (t) => [primaryKey({ name: 'version_drops_pkey', columns: [t.versionId, t.dropId] }), index('version_drops_drop_idx').on(t.dropId)],
);
