/** Recipe trials (migration 0006): every trial segment of a cycle's recipe search (issue 15). */
import { sql } from 'drizzle-orm';
import { bigint, boolean, check, doublePrecision, index, integer, jsonb, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt, id, ref } from './columns.ts';
import { lines } from './lines.ts';

export const TRIAL_STATUSES = ['chosen', 'passed', 'kept', 'pruned', 'failed', 'rejected'] as const;

/** One row per (cycle, trial, rung); the version is reached through `cycleKey` = the training run's key. Append-only. */
export const recipeTrials = pgTable(
  'recipe_trials',
  {
    id: id(),
    lineId: ref()
      .notNull()
      .references(() => lines.id),
    cycleKey: text().notNull(),
    cycleId: text().notNull(),
    dropDigest: text(),
    trial: text().notNull(),
    rung: integer().notNull(),
    bracket: integer().notNull(),
    source: text().notNull(),
    recipe: jsonb().$type<Record<string, unknown>>().notNull(),
    fromStep: integer().notNull(),
    toStep: integer().notNull(),
    flops: doublePrecision().notNull(),
    wallMs: bigint({ mode: 'number' }).notNull(),
    metrics: jsonb().$type<Record<string, unknown>>().notNull(),
    margin: doublePrecision(),
    pass: boolean().notNull(),
    status: text({ enum: TRIAL_STATUSES }).notNull(),
    summary: text().notNull(),
    features: jsonb().$type<Record<string, unknown>>().notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('recipe_trials_segment').on(t.cycleKey, t.trial, t.rung),
    index('recipe_trials_line_status').on(t.lineId, t.status),
    check('recipe_trials_status_known', sql`${t.status} in ('chosen', 'passed', 'kept', 'pruned', 'failed', 'rejected')`),
    check('recipe_trials_steps', sql`${t.fromStep} >= 0 and ${t.toStep} >= ${t.fromStep}`),
    check('recipe_trials_flops_nonnegative', sql`${t.flops} >= 0`),
  ],
);
