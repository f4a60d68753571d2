/** `perennial line create|list`: model lines and their recipes, gate rules and promotion policy (data, not code). */
import { isDeepStrictEqual } from 'node:util';
import type { Command } from 'commander';
import { PRESETS, flopsPerToken, type ModelConfig } from '../../model/config.ts';
import { DEFAULT_GATE_RULES, DEFAULT_PROMOTION, DEFAULT_RECIPE, FOUNDATION_STEPS, TRANSFER_STEPS_FACTOR, defaultRecipe } from '../../schemas/defaults.ts';
import {
  CliArgs,
  CliJson,
  GateRules,
  LineLimits,
  LineLimitsOverride,
  LineSpec,
  mergeDeep,
  parseCliArgs,
  Recipe,
  StoredLineLimits,
} from '../../schemas/io.ts';
import { effectiveLimits, limitProblems, rlLimitProblems } from '../../domain/recipe-limits.ts';
import { openRegistry, output, UserError } from './context.ts';
import { SEARCH_BUDGET, STOP_EARLY } from '../../domain/recipe-search.ts';

export function register(program: Command) {
  const line = program.command('line').description('create and list model lines');
  line
    .command('create <name>')
    .description('create a foundation line, or an application line built on one (idempotent)')
    .option('--kind <kind>', 'foundation or application', 'application')
    .option('--foundation <line>', 'the foundation line an application line builds on')
    .option('--preset <name>', `model shape: ${Object.keys(PRESETS).join(', ')} (application lines take their foundation's)`, 'small')
    .option('--steps <n>', `training steps per cycle (default ${DEFAULT_RECIPE.steps}; a foundation line of preset ${Object.entries(FOUNDATION_STEPS).map(([p, n]) => `${p} ${n}`).join(', ')})`)
    .option('--recipe <json>', 'recipe fields to override, e.g. {"replayRatio":0.5}, or auto (search the cheapest passing recipe each cycle)')
    .option('--search-budget <flops|Nx>', "with --recipe auto: training FLOPs for all trials of one cycle, or N times the recipe's (default 1.5x)")
    .option('--gate <json>', 'gate rules to override, e.g. {"maxRegression":{"loss":0.02}}')
    .option('--limits <json>', `what one cycle may spend, e.g. {"maxSteps":2000,"keepCheckpoints":2} (${Object.keys(LineLimits.shape).join(', ')}; the rest default from the recipe)`)
    .option('--canary-window <duration>', 'how long a canary waits for regression reports (e.g. 30s, 1h)', DEFAULT_PROMOTION.canaryWindow)
    .option('--require-approval', 'a human approves every release to stable')
    .option('--actor <name>', 'who creates it', process.env.USER ?? 'operator')
    .option('--json', 'print the line as JSON')
    .action(async (name: string, opts) => {
      const o = {
        ...opts,
        ...parseCliArgs(
          CliArgs.lineCreate,
          {
            name,
            kind: opts.kind,
            foundation: opts.foundation,
            steps: opts.steps,
            recipe: autoRecipeArg(opts.recipe, opts.searchBudget),
            gate: opts.gate,
            limits: opts.limits,
            canaryWindow: opts.canaryWindow,
            actor: opts.actor,
          },
          { name: '<name>' },
        ),
      };
      if (!(o.preset in PRESETS)) throw new UserError(`unknown preset ${o.preset}; choose one of ${Object.keys(PRESETS).join(', ')}`, 2);
      if (o.kind === 'application' && !o.foundation) throw new UserError('an application line needs --foundation <line>', 2);
      const { registry, close } = openRegistry();
      try {
        // An application line takes its foundation's shape (checked above that it names one).
        const modelConfig = (
          o.kind === 'application' ? (await registry.getLine(o.foundation!)).modelConfig : PRESETS[o.preset as keyof typeof PRESETS]
        ) as LineSpec['modelConfig'];
        // Overrides are laid over the defaults key by key at every depth, then validated whole.
        const recipe = parseCliArgs(Recipe, mergeDeep(mergeDeep(defaultRecipe(o.kind, o.preset), o.recipe), o.steps ? { steps: o.steps } : undefined), {}, '--recipe');
        const gateRules = parseCliArgs(GateRules, mergeDeep(DEFAULT_GATE_RULES, o.gate), {}, '--gate');
        const spec = LineSpec.parse({
          name,
          kind: o.kind,
          ...(o.foundation ? { foundation: o.foundation } : {}),
          modelConfig,
          recipe,
          gateRules,
          promotion: { ...DEFAULT_PROMOTION, canaryWindow: o.canaryWindow, requireApproval: Boolean(o.requireApproval) },
        });
        const limits = parseCliArgs(StoredLineLimits, mergeDeep({}, o.limits), {}, '--limits');
        checkWithinLimits(name, spec.kind, spec.recipe, limits, spec.modelConfig);
        const created = await registry.ensureLine({ ...spec, foundationLine: spec.foundation, limits, actor: o.actor });
        output(o.json, created, () => {
          console.log(`line ${name} (${spec.kind}${spec.foundation ? ` on ${spec.foundation}` : ''}) is ready`);
          // What the line will run with, as stored: an existing line keeps the rules it was created with.
          const kept = !isDeepStrictEqual([created.recipe, created.gateRules], [spec.recipe, spec.gateRules]);
          if (kept) console.log('  (it already existed: its stored recipe and gate rules were kept, not the ones given)');
          console.log(formatRules(created.gateRules as GateRules, created.recipe as Recipe, limitsOf(created)));
        });
      } finally {
        await close();
      }
    });
  line
    .command('upgrade-policy <name> <policy>')
    .description('what a new stable version of its foundation does to an application line: auto (upgrade by itself), manual (perennial upgrade), off')
    .option('--reason <text>', 'why (audited)', 'upgrade policy set')
    .option('--actor <name>', 'who sets it', process.env.USER ?? 'operator')
    .option('--json', 'print the line as JSON')
    .action(async (name: string, policy: string, o) => {
      if (policy !== 'auto' && policy !== 'manual' && policy !== 'off')
        throw new UserError(`upgrade policy is auto, manual or off; got ${JSON.stringify(policy)}`, 2);
      const { registry, close } = openRegistry();
      try {
        const current = await registry.getLine(name).catch(() => {
          throw new UserError(`line ${name} does not exist`);
        });
        if (current.kind !== 'application') throw new UserError(`${name} is a foundation line; an upgrade policy is for application lines`);
        const updated = await registry.updateLine({ name, upgradePolicy: policy, actor: o.actor, reason: o.reason });
        output(o.json, updated, () => console.log(`${name}: upgrade policy ${current.upgradePolicy} -> ${updated.upgradePolicy}`));
      } finally {
        await close();
      }
    });

  line
    .command('recipe <name> <recipe>')
    .description("change a line's recipe: auto (search the cheapest passing recipe each cycle), fixed (train with it as is), or JSON fields to override")
    .option('--search-budget <flops>', 'with auto: training FLOPs for all trials of one cycle')
    .option('--reason <text>', 'why (audited)', 'recipe changed')
    .option('--actor <name>', 'who changes it', process.env.USER ?? 'operator')
    .option('--json', 'print the line as JSON')
    .action(async (name: string, value: string, o) => {
      parseCliArgs(CliArgs.line, { line: name }, { line: '<name>' });
      const override = value === 'fixed' ? { search: null } : parseCliArgs(CliArgs.drop.shape.recipe, autoRecipeArg(value, o.searchBudget), {}, '<recipe>');
      const { registry, close } = openRegistry();
      try {
        const current = await registry.getLine(name).catch(() => {
          throw new UserError(`line ${name} does not exist`);
        });
        const recipe = parseCliArgs(Recipe, mergeDeep(current.recipe, override), {}, '<recipe>');
        checkWithinLimits(name, current.kind, recipe, current.limits as StoredLineLimits, current.modelConfig as unknown as ModelConfig);
        const updated = await registry.updateLine({ name, recipe, actor: o.actor, reason: o.reason });
        output(o.json, updated, () => console.log(`${name}: ${formatRules(updated.gateRules as GateRules, updated.recipe as Recipe, limitsOf(updated))}`));
      } finally {
        await close();
      }
    });

  line
    .command('limits <name> [limits]')
    .description(
      `show a line's limits on what one cycle may spend, or set some: JSON like {"maxSteps":2000} (null takes one back to its default); a drop's recipe may only move within them`,
    )
    .option('--reason <text>', 'why (audited)', 'limits changed')
    .option('--actor <name>', 'who changes them', process.env.USER ?? 'operator')
    .option('--json', 'print the line as JSON')
    .action(async (name: string, value: string | undefined, o) => {
      parseCliArgs(CliArgs.line, { line: name }, { line: '<name>' });
      const override = value === undefined ? undefined : parseCliArgs(CliJson.pipe(LineLimitsOverride), value, {}, '<limits>');
      const { registry, close } = openRegistry();
      try {
        const current = await registry.getLine(name).catch(() => {
          throw new UserError(`line ${name} does not exist`);
        });
        let line = current;
        if (override) {
          const limits = parseCliArgs(StoredLineLimits, mergeDeep(current.limits, override), {}, '<limits>');
          checkWithinLimits(name, current.kind, current.recipe as Recipe, limits, current.modelConfig as unknown as ModelConfig);
          line = await registry.updateLine({ name, limits, actor: o.actor, reason: o.reason });
        }
        output(o.json, { ...line, effectiveLimits: limitsOf(line) }, () => console.log(`${name}: ${formatLimits(limitsOf(line), line.limits as StoredLineLimits)}`));
      } finally {
        await close();
      }
    });

  line
    .command('show <name>')
    .description("show a line's gate rules, recipe and limits")
    .option('--json', 'print the line as JSON')
    .action(async (name: string, o) => {
      parseCliArgs(CliArgs.line, { line: name }, { line: '<name>' });
      const { registry, close } = openRegistry();
      try {
        const line = await registry.getLine(name).catch(() => {
          throw new UserError(`line ${name} does not exist`);
        });
        output(o.json, { ...line, effectiveLimits: limitsOf(line) }, () =>
          console.log(
            `line ${name} (${line.kind}${line.foundationLine ? ` on ${line.foundationLine}` : ''})\n${formatRules(line.gateRules as GateRules, line.recipe as Recipe, limitsOf(line), line.limits as StoredLineLimits)}`,
          ),
        );
      } finally {
        await close();
      }
    });

  line
    .command('gate <name> <json>')
    .description('change a line\'s gate rules: JSON fields to override, e.g. {"allowFeedbackWithoutGold":true} or {"maxRegression":{"loss":0.02}}')
    .option('--reason <text>', 'why (audited)', 'gate rules changed')
    .option('--actor <name>', 'who changes them', process.env.USER ?? 'operator')
    .option('--json', 'print the line as JSON')
    .action(async (name: string, value: string, o) => {
      parseCliArgs(CliArgs.line, { line: name }, { line: '<name>' });
      const override = parseCliArgs(CliArgs.lineCreate.shape.gate, value, {}, '<json>');
      const { registry, close } = openRegistry();
      try {
        const current = await registry.getLine(name).catch(() => {
          throw new UserError(`line ${name} does not exist`);
        });
        const gateRules = parseCliArgs(GateRules, mergeDeep(current.gateRules, override), {}, '<json>');
        const updated = await registry.updateLine({ name, gateRules, actor: o.actor, reason: o.reason });
        output(o.json, updated, () => console.log(`${name}: ${formatRules(updated.gateRules as GateRules, updated.recipe as Recipe)}`));
      } finally {
        await close();
      }
    });

  line
    .command('list')
    .description('list model lines with their channels')
    .option('--json', 'print JSON')
    .action(async (o) => {
      const { registry, close } = openRegistry();
      try {
        const lines = await registry.listLines();
        const withChannels = await Promise.all(lines.map(async (l) => ({ ...l, channels: await registry.getChannels(l.name) })));
        output(o.json, withChannels, () => {
          if (!lines.length) console.log('no lines yet: perennial line create <name> --kind foundation');
          for (const l of withChannels) {
            const ch = l.channels.map((c) => `${c.channel}=${c.version}`).join(' ') || 'no releases';
            console.log(`${l.name.padEnd(20)} ${l.kind.padEnd(12)} ${(l.foundationLine ?? '').padEnd(12)} ${ch}`);
          }
        });
      } finally {
        await close();
      }
    });
}

/** Training FLOPs of one sequence (batch 1) of a model of `config`: what the FLOPs limit scales by. */
const flopsPerSample = (config: ModelConfig) => config.context * flopsPerToken(config);

/** The limits a stored line runs under (those set on it, the rest its defaults). */
export function limitsOf(line: { recipe: unknown; limits: unknown; modelConfig: unknown }): LineLimits {
  return effectiveLimits(line.limits as StoredLineLimits, line.recipe as Recipe, flopsPerSample(line.modelConfig as ModelConfig));
}

/** A line's own recipe (and its transfer's) must fit the limits it is given, or no cycle could run. */
function checkWithinLimits(name: string, kind: string, recipe: Recipe, stored: StoredLineLimits, config: ModelConfig): void {
  const limits = effectiveLimits(stored, recipe, flopsPerSample(config));
  // Only an application line is transferred onto a new foundation version.
  const transfer = kind === 'application' ? [{ ...recipe, steps: recipe.steps * TRANSFER_STEPS_FACTOR, ...recipe.transfer }] : [];
  const f = { flopsPerSample: flopsPerSample(config) };
  const problems = [
    ...limitProblems(recipe, limits, f),
    ...transfer.flatMap((t) => limitProblems(t, limits, { ...f, search: false }).map((p) => `a transfer's ${p}`)),
    // The line's own RL fields, where it sets any, are what its feedback cycles start from.
    ...(recipe.rl ? rlLimitProblems(recipe.rl, limits, f) : []),
  ];
  if (problems.length) throw new UserError(`line ${name}'s recipe is outside its limits: ${problems.join('; ')}`, 2);
}

/** A line's limits, one a line, each marked set or default. */
export function formatLimits(limits: LineLimits, set: StoredLineLimits = {}): string {
  const words: Record<keyof LineLimits, string> = {
    maxSteps: 'steps of one training run',
    maxBatchSize: 'batch size',
    maxFlopsPerCycle: "training FLOPs of one cycle (its training, or its search's budget)",
    keepCheckpoints: 'checkpoints of a run kept (the newest)',
    minCheckpointEvery: 'fewest steps between checkpoints',
    maxReplayBudget: 'records in the replay buffer',
    maxRlSteps: "steps of a feedback cycle's RL update",
    maxRlSamplesPerStep: 'answers the RL update samples a step (prompts x samples)',
    maxRlTokens: 'tokens of one sampled answer',
  };
  return [
    "limits (a drop's recipe may only move within them):",
    ...(Object.keys(words) as (keyof LineLimits)[]).map((k) => {
      const v = k === 'maxFlopsPerCycle' ? limits[k].toExponential(2) : String(limits[k]);
      return `  ${k.padEnd(19)} ${v.padEnd(10)} ${words[k]}${set[k] === undefined ? ' (default)' : ''}`;
    }),
  ].join('\n');
}

/** The effective gate rules and recipe of a line, one rule kind per line; with `limits`, those too. */
/** A recipe value in words; a nested one (the transfer's recipe) as {field value, ...}, not "[object Object]". */
const words = (v: unknown): string =>
  typeof v === 'object' && v !== null
    ? `{${Object.entries(v)
        .map(([k, x]) => `${k} ${words(x)}`)
        .join(', ')}}`
    : String(v);

export function formatRules(rules: GateRules, recipe: Recipe, limits?: LineLimits, set?: StoredLineLimits): string {
  const bounds = (t: { loss?: number; exactMatch?: number } | undefined) =>
    Object.entries(t ?? {})
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || '(none)';
  const out = [
    'gate rules:',
    `  floors          ${bounds(rules.floors).padEnd(28)}(loss at most, exact match at least)`,
    `  maxRegression   ${bounds(rules.maxRegression).padEnd(28)}(loss: fraction it may rise; exact match: points it may fall)`,
    `  minImprovement  ${bounds(rules.minImprovement).padEnd(28)}(what the new drop's suites must gain)`,
  ];
  for (const [suite, o] of Object.entries(rules.suites ?? {}))
    out.push(`  suite ${suite}: floors ${bounds(o.floors)}; maxRegression ${bounds(o.maxRegression)}`);
  out.push(
    rules.allowFeedbackWithoutGold
      ? '  feedback gold   optional (allowFeedbackWithoutGold: a run without one is recorded "no gold check")'
      : '  feedback gold   required on every verifier prompt (the reward-hacking guard compares the reward with it)',
  );
  out.push(
    // In the schema's order (a stored recipe comes back from jsonb with its keys reordered).
    `recipe: ${Object.keys(Recipe.shape)
      .filter((k) => k in recipe && k !== 'search')
      .map((k) => `${k} ${words(recipe[k as keyof Recipe])}`)
      .join(', ')}`,
  );
  if (recipe.search)
    out.push(
      `recipe search: auto (${describeSearch(recipe.search)}): each cycle searches the cheapest recipe that passes the gate, starting from the recipe above`,
    );
  if (limits) out.push(formatLimits(limits, set));
  return out.join('\n');
}

/** Recipe `auto`'s settings in words, with the defaults the search applies to those not set (schemas/io.ts RecipeSearch). */
export function describeSearch(search: NonNullable<Recipe['search']>): string {
  return [
    search.budgetFlops !== undefined
      ? `budget ${search.budgetFlops.toExponential(2)} training FLOPs`
      : `budget ${search.budgetFactor ?? SEARCH_BUDGET}x the recipe's training FLOPs`,
    search.budgetWallMs === undefined ? 'no wall-time limit' : `at most ${search.budgetWallMs} ms`,
    `${search.width ?? 4} trials in the first bracket`,
    `margin ${search.margin ?? 0}`,
    search.repair === false ? 'no repair of an update that forgot' : 'an update that forgot tried again with more replay',
    stopEarlyWords(search.stopEarly),
  ].join(', ');
}

/** search.stopEarly in words, defaults included. */
function stopEarlyWords(s: NonNullable<Recipe['search']>['stopEarly']): string {
  if (s === false) return 'no early stop';
  if (s === true || s === undefined) s = {};
  const at = (s.at ?? STOP_EARLY.at).map((f) => `${+(f * 100).toFixed(1)}%`).join(', ');
  return `an update judged at ${at} of its horizon and stopped when below every passing one of the line's record (at least ${s.minPassing ?? STOP_EARLY.minPassing}) by more than ${s.slack ?? STOP_EARLY.slack}`;
}

/** `--recipe auto` as the JSON override it stands for (with `--search-budget`), any other value as given. */
export function autoRecipeArg(value: string | undefined, budget: string | undefined): string | undefined {
  if (budget !== undefined && value !== 'auto') throw new UserError('--search-budget goes with --recipe auto', 2);
  if (value !== 'auto') return value;
  if (budget === undefined) return JSON.stringify({ search: {} });
  const times = /^\s*(.+?)\s*x\s*$/i.exec(budget);
  const n = Number(times ? times[1] : budget);
  if (!Number.isFinite(n) || n <= 0 || (times && n > 100))
    throw new UserError(
      `--search-budget is a positive number of FLOPs, like 2e12, or a multiple of the recipe's training FLOPs up to 100, like 2x; got ${JSON.stringify(budget)}`,
      2,
    );
  return JSON.stringify({ search: times ? { budgetFactor: n } : { budgetFlops: n } });
}
