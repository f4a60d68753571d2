/** Model lines: a foundation line, or an application line built on one. */
import { sql } from 'drizzle-orm';
import { boolean, check, integer, jsonb, pgTable, text, uniqueIndex, type AnyPgColumn } from 'drizzle-orm/pg-core';
import { createdAt, id, instant, nameCheck, ref } from './columns.ts';

/** The kinds of model line. */
export const LINE_KINDS = ['foundation', 'application'] as const;
export type LineKind = (typeof LINE_KINDS)[number];

/** Whether an application line takes a new stable foundation version by itself, on request, or never. */
export const LINE_UPGRADE_POLICIES = ['auto', 'manual', 'off'] as const;
export type LineUpgradePolicy = (typeof LINE_UPGRADE_POLICIES)[number];

/** One row per model line; `nextVersion` is the per-line counter that hands out version numbers. */
export const lines = pgTable(
  'lines',
  {
    id: id(),
    name: text().notNull(),
    kind: text({ enum: LINE_KINDS }).notNull(),
    foundationLineId: ref().references((): AnyPgColumn => lines.id),
    modelConfig: jsonb().$type<Record<string, unknown>>().notNull(),
    defaultRecipe: jsonb().$type<Record<string, unknown>>().notNull(),
    gateRules: jsonb().$type<Record<string, unknown>>().notNull(),
    /** How a passing candidate travels candidate -> canary -> stable (windows, approvals). */
    promotion: jsonb().$type<Record<string, unknown>>().notNull().default({}),
    /** What one cycle may spend (schemas/io.ts LineLimits), only the limits set; the rest default from the recipe (0010_line_limits.sql). */
    limits: jsonb().$type<Record<string, unknown>>().notNull().default({}),
    /** Whether cycles wait for schedule ticks rather than starting on each drop. */
    scheduled: boolean().notNull().default(false),
    /** What a new stable version of the foundation line does to this application line (0005_upgrades.sql). */
    upgradePolicy: text({ enum: LINE_UPGRADE_POLICIES }).notNull().default('manual'),
    // Incremented with UPDATE ... RETURNING in the transaction that inserts the version: the row lock
    // serialises allocators, and a rolled-back insert rolls the counter back too, so there are no gaps.
    nextVersion: integer().notNull().default(1),
    createdAt: createdAt(),
    updatedAt: instant().notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('lines_name_key').on(t.name),
    nameCheck('lines_name_format', t.name),
    check('lines_kind_known', sql`${t.kind} in ('foundation', 'application')`),
    check('lines_application_has_foundation', sql`(${t.kind} = 'application') = (${t.foundationLineId} is not null)`),
    check('lines_next_version_positive', sql`${t.nextVersion} >= 1`),
    check('lines_upgrade_policy_known', sql`${t.upgradePolicy} in ('auto', 'manual', 'off')`),
  ],
);
