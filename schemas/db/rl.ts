/** RL runs (migration 0007): what a version learned from feedback, with its reward, gold and KL curves. */
import { sql } from 'drizzle-orm';
import { check, doublePrecision, jsonb, pgTable, text } from 'drizzle-orm/pg-core';
import { createdAt, ref } from './columns.ts';
import { versions } from './versions.ts';
import type { RlCheckPoint } from '../contracts/gate.ts';

/** One row per version trained by an RL cycle. A fact, so append-only. */
export const rlRuns = pgTable(
  'rl_runs',
  {
    versionId: ref()
      .primaryKey()
      .references(() => versions.id),
    feedbackDigests: jsonb().$type<string[]>().notNull(),
    recipe: jsonb().$type<Record<string, unknown>>().notNull(),
    rewardStats: jsonb().$type<Record<string, unknown>>().notNull(),
    checks: jsonb().$type<RlCheckPoint[]>().notNull(),
    finalKl: doublePrecision().notNull(),
    stoppedBy: text().notNull(),
    backend: text(),
    createdAt: createdAt(),
  },
  (t) => [
    check('rl_runs_digests_array', sql`jsonb_typeof(${t.feedbackDigests}) = 'array'`),
    check('rl_runs_recipe_object', sql`jsonb_typeof(${t.recipe}) = 'object'`),
    check('rl_runs_checks_array', sql`jsonb_typeof(${t.checks}) = 'array'`),
    check('rl_runs_final_kl_finite', sql`${t.finalKl} >= 0 AND ${t.finalKl} < 'Infinity'::float8`),
  ],
);
