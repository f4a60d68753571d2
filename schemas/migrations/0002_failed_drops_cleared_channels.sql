-- A drop whose cycle failed (training diverged, a step no retry can fix) is `failed`: it feeds neither replay
-- nor the gate, and it may be sent again.
ALTER TABLE "data_drops" DROP CONSTRAINT "data_drops_status_known";
--> statement-breakpoint
ALTER TABLE "data_drops" ADD CONSTRAINT "data_drops_status_known" CHECK ("data_drops"."status" in ('accepted', 'quarantined', 'rejected', 'failed'));
--> statement-breakpoint
-- A channel may be cleared again (a line's first candidate leaves canary with no released version to go back
-- to); the release record of a clearing has no target version.
ALTER TABLE "releases" ALTER COLUMN "to_number" DROP NOT NULL;
--> statement-breakpoint
ALTER TABLE "channels" DROP CONSTRAINT "channels_empty_only_before_first_move";
--> statement-breakpoint
ALTER TABLE "channels" ADD CONSTRAINT "channels_empty_before_first_move" CHECK ("channels"."epoch" <> 0 OR "channels"."version_number" is null);
--> statement-breakpoint
-- The order drops were accepted in (a failed drop sent again is accepted anew): suites are ordered by it, and
-- a later drop's answers supersede an earlier one's, whatever their file names.
CREATE SEQUENCE "data_drops_accepted_seq";
--> statement-breakpoint
ALTER TABLE "data_drops" ADD COLUMN "accepted_seq" bigint;
--> statement-breakpoint
UPDATE "data_drops" SET "accepted_seq" = o."n"
  FROM (SELECT "id", row_number() OVER (ORDER BY "id") AS "n" FROM "data_drops" WHERE "status" <> 'quarantined') o
  WHERE "data_drops"."id" = o."id";
--> statement-breakpoint
SELECT setval('data_drops_accepted_seq', coalesce((SELECT max("accepted_seq") FROM "data_drops"), 0) + 1, false);
--> statement-breakpoint
CREATE UNIQUE INDEX "data_drops_accepted_seq_key" ON "data_drops" USING btree ("accepted_seq");
