/** Channels (named pointers to versions) and releases, the append-only record of every channel move. */
import { sql } from 'drizzle-orm';
import { bigint, check, foreignKey, index, integer, pgTable, text, unique, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt, id, instant, nameCheck, notBlank, ref } from './columns.ts';
import { gateDecisions } from './gates.ts';
import { lines } from './lines.ts';
import { versions } from './versions.ts';

/** The channels every line starts with; others may be created by moving them. */
export const DEFAULT_CHANNELS = ['candidate', 'canary', 'stable'] as const;

/** One row per (line, channel); `epoch` counts its moves and is the compare-and-swap token. */
export const channels = pgTable(
  'channels',
  {
    id: id(),
    lineId: ref()
      .notNull()
      .references(() => lines.id),
    name: text().notNull(),
    versionNumber: integer(),
    epoch: bigint({ mode: 'number' }).notNull().default(0),
    updatedAt: instant().notNull().defaultNow(),
  },
  (t) => [
    unique('channels_line_name_key').on(t.lineId, t.name),
    foreignKey({ name: 'channels_version_fk', columns: [t.lineId, t.versionNumber], foreignColumns: [versions.lineId, versions.number] }),
    nameCheck('channels_name_format', t.name),
    check('channels_epoch_non_negative', sql`${t.epoch} >= 0`),
    // A channel is empty until its first move; a move may clear it again (a rejected first candidate leaves canary).
    check('channels_empty_before_first_move', sql`${t.epoch} <> 0 or ${t.versionNumber} is null`),
  ],
);

/** One row per channel move, written in the same transaction as the move; never updated or deleted. */
export const releases = pgTable(
  'releases',
  {
    id: id(),
    lineId: ref()
      .notNull()
      .references(() => lines.id),
    channelId: ref()
      .notNull()
      .references(() => channels.id),
    fromNumber: integer(),
    /** Null when the move cleared the channel. */
    toNumber: integer(),
    epoch: bigint({ mode: 'number' }).notNull(),
    actor: text().notNull(),
    reason: text().notNull(),
    gateDecisionId: ref().references(() => gateDecisions.id),
    requestKey: text().notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    unique('releases_channel_epoch_key').on(t.channelId, t.epoch),
    uniqueIndex('releases_request_key_key').on(t.requestKey),
    index('releases_line_to_idx').on(t.lineId, t.toNumber),
    index('releases_line_from_idx').on(t.lineId, t.fromNumber),
    foreignKey({ name: 'releases_from_fk', columns: [t.lineId, t.fromNumber], foreignColumns: [versions.lineId, versions.number] }),
    foreignKey({ name: 'releases_to_fk', columns: [t.lineId, t.toNumber], foreignColumns: [versions.lineId, versions.number] }),
    check('releases_epoch_positive', sql`${t.epoch} >= 1`),
    notBlank('releases_actor_not_blank', t.actor),
    notBlank('releases_reason_not_blank', t.reason),
    notBlank('releases_request_key_not_blank', t.requestKey),
  ],
);
