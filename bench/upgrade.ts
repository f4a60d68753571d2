/**
 * The foundation-upgrade benchmark as a library: a foundation, application lines fine-tuned on it with their own
 * drops, then new foundation versions (the same model trained further, and one of another shape trained from
 * scratch); for every line and new foundation, what each way of moving the line onto it keeps and gains:
 *
 * - `keep`: the old application model stays (the baseline every ratio is taken against);
 * - `naive`: the new foundation fine-tuned on the line's own drops, as an operator would by hand;
 * - `transfer`: the product's transfer (activities/train.ts): the new foundation trained on the line's replay
 *   buffer (its drops and the foundation's data, one equal share each) with distillation from the old application
 *   model at the recipe's temperature and weight, for the line's step budget.
 *
 * All of it runs in-process on model/ (no stack): the same trainer, evaluator and byte tokenizer as the loop.
 */
import { flopsPerToken, type ModelConfig } from '../model/config.ts';
import { evaluateLoss, exactMatch } from '../model/evaluate.ts';
import { trainModel, type Recipe, type Source } from '../model/train.ts';
import { LanguageModel, initWeights } from '../model/transformer.ts';
import type { Weights } from '../model/weights.ts';
import { catalogue, faq, generalText, products, rng, type DropRecord } from './scenario.ts';
import { dropFromBytes, type StreamDrop } from './stream.ts';
import { TRANSFER_STEPS_FACTOR } from '../schemas/defaults.ts';

export type UpgradeStrategy = 'keep' | 'naive' | 'transfer';

export interface UpgradeBenchOptions {
  /** The old foundation's shape (application models share it). */
  config: ModelConfig;
  /** The other shape a new foundation version may have. */
  otherConfig: ModelConfig;
  /** Steps of the old foundation from scratch, and of each foundation continuation. */
  foundationSteps: number;
  /** The line's budget: steps of its first fine-tune, and (unless upgradeSteps is set) of every re-fine-tune or transfer. */
  lineSteps: number;
  /** Steps of a re-fine-tune or transfer (default: lineSteps x TRANSFER_STEPS_FACTOR, as the loop's transfers train). */
  upgradeSteps?: number;
  recipe: Omit<Recipe, 'steps' | 'seed'>;
  /** Share of each batch from the foundation's data (the line's replayRatio); the line's own drops get the rest. */
  replayRatio: number;
  seed: number;
  log?: (message: string) => void;
}

export interface ModelScore {
  /** Per suite: loss (text) or exact match (probes). */
  suites: Record<string, number>;
  /** Per probe suite, whether each probe was answered exactly. */
  hits: Record<string, boolean[]>;
}

export interface UpgradeLineResult {
  line: string;
  /** The new foundation version the line moved onto: `further` (same shape, trained further) or `wider` (another shape). */
  foundation: string;
  strategy: UpgradeStrategy;
  /** Worst ratio over the line's own suites of new against old (loss inverted): 1.0 means equal, below 1 is a loss. */
  inheritance: number;
  /** Probes the old model answered exactly and the new one does not, over all the line's probes. */
  negativeFlipRate: number;
  /** Mean loss over the general suites, old application model minus new model: > 0 is a gain. */
  generalGain: number;
  /** generalGain over the new foundation's own gain (old foundation's general loss minus the new one's). */
  generalGainShare: number;
  /** Training FLOPs, a teacher's forward passes included (6N per trained token, 2N per teacher token). */
  flops: number;
  wallMs: number;
  suites: Record<string, number>;
}

export interface UpgradeBenchResult {
  config: ModelConfig;
  otherConfig: ModelConfig;
  foundations: Record<string, { config: ModelConfig; generalLoss: number; generalGainOverOld: number }>;
  lines: UpgradeLineResult[];
  summary: {
    strategy: 'transfer';
    minInheritance: number;
    maxNegativeFlipRate: number;
    minGeneralGainShare: number;
    /** Sum of the transfer's FLOPs over the naive re-fine-tune's. */
    flopsVsNaive: number;
    goals: { minInheritance: boolean; maxNegativeFlipRate: boolean; generalGainShare: boolean };
  };
  /** The same summary for the naive re-fine-tune, for comparison. */
  naive: { minInheritance: number; maxNegativeFlipRate: number; minGeneralGainShare: number };
}

const bytes = (records: DropRecord[]) => new TextEncoder().encode(records.map((r) => JSON.stringify(r)).join('\n') + '\n');
const drop = (name: string, records: DropRecord[]) => dropFromBytes(bytes(records), `${name}.jsonl`);

/** The scenario: two rounds of general text and three application lines with drops of their own. */
export function upgradeScenario(seed: number): { general1: StreamDrop; general2: StreamDrop; lines: { name: string; drops: StreamDrop[] }[] } {
  const r = rng(seed);
  const taken = new Set<string>();
  return {
    general1: drop('general-1', generalText(r, 120)),
    general2: drop('general-2', generalText(rng(seed + 1), 120)),
    lines: [
      { name: 'catalogue', drops: [drop('catalogue-a', catalogue(products(r, 16, taken), false, r))] },
      { name: 'faq', drops: [drop('faq', faq(r))] },
      { name: 'loads', drops: [drop('loads', catalogue(products(r, 10, taken), true, r))] },
    ],
  };
}

function score(config: ModelConfig, weights: Weights, suites: { name: string; texts?: string[]; probes?: { prompt: string; completion: string }[] }[]): ModelScore {
  const model = LanguageModel.create(config, weights);
  const out: ModelScore = { suites: {}, hits: {} };
  try {
    for (const s of suites) {
      if (s.probes) {
        const r = exactMatch(model, s.probes);
        out.suites[s.name] = r.accuracy;
        out.hits[s.name] = r.hits;
      } else out.suites[s.name] = evaluateLoss(model, s.texts!).meanLoss;
    }
  } finally {
    model.dispose();
  }
  return out;
}

/** Runs the benchmark. Deterministic for a given backend. */
export async function runUpgradeBench(opts: UpgradeBenchOptions): Promise<UpgradeBenchResult> {
  const log = opts.log ?? (() => undefined);
  const sc = upgradeScenario(opts.seed);
  const recipe = (steps: number, seed: number): Recipe => ({ ...opts.recipe, steps, seed });
  const train = async (config: ModelConfig, init: Weights, sources: Source[], steps: number, teacher?: { config: ModelConfig; weights: Weights }) => {
    // The distillation fields are for the transfer, as in the loop (activities/train.ts drops them without a teacher).
    const { distillWeight: _w, distillTemperature: _t, ...plain } = recipe(steps, opts.seed);
    const r = await trainModel({ config, init, sources, recipe: teacher ? recipe(steps, opts.seed) : plain, ...(teacher ? { teacher } : {}) });
    const teacherFlops = teacher ? (r.tokens * flopsPerToken(teacher.config)) / 3 : 0;
    return { weights: r.weights, flops: r.flops + teacherFlops, wallMs: r.wallMs };
  };
  const g1: Source = { name: 'general-1', weight: 1, docs: sc.general1.train };
  const g2: Source = { name: 'general-2', weight: 1, docs: sc.general2.train };
  const generalSuites = [
    { name: 'general-1', texts: sc.general1.heldOut },
    { name: 'general-2', texts: sc.general2.heldOut },
  ];
  const generalLoss = (s: ModelScore) => (s.suites['general-1']! + s.suites['general-2']!) / 2;

  log('training the old foundation');
  const f1 = await train(opts.config, initWeights(opts.config, opts.seed), [g1], opts.foundationSteps);
  log('training the new foundation versions: further (same shape) and wider (another shape)');
  const further = await train(opts.config, f1.weights, [g2, { ...g1, weight: 0.5 }], opts.foundationSteps);
  const wider = await train(opts.otherConfig, initWeights(opts.otherConfig, opts.seed + 7), [g1, g2], 2 * opts.foundationSteps);
  const f1General = generalLoss(score(opts.config, f1.weights, generalSuites));
  const foundations = {
    further: { config: opts.config, weights: further.weights },
    wider: { config: opts.otherConfig, weights: wider.weights },
  };
  const foundationInfo: UpgradeBenchResult['foundations'] = {};
  for (const [name, f] of Object.entries(foundations)) {
    const loss = generalLoss(score(f.config, f.weights, generalSuites));
    foundationInfo[name] = { config: f.config, generalLoss: loss, generalGainOverOld: f1General - loss };
  }

  const lines: UpgradeLineResult[] = [];
  for (const line of sc.lines) {
    const own: Source[] = line.drops.map((d) => ({ name: d.name, weight: 1, docs: d.train }));
    type BenchSuite = { name: string; texts?: string[]; probes?: { prompt: string; completion: string }[] };
    const suites: BenchSuite[] = [
      ...line.drops.map((d) => ({ name: `${d.name}`, texts: d.heldOut })),
      ...line.drops.filter((d) => d.probes.length).map((d) => ({ name: `${d.name}-probes`, probes: d.probes })),
    ];
    log(`${line.name}: the application model on the old foundation`);
    // The line's first version as the loop makes it: from the foundation, on its drop with the foundation's data replayed.
    const rr = opts.replayRatio;
    const mine = (share: number) => own.map((o) => ({ ...o, weight: share / own.length }));
    const app = await train(opts.config, f1.weights, [...mine(1 - rr), { ...g1, weight: rr }], opts.lineSteps);
    const old = score(opts.config, app.weights, [...suites, ...generalSuites]);
    for (const [fname, f] of Object.entries(foundations)) {
      const gain = foundationInfo[fname]!.generalGainOverOld;
      const judge = (strategy: UpgradeStrategy, s: ModelScore, flops: number, wallMs: number): UpgradeLineResult => {
        let inheritance = Infinity;
        let flips = 0;
        let probes = 0;
        for (const suite of suites) {
          const o = old.suites[suite.name]!;
          const n = s.suites[suite.name]!;
          const ratio = suite.probes ? (o === 0 ? 1 : n / o) : n === 0 ? 1 : o / n;
          inheritance = Math.min(inheritance, ratio);
          if (suite.probes) {
            const before = old.hits[suite.name]!;
            const after = s.hits[suite.name]!;
            flips += before.filter((h, i) => h && !after[i]).length;
            probes += before.length;
          }
        }
        const generalGain = generalLoss(old) - generalLoss(s);
        return {
          line: line.name,
          foundation: fname,
          strategy,
          inheritance,
          negativeFlipRate: probes ? flips / probes : 0,
          generalGain,
          generalGainShare: gain > 0 ? generalGain / gain : 1,
          flops,
          wallMs,
          suites: s.suites,
        };
      };
      lines.push(judge('keep', old, 0, 0));
      log(`${line.name} -> ${fname}: naive re-fine-tune`);
      const naive = await train(f.config, f.weights, own, opts.upgradeSteps ?? opts.lineSteps * TRANSFER_STEPS_FACTOR);
      lines.push(judge('naive', score(f.config, naive.weights, [...suites, ...generalSuites]), naive.flops, naive.wallMs));
      log(`${line.name} -> ${fname}: transfer (replay buffer + distillation from the old application model)`);
      // The loop's transfer sources: the line's accepted drops (1 - replayRatio, distilled), the foundation line's data
      // (both general drops, cross-entropy only) the rest.
      const transfer = await train(f.config, f.weights, [...mine(1 - rr), { ...g2, weight: rr / 2, distill: false }, { ...g1, weight: rr / 2, distill: false }], opts.upgradeSteps ?? opts.lineSteps * TRANSFER_STEPS_FACTOR, {
        config: opts.config,
        weights: app.weights,
      });
      lines.push(judge('transfer', score(f.config, transfer.weights, [...suites, ...generalSuites]), transfer.flops, transfer.wallMs));
    }
  }

  const of = (strategy: UpgradeStrategy) => lines.filter((l) => l.strategy === strategy);
  const summarise = (rows: UpgradeLineResult[]) => ({
    minInheritance: Math.min(...rows.map((r) => r.inheritance)),
    maxNegativeFlipRate: Math.max(...rows.map((r) => r.negativeFlipRate)),
    minGeneralGainShare: Math.min(...rows.map((r) => r.generalGainShare)),
  });
  const t = summarise(of('transfer'));
  const sum = (rows: UpgradeLineResult[]) => rows.reduce((a, r) => a + r.flops, 0);
  return {
    config: opts.config,
    otherConfig: opts.otherConfig,
    foundations: foundationInfo,
    lines,
    summary: {
      strategy: 'transfer',
      ...t,
      flopsVsNaive: sum(of('transfer')) / sum(of('naive')),
      goals: { minInheritance: t.minInheritance >= 0.98, maxNegativeFlipRate: t.maxNegativeFlipRate <= 0.02, generalGainShare: t.minGeneralGainShare >= 0.5 },
    },
    naive: summarise(of('naive')),
  };
}
