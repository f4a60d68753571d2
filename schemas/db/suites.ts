/** Evaluation suites (what a line has promised to keep being able to do) and evaluation results. */
import { sql } from 'drizzle-orm';
import { check, index, jsonb, pgTable, primaryKey, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt, digestCheck, id, instant, nameCheck, ref } from './columns.ts';
import { dataDrops } from './drops.ts';
import { lines } from './lines.ts';
import { versions } from './versions.ts';

/** One row per (line, suite name); its held-out data is fixed by digest so scores stay comparable. */
export const evaluationSuites = pgTable(
  'evaluation_suites',
  {
    id: id(),
    lineId: ref()
      .notNull()
      .references(() => lines.id),
    name: text().notNull(),
    kind: text().notNull(),
    dataDigest: text().notNull(),
    dropId: ref().references(() => dataDrops.id),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('evaluation_suites_line_name_key').on(t.lineId, t.name),
    // Suite names carry the drop's source name, so they are freer than line names: no control characters or slashes.
    check('evaluation_suites_name_format', sql`length(${t.name}) between 1 and 255 and ${t.name} !~ '[[:cntrl:]/\\\\]'`),
    nameCheck('evaluation_suites_kind_format', t.kind),
    digestCheck('evaluation_suites_data_digest_format', t.dataDigest),
  ],
);

/** One row per (version, suite): the metrics of the latest evaluation. */
export const evaluations = pgTable(
  'evaluations',
  {
    versionId: ref()
      .notNull()
      .references(() => versions.id),
    suiteId: ref()
      .notNull()
      .references(() => evaluationSuites.id),
    metrics: jsonb().$type<Record<string, unknown>>().notNull(),
    /** Digest of the exact records measured (a suite's probes can be superseded), so a stale result is recognisable. */
    dataDigest: text(),
    backend: text(),
    /** The weights and code revision measured (migration 0003): a stored result is reused only when all four match. */
    weightsDigest: text(),
    codeRevision: text(),
    evaluatedAt: instant().notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: 'evaluations_pkey', columns: [t.versionId, t.suiteId] }),
    index('evaluations_suite_idx').on(t.suiteId),
    check('evaluations_metrics_object', sql`jsonb_typeof(${t.metrics}) = 'object'`),
    digestCheck('evaluations_data_digest_format', t.dataDigest),
    digestCheck('evaluations_weights_digest_format', t.weightsDigest),
  ],
);
