/**
 * Builds a Llama model's config and weights, in the internal layout (model/llama/config.ts), from the checkpoints
 * users bring: a GGUF file (llama.cpp, Ollama) or a Hugging Face folder (config.json + safetensors). Tensors are read
 * one at a time by model/checkpoints and converted as they come: GGUF's attn_q / attn_k rows from adjacent rotary
 * pairs to Hugging Face's halves (`ggufToHfRotary`), every [out, in] matrix transposed to [in, out]. A checkpoint
 * this decoder would compute a different function for (rope scaling, biases, another activation) is refused with a
 * CheckpointFormatError rather than run wrongly.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointFormatError } from '../checkpoints/errors.ts';
import { type GGUFFile, llamaHyperparameters, openGGUF } from '../checkpoints/gguf.ts';
import { type LlamaHyperparameters, ggufToHfName, ggufToHfRotary } from '../checkpoints/llama-layout.ts';
import { HF_CONFIG, type HfCheckpoint, openHfCheckpoint } from '../checkpoints/safetensors.ts';
import type { Weights } from '../weights.ts';
import { LLAMA_FAMILY, type LlamaConfig, llamaWeightShapes, validateLlamaConfig } from './config.ts';

/** A checkpoint read into the internal layout. */
export interface LoadedLlama {
  config: LlamaConfig;
  weights: Weights;
  source: { format: 'gguf' | 'hf'; path: string };
}

/** Internal tensor name -> GGUF tensor name (Hugging Face names follow from ggufToHfName). */
export function ggufNameOf(internal: string): string {
  const top: Record<string, string> = { tok_emb: 'token_embd.weight', 'norm_f.gain': 'output_norm.weight', head: 'output.weight' };
  if (top[internal]) return top[internal];
  const m = /^blocks\.(\d+)\.(.+)$/.exec(internal);
  const short: Record<string, string> = {
    'attn_norm.gain': 'attn_norm',
    'attn.q.weight': 'attn_q',
    'attn.k.weight': 'attn_k',
    'attn.v.weight': 'attn_v',
    'attn.o.weight': 'attn_output',
    'mlp_norm.gain': 'ffn_norm',
    'mlp.gate.weight': 'ffn_gate',
    'mlp.up.weight': 'ffn_up',
    'mlp.down.weight': 'ffn_down',
  };
  const s = m && short[m[2]!];
  if (!s) throw new Error(`no checkpoint name for the internal tensor ${internal}`);
  return `blk.${m[1]}.${s}.weight`;
}

/** The Hugging Face name of an internal tensor name. */
export function hfNameOf(internal: string): string {
  return ggufToHfName(ggufNameOf(internal))!;
}

/** [rows, cols] row-major -> [cols, rows], in blocks so both sides stay in cache. */
function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B)
    for (let c0 = 0; c0 < cols; c0 += B) {
      const r1 = Math.min(rows, r0 + B);
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = data[r * cols + c]!;
    }
  return out;
}

/** The config of a checkpoint's hyperparameters; `file` names the checkpoint in errors. */
export function llamaConfigFromHyperparameters(hp: LlamaHyperparameters, opts: { tiedEmbeddings: boolean; headDim?: number }, file: string): LlamaConfig {
  const headDim = opts.headDim ?? hp.ropeDimensionCount;
  if (hp.ropeDimensionCount !== headDim) {
    throw new CheckpointFormatError(file, `partial rotary is not supported: ${hp.ropeDimensionCount} rotated dimensions of a ${headDim}-wide head`);
  }
  try {
    return validateLlamaConfig({
      family: LLAMA_FAMILY,
      vocabSize: hp.vocabSize,
      dModel: hp.embeddingLength,
      nLayers: hp.blockCount,
      nHeads: hp.headCount,
      nKvHeads: hp.headCountKv,
      headDim,
      ffnWidth: hp.feedForwardLength,
      ropeBase: hp.ropeFreqBase,
      rmsEps: hp.rmsNormEpsilon,
      context: hp.contextLength,
      tiedEmbeddings: opts.tiedEmbeddings,
      rotaryLayout: 'halves',
    });
  } catch (err) {
    throw new CheckpointFormatError(file, (err as Error).message);
  }
}

/** Reads every internal tensor through `read` (which returns the checkpoint's row-major tensor and whether it is in GGUF's rotary layout). */
function assemble(
  config: LlamaConfig,
  file: string,
  read: (internal: string) => { name: string; shape: number[]; data: Float32Array; ggufRotary: boolean },
): Weights {
  const weights: Weights = new Map();
  for (const [internal, shape] of llamaWeightShapes(config)) {
    const t = read(internal);
    const matrix = shape.length === 2 && internal !== 'tok_emb' && internal !== 'head';
    // The checkpoint's matrices are [out, in]; ours [in, out].
    const stored = matrix ? [shape[1]!, shape[0]!] : shape;
    if (t.shape.length !== stored.length || t.shape.some((d, i) => d !== stored[i])) {
      throw new CheckpointFormatError(file, `tensor "${t.name}" has shape [${t.shape}], the hyperparameters call for [${stored}]`);
    }
    let data = t.data;
    const kind = /attn\.(q|k)\.weight$/.exec(internal)?.[1];
    if (kind && t.ggufRotary) {
      data = ggufToHfRotary(data, stored, { headCount: kind === 'q' ? config.nHeads : config.nKvHeads, headDim: config.headDim });
    }
    weights.set(internal, { shape, data: matrix ? transpose(data, stored[0]!, stored[1]!) : data });
  }
  return weights;
}

/** Tensor names a checkpoint may hold beyond the decoder's own without changing its function. */
const IGNORABLE = /(^|\.)rotary_emb\.inv_freq$/;

function refuseExtras(names: Iterable<string>, expected: Set<string>, file: string): void {
  for (const name of names) {
    if (expected.has(name) || IGNORABLE.test(name)) continue;
    throw new CheckpointFormatError(
      file,
      `tensor "${name}" is not part of the Llama decoder this project runs (no biases, rope frequency factors or extra heads): ` +
        'loading without it would compute a different function',
    );
  }
}

/** Refuses GGUF metadata that changes the function this decoder computes. */
function refuseGgufVariants(g: GGUFFile): void {
  const scaling = g.getString('llama.rope.scaling.type');
  if (scaling !== undefined && scaling !== 'none') throw new CheckpointFormatError(g.path, `rope scaling "${scaling}" is not supported`);
  const factor = g.getNumber('llama.rope.scaling.factor');
  if (factor !== undefined && factor !== 1 && scaling !== 'none') throw new CheckpointFormatError(g.path, `rope scaling factor ${factor} is not supported`);
  const experts = g.getNumber('llama.expert_count');
  if (experts !== undefined && experts > 0) throw new CheckpointFormatError(g.path, `mixture of experts (${experts} experts) is not supported`);
}

/** Config and weights of a llama GGUF file (any quantisation model/checkpoints dequantises), q/k rows converted to halves. */
export function loadLlamaGGUF(path: string): LoadedLlama {
  const g = openGGUF(path);
  const hp = llamaHyperparameters(g);
  refuseGgufVariants(g);
  const q = g.tensor('blk.0.attn_q.weight');
  const emb = g.tensor('token_embd.weight');
  if (!q || !emb) throw new CheckpointFormatError(path, 'no token_embd.weight or blk.0.attn_q.weight: not a llama decoder');
  const headDim = g.getNumber('llama.attention.key_length') ?? (q.shape[0] ?? 0) / hp.headCount;
  if (emb.shape[0] !== hp.vocabSize) {
    throw new CheckpointFormatError(path, `token_embd.weight has ${emb.shape[0]} rows but the vocabulary has ${hp.vocabSize} tokens`);
  }
  const config = llamaConfigFromHyperparameters(hp, { tiedEmbeddings: g.tensor('output.weight') === undefined, headDim }, path);
  const expected = new Set([...llamaWeightShapes(config).keys()].map(ggufNameOf));
  refuseExtras(
    g.tensors.map((t) => t.name),
    expected,
    path,
  );
  const weights = assemble(config, path, (internal) => {
    const name = ggufNameOf(internal);
    if (!g.tensor(name)) throw new CheckpointFormatError(path, `missing tensor "${name}"`);
    return { name, ...g.readTensor(name), ggufRotary: true };
  });
  return { config, weights, source: { format: 'gguf', path } };
}

/** Refuses Hugging Face config fields that change the function this decoder computes. */
function refuseHfVariants(ck: HfCheckpoint, file: string): void {
  const c = ck.config;
  if (c.rope_scaling !== undefined && c.rope_scaling !== null) throw new CheckpointFormatError(file, `rope_scaling ${JSON.stringify(c.rope_scaling)} is not supported`);
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') throw new CheckpointFormatError(file, `hidden_act ${JSON.stringify(c.hidden_act)} is not supported (silu)`);
  for (const key of ['attention_bias', 'mlp_bias'] as const) {
    if (c[key] === true) throw new CheckpointFormatError(file, `${key} is true: biases are not supported`);
  }
}

/** Config and weights of a Hugging Face llama folder (F32, F16 or BF16; single file or sharded). */
export function loadLlamaHf(dir: string): LoadedLlama {
  const ck = openHfCheckpoint(dir);
  const file = join(dir, HF_CONFIG);
  const hp = ck.llama();
  refuseHfVariants(ck, file);
  const hasHead = ck.tensors.has('lm_head.weight');
  const tie = ck.config.tie_word_embeddings;
  if (tie === false && !hasHead) throw new CheckpointFormatError(dir, 'tie_word_embeddings is false but there is no lm_head.weight');
  // Tied when the config says so (transformers then ignores any lm_head.weight) or when there is no separate head.
  const tiedEmbeddings = tie === true || !hasHead;
  const config = llamaConfigFromHyperparameters(hp, { tiedEmbeddings, headDim: hp.ropeDimensionCount }, file);
  const expected = new Set([...llamaWeightShapes(config).keys()].map(hfNameOf));
  if (tiedEmbeddings && hasHead) expected.add('lm_head.weight');
  refuseExtras(ck.tensors.keys(), expected, dir);
  const weights = assemble(config, dir, (internal) => {
    const name = hfNameOf(internal);
    if (!ck.tensors.has(name)) throw new CheckpointFormatError(dir, `missing tensor "${name}"`);
    return { name, ...ck.readTensor(name), ggufRotary: false };
  });
  return { config, weights, source: { format: 'hf', path: dir } };
}

/** A GGUF file or a Hugging Face folder, told apart by whether `path` is a folder. */
export function loadLlamaCheckpoint(path: string): LoadedLlama {
  return statSync(path).isDirectory() ? loadLlamaHf(path) : loadLlamaGGUF(path);
}
