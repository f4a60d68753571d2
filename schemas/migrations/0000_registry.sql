CREATE TABLE "lines" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "lines_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"name" text NOT NULL,
	"kind" text NOT NULL,
	"foundation_line_id" bigint,
	"model_config" jsonb NOT NULL,
	"default_recipe" jsonb NOT NULL,
	"gate_rules" jsonb NOT NULL,
	"promotion" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"scheduled" boolean DEFAULT false NOT NULL,
	"next_version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "lines_name_format" CHECK (char_length("lines"."name") <= 63 and "lines"."name" ~ '^[a-z][a-z0-9_-]*$'),
	CONSTRAINT "lines_kind_known" CHECK ("lines"."kind" in ('foundation', 'application')),
	CONSTRAINT "lines_application_has_foundation" CHECK (("lines"."kind" = 'application') = ("lines"."foundation_line_id" is not null)),
	CONSTRAINT "lines_next_version_positive" CHECK ("lines"."next_version" >= 1)
);
--> statement-breakpoint
CREATE TABLE "data_drops" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "data_drops_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"line_id" bigint NOT NULL,
	"digest" text NOT NULL,
	"source" text NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"status" text NOT NULL,
	"records" integer NOT NULL,
	"train_records" integer NOT NULL,
	"held_out_records" integer NOT NULL,
	"rejected_records" integer DEFAULT 0 NOT NULL,
	"probe_records" integer DEFAULT 0 NOT NULL,
	"ingest_key" text,
	"reason" text,
	"stored_path" text NOT NULL,
	CONSTRAINT "data_drops_digest_format" CHECK (char_length("data_drops"."digest") = 64 and "data_drops"."digest" ~ '^[0-9a-f]+$'),
	CONSTRAINT "data_drops_status_known" CHECK ("data_drops"."status" in ('accepted', 'quarantined', 'rejected')),
	CONSTRAINT "data_drops_reason_when_not_accepted" CHECK ("data_drops"."status" = 'accepted' or "data_drops"."reason" is not null),
	CONSTRAINT "data_drops_records_non_negative" CHECK ("data_drops"."records" >= 0),
	CONSTRAINT "data_drops_train_non_negative" CHECK ("data_drops"."train_records" >= 0),
	CONSTRAINT "data_drops_held_out_non_negative" CHECK ("data_drops"."held_out_records" >= 0),
	CONSTRAINT "data_drops_rejected_non_negative" CHECK ("data_drops"."rejected_records" >= 0),
	CONSTRAINT "data_drops_probes_non_negative" CHECK ("data_drops"."probe_records" >= 0),
	CONSTRAINT "data_drops_split_within_records" CHECK ("data_drops"."train_records" + "data_drops"."held_out_records" + "data_drops"."probe_records" <= "data_drops"."records")
);
--> statement-breakpoint
CREATE TABLE "version_drops" (
	"version_id" bigint NOT NULL,
	"drop_id" bigint NOT NULL,
	CONSTRAINT "version_drops_pkey" PRIMARY KEY("version_id","drop_id")
);
--> statement-breakpoint
CREATE TABLE "version_files" (
	"version_id" bigint NOT NULL,
	"role" text NOT NULL,
	"digest" text NOT NULL,
	"size" bigint NOT NULL,
	CONSTRAINT "version_files_pkey" PRIMARY KEY("version_id","role","digest"),
	CONSTRAINT "version_files_digest_format" CHECK (char_length("version_files"."digest") = 64 and "version_files"."digest" ~ '^[0-9a-f]+$'),
	CONSTRAINT "version_files_role_format" CHECK (char_length("version_files"."role") <= 63 and "version_files"."role" ~ '^[a-z][a-z0-9_.-]*$'),
	CONSTRAINT "version_files_size_non_negative" CHECK ("version_files"."size" >= 0)
);
--> statement-breakpoint
CREATE TABLE "versions" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "versions_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"line_id" bigint NOT NULL,
	"number" integer NOT NULL,
	"parent_number" integer,
	"foundation_version_id" bigint,
	"artifact_digest" text NOT NULL,
	"manifest_digest" text NOT NULL,
	"manifest_key_id" text NOT NULL,
	"recipe" jsonb NOT NULL,
	"code_revision" text NOT NULL,
	"seed" bigint NOT NULL,
	"backend" text NOT NULL,
	"compute_tokens" bigint DEFAULT 0 NOT NULL,
	"compute_flops" double precision DEFAULT 0 NOT NULL,
	"compute_wall_ms" bigint DEFAULT 0 NOT NULL,
	"compute_steps" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "versions_line_number_key" UNIQUE("line_id","number"),
	CONSTRAINT "versions_number_positive" CHECK ("versions"."number" >= 1),
	CONSTRAINT "versions_parent_earlier" CHECK ("versions"."parent_number" is null or "versions"."parent_number" < "versions"."number"),
	CONSTRAINT "versions_artifact_digest_format" CHECK (char_length("versions"."artifact_digest") = 64 and "versions"."artifact_digest" ~ '^[0-9a-f]+$'),
	CONSTRAINT "versions_manifest_digest_format" CHECK (char_length("versions"."manifest_digest") = 64 and "versions"."manifest_digest" ~ '^[0-9a-f]+$'),
	CONSTRAINT "versions_manifest_key_id_format" CHECK (char_length("versions"."manifest_key_id") = 64 and "versions"."manifest_key_id" ~ '^[0-9a-f]+$'),
	CONSTRAINT "versions_code_revision_not_blank" CHECK (length(btrim("versions"."code_revision")) > 0),
	CONSTRAINT "versions_backend_not_blank" CHECK (length(btrim("versions"."backend")) > 0),
	CONSTRAINT "versions_compute_tokens_non_negative" CHECK ("versions"."compute_tokens" >= 0),
	CONSTRAINT "versions_compute_flops_non_negative" CHECK ("versions"."compute_flops" >= 0),
	CONSTRAINT "versions_compute_wall_ms_non_negative" CHECK ("versions"."compute_wall_ms" >= 0),
	CONSTRAINT "versions_compute_steps_non_negative" CHECK ("versions"."compute_steps" >= 0)
);
--> statement-breakpoint
CREATE TABLE "training_run_drops" (
	"run_id" bigint NOT NULL,
	"drop_id" bigint NOT NULL,
	CONSTRAINT "training_run_drops_pkey" PRIMARY KEY("run_id","drop_id")
);
--> statement-breakpoint
CREATE TABLE "training_runs" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "training_runs_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"line_id" bigint NOT NULL,
	"key" text NOT NULL,
	"parent_number" integer,
	"recipe" jsonb NOT NULL,
	"seed" bigint NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"steps" integer DEFAULT 0 NOT NULL,
	"tokens" bigint DEFAULT 0 NOT NULL,
	"flops" double precision DEFAULT 0 NOT NULL,
	"wall_ms" bigint DEFAULT 0 NOT NULL,
	"backend" text,
	"final_loss" double precision,
	"artifact_digest" text,
	"error" text,
	"version_id" bigint,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "training_runs_status_known" CHECK ("training_runs"."status" in ('running', 'completed', 'failed')),
	CONSTRAINT "training_runs_finished_when_done" CHECK (("training_runs"."status" = 'running') = ("training_runs"."finished_at" is null)),
	CONSTRAINT "training_runs_key_not_blank" CHECK (length(btrim("training_runs"."key")) > 0),
	CONSTRAINT "training_runs_artifact_digest_format" CHECK (char_length("training_runs"."artifact_digest") = 64 and "training_runs"."artifact_digest" ~ '^[0-9a-f]+$'),
	CONSTRAINT "training_runs_steps_non_negative" CHECK ("training_runs"."steps" >= 0),
	CONSTRAINT "training_runs_tokens_non_negative" CHECK ("training_runs"."tokens" >= 0),
	CONSTRAINT "training_runs_flops_non_negative" CHECK ("training_runs"."flops" >= 0),
	CONSTRAINT "training_runs_wall_ms_non_negative" CHECK ("training_runs"."wall_ms" >= 0)
);
--> statement-breakpoint
CREATE TABLE "gate_decisions" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "gate_decisions_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"line_id" bigint NOT NULL,
	"key" text NOT NULL,
	"candidate_number" integer NOT NULL,
	"champion_number" integer,
	"verdict" text NOT NULL,
	"suites" jsonb NOT NULL,
	"summary" text,
	"actor" text NOT NULL,
	"override_actor" text,
	"override_reason" text,
	"overridden_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "gate_decisions_verdict_known" CHECK ("gate_decisions"."verdict" in ('pass', 'fail')),
	CONSTRAINT "gate_decisions_suites_array" CHECK (jsonb_typeof("gate_decisions"."suites") = 'array'),
	CONSTRAINT "gate_decisions_override_complete" CHECK (("gate_decisions"."override_actor" is null) = ("gate_decisions"."override_reason" is null) and ("gate_decisions"."override_actor" is null) = ("gate_decisions"."overridden_at" is null)),
	CONSTRAINT "gate_decisions_actor_not_blank" CHECK (length(btrim("gate_decisions"."actor")) > 0)
);
--> statement-breakpoint
CREATE TABLE "channels" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "channels_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"line_id" bigint NOT NULL,
	"name" text NOT NULL,
	"version_number" integer,
	"epoch" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "channels_line_name_key" UNIQUE("line_id","name"),
	CONSTRAINT "channels_name_format" CHECK (char_length("channels"."name") <= 63 and "channels"."name" ~ '^[a-z][a-z0-9_-]*$'),
	CONSTRAINT "channels_epoch_non_negative" CHECK ("channels"."epoch" >= 0),
	CONSTRAINT "channels_empty_only_before_first_move" CHECK (("channels"."epoch" = 0) = ("channels"."version_number" is null))
);
--> statement-breakpoint
CREATE TABLE "releases" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "releases_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"line_id" bigint NOT NULL,
	"channel_id" bigint NOT NULL,
	"from_number" integer,
	"to_number" integer NOT NULL,
	"epoch" bigint NOT NULL,
	"actor" text NOT NULL,
	"reason" text NOT NULL,
	"gate_decision_id" bigint,
	"request_key" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "releases_channel_epoch_key" UNIQUE("channel_id","epoch"),
	CONSTRAINT "releases_epoch_positive" CHECK ("releases"."epoch" >= 1),
	CONSTRAINT "releases_actor_not_blank" CHECK (length(btrim("releases"."actor")) > 0),
	CONSTRAINT "releases_reason_not_blank" CHECK (length(btrim("releases"."reason")) > 0),
	CONSTRAINT "releases_request_key_not_blank" CHECK (length(btrim("releases"."request_key")) > 0)
);
--> statement-breakpoint
CREATE TABLE "applications" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "applications_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"name" text NOT NULL,
	"line_id" bigint NOT NULL,
	"channel" text NOT NULL,
	"policy" text NOT NULL,
	"pinned_number" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "applications_name_format" CHECK (char_length("applications"."name") <= 63 and "applications"."name" ~ '^[a-z][a-z0-9_-]*$'),
	CONSTRAINT "applications_policy_known" CHECK ("applications"."policy" in ('follow', 'hold')),
	CONSTRAINT "applications_pinned_iff_hold" CHECK (("applications"."policy" = 'hold') = ("applications"."pinned_number" is not null))
);
--> statement-breakpoint
CREATE TABLE "evaluation_suites" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "evaluation_suites_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"line_id" bigint NOT NULL,
	"name" text NOT NULL,
	"kind" text NOT NULL,
	"data_digest" text NOT NULL,
	"drop_id" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "evaluation_suites_name_format" CHECK (length("evaluation_suites"."name") between 1 and 255 and "evaluation_suites"."name" !~ '[[:cntrl:]/\\]'),
	CONSTRAINT "evaluation_suites_kind_format" CHECK (char_length("evaluation_suites"."kind") <= 63 and "evaluation_suites"."kind" ~ '^[a-z][a-z0-9_-]*$'),
	CONSTRAINT "evaluation_suites_data_digest_format" CHECK (char_length("evaluation_suites"."data_digest") = 64 and "evaluation_suites"."data_digest" ~ '^[0-9a-f]+$')
);
--> statement-breakpoint
CREATE TABLE "evaluations" (
	"version_id" bigint NOT NULL,
	"suite_id" bigint NOT NULL,
	"metrics" jsonb NOT NULL,
	"data_digest" text,
	"backend" text,
	"evaluated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "evaluations_pkey" PRIMARY KEY("version_id","suite_id"),
	CONSTRAINT "evaluations_metrics_object" CHECK (jsonb_typeof("evaluations"."metrics") = 'object'),
	CONSTRAINT "evaluations_data_digest_format" CHECK (char_length("evaluations"."data_digest") = 64 and "evaluations"."data_digest" ~ '^[0-9a-f]+$')
);
--> statement-breakpoint
CREATE TABLE "audit_log" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"subject" text NOT NULL,
	"details" jsonb NOT NULL,
	"prev_hash" text NOT NULL,
	"hash" text NOT NULL,
	CONSTRAINT "audit_log_seq_positive" CHECK ("audit_log"."seq" >= 1),
	CONSTRAINT "audit_log_genesis" CHECK (("audit_log"."seq" = 1) = ("audit_log"."prev_hash" = '0000000000000000000000000000000000000000000000000000000000000000')),
	CONSTRAINT "audit_log_action_format" CHECK ("audit_log"."action" ~ '^[a-z][a-z_]*(\.[a-z][a-z_]*)*$'),
	CONSTRAINT "audit_log_prev_hash_format" CHECK (char_length("audit_log"."prev_hash") = 64 and "audit_log"."prev_hash" ~ '^[0-9a-f]+$'),
	CONSTRAINT "audit_log_hash_format" CHECK (char_length("audit_log"."hash") = 64 and "audit_log"."hash" ~ '^[0-9a-f]+$'),
	CONSTRAINT "audit_log_actor_not_blank" CHECK (length(btrim("audit_log"."actor")) > 0)
);
--> statement-breakpoint
ALTER TABLE "lines" ADD CONSTRAINT "lines_foundation_line_id_lines_id_fk" FOREIGN KEY ("foundation_line_id") REFERENCES "public"."lines"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_drops" ADD CONSTRAINT "data_drops_line_id_lines_id_fk" FOREIGN KEY ("line_id") REFERENCES "public"."lines"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "version_drops" ADD CONSTRAINT "version_drops_version_id_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "version_drops" ADD CONSTRAINT "version_drops_drop_id_data_drops_id_fk" FOREIGN KEY ("drop_id") REFERENCES "public"."data_drops"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "version_files" ADD CONSTRAINT "version_files_version_id_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "versions" ADD CONSTRAINT "versions_line_id_lines_id_fk" FOREIGN KEY ("line_id") REFERENCES "public"."lines"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "versions" ADD CONSTRAINT "versions_foundation_version_id_versions_id_fk" FOREIGN KEY ("foundation_version_id") REFERENCES "public"."versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "versions" ADD CONSTRAINT "versions_parent_fk" FOREIGN KEY ("line_id","parent_number") REFERENCES "public"."versions"("line_id","number") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "training_run_drops" ADD CONSTRAINT "training_run_drops_run_id_training_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."training_runs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "training_run_drops" ADD CONSTRAINT "training_run_drops_drop_id_data_drops_id_fk" FOREIGN KEY ("drop_id") REFERENCES "public"."data_drops"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "training_runs" ADD CONSTRAINT "training_runs_line_id_lines_id_fk" FOREIGN KEY ("line_id") REFERENCES "public"."lines"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "training_runs" ADD CONSTRAINT "training_runs_version_id_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "training_runs" ADD CONSTRAINT "training_runs_parent_fk" FOREIGN KEY ("line_id","parent_number") REFERENCES "public"."versions"("line_id","number") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "gate_decisions" ADD CONSTRAINT "gate_decisions_line_id_lines_id_fk" FOREIGN KEY ("line_id") REFERENCES "public"."lines"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "gate_decisions" ADD CONSTRAINT "gate_decisions_candidate_fk" FOREIGN KEY ("line_id","candidate_number") REFERENCES "public"."versions"("line_id","number") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "gate_decisions" ADD CONSTRAINT "gate_decisions_champion_fk" FOREIGN KEY ("line_id","champion_number") REFERENCES "public"."versions"("line_id","number") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "channels" ADD CONSTRAINT "channels_line_id_lines_id_fk" FOREIGN KEY ("line_id") REFERENCES "public"."lines"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "channels" ADD CONSTRAINT "channels_version_fk" FOREIGN KEY ("line_id","version_number") REFERENCES "public"."versions"("line_id","number") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "releases" ADD CONSTRAINT "releases_line_id_lines_id_fk" FOREIGN KEY ("line_id") REFERENCES "public"."lines"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "releases" ADD CONSTRAINT "releases_channel_id_channels_id_fk" FOREIGN KEY ("channel_id") REFERENCES "public"."channels"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "releases" ADD CONSTRAINT "releases_gate_decision_id_gate_decisions_id_fk" FOREIGN KEY ("gate_decision_id") REFERENCES "public"."gate_decisions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "releases" ADD CONSTRAINT "releases_from_fk" FOREIGN KEY ("line_id","from_number") REFERENCES "public"."versions"("line_id","number") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "releases" ADD CONSTRAINT "releases_to_fk" FOREIGN KEY ("line_id","to_number") REFERENCES "public"."versions"("line_id","number") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "applications" ADD CONSTRAINT "applications_line_id_lines_id_fk" FOREIGN KEY ("line_id") REFERENCES "public"."lines"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "applications" ADD CONSTRAINT "applications_channel_fk" FOREIGN KEY ("line_id","channel") REFERENCES "public"."channels"("line_id","name") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "applications" ADD CONSTRAINT "applications_pinned_fk" FOREIGN KEY ("line_id","pinned_number") REFERENCES "public"."versions"("line_id","number") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "evaluation_suites" ADD CONSTRAINT "evaluation_suites_line_id_lines_id_fk" FOREIGN KEY ("line_id") REFERENCES "public"."lines"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "evaluation_suites" ADD CONSTRAINT "evaluation_suites_drop_id_data_drops_id_fk" FOREIGN KEY ("drop_id") REFERENCES "public"."data_drops"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "evaluations" ADD CONSTRAINT "evaluations_version_id_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "evaluations" ADD CONSTRAINT "evaluations_suite_id_evaluation_suites_id_fk" FOREIGN KEY ("suite_id") REFERENCES "public"."evaluation_suites"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "lines_name_key" ON "lines" USING btree ("name");--> statement-breakpoint
CREATE UNIQUE INDEX "data_drops_line_digest_key" ON "data_drops" USING btree ("line_id","digest");--> statement-breakpoint
CREATE INDEX "version_drops_drop_idx" ON "version_drops" USING btree ("drop_id");--> statement-breakpoint
CREATE INDEX "version_files_digest_idx" ON "version_files" USING btree ("digest");--> statement-breakpoint
CREATE INDEX "versions_foundation_version_idx" ON "versions" USING btree ("foundation_version_id");--> statement-breakpoint
CREATE INDEX "training_run_drops_drop_idx" ON "training_run_drops" USING btree ("drop_id");--> statement-breakpoint
CREATE UNIQUE INDEX "training_runs_key_key" ON "training_runs" USING btree ("key");--> statement-breakpoint
CREATE UNIQUE INDEX "training_runs_version_key" ON "training_runs" USING btree ("version_id");--> statement-breakpoint
CREATE INDEX "training_runs_line_idx" ON "training_runs" USING btree ("line_id");--> statement-breakpoint
CREATE UNIQUE INDEX "gate_decisions_key_key" ON "gate_decisions" USING btree ("key");--> statement-breakpoint
CREATE INDEX "gate_decisions_candidate_idx" ON "gate_decisions" USING btree ("line_id","candidate_number");--> statement-breakpoint
CREATE UNIQUE INDEX "releases_request_key_key" ON "releases" USING btree ("request_key");--> statement-breakpoint
CREATE INDEX "releases_line_to_idx" ON "releases" USING btree ("line_id","to_number");--> statement-breakpoint
CREATE INDEX "releases_line_from_idx" ON "releases" USING btree ("line_id","from_number");--> statement-breakpoint
CREATE UNIQUE INDEX "applications_name_key" ON "applications" USING btree ("name");--> statement-breakpoint
CREATE INDEX "applications_line_idx" ON "applications" USING btree ("line_id");--> statement-breakpoint
CREATE UNIQUE INDEX "evaluation_suites_line_name_key" ON "evaluation_suites" USING btree ("line_id","name");--> statement-breakpoint
CREATE INDEX "evaluations_suite_idx" ON "evaluations" USING btree ("suite_id");--> statement-breakpoint
CREATE UNIQUE INDEX "audit_log_hash_key" ON "audit_log" USING btree ("hash");