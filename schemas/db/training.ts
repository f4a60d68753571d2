/** Training runs: one per adapt activity, keyed by its workflow/activity key so retries reuse it. */
import { sql } from 'drizzle-orm';
import { bigint, check, doublePrecision, foreignKey, index, integer, jsonb, pgTable, primaryKey, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { count, createdAt, digestCheck, id, instant, nonNegative, ref } from './columns.ts';
import { dataDrops } from './drops.ts';
import { lines } from './lines.ts';
import { versions } from './versions.ts';

/** Where a training run is in its life. */
export const TRAINING_STATUSES = ['running', 'completed', 'failed'] as const;
export type TrainingStatus = (typeof TRAINING_STATUSES)[number];

/** One row per training run; `versionId` is set in the transaction that creates the version it produced. */
export const trainingRuns = pgTable(
  'training_runs',
  {
    id: id(),
    lineId: ref()
      .notNull()
      .references(() => lines.id),
    key: text().notNull(),
    parentNumber: integer(),
    recipe: jsonb().$type<Record<string, unknown>>().notNull(),
    seed: bigint({ mode: 'number' }).notNull(),
    status: text({ enum: TRAINING_STATUSES }).notNull().default('running'),
    steps: integer().notNull().default(0),
    tokens: count().notNull().default(0),
    flops: doublePrecision().notNull().default(0),
    wallMs: count().notNull().default(0),
    backend: text(),
    finalLoss: doublePrecision(),
    artifactDigest: text(),
    /** The checkpoints the run wrote or resumed from (migration 0003), re-hashed by `perennial verify`. */
    checkpoints: jsonb()
      .$type<{ digest: string; step: number; resumed?: true }[]>()
      .notNull()
      .default(sql`'[]'::jsonb`),
    error: text(),
    // One version per run: this is what makes createVersion idempotent for a retried activity.
    versionId: ref().references(() => versions.id),
    startedAt: createdAt(),
    finishedAt: instant(),
  },
  (t) => [
    uniqueIndex('training_runs_key_key').on(t.key),
    uniqueIndex('training_runs_version_key').on(t.versionId),
    index('training_runs_line_idx').on(t.lineId),
    foreignKey({ name: 'training_runs_parent_fk', columns: [t.lineId, t.parentNumber], foreignColumns: [versions.lineId, versions.number] }),
    check('training_runs_status_known', sql`${t.status} in ('running', 'completed', 'failed')`),
    check('training_runs_finished_when_done', sql`(${t.status} = 'running') = (${t.finishedAt} is null)`),
    check('training_runs_key_not_blank', sql`length(btrim(${t.key})) > 0`),
    digestCheck('training_runs_artifact_digest_format', t.artifactDigest),
    check('training_runs_checkpoints_array', sql`jsonb_typeof(${t.checkpoints}) = 'array'`),
    nonNegative('training_runs_steps_non_negative', t.steps),
    nonNegative('training_runs_tokens_non_negative', t.tokens),
    nonNegative('training_runs_flops_non_negative', t.flops),
    nonNegative('training_runs_wall_ms_non_negative', t.wallMs),
  ],
);

/** The data drops a training run read. */
export const trainingRunDrops = pgTable(
  'training_run_drops',
  {
    runId: ref()
      .notNull()
      .references(() => trainingRuns.id),
    dropId: ref()
      .notNull()
      .references(() => dataDrops.id),
  },
  (t) => [primaryKey({ name: 'training_run_drops_pkey', columns: [t.runId, t.dropId] }), index('training_run_drops_drop_idx').on(t.dropId)],
);
