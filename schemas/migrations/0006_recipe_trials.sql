-- Recipe search (issue 15): every trial segment a cycle's search ran, with its recipe, compute, metrics, gate
-- margin and what became of it (chosen, passed, kept, pruned, failed, rejected). Linked to the line and the drop;
-- linked to the version through the cycle key, which is the key of the training run that made it. A fact: insert only.
CREATE TABLE "recipe_trials" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "recipe_trials_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"line_id" bigint NOT NULL,
	"cycle_key" text NOT NULL,
	"cycle_id" text NOT NULL,
	"drop_digest" text,
	"trial" text NOT NULL,
	"rung" integer NOT NULL,
	"bracket" integer NOT NULL,
	"source" text NOT NULL,
	"recipe" jsonb NOT NULL,
	"from_step" integer NOT NULL,
	"to_step" integer NOT NULL,
	"flops" double precision NOT NULL,
	"wall_ms" bigint NOT NULL,
	"metrics" jsonb NOT NULL,
	"margin" double precision,
	"pass" boolean NOT NULL,
	"status" text NOT NULL,
	"summary" text NOT NULL,
	"features" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "recipe_trials_status_known" CHECK ("recipe_trials"."status" in ('chosen', 'passed', 'kept', 'pruned', 'failed', 'rejected')),
	CONSTRAINT "recipe_trials_steps" CHECK ("recipe_trials"."from_step" >= 0 and "recipe_trials"."to_step" >= "recipe_trials"."from_step"),
	CONSTRAINT "recipe_trials_flops_nonnegative" CHECK ("recipe_trials"."flops" >= 0)
);
--> statement-breakpoint
ALTER TABLE "recipe_trials" ADD CONSTRAINT "recipe_trials_line_id_lines_id_fk" FOREIGN KEY ("line_id") REFERENCES "public"."lines"("id") ON DELETE no action ON UPDATE no action;
--> statement-breakpoint
CREATE UNIQUE INDEX "recipe_trials_segment" ON "recipe_trials" USING btree ("cycle_key","trial","rung");
--> statement-breakpoint
CREATE INDEX "recipe_trials_line_status" ON "recipe_trials" USING btree ("line_id","status");
