/**
 * Throughput of a real pretrained Llama-family model on this machine (issue 34, "Measure it"): prefill, greedy
 * generation with the key-value cache at batch 1 and batch 8, full-update training steps (every weight, AdamW) at
 * 4 x 128 and 4 x 256 tokens, achieved GFLOP/s against numpy's sgemm measured in the same run, peak RSS, and the
 * logits' parity with a committed NumPy reference where one exists. scripts/bench-llm.ts is the entry point.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackendInfo } from '../model/backend.ts';
import { type LlamaConfig, type LlamaKvCache, LlamaModel, LlamaTrainer, disposeKvCache, generateGreedy, llamaFlopsPerToken, llamaForwardFlopsPerToken, llamaParameterCount, loadLlamaGGUF } from '../model/llama/index.ts';
import { Rng } from '../model/random.ts';
import { numpyGflops } from './numpy.ts';

const ROOT = join(import.meta.dirname, '..');
/** The embedded model, as `npm run setup:models` installs it. */
export const EMBEDDED_LLM = join(ROOT, '.tools/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf');
/** The NumPy reference logits of the embedded model, where committed. */
export const SMOLLM_REFERENCE = join(ROOT, 'test/fixtures/llama/smollm-reference.json');
/** The venv `npm run setup:bench` fills with numpy. */

/** Options of runLlmBench. */
export interface LlmBenchOptions {
  modelPath: string;
  /** Fewer tokens and steps, no sequence-256 training (a couple of minutes on 2 cores). */
  quick: boolean;
  backend?: string;
  referencePath?: string;
  python?: string;
  /** One line per finished measurement (progress). */
  say?: (line: string) => void;
}

/** A training measurement at one shape. */
export interface TrainMeasurement {
  batch: number;
  sequence: number;
  steps: number;
  tokensPerSecond: number;
  gflops: number;
  lossFirst: number;
  lossLast: number;
}

/** What runLlmBench measured; null fields carry a reason in `notes`. */
export interface LlmBenchResult {
  model: string;
  backend: string;
  parameters: number;
  quick: boolean;
  loadSeconds: number;
  prefillTokens: number;
  prefillTokensPerSecond: number;
  prefillGflops: number;
  generateTokens: number;
  generateTokensPerSecond: number;
  generateBatch8TokensPerSecond: number | null;
  trainTokensPerSecond: number;
  trainGflops: number;
  train: TrainMeasurement[];
  numpyGflops: number | null;
  modelOverNumpy: number | null;
  peakRssMiB: number;
  /** Growth of tf.memory().numTensors over each timed phase (0 when nothing leaks). */
  tensorGrowth: Record<string, number>;
  parity: { maxRelLogitError: number | null; prompts?: number; argmaxAgree?: string; reference?: string };
  notes: Record<string, string>;
}

/** One prompt of test/fixtures/llama/make-smollm-reference.py's output. */
interface ReferencePrompt {
  ids: number[];
  /** Reference arg-max at every position. */
  argmax?: number[];
  /** Max |logit| over the whole vocabulary at the last position: the scale of the relative error. */
  lastMaxAbsLogit: number;
  /** A subset of the vocabulary and the reference logits there, at the last position. */
  lastIds: number[];
  lastLogits: number[];
}

/**
 * Parity with the reference file (make-smollm-reference.py's measure): max over prompts and over the subset of
 * |logit − reference| / lastMaxAbsLogit at the last position, and how many positions' arg-max agree; or why not.
 */
function parity(model: LlamaModel, path: string): { result: LlmBenchResult['parity']; why?: string } {
  if (!existsSync(path)) return { result: { maxRelLogitError: null }, why: `${path} is absent (no committed NumPy reference yet)` };
  const ref = JSON.parse(readFileSync(path, 'utf8')) as { prompts?: ReferencePrompt[] };
  const prompts = (ref.prompts ?? []).filter((p) => Array.isArray(p.ids) && Array.isArray(p.lastIds) && Array.isArray(p.lastLogits) && p.lastMaxAbsLogit > 0);
  if (prompts.length === 0) return { result: { maxRelLogitError: null, reference: path }, why: `${path}: no prompt with ids, lastIds, lastLogits and lastMaxAbsLogit` };
  const vocab = model.config.vocabSize;
  let worst = 0;
  let argmaxAgree = 0;
  let argmaxTotal = 0;
  for (const p of prompts) {
    const step = model.forwardStep(Int32Array.from(p.ids), 1, undefined, { all: true });
    const best = tf.argMax(step.logits, 1);
    const got = step.logits.dataSync() as Float32Array;
    const argmax = best.dataSync();
    tf.dispose([best, step.logits]);
    disposeKvCache(step.cache);
    const last = (p.ids.length - 1) * vocab;
    p.lastIds.forEach((id, j) => (worst = Math.max(worst, Math.abs(got[last + id]! - p.lastLogits[j]!) / p.lastMaxAbsLogit)));
    p.argmax?.forEach((id, i) => {
      argmaxTotal++;
      if (argmax[i] === id) argmaxAgree++;
    });
  }
  return { result: { maxRelLogitError: worst, prompts: prompts.length, argmaxAgree: `${argmaxAgree}/${argmaxTotal}`, reference: path.split('/').slice(-3).join('/') } };
}

/** Deterministic token ids in the vocabulary, skipping the first 16 (special tokens). */
function tokenIds(count: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: count }, () => 16 + rng.int(vocab - 16));
}

/** Seconds of `f`, run once. */
function timed(f: () => void): number {
  const t0 = performance.now();
  f();
  return (performance.now() - t0) / 1000;
}

/** Greedy decode of `steps` tokens for `batch` equal-length prompts through forwardStep; tokens/s of the decode only. */
function decodeRate(model: LlamaModel, prompts: Int32Array, batch: number, steps: number): number {
  let step = model.forwardStep(prompts, batch);
  let cache: LlamaKvCache = step.cache;
  let t0 = 0;
  try {
    for (let i = 0; i <= steps; i++) {
      const best = tf.argMax(step.logits, 1);
      const next = best.dataSync() as Int32Array;
      tf.dispose([best, step.logits]);
      if (i === 0) t0 = performance.now();
      if (i === steps) break;
      step = model.forwardStep(Int32Array.from(next), batch, cache);
      cache = step.cache;
    }
  } finally {
    disposeKvCache(cache);
  }
  return (batch * steps) / ((performance.now() - t0) / 1000);
}

function train(model: LlamaModel, config: LlamaConfig, batch: number, sequence: number, steps: number, growth: Record<string, number>): TrainMeasurement {
  const trainer = new LlamaTrainer(model, { weightDecay: 0, gradClip: 1, l2Pull: 0 });
  try {
    const rows = tokenIds(batch * (sequence + 1) * (steps + 1), config.vocabSize, sequence);
    const batchAt = (s: number) => {
      const ids = new Int32Array(batch * sequence);
      const targets = new Int32Array(batch * sequence);
      for (let r = 0; r < batch; r++) {
        const start = (s * batch + r) * (sequence + 1);
        ids.set(rows.subarray(start, start + sequence), r * sequence);
        targets.set(rows.subarray(start + 1, start + sequence + 1), r * sequence);
      }
      return { ids, targets };
    };
    const warm = batchAt(0);
    trainer.step(warm.ids, warm.targets, batch, 1e-5, 1); // not timed: first-use kernels and optimiser state
    const before = tf.memory().numTensors;
    const losses: number[] = [];
    const seconds = timed(() => {
      for (let s = 1; s <= steps; s++) {
        const { ids, targets } = batchAt(s);
        losses.push(trainer.step(ids, targets, batch, 1e-5, s + 1));
      }
    });
    growth[`train${sequence}`] = tf.memory().numTensors - before;
    const tokensPerSecond = (batch * sequence * steps) / seconds;
    return { batch, sequence, steps, tokensPerSecond, gflops: (tokensPerSecond * llamaFlopsPerToken(config, sequence)) / 1e9, lossFirst: losses[0]!, lossLast: losses.at(-1)! };
  } finally {
    trainer.dispose();
  }
}

/** Runs every measurement on the model at `opts.modelPath` (see the file's comment). The model is trained in place and freed. */
export async function runLlmBench(opts: LlmBenchOptions): Promise<LlmBenchResult> {
  const say = opts.say ?? (() => {});
  const notes: Record<string, string> = {};
  const growth: Record<string, number> = {};
  const info = await initBackendInfo(opts.backend ? { force: opts.backend } : {});
  say(`backend: ${info.label}`);
  const npBefore = numpyGflops(1024, opts.python);

  let loaded!: ReturnType<typeof loadLlamaGGUF>;
  let model!: LlamaModel;
  const loadSeconds = timed(() => {
    loaded = loadLlamaGGUF(opts.modelPath);
    model = LlamaModel.create(loaded.config, loaded.weights);
    loaded.weights.clear();
  });
  const { config } = loaded;
  say(`loaded ${opts.modelPath} in ${loadSeconds.toFixed(1)} s (${llamaParameterCount(config).toLocaleString('en-US')} parameters)`);
  try {
    const par = parity(model, opts.referencePath ?? SMOLLM_REFERENCE);
    if (par.why) notes.parity = par.why;
    say(`parity: max relative logit error ${par.result.maxRelLogitError ?? `not measured (${par.why})`}`);

    // Prefill: one prompt from position 0, after an untimed warm-up of the same shape.
    const prefillTokens = opts.quick ? 64 : 128;
    const prompt = tokenIds(prefillTokens, config.vocabSize, 7);
    const before = tf.memory().numTensors;
    const prefillOnce = () => {
      const s = model.forwardStep(prompt, 1);
      s.logits.dataSync();
      s.logits.dispose();
      disposeKvCache(s.cache);
    };
    prefillOnce();
    const prefillRuns = opts.quick ? 1 : 3;
    const prefillSeconds = Math.min(...Array.from({ length: prefillRuns }, () => timed(prefillOnce)));
    growth.prefill = tf.memory().numTensors - before;
    const prefillTokensPerSecond = prefillTokens / prefillSeconds;
    const prefillGflops = (prefillTokensPerSecond * llamaForwardFlopsPerToken(config, prefillTokens / 2)) / 1e9;
    say(`prefill: ${prefillTokens} tokens, ${prefillTokensPerSecond.toFixed(1)} tokens/s (${prefillGflops.toFixed(1)} GFLOP/s)`);

    // Generation at batch 1 through generateGreedy: the decode rate between the first new token and the last.
    const generateTokens = opts.quick ? 16 : 64;
    const genBefore = tf.memory().numTensors;
    const stamps: number[] = [];
    generateGreedy(model, Array.from(prompt.subarray(0, 16)), { maxTokens: generateTokens + 1, onToken: () => stamps.push(performance.now()) });
    growth.generate = tf.memory().numTensors - genBefore;
    const generateTokensPerSecond = (stamps.length - 1) / ((stamps.at(-1)! - stamps[0]!) / 1000);
    say(`generate batch 1: ${stamps.length - 1} tokens, ${generateTokensPerSecond.toFixed(1)} tokens/s`);

    // Batch 8: eight equal-length prompts through forwardStep, the cache holding eight rows.
    const b8Before = tf.memory().numTensors;
    const generateBatch8TokensPerSecond = decodeRate(model, tokenIds(8 * 16, config.vocabSize, 8), 8, opts.quick ? 8 : 32);
    growth.generateBatch8 = tf.memory().numTensors - b8Before;
    say(`generate batch 8: ${generateBatch8TokensPerSecond.toFixed(1)} tokens/s (all rows together)`);

    // Training last: it changes the weights.
    const runs = [train(model, config, 4, 128, opts.quick ? 2 : 4, growth)];
    if (!opts.quick) runs.push(train(model, config, 4, 256, 3, growth));
    else notes.train256 = 'skipped with --quick';
    for (const r of runs) say(`train ${r.batch} x ${r.sequence}: ${r.steps} steps, ${r.tokensPerSecond.toFixed(1)} tokens/s, ${r.gflops.toFixed(1)} GFLOP/s, loss ${r.lossFirst.toFixed(3)} -> ${r.lossLast.toFixed(3)}`);
    if (model.recompute) notes.trainGflops = 'FLOPs counted as 6 per weight per token plus attention; the recomputed forward pass of each block (gradient checkpointing) is not counted';

    // numpy before and after, the better kept: one run can land in another process's burst.
    const npAfter = numpyGflops(1024, opts.python);
    const np = (npAfter.gflops ?? -1) > (npBefore.gflops ?? -1) ? npAfter : npBefore;
    if (np.why) notes.numpy = np.why;
    const trainGflops = runs[0]!.gflops;
    return {
      model: opts.modelPath.split('/').at(-1)!,
      backend: info.label,
      parameters: llamaParameterCount(config),
      quick: opts.quick,
      loadSeconds,
      prefillTokens,
      prefillTokensPerSecond,
      prefillGflops,
      generateTokens: stamps.length - 1,
      generateTokensPerSecond,
      generateBatch8TokensPerSecond,
      trainTokensPerSecond: runs[0]!.tokensPerSecond,
      trainGflops,
      train: runs,
      numpyGflops: np.gflops ?? null,
      modelOverNumpy: np.gflops ? trainGflops / np.gflops : null,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      tensorGrowth: growth,
      parity: par.result,
      notes,
    };
  } finally {
    model.dispose();
  }
}
