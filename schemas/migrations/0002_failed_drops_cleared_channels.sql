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
