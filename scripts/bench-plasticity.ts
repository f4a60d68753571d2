/**
 * The plasticity benchmark: `npm run bench:plasticity -- [--quick] [--drops N] [--json]`. Trains one model
 * through a long stream of drops (bench/scenario.ts catalogues) under four strategies, measuring after every
 * drop the version's plasticity record (model/plasticity.ts: probe reach against a fresh model, dormant units,
 * weight-norm growth, effective rank), and the held-out loss of every drop learned so far:
 * - naive: continue training on each drop alone at a high constant learning rate, no weight decay, no replay
 *   (the setting most prone to lose plasticity: weights only grow);
 * - default: the product's default recipe (replay, L2 pull toward the parent, re-warming, weight decay);
 * - default+interventions: the default recipe with plasticityFloor 0.95: when the last version measured below
 *   it, the next drop starts from shrunk-and-perturbed, dormant-reset weights and trains with an L2 pull toward the
 *   initial weights and a re-warmed learning rate (what the cycle does);
 * - naive+interventions: naive fine-tuning with the same floor, i.e. the defence where erosion does happen.
 * Without --json it prints the table and a text chart of plasticity per drop (bench/chart.ts) to stdout.
 * Prints one JSON object with `drops`, `strategies: {name: {plasticity, dormantFraction, weightNormGrowth,
 * effectiveRank, bwt, finalQuality}}` after the last drop, and `series` per drop.
 */
import { initBackend } from '../model/backend.ts';
import { preset } from '../model/config.ts';
import { evaluateLoss } from '../model/evaluate.ts';
import { type PlasticityRecord, DEFAULT_PROBE_BUDGET, applyInterventions, measurePlasticity, probeLearning } from '../model/plasticity.ts';
import { type Source } from '../model/data.ts';
import { trainModel } from '../model/train.ts';
import { LanguageModel, initWeights } from '../model/transformer.ts';
import type { Weights } from '../model/weights.ts';
import { lineChart } from '../bench/chart.ts';
import { streamScenario } from '../bench/scenario.ts';
import { dropFromBytes } from '../bench/stream.ts';
import { interventionRecipe, planInterventions } from '../workflows/gate.ts';
import { DEFAULT_RECIPE } from '../schemas/defaults.ts';
import { scriptArgs } from '../bench/args.ts';

const { values: args } = scriptArgs('bench:plasticity', { options: { quick: { type: 'boolean' }, drops: { type: 'string' }, json: { type: 'boolean' } } });
const quick = args.quick ?? false;
const dropCount = Number(args.drops ?? (quick ? 8 : 50));
const steps = quick ? 60 : 200;
const config = preset('tiny', { context: 64 });
const INIT_SEED = 1;
const FLOOR = 0.95;

interface Strategy {
  name: string;
  learningRate: number;
  minLearningRate: number;
  weightDecay: number;
  replayRatio: number;
  l2Pull: number;
  rewarm: boolean;
  floor?: number;
}
const STRATEGIES: Strategy[] = [
  { name: 'naive', learningRate: 1e-2, minLearningRate: 1e-2, weightDecay: 0, replayRatio: 0, l2Pull: 0, rewarm: false },
  { name: 'default', ...pick(DEFAULT_RECIPE) },
  { name: 'default+interventions', ...pick(DEFAULT_RECIPE), floor: FLOOR },
  { name: 'naive+interventions', learningRate: 1e-2, minLearningRate: 1e-2, weightDecay: 0, replayRatio: 0, l2Pull: 0, rewarm: false, floor: FLOOR },
];
const MARKS: Record<string, string> = { naive: 'n', default: 'd', 'default+interventions': 'D', 'naive+interventions': 'N' };
function pick(r: typeof DEFAULT_RECIPE) {
  return {
    learningRate: r.learningRate,
    minLearningRate: r.minLearningRate,
    weightDecay: r.weightDecay,
    replayRatio: r.replayRatio,
    l2Pull: r.l2Pull,
    rewarm: r.rewarm,
  };
}

const scenario = streamScenario(7, { drops: dropCount, productsPerDrop: 4, paragraphs: 4, withLoad: 'none' });
const drops = scenario.drops.map((d) => dropFromBytes(new TextEncoder().encode(d.content), d.name));
const loss = (weights: Weights, docs: string[]) => {
  const model = LanguageModel.create(config, weights);
  try {
    return evaluateLoss(model, docs).meanLoss;
  } finally {
    model.dispose();
  }
};

await initBackend();
const budget = DEFAULT_PROBE_BUDGET;
const reference = await probeLearning(config, initWeights(config, INIT_SEED), budget);
const result: Record<string, unknown> = { drops: dropCount, steps, config, probeBudget: budget, floor: FLOOR, strategies: {}, series: {} };
for (const s of STRATEGIES) {
  let weights = initWeights(config, INIT_SEED);
  let last: PlasticityRecord | undefined;
  const learned: number[] = [];
  const series: { drop: number; plasticity: number; dormantFraction: number; weightNormGrowth: number; effectiveRank: number; interventions: string[] }[] = [];
  for (let i = 0; i < drops.length; i++) {
    const drop = drops[i]!;
    const interventions = s.floor !== undefined ? planInterventions(s.floor, last?.ratio) : [];
    const parent = weights;
    const start = interventions.length ? applyInterventions(config, weights, interventions, 100 + i).weights : weights;
    // The training side of the interventions, as the cycle applies it: the pull toward the initial weights, re-warming.
    const r: { l2Pull: number; rewarm: boolean; l2Anchor?: 'parent' | 'init' } = interventionRecipe({ l2Pull: s.l2Pull, rewarm: s.rewarm && i > 0 }, interventions);
    const replay = drops.slice(0, i).flatMap((d) => d.train);
    const sources: Source[] = [{ name: 'drop', weight: 1 - (replay.length ? s.replayRatio : 0), docs: drop.train }];
    if (replay.length && s.replayRatio > 0) sources.push({ name: 'replay', weight: s.replayRatio, docs: replay });
    const trained = await trainModel({
      config,
      init: start,
      ...(r.l2Pull > 0 ? { reference: r.l2Anchor === 'init' ? initWeights(config, INIT_SEED) : parent } : {}),
      sources,
      recipe: {
        steps,
        batchSize: 8,
        learningRate: s.learningRate,
        minLearningRate: s.minLearningRate,
        warmupSteps: Math.round(steps / 10),
        rewarm: r.rewarm,
        weightDecay: s.weightDecay,
        gradClip: 1,
        l2Pull: r.l2Pull,
        seed: 1 + i,
      },
    });
    weights = trained.weights;
    learned.push(loss(weights, drop.heldOut));
    last = await measurePlasticity(config, weights, { initSeed: INIT_SEED, budget, reference, initial: initWeights(config, INIT_SEED) });
    series.push({
      drop: i + 1,
      plasticity: last.ratio,
      dormantFraction: last.dormantFraction,
      weightNormGrowth: last.weightNormGrowth,
      effectiveRank: last.effectiveRank,
      interventions,
    });
    if (!args.json)
      console.error(
        `${s.name} drop ${i + 1}/${drops.length}: plasticity ${last.ratio.toFixed(3)}${interventions.length ? ` (after ${interventions.join(', ')})` : ''}`,
      );
  }
  const final = drops.map((d) => loss(weights, d.heldOut));
  // Backward transfer on loss: mean over earlier drops of (loss right after learning it - loss at the end); negative is forgetting.
  const bwt = drops.length > 1 ? final.slice(0, -1).reduce((a, l, i) => a + (learned[i]! - l), 0) / (drops.length - 1) : 0;
  (result.strategies as Record<string, unknown>)[s.name] = {
    plasticity: last!.ratio,
    dormantFraction: last!.dormantFraction,
    weightNormGrowth: last!.weightNormGrowth,
    effectiveRank: last!.effectiveRank,
    bwt,
    finalQuality: final.reduce((a, b) => a + b, 0) / final.length,
  };
  (result.series as Record<string, unknown>)[s.name] = series;
}
if (args.json) console.log(JSON.stringify(result, null, 2));
else {
  console.table(result.strategies);
  const series = result.series as Record<string, { plasticity: number; interventions: string[] }[]>;
  console.log('plasticity per drop (ratio against a fresh model):');
  console.log(
    lineChart(
      STRATEGIES.map((s) => ({ mark: MARKS[s.name]!, name: s.name, values: series[s.name]!.map((p) => p.plasticity) })),
      { reference: 1 },
    ),
  );
  for (const s of STRATEGIES) {
    const at = series[s.name]!.flatMap((p, i) => (p.interventions.length ? [i + 1] : []));
    if (s.floor !== undefined) console.log(`${s.name}: interventions before drop ${at.length ? at.join(', ') : '(none: never below the floor)'}`);
  }
}
