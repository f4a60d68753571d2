-- Each version's plasticity record (issue 14): measured once by the cycle after training, read by the gate's
-- minPlasticity rule, `perennial versions`, the lineage and the report. A measurement is a fact: insert only.
CREATE TABLE "plasticity_records" (
	"version_id" bigint PRIMARY KEY NOT NULL,
	"record" jsonb NOT NULL,
	"backend" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "plasticity_records_record_object" CHECK (jsonb_typeof("plasticity_records"."record") = 'object')
);
--> statement-breakpoint
ALTER TABLE "plasticity_records" ADD CONSTRAINT "plasticity_records_version_id_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."versions"("id") ON DELETE no action ON UPDATE no action;
