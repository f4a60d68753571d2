/**
 * What differs between a llama checkpoint in GGUF and the same checkpoint in Hugging Face's layout: tensor names,
 * the row order of the query and key projections, and where the hyperparameters are written down.
 *
 * Rotary layout: llama.cpp's converter (convert_hf_to_gguf.py, `LlamaModel.permute`) reorders the rows of every
 * `q_proj` / `k_proj` within each head so that the two halves Hugging Face rotates together (x[i], x[i + d/2]) become
 * adjacent pairs (x[2i], x[2i + 1]), which is what llama.cpp's rope kernel rotates. A forward pass must pair rows
 * the way its weights were laid out; these functions convert between the two.
 */
import { CheckpointFormatError } from './errors.ts';

/** The hyperparameters a llama decoder needs, whichever file they came from. */
export interface LlamaHyperparameters {
  blockCount: number;
  embeddingLength: number;
  feedForwardLength: number;
  headCount: number;
  headCountKv: number;
  ropeFreqBase: number;
  /** Rotated dimensions per head; the head dimension for llama. */
  ropeDimensionCount: number;
  rmsNormEpsilon: number;
  contextLength: number;
  vocabSize: number;
}

/** How the rows of a query or key projection split into heads. */
export interface RotaryHeads {
  headCount: number;
  headDim: number;
}

function checkRows(shape: readonly number[], data: Float32Array, heads: RotaryHeads): number {
  const rows = shape[0] ?? 0;
  if (heads.headDim % 2 !== 0) throw new Error(`rotary head dimension ${heads.headDim} is odd`);
  if (rows !== heads.headCount * heads.headDim) {
    throw new Error(`a projection of ${rows} rows is not ${heads.headCount} heads of ${heads.headDim}`);
  }
  const cols = shape.slice(1).reduce((a, b) => a * b, 1);
  if (rows * cols !== data.length) throw new Error(`shape [${shape}] does not hold ${data.length} values`);
  return cols;
}

/**
 * Hugging Face row order -> GGUF row order, as llama.cpp's `permute`:
 * `w.reshape(n_head, 2, head_dim // 2, *rest).swapaxes(1, 2).reshape(w.shape)`. GGUF row `h*D + 2i + s` is
 * Hugging Face row `h*D + s*D/2 + i`. `shape` is row-major (rows first); a bias is a shape of one dimension.
 */
export function hfToGgufRotary(data: Float32Array, shape: readonly number[], heads: RotaryHeads): Float32Array {
  return permuteRows(data, shape, heads, true);
}

/** GGUF row order -> Hugging Face row order: the inverse of `hfToGgufRotary`. */
export function ggufToHfRotary(data: Float32Array, shape: readonly number[], heads: RotaryHeads): Float32Array {
  return permuteRows(data, shape, heads, false);
}

function permuteRows(data: Float32Array, shape: readonly number[], heads: RotaryHeads, toGguf: boolean): Float32Array {
  const cols = checkRows(shape, data, heads);
  const { headCount, headDim } = heads;
  const half = headDim / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < headCount; h++)
    for (let i = 0; i < half; i++)
      for (let s = 0; s < 2; s++) {
        const gguf = h * headDim + 2 * i + s;
        const hf = h * headDim + s * half + i;
        const [from, to] = toGguf ? [hf, gguf] : [gguf, hf];
        out.set(data.subarray(from * cols, (from + 1) * cols), to * cols);
      }
  return out;
}

/** Per-block tensors: GGUF short name and Hugging Face name under `model.layers.N.`. */
const BLOCK_TENSORS: readonly (readonly [string, string])[] = [
  ['attn_norm', 'input_layernorm'],
  ['attn_q', 'self_attn.q_proj'],
  ['attn_k', 'self_attn.k_proj'],
  ['attn_v', 'self_attn.v_proj'],
  ['attn_output', 'self_attn.o_proj'],
  ['ffn_norm', 'post_attention_layernorm'],
  ['ffn_gate', 'mlp.gate_proj'],
  ['ffn_up', 'mlp.up_proj'],
  ['ffn_down', 'mlp.down_proj'],
];
const TOP_TENSORS: readonly (readonly [string, string])[] = [
  ['token_embd', 'model.embed_tokens'],
  ['output_norm', 'model.norm'],
  ['output', 'lm_head'],
];

const GGUF_NAME = /^(?:blk\.(\d+)\.)?([a-z_]+)\.(weight|bias)$/;
const HF_BLOCK = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/;
const HF_TOP = /^(.+)\.(weight|bias)$/;

/**
 * The Hugging Face name of a llama tensor's GGUF name (`blk.3.attn_q.weight` -> `model.layers.3.self_attn.q_proj.weight`,
 * `token_embd.weight` -> `model.embed_tokens.weight`), or undefined for a tensor Hugging Face has no name for
 * (`rope_freqs.weight`).
 */
export function ggufToHfName(name: string): string | undefined {
  const m = GGUF_NAME.exec(name);
  if (!m) return undefined;
  const [, block, short, suffix] = m;
  if (block !== undefined) {
    const hf = BLOCK_TENSORS.find(([g]) => g === short)?.[1];
    return hf && `model.layers.${Number(block)}.${hf}.${suffix}`;
  }
  const hf = TOP_TENSORS.find(([g]) => g === short)?.[1];
  return hf && `${hf}.${suffix}`;
}

/** The GGUF name of a Hugging Face llama tensor name; the inverse of `ggufToHfName`. */
export function hfToGgufName(name: string): string | undefined {
  const b = HF_BLOCK.exec(name);
  if (b) {
    const [, block, hf, suffix] = b;
    const g = BLOCK_TENSORS.find(([, h]) => h === hf)?.[0];
    return g && `blk.${Number(block)}.${g}.${suffix}`;
  }
  const t = HF_TOP.exec(name);
  if (!t) return undefined;
  const g = TOP_TENSORS.find(([, h]) => h === t[1])?.[0];
  return g && `${g}.${t[2]}`;
}

/**
 * For a query or key projection (either naming), how its rows split into heads; undefined for every other tensor,
 * whose layout is the same in both formats. Keys use the key-value head count (grouped-query attention).
 */
export function rotaryHeadsOf(name: string, hp: LlamaHyperparameters): RotaryHeads | undefined {
  const gguf = GGUF_NAME.test(name) ? name : hfToGgufName(name);
  const short = gguf && GGUF_NAME.exec(gguf)?.[2];
  // Rows per head: llama rotates the whole head, so the rotary dimension is the head dimension.
  const headDim = hp.ropeDimensionCount;
  if (short === 'attn_q') return { headCount: hp.headCount, headDim };
  if (short === 'attn_k') return { headCount: hp.headCountKv, headDim };
  return undefined;
}

/**
 * The llama hyperparameters of a Hugging Face `config.json` (`model_type` "llama"). `file` names the config in
 * errors. Defaults as transformers' LlamaConfig: `num_key_value_heads` = heads, `rope_theta` 10000, `head_dim` =
 * hidden / heads.
 */
export function llamaHyperparametersFromHfConfig(config: unknown, file: string): LlamaHyperparameters {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new CheckpointFormatError(file, 'config is not a JSON object');
  const c = config as Record<string, unknown>;
  if (c.model_type !== 'llama') {
    throw new CheckpointFormatError(file, `architecture not supported: model_type is ${JSON.stringify(c.model_type)} (supported: llama)`);
  }
  const num = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new CheckpointFormatError(file, `${key} is ${JSON.stringify(v)}, not a positive number`);
    return v;
  };
  const hidden = num('hidden_size');
  const heads = num('num_attention_heads');
  return {
    blockCount: num('num_hidden_layers'),
    embeddingLength: hidden,
    feedForwardLength: num('intermediate_size'),
    headCount: heads,
    headCountKv: num('num_key_value_heads', heads),
    ropeFreqBase: num('rope_theta', 10000),
    ropeDimensionCount: num('head_dim', hidden / heads),
    rmsNormEpsilon: num('rms_norm_eps'),
    contextLength: num('max_position_embeddings'),
    vocabSize: num('vocab_size'),
  };
}
