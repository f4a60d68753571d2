/** Data drops: content-addressed batches of training records received for a line. */
import { sql } from 'drizzle-orm';
import { bigint, check, integer, pgSequence, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt, digestCheck, id, nonNegative, ref } from './columns.ts';
import { lines } from './lines.ts';

/**
 * What became of a drop; bad drops are kept (quarantined or rejected), never silently lost. `failed`: its
 * cycle ended without a judgment (training diverged, a step failed); it feeds neither replay nor the gate, and
 * it may be sent again.
 */
export const DROP_STATUSES = ['accepted', 'quarantined', 'rejected', 'failed'] as const;
export type DropStatus = (typeof DROP_STATUSES)[number];

/** Numbers drops in the order they are accepted (again, when a failed drop is sent again). */
export const dataDropsAcceptedSeq = pgSequence('data_drops_accepted_seq');

/** One row per (line, drop digest). */
export const dataDrops = pgTable(
  'data_drops',
  {
    id: id(),
    lineId: ref()
      .notNull()
      .references(() => lines.id),
    digest: text().notNull(),
    source: text().notNull(),
    receivedAt: createdAt(),
    status: text({ enum: DROP_STATUSES }).notNull(),
    records: integer().notNull(),
    trainRecords: integer().notNull(),
    heldOutRecords: integer().notNull(),
    rejectedRecords: integer().notNull().default(0),
    probeRecords: integer().notNull().default(0),
    /** The ingest activity's key, so a retry of the same ingest recognises its own record. */
    ingestKey: text(),
    reason: text(),
    storedPath: text().notNull(),
    /** When it was (last) accepted, from dataDropsAcceptedSeq; null for a drop never accepted. */
    acceptedSeq: bigint({ mode: 'number' }),
  },
  (t) => [
    uniqueIndex('data_drops_line_digest_key').on(t.lineId, t.digest),
    uniqueIndex('data_drops_accepted_seq_key').on(t.acceptedSeq),
    digestCheck('data_drops_digest_format', t.digest),
    check('data_drops_status_known', sql`${t.status} in ('accepted', 'quarantined', 'rejected', 'failed')`),
    // A drop that was not accepted must say why: an operator reads this years later.
    check('data_drops_reason_when_not_accepted', sql`${t.status} = 'accepted' or ${t.reason} is not null`),
    nonNegative('data_drops_records_non_negative', t.records),
    nonNegative('data_drops_train_non_negative', t.trainRecords),
    nonNegative('data_drops_held_out_non_negative', t.heldOutRecords),
    nonNegative('data_drops_rejected_non_negative', t.rejectedRecords),
    nonNegative('data_drops_probes_non_negative', t.probeRecords),
    check('data_drops_split_within_records', sql`${t.trainRecords} + ${t.heldOutRecords} + ${t.probeRecords} <= ${t.records}`),
  ],
);
