/**
 * The tuning benchmark's library (`npm run bench:tune`, issue 15): over a stream of drops, the default recipe
 * against recipe `auto` (the release loop's own search, domain/recipe-search.ts), each on its own chain of
 * versions, each update judged by a gate the caller passes in (the release gate). Training runs in process with
 * the loop's trainer, and a promoted trial continues from its in-memory checkpoint exactly as the loop's does.
 */
import {
  type Knobs,
  type StopEarly,
  type TrialOutcome,
  type Trajectory,
  SEARCH_BUDGET,
  atHorizon,
  judgedOf,
  passingTrajectories,
  searchRecipe,
} from '../domain/recipe-search.ts';
import type { GateDecision, GateSuite, Metrics } from '../schemas/contracts/gate.ts';
import { flopsPerToken, type ModelConfig } from '../model/config.ts';
import { deriveSeed } from '../model/random.ts';
import { encode, encodeDocument } from '../model/tokenizer.ts';
import { trainModel } from '../model/train.ts';
import type { Weights } from '../model/weights.ts';
import { continueSources, evaluateSuites } from './runner.ts';
import type { Strategy, UpdateRecipe } from './strategies.ts';
import { type StreamDrop, type Suite, buildSuites } from './stream.ts';

export interface TuneOptions {
  config: ModelConfig;
  start: Weights;
  drops: StreamDrop[];
  base?: StreamDrop;
  recipe: UpdateRecipe;
  knobs: { replayRatio: number; replayBudget: number; l2Pull: number };
  /** The release gate: candidate and champion metrics per suite key. */
  gate: (suites: GateSuite[], candidate: Record<string, Metrics>, champion: Record<string, Metrics>) => GateDecision;
  budgetFactor?: number;
  margin?: number;
  width?: number;
  /**
   * Fixed recipes to run as well, each the default recipe at that many steps (warmup scaled), optionally at another
   * batch size, on its own chain: what a hand-picked cheaper recipe gives on this stream, the bar a search has to clear.
   */
  fixed?: (number | { steps: number; batchSize: number })[];
  /**
   * Judge the default recipe's update every this many steps as well (training resumes exactly from each
   * checkpoint, so the default arm's weights and verdicts are unchanged): how its gate margin rises over the
   * horizon, and how early a failing update could be told from a passing one.
   */
  curve?: number;
  /**
   * Recipes chosen on other lines (a sibling on the same foundation), newest last: auto's warm start while this
   * stream has chosen none of its own, as the loop's search starts a new line.
   */
  history?: Knobs[];
  /**
   * Auto stops hopeless updates from its own record (the loop's `search.stopEarly`): the judged steps, slack and
   * record needed; the passing trajectories are the ones auto's searches on this stream recorded. Absent: off.
   */
  stopEarly?: Omit<StopEarly, 'passing'>;
  log?: (s: string) => void;
}

/** The default recipe's gate margin over its horizon, per drop (`curve`). */
export interface TuneCurve {
  every: number;
  /** Per drop: the verdict at the end, the margin and verdict at each judged step, and the first step it passed at. */
  perDrop: { drop: string; pass: boolean; margins: { step: number; margin: number; pass: boolean }[]; firstPassAt: number | null }[];
  /**
   * The first judged step at which every passing update's margin is above every failing one's (null: none before
   * the end, or no drop of one kind): the earliest a threshold could stop the failing updates without losing a
   * passing one, had it known the threshold.
   */
  separatedAt: number | null;
  /** The ratio to the default recipe's FLOPs had every failing update stopped at `separatedAt` (the best such a stop can do). */
  ratioIfStoppedThere: number | null;
}

/** A fixed recipe at another horizon (or batch size) on its own chain of versions. */
export interface TuneFixed {
  steps: number;
  batchSize: number;
  flops: number;
  /** flops / the default recipe's. */
  ratio: number;
  passed: number;
  gateMargin: number;
  perDrop: { drop: string; pass: boolean; margin: number; summary: string }[];
}

export interface TuneDrop {
  drop: string;
  defaultFlops: number;
  autoFlops: number;
  defaultPass: boolean;
  autoPass: boolean;
  defaultMargin: number;
  autoMargin: number | null;
  autoTrials: number;
  autoSteps: number | null;
  /** The step auto's update was stopped at as hopeless (search.stopEarly), when it was. */
  autoStoppedAt: number | null;
  /** Every trial segment of the search: what it trained, how it was judged, what became of it. */
  trials: {
    trial: string;
    source: string;
    rung: number;
    steps: string;
    learningRate: number;
    replayRatio: number;
    l2Pull: number;
    margin: number | null;
    status: string;
    summary: string;
  }[];
}

export interface TuneResult {
  defaultFlops: number;
  autoFlops: number;
  ratio: number;
  /**
   * Forward FLOPs of judging the updates (every suite of the drop's gate, one forward pass per token): the default
   * recipe judges one update per drop, auto every trial segment (a trial judged on its way, a rung of the halving).
   */
  defaultEvalFlops: number;
  autoEvalFlops: number;
  /** (autoFlops + autoEvalFlops) / (defaultFlops + defaultEvalFlops): the ratio with judging counted. */
  ratioWithEval: number;
  /** Mean gate margin over the drops each passed (the margin of its accepted updates). */
  gateMarginDefault: number;
  gateMarginAuto: number;
  /**
   * The gate margins on the drops both passed, drop for drop: the means above also count a drop only one of them
   * passed, so passing one more drop near margin 0 lowers a mean without any common drop's update being narrower.
   */
  gateMarginBoth: BothPassed;
  passedDefault: number;
  passedAuto: number;
  drops: number;
  perDrop: TuneDrop[];
  fixed: TuneFixed[];
  curve?: TuneCurve;
  /** The recipes auto chose on this stream, oldest first (a sibling's `history`). */
  chosen: Knobs[];
}

/** The drops both the default recipe and auto passed, with their mean margins and how many of them auto's update is narrower on. */
export interface BothPassed {
  drops: number;
  default: number;
  auto: number;
  /** Drops both passed where auto's margin is below the default's (by more than 1e-9). */
  narrower: number;
}

/** The comparison on the drops both passed (see TuneResult.gateMarginBoth). Pure. */
export function bothPassed(perDrop: Pick<TuneDrop, 'defaultPass' | 'autoPass' | 'defaultMargin' | 'autoMargin'>[]): BothPassed {
  const both = perDrop.filter((p) => p.defaultPass && p.autoPass);
  return {
    drops: both.length,
    default: mean(both.map((p) => p.defaultMargin)),
    auto: mean(both.map((p) => p.autoMargin!)),
    narrower: both.filter((p) => p.autoMargin! < p.defaultMargin - 1e-9).length,
  };
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);

/** Runs the default recipe and recipe auto over the stream; each keeps the versions its gate passed. */
export async function runTune(o: TuneOptions): Promise<TuneResult> {
  const { suites } = buildSuites(o.drops, o.base);
  const flopsPerStep = o.recipe.batchSize * o.config.context * flopsPerToken(o.config);
  const key = (s: { name: string; kind: string }) => `${s.name}/${s.kind}`;
  const metricsOf = (weights: Weights, upTo: number) => {
    const seen = suites.filter((s) => s.drop <= upTo);
    const values = evaluateSuites(o.config, weights, seen);
    return Object.fromEntries(seen.map((s, j) => [key(s), s.metric === 'loss' ? { loss: values[j]! } : { exactMatch: values[j]! }])) as Record<string, Metrics>;
  };
  const strategyFor = (k: Knobs): Strategy => ({
    name: 'auto',
    kind: 'continue',
    replayRatio: k.replayRatio,
    replayBudget: o.knobs.replayBudget,
    l2Pull: k.l2Pull,
    rewarm: true,
  });
  const train = (init: Weights, i: number, k: Knobs, batchSize = o.recipe.batchSize) =>
    trainModel({
      config: o.config,
      init,
      reference: k.l2Pull > 0 ? init : undefined,
      sources: continueSources(o.drops, o.base, i, strategyFor(k), 'new-drop'),
      recipe: { ...o.recipe, ...k, batchSize, rewarm: true, seed: deriveSeed(1, i) },
    });
  const base: Knobs = {
    steps: o.recipe.steps,
    learningRate: o.recipe.learningRate,
    minLearningRate: o.recipe.minLearningRate ?? o.recipe.learningRate / 10,
    warmupSteps: o.recipe.warmupSteps,
    replayRatio: o.knobs.replayRatio,
    l2Pull: o.knobs.l2Pull,
  };

  /** A fixed recipe on its own chain: the default recipe, and each fixed horizon. */
  type Arm = { knobs: Knobs; batchSize: number; cur: Weights; flops: number; perDrop: TuneFixed['perDrop'] };
  const arm = (knobs: Knobs, batchSize = o.recipe.batchSize): Arm => ({ knobs, batchSize, cur: o.start, flops: 0, perDrop: [] });
  const def = arm(base);
  const fixed = (o.fixed ?? []).map((f) => (typeof f === 'number' ? arm(atHorizon(base, f)) : arm(atHorizon(base, f.steps), f.batchSize)));
  let autoCur = o.start;
  const curves: TuneCurve['perDrop'] = [];
  const history: Knobs[] = [];
  const passing: Trajectory[] = [];
  const perDrop: TuneDrop[] = [];
  // One judgement of an update after drop i: a forward pass over every suite the gate reads then.
  const evalFlops = (i: number) =>
    evalTokens(
      suites.filter((s) => s.drop <= i),
      o.config.context,
    ) *
    (flopsPerToken(o.config) / 3);
  let defaultEvalFlops = 0;
  let autoEvalFlops = 0;
  for (let i = 1; i <= o.drops.length; i++) {
    const gateSuites: GateSuite[] = suites.filter((s) => s.drop <= i).map((s) => ({ name: key(s), kind: s.kind, isNew: s.drop === i }));
    const judgeAgainst = (champion: Record<string, Metrics>) => (m: Record<string, Record<string, number | undefined>>) =>
      judgedOf(o.gate(gateSuites, m as Record<string, Metrics>, champion), gateSuites);
    // One update of a fixed-recipe arm from its champion; the arm keeps it when the gate passes.
    const update = async (a: Arm, every?: number) => {
      const champion = metricsOf(a.cur, i);
      const t = every ? await trainJudged(a.cur, i, a.knobs, every, judgeAgainst(champion)) : await train(a.cur, i, a.knobs, a.batchSize);
      const j = judgeAgainst(champion)(metricsOf(t.weights, i));
      if (j.pass) a.cur = t.weights;
      a.flops += t.flops;
      a.perDrop.push({ drop: o.drops[i - 1]!.name, pass: j.pass, margin: j.margin, summary: j.summary });
      return { ...j, flops: t.flops };
    };
    // Default: the recipe as given.
    const dj = await update(def, o.curve);
    defaultEvalFlops += evalFlops(i);
    // Fixed horizons, each on its own chain.
    for (const f of fixed) {
      const j = await update(f);
      o.log?.(
        `drop ${i}: fixed ${f.knobs.steps} steps${f.batchSize === o.recipe.batchSize ? '' : ` at batch ${f.batchSize}`} ${j.pass ? 'pass' : 'fail'} margin ${j.margin.toFixed(4)} (${j.summary})`,
      );
    }

    // Auto: the loop's search from this chain's champion.
    const autoChampion = metricsOf(autoCur, i);
    const checkpoints = new Map<string, Uint8Array>();
    const weightsById = new Map<string, Weights>();
    let n = 0;
    const init = autoCur;
    const outcome = await searchRecipe({
      base,
      history: [...(history.length ? history : (o.history ?? []))].reverse(),
      budgetFlops: (o.budgetFactor ?? SEARCH_BUDGET) * base.steps * flopsPerStep,
      flopsPerStep,
      margin: o.margin ?? 0,
      width: o.width,
      ...(o.stopEarly ? { stopEarly: { ...o.stopEarly, passing } } : {}),
      judge: judgeAgainst(autoChampion),
      run: async (runs) => {
        const out: TrialOutcome[] = [];
        for (const r of runs) {
          const resume = r.resume ? checkpoints.get(r.resume) : undefined;
          let saved: string | undefined;
          const every = gcd(r.toStep, r.trial.knobs.steps);
          const res = await trainWithStop(init, i, r.trial.knobs, r.fromStep, r.toStep, resume, every, async (b, step) => {
            if (step === r.toStep) checkpoints.set((saved = `c${++n}`), b);
          });
          const id = `w${++n}`;
          weightsById.set(id, res.weights);
          out.push({
            ok: true,
            steps: res.steps,
            flops: (res.steps - r.fromStep) * flopsPerStep,
            wallMs: res.wallMs,
            ...(saved ? { checkpoint: saved } : {}),
            weights: id,
            metrics: metricsOf(res.weights, i) as Record<string, Record<string, number | undefined>>,
          });
        }
        return out;
      },
    });
    if (outcome.chosen) {
      autoCur = weightsById.get(outcome.chosen.weights!)!;
      history.push(outcome.chosen.knobs);
    }
    passing.push(...passingTrajectories(outcome.trials));
    autoEvalFlops += outcome.trials.filter((t) => t.margin !== null).length * evalFlops(i);
    perDrop.push({
      drop: o.drops[i - 1]!.name,
      defaultFlops: dj.flops,
      autoFlops: outcome.flops,
      defaultPass: dj.pass,
      autoPass: outcome.chosen !== null,
      defaultMargin: dj.margin,
      autoMargin: outcome.chosen?.margin ?? outcome.best?.margin ?? null,
      autoTrials: outcome.trials.length,
      autoSteps: outcome.chosen?.toStep ?? null,
      autoStoppedAt: outcome.stoppedEarly?.toStep ?? null,
      trials: outcome.trials.map((t) => ({
        trial: t.trial,
        source: t.source,
        rung: t.rung,
        steps: `${t.fromStep}-${t.toStep}/${t.knobs.steps}`,
        learningRate: t.knobs.learningRate,
        replayRatio: t.knobs.replayRatio,
        l2Pull: t.knobs.l2Pull,
        margin: t.margin,
        status: t.status,
        summary: t.summary,
      })),
    });
    o.log?.(
      `drop ${i}: default ${dj.pass ? 'pass' : 'fail'} margin ${dj.margin.toFixed(4)} (${dj.summary}); auto ${outcome.chosen ? 'pass' : 'fail'} (${outcome.trials.length} segments, ${(outcome.flops / dj.flops).toFixed(2)}x) ${outcome.reason}`,
    );
  }
  const defaultFlops = perDrop.reduce((a, p) => a + p.defaultFlops, 0);
  const autoFlops = perDrop.reduce((a, p) => a + p.autoFlops, 0);
  const curve = o.curve ? curveOf(o.curve, base.steps, curves, defaultFlops, flopsPerStep) : undefined;
  return {
    defaultFlops,
    autoFlops,
    ratio: autoFlops / defaultFlops,
    defaultEvalFlops,
    autoEvalFlops,
    ratioWithEval: (autoFlops + autoEvalFlops) / (defaultFlops + defaultEvalFlops),
    gateMarginDefault: mean(perDrop.filter((p) => p.defaultPass).map((p) => p.defaultMargin)),
    gateMarginAuto: mean(perDrop.filter((p) => p.autoPass).map((p) => p.autoMargin!)),
    gateMarginBoth: bothPassed(perDrop),
    passedDefault: perDrop.filter((p) => p.defaultPass).length,
    passedAuto: perDrop.filter((p) => p.autoPass).length,
    drops: perDrop.length,
    perDrop,
    fixed: fixed.map((f) => {
      const passed = f.perDrop.filter((p) => p.pass);
      return {
        steps: f.knobs.steps,
        batchSize: f.batchSize,
        flops: f.flops,
        ratio: f.flops / defaultFlops,
        passed: passed.length,
        gateMargin: mean(passed.map((p) => p.margin)),
        perDrop: f.perDrop,
      };
    }),
    ...(curve ? { curve } : {}),
    chosen: history,
  };

  /** `train`, in segments of `every` steps resumed from each one's checkpoint, judging the weights after each. */
  async function trainJudged(init: Weights, i: number, k: Knobs, every: number, judge: (m: Record<string, Metrics>) => { pass: boolean; margin: number }) {
    let resume: Uint8Array | undefined;
    const margins: TuneCurve['perDrop'][number]['margins'] = [];
    for (let from = 0; ; from += every) {
      const to = Math.min(k.steps, from + every);
      const res = await trainWithStop(init, i, k, from, to, resume, every, async (b, step) => {
        if (step === to) resume = b;
      });
      const j = judge(metricsOf(res.weights, i));
      margins.push({ step: to, margin: j.margin, pass: j.pass });
      if (to >= k.steps) {
        curves.push({ drop: o.drops[i - 1]!.name, pass: j.pass, margins, firstPassAt: margins.find((m) => m.pass)?.step ?? null });
        return res;
      }
    }
  }

  function trainWithStop(
    init: Weights,
    i: number,
    k: Knobs,
    from: number,
    to: number,
    resume: Uint8Array | undefined,
    every: number,
    onCheckpoint: (b: Uint8Array, s: number) => Promise<void>,
  ) {
    let calls = 0;
    return trainModel({
      config: o.config,
      init,
      reference: k.l2Pull > 0 ? init : undefined,
      sources: continueSources(o.drops, o.base, i, strategyFor(k), 'new-drop'),
      recipe: { ...o.recipe, ...k, rewarm: true, seed: deriveSeed(1, i) },
      ...(resume ? { resume } : {}),
      checkpointEvery: every,
      onCheckpoint,
      shouldStop: () => from + calls++ >= to,
    });
  }
}

/** The curve's summary: where passing and failing updates separate, and what stopping the failing ones there saves. */
export function curveOf(every: number, steps: number, perDrop: TuneCurve['perDrop'], defaultFlops: number, flopsPerStep: number): TuneCurve {
  const passing = perDrop.filter((d) => d.pass);
  const failing = perDrop.filter((d) => !d.pass);
  const at = (d: TuneCurve['perDrop'][number], step: number) => d.margins.find((m) => m.step === step)?.margin ?? Number.NaN;
  let separatedAt: number | null = null;
  if (passing.length && failing.length)
    for (const { step } of passing[0]!.margins) {
      if (Math.min(...passing.map((d) => at(d, step))) > Math.max(...failing.map((d) => at(d, step)))) {
        separatedAt = step;
        break;
      }
    }
  const saved = separatedAt === null ? 0 : failing.length * (steps - separatedAt) * flopsPerStep;
  return {
    every,
    perDrop,
    separatedAt,
    ratioIfStoppedThere: separatedAt === null ? null : (defaultFlops - saved) / defaultFlops,
  };
}

/** Tokens one judgement reads: every text suite's documents (each token after BOS once) and every probe's input. */
export function evalTokens(suites: Suite[], context: number): number {
  let n = 0;
  for (const s of suites) {
    if (s.kind === 'text') for (const t of s.texts) n += encodeDocument(t).length - 1;
    else for (const p of s.probes) n += Math.min(context, encode(p.prompt).length + encode(p.completion).length);
  }
  return n;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
