/** Plasticity records (migration 0004): how teachable each version still is, measured once after training. */
import { sql } from 'drizzle-orm';
import { check, jsonb, pgTable, text } from 'drizzle-orm/pg-core';
import { createdAt, ref } from './columns.ts';
import { versions } from './versions.ts';

/** One row per version: the record of model/plasticity.ts (ratio against a fresh model, dormant units, norms, rank). A fact, so append-only. */
export const plasticityRecords = pgTable(
  'plasticity_records',
  {
    versionId: ref()
      .primaryKey()
      .references(() => versions.id),
    record: jsonb().$type<Record<string, unknown>>().notNull(),
    backend: text(),
    createdAt: createdAt(),
  },
  (t) => [check('plasticity_records_record_object', sql`jsonb_typeof(${t.record}) = 'object'`)],
);
