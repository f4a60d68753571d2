-- Each RL run (issue 16): the feedback a version learned from, its recipe, reward statistics, the held-out
-- checks (reward, gold reward, KL curves) and the final KL to the released version. A fact: insert only.
CREATE TABLE "rl_runs" (
	"version_id" bigint PRIMARY KEY NOT NULL,
	"feedback_digests" jsonb NOT NULL,
	"recipe" jsonb NOT NULL,
	"reward_stats" jsonb NOT NULL,
	"checks" jsonb NOT NULL,
	"final_kl" double precision NOT NULL,
	"stopped_by" text NOT NULL,
	"backend" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rl_runs_digests_array" CHECK (jsonb_typeof("rl_runs"."feedback_digests") = 'array'),
	CONSTRAINT "rl_runs_recipe_object" CHECK (jsonb_typeof("rl_runs"."recipe") = 'object'),
	CONSTRAINT "rl_runs_checks_array" CHECK (jsonb_typeof("rl_runs"."checks") = 'array'),
	CONSTRAINT "rl_runs_final_kl_finite" CHECK ("rl_runs"."final_kl" >= 0 AND "rl_runs"."final_kl" < 'Infinity'::float8)
);
--> statement-breakpoint
ALTER TABLE "rl_runs" ADD CONSTRAINT "rl_runs_version_id_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."versions"("id") ON DELETE no action ON UPDATE no action;
