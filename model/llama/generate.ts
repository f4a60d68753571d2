/**
 * Greedy generation with the key-value cache: the prompt runs once (prefill), then each new token is one position
 * against the cache. Sampling, stop strings, batched prompts of different lengths and the chat template are the rest
 * of issue 34's item 4.
 */
import * as tf from '@tensorflow/tfjs';
import { type LlamaKvCache, type LlamaModel, disposeKvCache } from './model.ts';

/** Options of generateGreedy. */
export interface GreedyOptions {
  maxTokens: number;
  /** Token ids that end the continuation (not included in it), e.g. the tokenizer's EOS. */
  stop?: readonly number[];
  /** Called with each new token as it is chosen (streaming, progress). */
  onToken?: (token: number) => void;
}

/** Arg-max of each row of `logits` [rows, vocab], read back as numbers (rows values, not rows · vocab). */
function argmaxRows(logits: tf.Tensor2D): number[] {
  const best = tf.argMax(logits, 1);
  try {
    return Array.from(best.dataSync());
  } finally {
    best.dispose();
  }
}

/**
 * Continues `prompt` (token ids, at least one) greedily for up to maxTokens tokens, stopping at a stop token or at
 * the model's context, and returns the new tokens. Deterministic; frees every tensor it made.
 */
export function generateGreedy(model: LlamaModel, prompt: readonly number[], opts: GreedyOptions): number[] {
  if (prompt.length < 1) throw new Error('generateGreedy: the prompt is empty (give at least a BOS token)');
  const { context } = model.config;
  if (prompt.length > context) throw new Error(`generateGreedy: the prompt has ${prompt.length} tokens, more than the context ${context}`);
  const stop = new Set(opts.stop ?? []);
  const out: number[] = [];
  let cache: LlamaKvCache | undefined;
  let input = Int32Array.from(prompt);
  try {
    while (out.length < opts.maxTokens) {
      const step = model.forwardStep(input, 1, cache);
      cache = step.cache;
      const next = argmaxRows(step.logits)[0]!;
      step.logits.dispose();
      if (stop.has(next)) break;
      out.push(next);
      opts.onToken?.(next);
      // The next step would put the new token at position cache.length: it must fit the context.
      if (cache.length >= context) break;
      input = Int32Array.of(next);
    }
  } finally {
    disposeKvCache(cache);
  }
  return out;
}

/**
 * The same continuation without a cache: the whole sequence is recomputed for every new token. O(n²) in the
 * length; kept as the reference that generateGreedy must agree with, and for models without a cache path.
 */
export function generateGreedyRecompute(model: LlamaModel, prompt: readonly number[], opts: GreedyOptions): number[] {
  const { context } = model.config;
  const stop = new Set(opts.stop ?? []);
  const tokens = [...prompt];
  const out: number[] = [];
  while (out.length < opts.maxTokens && tokens.length <= context) {
    const ids = Int32Array.from(tokens);
    const logits = tf.tidy(() => model.head(tf.slice(model.hidden(ids, 1), [ids.length - 1, 0], [1, -1]) as tf.Tensor2D));
    const next = argmaxRows(logits)[0]!;
    logits.dispose();
    if (stop.has(next)) break;
    out.push(next);
    opts.onToken?.(next);
    if (tokens.length === context) break;
    tokens.push(next);
  }
  return out;
}
