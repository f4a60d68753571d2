/** Gate decisions: the verdict on a candidate against the champion, per suite, with any human override. */
import { sql } from 'drizzle-orm';
import { check, foreignKey, index, integer, jsonb, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt, id, instant, notBlank, ref } from './columns.ts';
import { lines } from './lines.ts';
import { versions } from './versions.ts';

/** A gate's verdict. */
export const GATE_VERDICTS = ['pass', 'fail'] as const;
export type GateVerdict = (typeof GATE_VERDICTS)[number];

/** One row per gate evaluation, keyed by the workflow's decision key so a replayed activity records it once. */
export const gateDecisions = pgTable(
  'gate_decisions',
  {
    id: id(),
    lineId: ref()
      .notNull()
      .references(() => lines.id),
    key: text().notNull(),
    candidateNumber: integer().notNull(),
    championNumber: integer(),
    verdict: text({ enum: GATE_VERDICTS }).notNull(),
    suites: jsonb().$type<unknown[]>().notNull(),
    summary: text(),
    actor: text().notNull(),
    // Set once, by a human who promotes despite a failed verdict; the verdict itself is never changed.
    overrideActor: text(),
    overrideReason: text(),
    overriddenAt: instant(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('gate_decisions_key_key').on(t.key),
    index('gate_decisions_candidate_idx').on(t.lineId, t.candidateNumber),
    foreignKey({ name: 'gate_decisions_candidate_fk', columns: [t.lineId, t.candidateNumber], foreignColumns: [versions.lineId, versions.number] }),
    foreignKey({ name: 'gate_decisions_champion_fk', columns: [t.lineId, t.championNumber], foreignColumns: [versions.lineId, versions.number] }),
    check('gate_decisions_verdict_known', sql`${t.verdict} in ('pass', 'fail')`),
    check('gate_decisions_suites_array', sql`jsonb_typeof(${t.suites}) = 'array'`),
    // An override names who and why, or nothing at all.
    check(
      'gate_decisions_override_complete',
      sql`(${t.overrideActor} is null) = (${t.overrideReason} is null) and (${t.overrideActor} is null) = (${t.overriddenAt} is null)`,
    ),
    notBlank('gate_decisions_actor_not_blank', t.actor),
  ],
);
