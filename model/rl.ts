/**
 * Learning from feedback: a policy-gradient update from a released model. Per step a few prompts are
 * sampled k times from the policy; rewards get a group-relative (leave-one-out, RLOO) baseline; the loss
 * is the clipped importance-weighted surrogate (PPO form: on-policy samples use their own sampling
 * log-probs, logged offline answers use the reference's, with the ratio clipped to [1-ε, 1+ε]) plus
 * β · the exact per-token KL(policy ‖ reference) over the vocabulary, plus the line's replay
 * cross-entropy. A hard KL budget stops the update: when a step's measured mean KL reaches it, the
 * weights of the last step under the budget are kept. Rewards are plain functions, so this layer knows
 * nothing of verifiers; the caller's `stopRule` sees every held-out check (the guards live in domain/).
 */
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_RL } from '../schemas/defaults.ts';
import { initBackend } from './backend.ts';
import { type ModelConfig, flopsPerToken, validateConfig } from './config.ts';
import { BatchSampler, type Source } from './data.ts';
import { AdamW } from './optimizer.ts';
import { type Intervention, applyInterventions } from './plasticity.ts';
import { Rng, deriveSeed } from './random.ts';
import { BOS, EOS, PAD, decode, encode } from './tokenizer.ts';
import { LanguageModel, initWeights } from './transformer.ts';
import { type Weights, checkWeights, cloneWeights } from './weights.ts';

/** Every field of an RL update, recorded with the run. */
export interface RlRecipe {
  steps: number;
  promptsPerStep: number;
  samplesPerPrompt: number;
  maxTokens: number;
  learningRate: number;
  /** β: weight of the per-token KL penalty to the reference. */
  klCoef: number;
  /** Hard budget on mean per-token KL (nats); the update stops when a step reaches it. */
  klBudget: number;
  /** ε of the clipped importance ratio. */
  clip: number;
  /** Weight of the replay cross-entropy (0 without replay). */
  replayWeight: number;
  replayBatch: number;
  /** Held-out check every this many steps. */
  checkEvery: number;
  seed: number;
}

// The defaults live with the line limits derived from them (schemas/defaults.ts); the steps are the cycle's.
const { steps: _steps, ...defaults } = DEFAULT_RL;
export const RL_DEFAULTS: Omit<RlRecipe, 'steps' | 'seed'> = defaults;

/** A prompt with its training reward and, optionally, its gold (stricter) reward. */
export interface RlTask {
  prompt: string;
  reward: (completion: string) => number;
  gold?: (completion: string) => number;
}

/** A logged answer with its rating (offline feedback). */
export interface LoggedAnswer {
  prompt: string;
  completion: string;
  reward: number;
}

/**
 * One held-out check: greedy answers' mean reward and gold reward, mean KL to the reference, and (with held-out
 * ratings) how far the policy agrees with them: over every pair of held-out rated answers with different
 * ratings, the share where the better-rated answer's mean per-token log-prob rose more (or fell less) from the
 * reference than the worse-rated one's (ties count half). The reference itself scores 0.5; above means the
 * update moved toward what raters preferred on answers it never trained on, below means away.
 */
export interface RlCheck {
  step: number;
  reward: number;
  gold: number;
  kl: number;
  ratings?: number;
}

export interface RlOptions {
  config: ModelConfig;
  /** The released weights: the starting point and the KL reference. */
  reference: Weights;
  recipe: RlRecipe;
  /** Verifier prompts, sampled fresh. */
  tasks: RlTask[];
  /** Logged ratings, used offline with clipped importance weights. */
  logged?: LoggedAnswer[];
  /** Held-out prompts for the checks (reward and gold). */
  heldOut: RlTask[];
  /** Held-out ratings for the checks' rating agreement (not trained on). */
  heldOutLogged?: LoggedAnswer[];
  /** The line's replay (old skills). */
  replay?: Source[];
  /**
   * Where the policy starts, when not at the reference: the reference under a function-preserving change (a
   * reset of dormant units). The KL is still measured against the reference.
   */
  start?: Weights;
  /** An L2 pull of the policy toward `anchor` (the 'l2-init' intervention: the seed's fresh initialisation). */
  l2Pull?: { strength: number; anchor: Weights };
  /** Sees every check (the first is the reference's); a string stops the update with that reason. */
  stopRule?: (checks: RlCheck[]) => string | undefined;
  /** Awaited after every step (an activity heartbeats here; it also lets the event loop run); true stops the update. */
  onStep?: (step: number, steps: number) => Promise<boolean | void> | boolean | void;
}

export interface RlResult {
  weights: Weights;
  /**
   * Per kept update step: mean sampled reward, measured mean KL of the batch and the update's loss (all measured
   * at the weights the step started from).
   */
  curve: { step: number; reward: number; kl: number; loss: number }[];
  checks: RlCheck[];
  /** Update steps behind `weights` (a step the KL stop discards does not count). */
  steps: number;
  stoppedBy: 'steps' | 'kl-budget' | 'guard' | 'cancelled';
  reason?: string;
  /** The held-out KL of `weights` (their last check). */
  finalKl: number;
  /** The loss of the last kept update step; NaN when none was kept. */
  finalLoss: number;
  /** What the run spent, discarded steps included (see RlSpend). */
  spent: RlSpend;
  durationMs: number;
}

/**
 * Compute an RL run spent, counted as model/train.ts counts training: every position a pass runs over (padding
 * included), at flopsPerToken for a forward and backward pass and a third of it for a forward pass alone.
 * Sampling runs a forward pass over the whole sequence for each new token (no cache).
 */
export interface RlSpend {
  /** Tokens sampled: for the update's groups and the checks' greedy answers. */
  sampledTokens: number;
  /** Positions the update ran forward and backward (policy-gradient batches and replay). */
  trainedTokens: number;
  flops: number;
}

/** Counts an RL run's passes (see RlSpend). */
class Spend implements RlSpend {
  sampledTokens = 0;
  trainedTokens = 0;
  flops = 0;
  private readonly perToken: number;
  constructor(config: ModelConfig) {
    this.perToken = flopsPerToken(config);
  }
  forward(positions: number): void {
    this.flops += (positions * this.perToken) / 3;
  }
  train(positions: number): void {
    this.trainedTokens += positions;
    this.flops += positions * this.perToken;
  }
  get total(): RlSpend {
    return { sampledTokens: this.sampledTokens, trainedTokens: this.trainedTokens, flops: this.flops };
  }
}

interface Sequence {
  prompt: number[];
  completion: number[];
  /** Behaviour log-prob per completion token (sampling policy, or the reference for logged answers). */
  oldLogp: number[];
  advantage: number;
}

/**
 * Samples one completion per row for a single prompt (all rows share it), returning the token ids and
 * their sampling log-probs. temperature 0 is greedy. BOS and PAD are never produced; EOS ends a row.
 */
export function sampleGroup(
  model: LanguageModel,
  prompt: string,
  rows: number,
  opts: { maxTokens: number; temperature: number; rng: Rng; spend?: Spend },
): { tokens: number[]; logp: number[] }[] {
  const { context, vocabSize } = model.config;
  const head = [BOS, ...encode(prompt)];
  if (head.length + opts.maxTokens > context) throw new Error(`prompt of ${head.length} tokens plus ${opts.maxTokens} new ones exceeds the context ${context}`);
  const out = Array.from({ length: rows }, () => ({ tokens: [] as number[], logp: [] as number[], done: false }));
  for (let n = 0; n < opts.maxTokens && out.some((r) => !r.done); n++) {
    const time = head.length + n;
    const ids = new Int32Array(rows * time);
    out.forEach((r, i) => {
      const seq = [...head, ...r.tokens];
      for (let j = 0; j < time; j++) ids[i * time + j] = j < seq.length ? seq[j]! : PAD;
    });
    const last = tf.tidy(() => {
      const h = tf.reshape(model.hidden(ids, rows), [rows, time, model.config.dModel]);
      return tf.logSoftmax(model.head(tf.reshape(tf.slice(h, [0, time - 1, 0], [rows, 1, -1]), [rows, -1]) as tf.Tensor2D));
    });
    const lp = last.dataSync() as Float32Array;
    last.dispose();
    opts.spend?.forward(rows * time);
    out.forEach((r, i) => {
      if (r.done) return;
      if (opts.spend) opts.spend.sampledTokens++;
      const row = lp.subarray(i * vocabSize, (i + 1) * vocabSize);
      const next = pick(row, opts.temperature, opts.rng);
      r.tokens.push(next);
      r.logp.push(row[next]!);
      if (next === EOS) r.done = true;
    });
  }
  return out.map(({ tokens, logp }) => ({ tokens, logp }));
}

function pick(logp: Float32Array, temperature: number, rng: Rng): number {
  const allowed = (i: number) => i !== BOS && i !== PAD;
  let best = -1;
  for (let i = 0; i < logp.length; i++) if (allowed(i) && (best < 0 || logp[i]! > logp[best]!)) best = i;
  if (temperature <= 0) return best;
  const w = Array.from(logp, (l, i) => (allowed(i) ? Math.exp((l - logp[best]!) / temperature) : 0));
  let u = rng.next() * w.reduce((a, b) => a + b, 0);
  for (let i = 0; i < w.length; i++) {
    u -= w[i]!;
    if (u < 0) return i;
  }
  return best;
}

/** Text of a completion (EOS and other special tokens dropped). */
const text = (tokens: number[]) => decode(tokens.filter((t) => t !== EOS));

/** Leave-one-out baseline: each reward minus the mean of the others in its group (0 for a group of one). */
export function rlooAdvantages(rewards: number[]): number[] {
  const k = rewards.length;
  if (k < 2) return rewards.map(() => 0);
  const sum = rewards.reduce((a, b) => a + b, 0);
  return rewards.map((r) => r - (sum - r) / (k - 1));
}

/** Rows, ids, targets, completion mask, per-token advantage and behaviour log-prob for a set of sequences. */
function pack(seqs: Sequence[], context: number) {
  const time = Math.min(context, Math.max(...seqs.map((s) => s.prompt.length + s.completion.length)) - 1);
  const rows = seqs.length;
  const ids = new Int32Array(rows * time).fill(PAD);
  const targets = new Int32Array(rows * time).fill(PAD);
  const mask = new Float32Array(rows * time);
  const adv = new Float32Array(rows * time);
  const old = new Float32Array(rows * time);
  let count = 0;
  seqs.forEach((s, r) => {
    const all = [...s.prompt, ...s.completion];
    for (let j = 0; j < time && j + 1 < all.length; j++) {
      ids[r * time + j] = all[j]!;
      targets[r * time + j] = all[j + 1]!;
      const c = j + 1 - s.prompt.length;
      if (c >= 0) {
        mask[r * time + j] = 1;
        adv[r * time + j] = s.advantage;
        old[r * time + j] = s.oldLogp.length ? s.oldLogp[c]! : Number.NaN;
        count++;
      }
    }
  });
  return { ids, targets, mask, adv, old, rows, time, count: Math.max(count, 1) };
}

function oneHot(targets: Int32Array, vocab: number): tf.Tensor2D {
  const hot = new Float32Array(targets.length * vocab);
  for (let r = 0; r < targets.length; r++) if (targets[r] !== PAD) hot[r * vocab + targets[r]!] = 1;
  return tf.tensor2d(hot, [targets.length, vocab]);
}

/** Per-token log-probs of `targets` under the model (JS array; PAD targets get 0). */
function tokenLogp(model: LanguageModel, ids: Int32Array, targets: Int32Array, rows: number, spend?: Spend): Float32Array {
  spend?.forward(ids.length);
  const t = tf.tidy(() => tf.sum(tf.mul(tf.logSoftmax(model.logits(ids, rows)), oneHot(targets, model.config.vocabSize)), 1));
  const out = new Float32Array(t.dataSync() as Float32Array);
  t.dispose();
  return out;
}

/** Mean per-token KL(policy ‖ reference) over the completion tokens of `seqs`. */
export function meanKl(policy: LanguageModel, reference: LanguageModel, seqs: { prompt: number[]; completion: number[] }[], spend?: Spend): number {
  if (seqs.length === 0) return 0;
  const p = pack(
    seqs.map((s) => ({ ...s, oldLogp: [], advantage: 0 })),
    policy.config.context,
  );
  spend?.forward(2 * p.ids.length);
  const kl = tf.tidy(() => {
    const lp = tf.logSoftmax(policy.logits(p.ids, p.rows));
    const lq = tf.logSoftmax(reference.logits(p.ids, p.rows));
    const perTok = tf.sum(tf.mul(tf.exp(lp), tf.sub(lp, lq)), 1);
    return tf.div(tf.sum(tf.mul(perTok, tf.tensor1d(p.mask))), p.count);
  });
  const v = kl.dataSync()[0]!;
  kl.dispose();
  return Math.max(0, v);
}

/** Mean per-token log-prob of each logged answer (its completion and EOS) under the model. */
function answerLogp(model: LanguageModel, answers: LoggedAnswer[], spend?: Spend): number[] {
  const seqs = answers.map((a) => {
    const prompt = [BOS, ...encode(a.prompt)];
    return { prompt, completion: [...encode(a.completion), EOS].slice(0, Math.max(1, model.config.context - prompt.length + 1)), oldLogp: [], advantage: 0 };
  });
  const p = pack(seqs, model.config.context);
  const lp = tokenLogp(model, p.ids, p.targets, p.rows, spend);
  return seqs.map((_, r) => {
    let sum = 0;
    let n = 0;
    for (let j = 0; j < p.time; j++) if (p.mask[r * p.time + j]) (sum += lp[r * p.time + j]!), n++;
    return n ? sum / n : 0;
  });
}

/**
 * Rating agreement (see RlCheck): pairwise, between the raters' order and the change of each answer's mean
 * per-token log-prob from the reference. undefined when no two answers have different ratings.
 */
export function ratingAgreement(policy: LanguageModel, reference: LanguageModel, answers: LoggedAnswer[], spend?: Spend): number | undefined {
  if (!answers.some((a) => a.reward !== answers[0]!.reward)) return undefined;
  const now = answerLogp(policy, answers, spend);
  const ref = answerLogp(reference, answers, spend);
  const delta = now.map((x, i) => x - ref[i]!);
  let agree = 0;
  let pairs = 0;
  for (let i = 0; i < answers.length; i++)
    for (let j = 0; j < answers.length; j++) {
      if (!(answers[i]!.reward > answers[j]!.reward)) continue;
      pairs++;
      const d = delta[i]! - delta[j]!;
      agree += Math.abs(d) < 1e-6 ? 0.5 : d > 0 ? 1 : 0;
    }
  return agree / pairs;
}

/** Greedy answers to the held-out prompts: mean reward, mean gold reward (reward when no gold), KL; rating agreement with held-out ratings. */
export function checkPolicy(
  policy: LanguageModel,
  reference: LanguageModel,
  tasks: RlTask[],
  maxTokens: number,
  step = 0,
  ratings: LoggedAnswer[] = [],
  spend?: Spend,
): RlCheck {
  const rng = new Rng(0);
  let reward = 0;
  let gold = 0;
  const seqs: { prompt: number[]; completion: number[] }[] = [];
  for (const t of tasks) {
    const [s] = sampleGroup(policy, t.prompt, 1, { maxTokens, temperature: 0, rng, spend });
    const answer = text(s!.tokens);
    reward += t.reward(answer);
    gold += (t.gold ?? t.reward)(answer);
    seqs.push({ prompt: [BOS, ...encode(t.prompt)], completion: s!.tokens });
  }
  const n = Math.max(tasks.length, 1);
  const agreement = ratings.length ? ratingAgreement(policy, reference, ratings, spend) : undefined;
  return { step, reward: reward / n, gold: gold / n, kl: meanKl(policy, reference, seqs, spend), ...(agreement === undefined ? {} : { ratings: agreement }) };
}

export function validateRlRecipe(r: RlRecipe): void {
  for (const k of ['steps', 'promptsPerStep', 'samplesPerPrompt', 'maxTokens', 'checkEvery', 'replayBatch'] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 1) throw new Error(`rl recipe: ${k} must be a positive integer, got ${r[k]}`);
  }
  for (const k of ['learningRate', 'klCoef', 'klBudget', 'clip', 'replayWeight'] as const) {
    if (!Number.isFinite(r[k]) || r[k] < 0) throw new Error(`rl recipe: ${k} must be a non-negative number, got ${r[k]}`);
  }
  if (!(r.klBudget > 0)) throw new Error('rl recipe: klBudget must be positive');
  if (r.samplesPerPrompt < 2) throw new Error('rl recipe: samplesPerPrompt must be at least 2 (the group baseline needs two)');
}

/** Runs the RL update. The reference model is frozen; the policy starts as a copy of it. */
export async function rlTrain(opts: RlOptions): Promise<RlResult> {
  const started = performance.now();
  await initBackend();
  const config = validateConfig(opts.config);
  const { recipe } = opts;
  validateRlRecipe(recipe);
  checkWeights(config, opts.reference);
  if (opts.start) checkWeights(config, opts.start);
  if (opts.l2Pull) checkWeights(config, opts.l2Pull.anchor);
  if (opts.tasks.length === 0 && (opts.logged ?? []).length === 0) throw new Error('rl: no feedback to learn from');

  const params = cloneWeights(opts.start ?? opts.reference);
  const policy = LanguageModel.create(config, params);
  const reference = LanguageModel.create(config, opts.reference);
  const pull = opts.l2Pull && opts.l2Pull.strength > 0 ? opts.l2Pull : undefined;
  const optimizer = new AdamW(params, { weightDecay: 0, gradClip: 1, l2Pull: pull?.strength ?? 0 }, pull?.anchor);
  const spend = new Spend(config);
  const variables = [...policy.variables.values()];
  const names = [...policy.variables.keys()];
  const replay =
    opts.replay && recipe.replayWeight > 0 && opts.replay.some((s) => s.docs.length) ? new BatchSampler(opts.replay, config.context, recipe.seed) : undefined;
  const logged = opts.logged ?? [];
  const loggedAdv = groupAdvantages(logged);

  const curve: RlResult['curve'] = [];
  const checks: RlCheck[] = [checkPolicy(policy, reference, opts.heldOut, recipe.maxTokens, 0, opts.heldOutLogged, spend)];
  let stoppedBy: RlResult['stoppedBy'] = 'steps';
  let reason: string | undefined;
  let previous: Weights = cloneWeights(params);
  let step = 0;
  try {
    while (step < recipe.steps) {
      const t = step + 1;
      const rng = new Rng(deriveSeed(recipe.seed, t));
      const seqs: Sequence[] = [];
      let rewardSum = 0;
      let rewardCount = 0;
      for (let p = 0; p < Math.min(recipe.promptsPerStep, opts.tasks.length); p++) {
        const task = opts.tasks[rng.int(opts.tasks.length)]!;
        const group = sampleGroup(policy, task.prompt, recipe.samplesPerPrompt, { maxTokens: recipe.maxTokens, temperature: 1, rng, spend });
        const rewards = group.map((g) => task.reward(text(g.tokens)));
        rewardSum += rewards.reduce((a, b) => a + b, 0);
        rewardCount += rewards.length;
        const adv = rlooAdvantages(rewards);
        const head = [BOS, ...encode(task.prompt)];
        group.forEach((g, i) => seqs.push({ prompt: head, completion: g.tokens, oldLogp: g.logp, advantage: adv[i]! }));
      }
      // Offline: a few logged answers per step; behaviour log-probs are the reference's (it gave the answers).
      for (let i = 0; i < Math.min(logged.length, recipe.promptsPerStep * 2); i++) {
        const j = rng.int(logged.length);
        const a = logged[j]!;
        const head = [BOS, ...encode(a.prompt)];
        const completion = [...encode(a.completion), EOS].slice(0, Math.max(1, config.context - head.length + 1));
        seqs.push({ prompt: head, completion, oldLogp: [], advantage: loggedAdv[j]! });
      }
      const p = pack(seqs, config.context);
      const refLp = tokenLogp(reference, p.ids, p.targets, p.rows, spend);
      // Logged answers: old log-prob from the reference.
      for (let i = 0; i < p.old.length; i++) if (Number.isNaN(p.old[i]!)) p.old[i] = refLp[i]!;
      const refLogits = tf.tidy(() => tf.logSoftmax(reference.logits(p.ids, p.rows)));
      const rb = replay?.batch(t, recipe.replayBatch);
      spend.forward(p.ids.length);
      spend.train(p.ids.length + (rb?.ids.length ?? 0));
      let klTensor: tf.Tensor | undefined;
      const { value, grads } = tf.variableGrads(() => {
        const lp = tf.logSoftmax(policy.logits(p.ids, p.rows));
        const tok = tf.sum(tf.mul(lp, oneHot(p.targets, config.vocabSize)), 1);
        const ratio = tf.exp(tf.sub(tok, tf.tensor1d(p.old)));
        const a = tf.tensor1d(p.adv);
        const surr = tf.minimum(tf.mul(ratio, a), tf.mul(tf.clipByValue(ratio, 1 - recipe.clip, 1 + recipe.clip), a));
        const mask = tf.tensor1d(p.mask);
        const pg = tf.neg(tf.div(tf.sum(tf.mul(surr, mask)), p.count));
        const klTok = tf.sum(tf.mul(tf.exp(lp), tf.sub(lp, refLogits)), 1);
        const kl = tf.div(tf.sum(tf.mul(klTok, mask)), p.count);
        klTensor = tf.keep(kl);
        let loss = tf.add(pg, tf.mul(kl, recipe.klCoef));
        if (rb) loss = tf.add(loss, tf.mul(policy.loss(rb.ids, rb.targets, recipe.replayBatch), recipe.replayWeight));
        return loss as tf.Scalar;
      }, variables);
      refLogits.dispose();
      const kl = Math.max(0, klTensor!.dataSync()[0]!);
      klTensor!.dispose();
      const loss = value.dataSync()[0]!;
      value.dispose();
      if (kl >= recipe.klBudget || !Number.isFinite(loss)) {
        for (const g of Object.values(grads)) g.dispose();
        // These weights (after step `step`) are at or past the budget: keep the last ones under it, those after
        // step - 1, whose batch KL step `step` measured, and drop the records of the step taken back.
        params.forEach((w, name) => w.data.set(previous.get(name)!.data));
        policy.loadWeights(params);
        stoppedBy = 'kl-budget';
        reason = Number.isFinite(loss)
          ? `mean KL ${kl.toFixed(4)} after step ${step} reached the budget ${recipe.klBudget}${step > 0 ? `: kept the weights of step ${step - 1}` : ''}`
          : `the loss is not finite after step ${step}${step > 0 ? `: kept the weights of step ${step - 1}` : ''}`;
        if (step > 0) {
          if (checks.at(-1)!.step === step) checks.pop();
          if (curve.at(-1)?.step === step) curve.pop();
          step -= 1;
        }
        break;
      }
      previous = cloneWeights(params);
      const g = new Map<string, Float32Array>();
      names.forEach((name, i) => {
        const tensor = grads[variables[i]!.name]!;
        g.set(name, new Float32Array(tensor.dataSync() as Float32Array));
        tensor.dispose();
      });
      optimizer.step(g, recipe.learningRate, t);
      policy.loadWeights(params);
      step = t;
      curve.push({ step, reward: rewardCount ? rewardSum / rewardCount : 0, kl, loss });
      if (opts.onStep && (await opts.onStep(step, recipe.steps)) === true) {
        stoppedBy = 'cancelled';
        reason = `cancelled at step ${step}`;
        break;
      }
      if (step % recipe.checkEvery === 0 || step === recipe.steps) {
        checks.push(checkPolicy(policy, reference, opts.heldOut, recipe.maxTokens, step, opts.heldOutLogged, spend));
        const why = opts.stopRule?.(checks);
        if (why) {
          stoppedBy = 'guard';
          reason = why;
          break;
        }
      }
    }
    const last = checks[checks.length - 1]!;
    const finalCheck = last.step === step ? last : checkPolicy(policy, reference, opts.heldOut, recipe.maxTokens, step, opts.heldOutLogged, spend);
    if (finalCheck !== last) checks.push(finalCheck);
    return {
      weights: policy.exportWeights(),
      curve,
      checks,
      steps: step,
      stoppedBy,
      reason,
      finalKl: finalCheck.kl,
      finalLoss: curve.at(-1)?.loss ?? Number.NaN,
      spent: spend.total,
      durationMs: performance.now() - started,
    };
  } finally {
    policy.dispose();
    reference.dispose();
  }
}

/** Offline advantages: leave-one-out within a prompt's ratings; a lone rating is centred on the mean of all. */
function groupAdvantages(logged: LoggedAnswer[]): number[] {
  const byPrompt = new Map<string, number[]>();
  logged.forEach((a, i) => byPrompt.set(a.prompt, [...(byPrompt.get(a.prompt) ?? []), i]));
  const mean = logged.reduce((s, a) => s + a.reward, 0) / Math.max(logged.length, 1);
  const out = new Array<number>(logged.length).fill(0);
  for (const idx of byPrompt.values()) {
    if (idx.length === 1) out[idx[0]!] = logged[idx[0]!]!.reward - mean;
    else rlooAdvantages(idx.map((i) => logged[i]!.reward)).forEach((a, j) => (out[idx[j]!] = a));
  }
  return out;
}

/** What the RL update did with the plasticity interventions a cycle asked for: each applied (and how) or refused (and why). */
export interface RlInterventions {
  applied: { intervention: Intervention; detail: string }[];
  refused: { intervention: Intervention; reason: string }[];
}

/**
 * The plasticity interventions (model/plasticity.ts) an RL update can honour, as rlTrain options. The update is
 * judged against the released model (the KL budget is to it, the first held-out check is its answers), so what
 * keeps that model's function applies and what changes it before any feedback does not:
 * - 'dormant-reset' re-initialises dormant MLP units with their outgoing weights zeroed: the start is the released
 *   model's function (KL 0), with units that can learn again. Applied to the policy's start.
 * - 'l2-init' pulls the policy toward the seed's fresh initialisation with the recipe's l2Pull, as a supervised
 *   cycle does (AdamW's pull). Applied; refused when l2Pull is 0.
 * - 'shrink-perturb' changes every weight, and so the released model's answers, before the update: refused.
 * - 'rewarm' re-warms a decayed learning-rate schedule, and the RL update runs at a constant rate: refused.
 */
export function rlInterventions(
  config: ModelConfig,
  released: Weights,
  interventions: readonly Intervention[],
  opts: { seed: number; l2Pull: number },
): RlInterventions & { start?: Weights; l2Pull?: { strength: number; anchor: Weights } } {
  const out: ReturnType<typeof rlInterventions> = { applied: [], refused: [] };
  for (const intervention of new Set(interventions)) {
    if (intervention === 'dormant-reset') {
      const r = applyInterventions(config, released, ['dormant-reset'], opts.seed);
      out.start = r.weights;
      const reset = r.applied[0]?.reset ?? 0;
      out.applied.push({ intervention, detail: `${reset} dormant MLP unit${reset === 1 ? '' : 's'} reset at the start, the released model's function unchanged` });
    } else if (intervention === 'l2-init') {
      if (opts.l2Pull > 0) {
        out.l2Pull = { strength: opts.l2Pull, anchor: initWeights(config, opts.seed) };
        out.applied.push({ intervention, detail: `L2 pull ${opts.l2Pull} toward the fresh initialisation of seed ${opts.seed}` });
      } else out.refused.push({ intervention, reason: "the recipe's l2Pull is 0, so there is no pull to apply" });
    } else if (intervention === 'shrink-perturb') {
      out.refused.push({
        intervention,
        reason:
          "it changes the released model's answers before any feedback is learned, and the RL update is judged against that model, by its KL budget and its held-out checks: the perturbation would spend KL budget and move the gate's baseline",
      });
    } else {
      out.refused.push({ intervention, reason: 'the RL update runs at a constant learning rate, with no warmup or decay, so there is no decayed rate to warm up again' });
    }
  }
  return out;
}
