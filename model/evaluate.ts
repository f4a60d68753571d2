/**
 * Evaluation: mean token loss / perplexity over held-out text, exact match on {prompt, completion}
 * probes by greedy decoding, and temperature sampling for inspection. All deterministic.
 */
import * as tf from '@tensorflow/tfjs';
import { crossEntropy } from './ops.ts';
import { Rng } from './random.ts';
import { BOS, EOS, PAD, decode, encode, encodeDocument } from './tokenizer.ts';
import type { LanguageModel } from './transformer.ts';

/** Result of evaluateLoss. */
export interface LossReport {
  /** Mean next-token cross-entropy in nats over every predicted token. */
  meanLoss: number;
  perplexity: number;
  /** Number of predicted tokens (each document's bytes and its EOS). */
  tokens: number;
}

/** A prompt and the completion the model should produce for it. */
export interface Probe {
  prompt: string;
  completion: string;
}

/** Result of exactMatch. */
export interface ExactMatchReport {
  accuracy: number;
  correct: number;
  total: number;
  /** Per probe, in the order given: whether it was answered exactly (what negative flips are counted from). */
  hits: boolean[];
}

/** Calls `run` for consecutive ranges [from, to) of at most batchSize rows. */
function inBatches(rows: number, batchSize: number, run: (from: number, to: number) => void): void {
  for (let from = 0; from < rows; from += batchSize) run(from, Math.min(rows, from + batchSize));
}

/** Computes a tensor in a tidy scope and reads it out (never return a big typed array from tidy: it scans it). */
function compute(f: () => tf.Tensor): Float32Array | Int32Array {
  const t = tf.tidy(f);
  try {
    return t.dataSync() as Float32Array | Int32Array;
  } finally {
    t.dispose();
  }
}

/**
 * Mean token loss and perplexity of `docs`, each encoded BOS + bytes + EOS. Every token after BOS
 * is predicted exactly once: documents longer than the context are cut into consecutive windows
 * (each window after the first sees only its own part of the document). Not sampled: deterministic.
 */
export function evaluateLoss(model: LanguageModel, docs: string[], opts: { batchSize?: number } = {}): LossReport {
  const t = model.config.context;
  const windows: { ids: number[]; targets: number[] }[] = [];
  for (const doc of docs) {
    const tokens = encodeDocument(doc);
    for (let s = 0; s < tokens.length - 1; s += t) {
      const end = Math.min(s + t, tokens.length - 1);
      windows.push({ ids: tokens.slice(s, end), targets: tokens.slice(s + 1, end + 1) });
    }
  }
  // Similar lengths together (a document's last window is usually short): less padding per batch.
  windows.sort((a, b) => a.ids.length - b.ids.length);
  let lossSum = 0;
  let count = 0;
  // 16 rows (~1,000 tokens at ctx 64) by default: bigger batches fall out of cache on wasm and run slower.
  inBatches(windows.length, opts.batchSize ?? 16, (from, to) => {
    const rows = to - from;
    const time = windows[to - 1]!.ids.length;
    const ids = new Int32Array(rows * time).fill(PAD);
    const targets = new Int32Array(rows * time).fill(PAD);
    const weights = new Float32Array(rows * time);
    for (let r = 0; r < rows; r++) {
      const w = windows[from + r]!;
      ids.set(w.ids, r * time);
      targets.set(w.targets, r * time);
      weights.fill(1, r * time, r * time + w.targets.length);
      count += w.targets.length;
    }
    // count = 1: the op returns the batch's loss sum; the mean is taken over all batches below.
    lossSum += compute(() => crossEntropy(model.logits(ids, rows), targets, weights, 1))[0]!;
  });
  const meanLoss = count > 0 ? lossSum / count : Number.NaN;
  return { meanLoss, perplexity: Math.exp(meanLoss), tokens: count };
}

/**
 * Share of probes for which greedy decoding from BOS + prompt produces exactly the completion's
 * bytes. Computed in one teacher-forced pass per batch: greedy decoding reproduces the completion iff
 * at every completion position the argmax, given the prompt and the completion so far, is the next
 * byte; the first wrong byte is where greedy decoding would diverge. Probes longer than the context
 * keep their last `context` tokens; an empty completion counts as matched.
 */
export function exactMatch(model: LanguageModel, probes: Probe[], opts: { batchSize?: number } = {}): ExactMatchReport {
  const context = model.config.context;
  const items = probes.map((p) => {
    const prompt = [BOS, ...encode(p.prompt)];
    const completion = encode(p.completion);
    const all = [...prompt, ...completion];
    // Inputs are all tokens but the last; the completion's bytes are predicted at the positions before them.
    const input = all.slice(Math.max(0, all.length - 1 - context), all.length - 1);
    return { input, completion };
  });
  // Short probes first, so each batch pads to a similar length.
  const order = items.map((_, i) => i).sort((a, b) => items[a]!.input.length - items[b]!.input.length);
  let correct = 0;
  const hits = new Array<boolean>(probes.length).fill(false);
  inBatches(order.length, opts.batchSize ?? 32, (from, to) => {
    const batch = order.slice(from, to).map((i) => items[i]!);
    const time = Math.max(1, ...batch.map((b) => b.input.length));
    const ids = new Int32Array(batch.length * time).fill(PAD);
    batch.forEach((b, r) => ids.set(b.input, r * time));
    const predicted = compute(() => tf.argMax(model.logits(ids, batch.length), 1));
    order.slice(from, to).forEach((i, r) => {
      const b = items[i]!;
      const first = b.input.length - b.completion.length; // position predicting the first completion byte
      if (b.completion.length > context) return;
      if (b.completion.every((tok, j) => predicted[r * time + first + j] === tok)) {
        correct++;
        hits[i] = true;
      }
    });
  });
  return { accuracy: probes.length > 0 ? correct / probes.length : 0, correct, total: probes.length, hits };
}

/** Options of sample. */
export interface SampleOptions {
  /** Softmax temperature; 0 (or less) is greedy decoding. */
  temperature: number;
  maxTokens: number;
  seed: number;
}

/**
 * Continues `prompt` for up to maxTokens bytes (stopping at EOS) and returns the continuation. BOS
 * and PAD are never sampled; past the context the model sees the last `context` tokens.
 */
export function sample(model: LanguageModel, prompt: string, opts: SampleOptions): string {
  const { context, vocabSize } = model.config;
  const tokens = [BOS, ...encode(prompt)];
  const generated: number[] = [];
  const rng = new Rng(opts.seed);
  for (let n = 0; n < opts.maxTokens; n++) {
    const window = Int32Array.from(tokens.slice(-context));
    const logits = Float32Array.from(compute(() => model.head(tf.slice(model.hidden(window, 1), [window.length - 1, 0], [1, -1]))));
    logits[BOS] = -Infinity;
    logits[PAD] = -Infinity;
    const next = opts.temperature > 0 ? drawTemperature(logits, opts.temperature, rng) : argmax(logits, vocabSize);
    if (next === EOS) break;
    tokens.push(next);
    generated.push(next);
  }
  return decode(generated);
}

function argmax(values: Float32Array, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

function drawTemperature(logits: Float32Array, temperature: number, rng: Rng): number {
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  const weights = Array.from(logits, (l) => Math.exp((l - max) / temperature));
  let u = rng.next() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i]!;
    if (u < 0) return i;
  }
  return argmax(logits, logits.length);
}
