-- A line's limits on what one cycle may spend (steps, batch, FLOPs, checkpoints kept; schemas/io.ts LineLimits):
-- only those set on the line are stored, the rest default from its recipe (domain/recipe-limits.ts), so existing
-- lines get the defaults.
ALTER TABLE "lines" ADD COLUMN "limits" jsonb DEFAULT '{}'::jsonb NOT NULL;
