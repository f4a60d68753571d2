-- Foundation upgrades: each application line says whether a new stable foundation version is transferred to
-- it by itself (`auto`), only when an operator runs `perennial upgrade` (`manual`), or never (`off`). A
-- foundation line's value is not read. The two parents of an upgraded version need no new column: its parent
-- (same line) is the teacher and its foundation_version_id the new base.
ALTER TABLE "lines" ADD COLUMN "upgrade_policy" text DEFAULT 'manual' NOT NULL;
--> statement-breakpoint
ALTER TABLE "lines" ADD CONSTRAINT "lines_upgrade_policy_known" CHECK ("lines"."upgrade_policy" in ('auto', 'manual', 'off'));
