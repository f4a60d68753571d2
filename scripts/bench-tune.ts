/**
 * `npm run bench:tune -- [--quick] [--json]` (issue 15): over a stream of drops from the learning benchmark's
 * generator, the default recipe against recipe `auto` (the loop's recipe search), each judged by the release gate
 * with the default gate rules on its own chain of versions. Prints one JSON object with --json.
 */
import { initBackendInfo } from '../model/backend.ts';
import { preset } from '../model/config.ts';
import { trainModel } from '../model/train.ts';
import { initWeights } from '../model/transformer.ts';
import { dropFromBytes } from '../bench/index.ts';
import { streamScenario } from '../bench/scenario.ts';
import { runTune } from '../bench/tune.ts';
import { DEFAULT_GATE_RULES } from '../schemas/defaults.ts';
import { GateRules, GateRulesOverride, mergeDeep } from '../schemas/io.ts';
import { evaluateGate } from '../workflows/gate.ts';
import type { GateSuite, Metrics } from '../schemas/contracts/gate.ts';
import { scriptArgs } from '../bench/args.ts';
import { SEARCH_BUDGET, STOP_EARLY } from '../domain/recipe-search.ts';

/** The seed of the first line's stream of drops. */
const STREAM_SEED = 7;
const { values: args } = scriptArgs('bench:tune', {
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    k: { type: 'string' },
    budget: { type: 'string', default: String(SEARCH_BUDGET) },
    width: { type: 'string', default: '4' },
    margin: { type: 'string', default: '0' },
    gate: { type: 'string' },
    fixed: { type: 'string' },
    sizes: { type: 'string' },
    curve: { type: 'string' },
    sibling: { type: 'string' },
    replay: { type: 'string' },
    l2: { type: 'string' },
    'stop-early': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(
    `npm run bench:tune -- [--quick] [--json] [--k N drops (default 10)] [--budget F (search budget, x the default recipe's FLOPs, as search.budgetFactor; default ${SEARCH_BUDGET})] [--width N] [--margin M (the least gate margin a trial needs, default 0)] [--gate JSON (gate rules over the defaults)] [--fixed N[@B][,N[@B]] (also the default recipe at N steps, at batch size B if given, each on its own chain)] [--sizes N[,N] (products per catalogue drop, cycled; default 3 quick, 8 full)] [--curve N (also judge the default recipe's update every N steps: its gate margin over the horizon)] [--sibling SEED (then a second line on the same foundation, the stream of SEED: auto without and with the first line's chosen recipes as its warm start)] [--replay R (the recipe's replay ratio, default 0.5)] [--l2 L (its L2 pull, default 1e-3)] [--stop-early SLACK|off (auto stops an update below every passing one of its record by more than SLACK, as the loop's search.stopEarly; default ${STOP_EARLY.slack})]`,
  );
  process.exit(0);
}
// --gate: gate rules laid over the defaults (as `perennial line create --gate`), e.g. for the tiny model.
const rules = GateRules.parse(mergeDeep(DEFAULT_GATE_RULES, args.gate ? GateRulesOverride.parse(JSON.parse(args.gate)) : undefined));
const log = (s: string) => process.stderr.write(`${s}\n`);
const started = performance.now();
const backend = await initBackendInfo();
const quick = args.quick;
const k = Number(args.k ?? 10);
const margin = Number(args.margin);
const refuse = (line: string): never => {
  process.stderr.write(`bench:tune: ${line}\n`);
  process.exit(2);
};
if (!Number.isInteger(k) || k < 1) refuse(`--k is a whole number of drops, got ${args.k}`);
if (!Number.isFinite(margin)) refuse(`--margin is a number (a gate margin, e.g. 0.01), got ${args.margin}`);
/** A comma-separated list of whole numbers >= 1, or a one-line refusal naming the flag. */
const counts = (flag: string, value: string | undefined, fallback: number[], what: string): number[] => {
  const list = value === undefined ? fallback : value.split(',').map(Number);
  if (list.some((n) => !Number.isInteger(n) || n < 1)) refuse(`--${flag} is a comma-separated list of ${what}, got ${value}`);
  return list;
};
// `--fixed 150,300@8`: the default recipe at 150 steps, and at 300 steps with batches of 8.
const fixed = (args.fixed === undefined ? [] : args.fixed.split(',')).map((entry) => {
  const m = /^(\d+)(?:@(\d+))?$/.exec(entry);
  if (!m || Number(m[1]) < 1 || (m[2] !== undefined && Number(m[2]) < 1))
    refuse(`--fixed is a comma-separated list of step counts, each optionally @ a batch size, e.g. 150 or 60,300@8, got ${args.fixed}`);
  return m![2] === undefined ? Number(m![1]) : { steps: Number(m![1]), batchSize: Number(m![2]) };
});
const curve = args.curve === undefined ? 0 : Number(args.curve);
if (args.curve !== undefined && (!Number.isInteger(curve) || curve < 1)) refuse(`--curve is a whole number of steps, e.g. 25, got ${args.curve}`);
const sibling = args.sibling === undefined ? undefined : Number(args.sibling);
if (sibling !== undefined && (!Number.isInteger(sibling) || sibling === STREAM_SEED))
  refuse(`--sibling is a whole-number stream seed other than ${STREAM_SEED} (the first line's), got ${args.sibling}`);
const sizes = counts('sizes', args.sizes, [quick ? 3 : 8], 'products per catalogue drop, e.g. 1,8,2');
const config = quick ? preset('tiny', { context: 64 }) : preset('small');
const recipe = quick
  ? { steps: 120, batchSize: 16, learningRate: 2e-2, minLearningRate: 2e-3, warmupSteps: 10, weightDecay: 0.01, gradClip: 1 }
  : { steps: 300, batchSize: 16, learningRate: 1e-2, minLearningRate: 1e-3, warmupSteps: 20, weightDecay: 0.01, gradClip: 1 };
const replayRatio = args.replay === undefined ? 0.5 : Number(args.replay);
if (!(replayRatio >= 0 && replayRatio < 1)) refuse(`--replay is a replay ratio in [0, 1), e.g. 0.8, got ${args.replay}`);
const l2Pull = args.l2 === undefined ? 1e-3 : Number(args.l2);
if (!(l2Pull >= 0)) refuse(`--l2 is an L2 pull >= 0, e.g. 1e-2, got ${args.l2}`);
const knobs = { replayRatio, replayBudget: 5000, l2Pull };
const budgetFactor = Number(args.budget);
if (!(budgetFactor > 0)) refuse(`--budget is the search budget as a positive multiple of the default recipe's FLOPs, e.g. 2, got ${args.budget}`);
const slack = args['stop-early'] === undefined ? STOP_EARLY.slack : args['stop-early'] === 'off' ? null : Number(args['stop-early']);
if (slack !== null && !(slack >= 0)) refuse(`--stop-early is a slack >= 0 (gate-margin units, e.g. 0.2) or off, got ${args['stop-early']}`);
const stopEarly = slack === null ? undefined : { at: [...STOP_EARLY.at], minPassing: STOP_EARLY.minPassing, slack };
/** The stream of drops of seed `seed` (the first line's is STREAM_SEED), shaped by the flags. */
const streamOf = (seed: number) =>
  streamScenario(seed, { drops: k, productsPerDrop: sizes, paragraphs: quick ? 40 : 240, regulationAt: Math.min(k, 7), faqAt: Math.min(k, 5) });
const s = streamOf(STREAM_SEED);
const read = (d: { name: string; content: string }) => dropFromBytes(new TextEncoder().encode(d.content), d.name);
const base = read(s.base);
const drops = s.drops.map(read);
log(`backend ${backend.label}; training the starting model on ${base.name}`);
const start = (
  await trainModel({
    config,
    init: initWeights(config, 1),
    sources: [{ name: 'drop', weight: 1, docs: base.train }],
    recipe: {
      steps: quick ? 150 : 300,
      batchSize: 16,
      learningRate: quick ? 1e-2 : 4e-3,
      minLearningRate: quick ? 1e-3 : 3e-4,
      warmupSteps: 15,
      weightDecay: 0.01,
      gradClip: 1,
      l2Pull: 0,
      seed: 1,
    },
  })
).weights;
/** The mean margin over passing drops; none passed: no mean (NaN in the result, null in its JSON). */
const marginText = (m: number) => (Number.isFinite(m) ? m.toFixed(4) : '- (no drop passed)');
const common = {
  config,
  start,
  base,
  recipe,
  knobs,
  budgetFactor,
  width: Number(args.width),
  margin,
  ...(stopEarly ? { stopEarly } : {}),
  gate: (suites: GateSuite[], candidate: Record<string, Metrics>, champion: Record<string, Metrics>) => evaluateGate({ rules, suites, candidate, champion }),
  log,
};
const result = await runTune({ ...common, drops, fixed, ...(curve ? { curve } : {}) });
// A second line on the same foundation (the same starting model and general text), with drops of another seed:
// its auto arm cold (no history: the search a new line paid before) and warm (the first line's chosen recipes,
// as the loop's search starts a new line beside settled ones).
const siblingResult = sibling === undefined ? undefined : await siblingRun(sibling);
async function siblingRun(seed: number) {
  const siblingDrops = streamOf(seed).drops.map(read);
  log(`sibling line: stream seed ${seed}, cold`);
  const cold = await runTune({ ...common, drops: siblingDrops });
  log(`sibling line: stream seed ${seed}, warm from the first line's ${result.chosen.length} chosen recipe(s)`);
  const warm = await runTune({ ...common, drops: siblingDrops, history: result.chosen });
  const arm = (r: typeof cold) => ({
    autoFlops: r.autoFlops,
    ratio: r.ratio,
    passedAuto: r.passedAuto,
    gateMarginAuto: r.gateMarginAuto,
    gateMarginBoth: r.gateMarginBoth,
    firstDropAutoFlops: r.perDrop[0]!.autoFlops,
    firstDropTrials: r.perDrop[0]!.autoTrials,
  });
  return {
    seed,
    defaultFlops: cold.defaultFlops,
    passedDefault: cold.passedDefault,
    gateMarginDefault: cold.gateMarginDefault,
    cold: arm(cold),
    warm: arm(warm),
  };
}
const out = {
  preset: quick ? 'quick' : 'full',
  productsPerDrop: sizes,
  backend: backend.label,
  gateRules: rules,
  knobs,
  budgetFactor,
  stopEarly: stopEarly ?? null,
  ...result,
  ...(siblingResult ? { sibling: siblingResult } : {}),
  elapsedMs: Math.round(performance.now() - started),
};
if (args.json) process.stdout.write(JSON.stringify(out) + '\n');
else {
  console.log(
    `default: ${result.passedDefault}/${result.drops} drops passed, ${result.defaultFlops.toExponential(3)} FLOPs, mean gate margin ${marginText(result.gateMarginDefault)}`,
  );
  console.log(
    `auto:    ${result.passedAuto}/${result.drops} drops passed, ${result.autoFlops.toExponential(3)} FLOPs (every trial), mean gate margin ${marginText(result.gateMarginAuto)}`,
  );
  const both = result.gateMarginBoth;
  console.log(
    `on the ${both.drops} drop(s) both passed: mean gate margin default ${marginText(both.default)}, auto ${marginText(both.auto)}; auto narrower on ${both.narrower}`,
  );
  console.log(`ratio autoFlops / defaultFlops = ${result.ratio.toFixed(3)}`);
  console.log(
    `with judging counted (forward passes over the gate's suites): default ${result.defaultEvalFlops.toExponential(3)}, auto ${result.autoEvalFlops.toExponential(3)} FLOPs; ratio ${result.ratioWithEval.toFixed(3)}`,
  );
  const stoppedEarly = result.perDrop.filter((p) => p.autoStoppedAt !== null);
  if (stoppedEarly.length) console.log(`auto stopped as hopeless: ${stoppedEarly.map((p) => `${p.drop} at step ${p.autoStoppedAt}`).join(', ')}`);
  for (const f of result.fixed)
    console.log(
      `fixed ${f.steps} steps${f.batchSize === recipe.batchSize ? '' : ` at batch ${f.batchSize}`}: ${f.passed}/${result.drops} drops passed, ${f.flops.toExponential(3)} FLOPs (ratio ${f.ratio.toFixed(3)}), mean gate margin ${marginText(f.gateMargin)}`,
    );
  const sib = siblingResult;
  if (sib) {
    console.log(`sibling line (stream seed ${sib.seed}): default ${sib.passedDefault}/${result.drops} passed, ${sib.defaultFlops.toExponential(3)} FLOPs`);
    for (const [name, a] of [
      ['cold', sib.cold],
      ['warm', sib.warm],
    ] as const)
      console.log(
        `  auto ${name}: ${a.passedAuto}/${result.drops} passed, ratio ${a.ratio.toFixed(3)}, first drop ${a.firstDropTrials} segment(s) ${a.firstDropAutoFlops.toExponential(3)} FLOPs, mean gate margin ${marginText(a.gateMarginAuto)}`,
      );
  }
  const c = result.curve;
  if (c) {
    console.log(`default recipe's gate margin every ${c.every} steps:`);
    // A step whose update passes the gate is starred.
    for (const d of c.perDrop)
      console.log(
        `  ${d.drop} ${d.pass ? 'pass' : 'fail'}${d.firstPassAt === null ? '' : ` (first passes at ${d.firstPassAt})`}: ${d.margins.map((m) => `${m.step}:${m.margin.toFixed(3)}${m.pass ? '*' : ''}`).join(' ')}`,
      );
    console.log(
      c.separatedAt === null
        ? '  passing and failing updates do not separate before the end (or all drops went one way)'
        : `  passing and failing updates separate at step ${c.separatedAt}; stopping every failing one there would give a ratio of ${c.ratioIfStoppedThere!.toFixed(3)}`,
    );
  }
}
