/**
 * Input types and their validation at the system's boundaries: CLI arguments, workflow inputs, drop
 * records, recipes and gate rules. Workflow code imports only the *types* from here (`import type`).
 */
import { z } from 'zod';

const NAME = /^[a-z][a-z0-9-]{0,62}$/;
const nameMessage = (what: string) =>
  `a ${what} name is 1-63 lowercase letters, digits and dashes, starting with a letter (so it is safe in paths, ids and URLs)`;

export const LineName = z.string().regex(NAME, nameMessage('line'));
export const ChannelName = z.string().regex(NAME, nameMessage('channel'));
export const AppName = z.string().regex(NAME, nameMessage('application'));
export const SourceName = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^\u0000-\u001f/\\]+$/, 'a source name may not contain control characters or slashes');
export const Digest = z.string().regex(/^[0-9a-f]{64}$/, 'a digest is 64 lowercase hex characters (sha256)');
export const VersionNumber = z
  .union([z.number(), z.string().regex(/^\d+$/, 'a version number is a positive integer such as 3')])
  .transform(Number)
  .pipe(z.number().int().positive('a version number is a positive integer such as 3'));
export const Actor = z.string().trim().min(1, 'an actor is required (who does this)').max(200);
export const Reason = z.string().trim().min(1, 'a reason is required').max(2000);

/** `line@version` or `line@channel`. */
export const VersionRef = z.string().transform((s, ctx) => {
  const [line, ref, ...rest] = s.split('@');
  const parsedLine = LineName.safeParse(line);
  if (rest.length || !ref || !parsedLine.success) {
    ctx.addIssue({ code: 'custom', message: `expected <line>@<version> or <line>@<channel>, got "${s}"` });
    return z.NEVER;
  }
  return /^\d+$/.test(ref) ? { line: parsedLine.data, version: Number(ref) } : { line: parsedLine.data, channel: ChannelName.parse(ref) };
});

export const ModelConfig = z
  .object({
    vocabSize: z.number().int().min(259).max(65536),
    dModel: z.number().int().min(8).max(4096),
    nLayers: z.number().int().min(1).max(96),
    nHeads: z.number().int().min(1).max(64),
    context: z.number().int().min(8).max(8192),
    mlpRatio: z.number().int().min(1).max(8),
  })
  .strict()
  .refine((c) => c.dModel % c.nHeads === 0, 'dModel must be divisible by nHeads');
export type ModelConfig = z.infer<typeof ModelConfig>;

/** How a candidate is trained from its parent. Data, so lines and drops can carry their own. */
export const Recipe = z
  .object({
    steps: z.number().int().min(1).max(1_000_000),
    batchSize: z.number().int().min(1).max(1024),
    learningRate: z.number().positive().max(1),
    minLearningRate: z.number().min(0).max(1),
    warmupSteps: z.number().int().min(0),
    /** Warm the learning rate up again when continuing from an earlier version. */
    rewarm: z.boolean(),
    weightDecay: z.number().min(0).max(1),
    gradClip: z.number().positive(),
    /** Strength of the L2 pull toward the parent's weights (0 = off). */
    l2Pull: z.number().min(0),
    /** Fraction of each batch drawn from the replay buffer of earlier accepted drops. */
    replayRatio: z.number().min(0).max(0.95),
    /** Most records kept in the replay buffer (newest drops first). */
    replayBudget: z.number().int().min(0),
    seed: z.number().int().min(0),
    checkpointEvery: z.number().int().min(1),
  })
  .strict();
export type Recipe = z.infer<typeof Recipe>;
export const RecipeOverride = Recipe.partial().strict();
export type RecipeOverride = z.infer<typeof RecipeOverride>;

const Threshold = z.object({ loss: z.number().optional(), exactMatch: z.number().optional() }).strict();

/**
 * Gate rules, per metric kind: `floors` are absolute (loss at most, exact match at least); `maxRegression`
 * is relative to the champion (loss: fraction it may rise; exact match: points it may fall);
 * `minImprovement` is what the new drop's suites must gain over the champion (loss: fraction it must fall;
 * exact match: points it must rise). `suites` overrides any of them per suite name.
 */
export const GateRules = z
  .object({
    floors: Threshold,
    maxRegression: Threshold,
    minImprovement: Threshold,
    suites: z.record(z.string(), z.object({ floors: Threshold.optional(), maxRegression: Threshold.optional() }).strict()).default({}),
  })
  .strict();
export type GateRules = z.infer<typeof GateRules>;

/** How a passing candidate travels candidate -> canary -> stable. */
export const PromotionPolicy = z
  .object({
    /** How long a canary waits for regression reports before it may go to stable (Temporal duration, "0s" = no wait). */
    canaryWindow: z.string().regex(/^\d+(ms|s|m|h|d)$/, 'a duration like 30s, 5m or 2h'),
    requireApproval: z.boolean(),
    /** How long an approval may take before the candidate is rejected as expired. */
    approvalTimeout: z.string().regex(/^\d+(ms|s|m|h|d)$/, 'a duration like 30s, 5m or 2h'),
  })
  .strict();
export type PromotionPolicy = z.infer<typeof PromotionPolicy>;

export const LineKind = z.enum(['foundation', 'application']);
export type LineKind = z.infer<typeof LineKind>;

/** Everything a line needs to run cycles; stored with the line in the registry. */
export const LineSpec = z
  .object({
    name: LineName,
    kind: LineKind,
    foundation: LineName.optional(),
    modelConfig: ModelConfig,
    recipe: Recipe,
    gateRules: GateRules,
    promotion: PromotionPolicy,
  })
  .strict()
  .refine((l) => (l.kind === 'application') === (l.foundation !== undefined), 'an application line names its foundation line; a foundation line names none');
export type LineSpec = z.infer<typeof LineSpec>;

/** The payload of a `dataDrop` signal: a path and the digest the sender read, never the data itself. */
export const DropRequest = z
  .object({
    path: z
      .string()
      .min(1)
      .refine((p) => p.startsWith('/'), 'the drop path must be absolute (workers may run elsewhere)'),
    digest: Digest,
    source: SourceName,
    recipe: RecipeOverride.optional(),
    requestedBy: z.string().max(200).optional(),
  })
  .strict();
export type DropRequest = z.infer<typeof DropRequest>;

/** One record of a JSONL drop. */
export const TextRecord = z.object({ text: z.string().min(1, 'text is empty'), split: z.enum(['train', 'heldout']).optional() }).strict();
export const ProbeRecord = z.object({ prompt: z.string().min(1, 'prompt is empty'), completion: z.string().min(1, 'completion is empty') }).strict();

/** Formats zod issues as one line a user can act on. */
export function explain(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}
