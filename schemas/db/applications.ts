/** Applications: consumers bound to `line@channel`, following it or holding a pinned version. */
import { sql } from 'drizzle-orm';
import { check, foreignKey, index, integer, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt, id, instant, nameCheck, ref } from './columns.ts';
import { channels } from './channels.ts';
import { lines } from './lines.ts';
import { versions } from './versions.ts';

/** How an application takes upgrades. */
export const UPGRADE_POLICIES = ['follow', 'hold'] as const;
export type UpgradePolicy = (typeof UPGRADE_POLICIES)[number];

/** One row per application. */
export const applications = pgTable(
  'applications',
  {
    id: id(),
    name: text().notNull(),
    lineId: ref()
      .notNull()
      .references(() => lines.id),
    channel: text().notNull(),
    policy: text({ enum: UPGRADE_POLICIES }).notNull(),
    pinnedNumber: integer(),
    createdAt: createdAt(),
    updatedAt: instant().notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('applications_name_key').on(t.name),
    index('applications_line_idx').on(t.lineId),
    foreignKey({ name: 'applications_channel_fk', columns: [t.lineId, t.channel], foreignColumns: [channels.lineId, channels.name] }),
    foreignKey({ name: 'applications_pinned_fk', columns: [t.lineId, t.pinnedNumber], foreignColumns: [versions.lineId, versions.number] }),
    nameCheck('applications_name_format', t.name),
    check('applications_policy_known', sql`${t.policy} in ('follow', 'hold')`),
    // A held application is pinned to a version; a following one resolves through its channel.
    check('applications_pinned_iff_hold', sql`(${t.policy} = 'hold') = (${t.pinnedNumber} is not null)`),
  ],
);
