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

/** What recipe `auto` searches within: a compute budget for every trial together, and the margin a chosen recipe needs. */
export const RecipeSearch = z
  .object({
    /** Training FLOPs for all trials of one cycle together (default: `budgetFactor` times the base recipe's). */
    budgetFlops: z
      .number({ error: 'search.budgetFlops is a positive number of FLOPs, like 2e12' })
      .positive('search.budgetFlops is a positive number of FLOPs, like 2e12')
      .optional(),
    /**
     * The budget as a multiple of the base recipe's training FLOPs, when `budgetFlops` is not set (default 1.5,
     * domain/recipe-search.ts SEARCH_BUDGET; 2 leaves room for a second full-length trial, such as a repair).
     */
    budgetFactor: z
      .number({ error: 'search.budgetFactor is a positive multiple of the recipe\'s training FLOPs, like 2 (a number, not "2x")' })
      .positive("search.budgetFactor is a positive multiple of the recipe's training FLOPs, like 2")
      .max(100, "search.budgetFactor is at most 100 (times the recipe's training FLOPs)")
      .optional(),
    /** Wall time for the whole search in milliseconds (checked before every rung); absent: no limit. */
    budgetWallMs: z.number().int().positive().optional(),
    /** The least gate margin the chosen recipe needs (loss: fraction of the bound left; exact match: points); default 0. */
    margin: z.number().min(-1).max(1).optional(),
    /** Trials in the first bracket, 1 to 6 (default 4). */
    width: z.number().int().min(1).max(6).optional(),
    /** A warm start or the base recipe that failed because it forgot is tried again with more replay (default true). */
    repair: z.boolean().optional(),
    /**
     * A trial run alone to its horizon is judged on its way and stopped, with the drop rejected, when its margin is
     * below every passing update of the line's record with its schedule by more than `slack` (default on: judged at
     * 1/12, 1/6 and 1/3 of the horizon, slack 0.2, two passing updates on record; domain/recipe-search.ts STOP_EARLY).
     * true: on with the defaults; false: every trial runs to its horizon in one segment.
     */
    stopEarly: z
      .union(
        [
          z.boolean(),
          z
            .object({
              slack: z.number().min(0, 'search.stopEarly.slack is a gate margin >= 0, like 0.2').optional(),
              at: z.array(z.number().gt(0).lt(1, 'search.stopEarly.at holds fractions of the horizon, like 0.25')).min(1).max(8).optional(),
              minPassing: z.number().int().min(1).optional(),
            })
            .strict(),
        ],
        { error: 'search.stopEarly is true, false or an object of slack, at and minPassing, like {"slack":0.1}' },
      )
      .optional(),
  })
  .strict();
export type RecipeSearch = z.infer<typeof RecipeSearch>;

/** The RL update of a feedback cycle (model/rl.ts RlRecipe); every field optional, the rest from RL_DEFAULTS. */
export const RlRecipeFields = z
  .object({
    steps: z.number().int().min(1).max(100_000),
    promptsPerStep: z.number().int().min(1).max(256),
    samplesPerPrompt: z.number().int().min(2).max(64),
    maxTokens: z.number().int().min(1).max(256),
    learningRate: z.number().positive().max(1),
    klCoef: z.number().min(0),
    klBudget: z.number().positive(),
    clip: z.number().positive().max(1),
    replayWeight: z.number().min(0),
    replayBatch: z.number().int().min(1).max(1024),
    checkEvery: z.number().int().min(1),
  })
  .partial()
  .strict();
export type RlRecipeFields = z.infer<typeof RlRecipeFields>;

/** The recipe fields a transfer cycle may set over the line's recipe (`recipe.transfer`). */
export const TransferRecipeFields = z
  .object({
    steps: z.number().int().min(1).max(1_000_000),
    learningRate: z.number().positive().max(1),
    minLearningRate: z.number().min(0).max(1),
    warmupSteps: z.number().int().min(0),
    replayRatio: z.number().min(0).max(0.95),
    replayBudget: z.number().int().min(0),
    distillTemperature: z.number().positive().max(100),
    distillWeight: z.number().min(0).max(1),
  })
  .partial()
  .strict();
export type TransferRecipeFields = z.infer<typeof TransferRecipeFields>;

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
    /** Distillation temperature in a transfer (a foundation upgrade); unused without a teacher. */
    distillTemperature: z.number().positive().max(100).optional(),
    /** Share of a transfer's loss that is distillation from the old application model, in [0, 1]. */
    distillWeight: z.number().min(0).max(1).optional(),
    /** Fraction of each batch drawn from the replay buffer of earlier accepted drops. */
    replayRatio: z.number().min(0).max(0.95),
    /** Most records kept in the replay buffer (newest drops first). */
    replayBudget: z.number().int().min(0),
    seed: z.number().int().min(0),
    checkpointEvery: z.number().int().min(1),
    /**
     * Plasticity the line defends (ratio against a fresh model): when the version a candidate starts from
     * measured below it, the cycle applies `interventions` to the starting weights. Absent: off.
     */
    plasticityFloor: z.number().min(0).max(10).optional(),
    /** The interventions applied to this version's starting weights (set by the cycle, recorded with the version). */
    interventions: z.array(z.enum(['shrink-perturb', 'dormant-reset', 'l2-init', 'rewarm'])).optional(),
    /**
     * What the L2 pull pulls toward: `parent` (the weights training starts from; absent means this) or `init`, the
     * fresh initialisation of the recipe's seed (regularisation toward the initial weights; set by the 'l2-init'
     * intervention).
     */
    l2Anchor: z.enum(['parent', 'init']).optional(),
    /**
     * Recipe `auto` (issue 15): present, the cycle searches the cheapest recipe that passes the gate (workflows/
     * recipe-search.ts) starting from the fields above, within the budget given here. Absent: train with the recipe as is.
     */
    search: RecipeSearch.optional(),
    /** A feedback drop's RL update (issue 16); unused by text drops. */
    rl: RlRecipeFields.optional(),
    /**
     * What a foundation upgrade's transfer cycle changes of the recipe above (issue 13), e.g. more steps: the
     * transfer re-learns from the replay buffer what the line learned over all its drops. Unused by other cycles.
     */
    transfer: TransferRecipeFields.optional(),
  })
  .strict();
export type Recipe = z.infer<typeof Recipe>;
export const RecipeOverride = Recipe.partial().strict();
export type RecipeOverride = z.infer<typeof RecipeOverride>;

/**
 * What one cycle of a line may spend (issue 33): the recipe a cycle trains with (the line's, with a drop's override
 * laid over it, a transfer's or a search trial's) must lie within them. Stored per line; each field not set takes
 * its default from the line's recipe (domain/recipe-limits.ts defaultLimits).
 */
export const LineLimits = z
  .object({
    /** Most steps one training run takes. */
    maxSteps: z.number().int().min(1).max(1_000_000),
    /** Largest batch. */
    maxBatchSize: z.number().int().min(1).max(1024),
    /** Most training FLOPs one cycle spends: its training, all its search trials together, or its RL update. */
    maxFlopsPerCycle: z.number().finite().positive(),
    /** Checkpoints of a run kept in the store (the newest); older ones are deleted as new ones are written. */
    keepCheckpoints: z.number().int().min(1).max(1000),
    /** Fewest steps between two checkpoints. */
    minCheckpointEvery: z.number().int().min(1).max(1_000_000),
    /** Most records in the replay buffer. */
    maxReplayBudget: z.number().int().min(0).max(100_000_000),
    /** Most steps of a feedback cycle's RL update (`rl.steps`). */
    maxRlSteps: z.number().int().min(1).max(100_000),
    /** Most answers the RL update samples a step (`rl.promptsPerStep` x `rl.samplesPerPrompt`). */
    maxRlSamplesPerStep: z.number().int().min(2).max(256 * 64),
    /** Most tokens of one sampled answer (`rl.maxTokens`). */
    maxRlTokens: z.number().int().min(1).max(256),
  })
  .strict();
export type LineLimits = z.infer<typeof LineLimits>;
/** Limits set on a line (the rest take their defaults); `null` takes a set one back to its default. */
export const LineLimitsOverride = z
  .object(Object.fromEntries(Object.entries(LineLimits.shape).map(([k, v]) => [k, v.nullable().optional()])) as {
    [K in keyof LineLimits]: z.ZodOptional<z.ZodNullable<(typeof LineLimits.shape)[K]>>;
  })
  .strict();
export type LineLimitsOverride = z.infer<typeof LineLimitsOverride>;
/** The limits stored with a line: only those set. */
export const StoredLineLimits = LineLimits.partial().strict();
export type StoredLineLimits = z.infer<typeof StoredLineLimits>;

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
    /** Least plasticity ratio (probe reach against a fresh model, model/plasticity.ts) a candidate needs; absent: off. */
    minPlasticity: z.number().finite().optional(),
    /**
     * A foundation upgrade's transfer must keep at least this share of the new foundation's own gain on each
     * foundation suite (its gain over the old foundation version), measured against the old application model.
     * Absent: 0.5 (DEFAULT_MIN_FOUNDATION_GAIN_SHARE); 0 turns the check off.
     */
    minFoundationGainShare: z.number().finite().min(0).max(1).optional(),
    /**
     * A foundation upgrade's transfer may flip at most this share of the probes the old application model answered
     * (answered before, wrong now). Absent: 0.02 (DEFAULT_MAX_NEGATIVE_FLIP_RATE); an upgrade's own bound wins.
     */
    maxNegativeFlipRate: z.number().finite().min(0).max(1).optional(),
    /**
     * Whether a feedback drop may have verifier prompts without a gold of their own. Without one the
     * reward-hacking guard compares the reward with itself and cannot fire; the run is recorded as having no
     * gold check. Absent: false (ingest refuses such a drop, saying so).
     */
    allowFeedbackWithoutGold: z.boolean().optional(),
  })
  .strict();
export type GateRules = z.infer<typeof GateRules>;

/** A bound in an override: a number sets it, `null` removes it (no such bound for that metric). */
const ThresholdOverride = z.object({ loss: z.number().nullable().optional(), exactMatch: z.number().nullable().optional() }).strict();

/**
 * What `--gate` takes: any part of GateRules, to the depth the user writes it. It is merged into the line's
 * rules key by key (`mergeDeep`), so `{"maxRegression":{"loss":0.02}}` changes that one bound and keeps the
 * exact-match bound beside it.
 */
export const GateRulesOverride = z
  .object({
    floors: ThresholdOverride.optional(),
    maxRegression: ThresholdOverride.optional(),
    minImprovement: ThresholdOverride.optional(),
    suites: z
      .record(z.string(), z.object({ floors: ThresholdOverride.optional(), maxRegression: ThresholdOverride.optional() }).strict().nullable())
      .optional(),
    minPlasticity: z.number().finite().nullable().optional(),
    minFoundationGainShare: z.number().finite().min(0).max(1).nullable().optional(),
    maxNegativeFlipRate: z.number().finite().min(0).max(1).nullable().optional(),
    allowFeedbackWithoutGold: z.boolean().nullable().optional(),
  })
  .strict();
export type GateRulesOverride = z.infer<typeof GateRulesOverride>;

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * `override` laid over `base` all the way down: objects merge key by key, any other value replaces what
 * was there, and `null` removes the key. Neither input is changed. Pure (workflow code may use it).
 */
export function mergeDeep<T>(base: T, override: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(override)) return (override === undefined ? base : override) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === null) delete out[key];
    else if (value !== undefined) out[key] = mergeDeep(out[key], value);
  }
  return out as T;
}

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
    /** `feedback`: ratings and verifier prompts for an RL cycle (`perennial feedback`); absent: a text drop. */
    kind: z.literal('feedback').optional(),
  })
  .strict();
export type DropRequest = z.infer<typeof DropRequest>;

/** One record of a JSONL drop. */
export const TextRecord = z.object({ text: z.string().min(1, 'text is empty'), split: z.enum(['train', 'heldout']).optional() }).strict();
export const ProbeRecord = z.object({ prompt: z.string().min(1, 'prompt is empty'), completion: z.string().min(1, 'completion is empty') }).strict();

/** "1 unexpected field", "3 unexpected fields": a count, because a field's name is input too. */
export const unexpectedFields = (n: number) => `${n} unexpected field${n === 1 ? '' : 's'}`;

/**
 * Formats zod issues as one line a user can act on. Unknown fields are counted, not named (zod's own message
 * quotes them), unless `names` is set: the CLI answering its own user may name them, but a reason from ingest
 * goes into workflow histories, quarantine and the audit log, where no input may go (an API key once did, as
 * a field name).
 */
export function explain(error: z.ZodError, opts: { names?: boolean } = {}): string {
  return error.issues
    .map((i) => {
      const message = i.code === 'unrecognized_keys' && !opts.names ? unexpectedFields(i.keys.length) : i.message;
      return i.path.length ? `${i.path.join('.')}: ${message}` : message;
    })
    .join('; ');
}

// ---- CLI arguments ------------------------------------------------------------------------------------------
// Each command's arguments as the shell hands them over (strings), validated before the command connects to
// anything, so a typo is answered at once with the argument's name and what it takes, never with a network
// error or a workflow started for a name that cannot exist.

const wholeNumber = (what: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `${what} is a whole number${min > 0 ? ` from ${min}` : ''}, like ${Math.max(min, 3)}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `${what} is at least ${min}`).max(max, `${what} is at most ${max}`));

/** A version number as typed: `3`, not `v3`, `3.0` or `-1`. */
export const CliVersion = wholeNumber('a version number', 1);

/** A JSON object given on the command line (`--recipe '{"steps": 400}'`). */
export const CliJson = z.string().transform((s, ctx) => {
  try {
    return JSON.parse(s) as unknown;
  } catch {
    ctx.addIssue({ code: 'custom', message: `not valid JSON: ${s.length > 60 ? `${s.slice(0, 60)}…` : s} (quote it in the shell: '{"steps": 400}')` });
    return z.NEVER;
  }
});

/** `<line>@<channel>` as `app bind` takes it. */
export const CliChannelRef = z.string().transform((s, ctx) => {
  const [line, channel, ...rest] = s.split('@');
  const l = LineName.safeParse(line);
  const c = ChannelName.safeParse(channel);
  if (rest.length || !l.success || !c.success) {
    ctx.addIssue({ code: 'custom', message: `expected <line>@<channel>, like support@stable; got "${s}"` });
    return z.NEVER;
  }
  return { line: l.data, channel: c.data };
});

export const CliArgs = {
  drop: z.object({
    line: LineName,
    file: z.string().min(1, 'a file is required'),
    source: SourceName.optional(),
    recipe: CliJson.pipe(RecipeOverride).optional(),
  }),
  lineCreate: z.object({
    name: LineName,
    kind: z.enum(['foundation', 'application'], { error: 'the kind is foundation or application' }),
    foundation: LineName.optional(),
    steps: wholeNumber('--steps', 1, 1_000_000).optional(),
    recipe: CliJson.pipe(RecipeOverride).optional(),
    gate: CliJson.pipe(GateRulesOverride).optional(),
    limits: CliJson.pipe(LineLimitsOverride).optional(),
    canaryWindow: z.string().regex(/^\d+(ms|s|m|h|d)$/, 'a duration like 30s, 5m or 2h'),
    actor: Actor,
  }),
  line: z.object({ line: LineName }),
  rollback: z.object({ line: LineName, to: CliVersion, reason: Reason, actor: Actor, channel: ChannelName, override: z.boolean().optional() }),
  review: z.object({ line: LineName, version: CliVersion, actor: Actor, reason: Reason.optional() }),
  reportRegression: z.object({ line: LineName, reason: Reason, actor: Actor, evidence: z.string().min(1).optional() }),
  appBind: z.object({ app: AppName, target: CliChannelRef, policy: z.enum(['follow', 'hold'], { error: 'the policy is follow or hold' }), actor: Actor }),
  sample: z.object({
    ref: VersionRef,
    prompt: z.string().min(1, 'a prompt is required'),
    temperature: z
      .string()
      .regex(/^\d+(\.\d+)?$/, 'a temperature is a number from 0 (greedy) up, like 0.8')
      .transform(Number),
    maxTokens: wholeNumber('--max-tokens', 1, 100_000),
    seed: wholeNumber('--seed', 0),
  }),
  watch: z.object({ dir: z.string().min(1), line: LineName.optional(), settle: wholeNumber('--settle', 0) }),
};

/**
 * Validates a command's arguments with `schema`; a problem is reported under the name the user typed
 * (`names`: field -> `--to` or `<line>`), so `explain` prints `--to: a version number is a whole number ...`;
 * with `under`, every problem is reported under that one argument (`--gate.floors.loss: ...`).
 */
export function parseCliArgs<S extends z.ZodType>(schema: S, values: unknown, names: Record<string, string> = {}, under?: string): z.output<S> {
  const r = schema.safeParse(values);
  if (r.success) return r.data;
  throw new z.ZodError(
    r.error.issues.map((i) => {
      // A value checked whole after merging (`--gate` over the defaults) is reported under its option.
      if (under !== undefined) return { ...i, path: [under, ...i.path] } as z.core.$ZodIssue;
      const [first, ...rest] = i.path;
      const shown =
        typeof first === 'string' ? (names[first] ?? (first.length > 1 ? `--${first.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : first)) : first;
      return { ...i, path: shown === undefined ? [] : [shown, ...rest] } as z.core.$ZodIssue;
    }),
  );
}
