/**
 * The shape of a Llama-family decoder (Llama 2/3 without rope scaling, SmolLM, TinyLlama, ...): RMSNorm, rotary
 * positions, grouped-query attention, a SwiGLU MLP, tied or untied output head. The config is stored in every model
 * file (its `family` says which kernels read it), so a file describes itself.
 *
 * Internal layout, chosen once: rotary pairs are Hugging Face's halves (x[i], x[i + headDim/2]), so a GGUF's
 * attn_q / attn_k rows are converted at load (`ggufToHfRotary`); weight matrices are [in, out] (`x @ w`, the GPT's
 * layout: a plain 2-D matmul is the fast path on wasm), so Hugging Face's and GGUF's [out, in] matrices are
 * transposed at load; the embedding and an untied head are [vocab, dModel] in every format.
 */

/** Which pairs of a head's dimensions the rotary embedding rotates together. */
export type RotaryLayout = 'halves';

/** A Llama-family decoder's shape and constants. */
export interface LlamaConfig {
  family: 'llama';
  vocabSize: number;
  /** Residual stream width (hidden_size). */
  dModel: number;
  nLayers: number;
  /** Query heads. */
  nHeads: number;
  /** Key-value heads (grouped-query attention); divides nHeads. */
  nKvHeads: number;
  /** Width of one head; rotary rotates all of it. Llama has nHeads · headDim = dModel, but it need not. */
  headDim: number;
  /** SwiGLU hidden width (intermediate_size). */
  ffnWidth: number;
  /** Rotary base θ (rope_theta / rope.freq_base). */
  ropeBase: number;
  /** RMSNorm epsilon. */
  rmsEps: number;
  /** Longest sequence the model was trained for (max_position_embeddings / context_length). */
  context: number;
  /** Whether the output head is the token embedding (no separate head tensor). */
  tiedEmbeddings: boolean;
  /** Always 'halves' (Hugging Face's rotate_half); GGUF's adjacent pairs are converted at load. */
  rotaryLayout: RotaryLayout;
}

/** Value of `family` in a LlamaConfig and in the metadata of a Llama model file. */
export const LLAMA_FAMILY = 'llama';

/** Named shapes: `tiny` for tests, and the embedded SmolLM2-135M (its file says the same, see MODELS-NOTES.md). */
export const LLAMA_PRESETS = {
  tiny: {
    family: 'llama',
    vocabSize: 300,
    dModel: 32,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 8,
    ffnWidth: 64,
    ropeBase: 10000,
    rmsEps: 1e-5,
    context: 64,
    tiedEmbeddings: true,
    rotaryLayout: 'halves',
  },
  'smollm2-135m': {
    family: 'llama',
    vocabSize: 49152,
    dModel: 576,
    nLayers: 30,
    nHeads: 9,
    nKvHeads: 3,
    headDim: 64,
    ffnWidth: 1536,
    ropeBase: 100000,
    rmsEps: 1e-5,
    context: 8192,
    tiedEmbeddings: true,
    rotaryLayout: 'halves',
  },
} as const satisfies Record<string, LlamaConfig>;

export type LlamaPresetName = keyof typeof LLAMA_PRESETS;

/** A preset with some fields overridden, validated. */
export function llamaPreset(name: LlamaPresetName, overrides: Partial<LlamaConfig> = {}): LlamaConfig {
  return validateLlamaConfig({ ...LLAMA_PRESETS[name], ...overrides });
}

const INTEGER_FIELDS = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKvHeads', 'headDim', 'ffnWidth', 'context'] as const;
const KNOWN_FIELDS = new Set<string>([...INTEGER_FIELDS, 'family', 'ropeBase', 'rmsEps', 'tiedEmbeddings', 'rotaryLayout']);

/** Checks an untrusted value (a model file's metadata, a converted checkpoint header) and returns it as a LlamaConfig; throws naming the bad field. */
export function validateLlamaConfig(value: unknown): LlamaConfig {
  const fail = (why: string): never => {
    throw new Error(`llama config: ${why}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('expected an object');
  const v = value as Record<string, unknown>;
  if (v.family !== LLAMA_FAMILY) fail(`family must be "${LLAMA_FAMILY}", got ${JSON.stringify(v.family)}`);
  // A misspelt field would otherwise be ignored and its default silently taken.
  for (const key of Object.keys(v)) if (!KNOWN_FIELDS.has(key)) fail(`unknown field ${JSON.stringify(key)}`);
  for (const key of INTEGER_FIELDS) {
    const x = v[key];
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x <= 0) fail(`${key} must be a positive integer, got ${JSON.stringify(x)}`);
  }
  for (const key of ['ropeBase', 'rmsEps'] as const) {
    const x = v[key];
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) fail(`${key} must be a positive number, got ${JSON.stringify(x)}`);
  }
  if (typeof v.tiedEmbeddings !== 'boolean') fail(`tiedEmbeddings must be true or false, got ${JSON.stringify(v.tiedEmbeddings)}`);
  if (v.rotaryLayout !== 'halves') {
    fail(
      `rotaryLayout must be "halves" (Hugging Face's rotate_half), got ${JSON.stringify(v.rotaryLayout)}: ` +
        'GGUF tensors are in adjacent pairs and are converted when they are read (model/llama/load.ts)',
    );
  }
  const c = v as unknown as LlamaConfig;
  if (c.nHeads % c.nKvHeads !== 0) fail(`nHeads ${c.nHeads} is not a multiple of nKvHeads ${c.nKvHeads}`);
  if (c.headDim % 2 !== 0) fail(`headDim ${c.headDim} is odd: rotary positions rotate pairs`);
  if (c.rmsEps >= 1) fail(`rmsEps ${c.rmsEps} is not small (expected below 1, typically 1e-5 or 1e-6)`);
  return {
    family: LLAMA_FAMILY,
    vocabSize: c.vocabSize,
    dModel: c.dModel,
    nLayers: c.nLayers,
    nHeads: c.nHeads,
    nKvHeads: c.nKvHeads,
    headDim: c.headDim,
    ffnWidth: c.ffnWidth,
    ropeBase: c.ropeBase,
    rmsEps: c.rmsEps,
    context: c.context,
    tiedEmbeddings: c.tiedEmbeddings,
    rotaryLayout: 'halves',
  };
}

/** Every weight tensor by internal name, with its shape, in a fixed order (the optimiser's): the single source of truth. */
export function llamaWeightShapes(config: LlamaConfig): Map<string, number[]> {
  const { vocabSize: v, dModel: d, nHeads: h, nKvHeads: kv, headDim: hd, ffnWidth: f } = config;
  const shapes = new Map<string, number[]>([['tok_emb', [v, d]]]);
  for (let i = 0; i < config.nLayers; i++) {
    const p = `blocks.${i}.`;
    shapes.set(`${p}attn_norm.gain`, [d]);
    shapes.set(`${p}attn.q.weight`, [d, h * hd]);
    shapes.set(`${p}attn.k.weight`, [d, kv * hd]);
    shapes.set(`${p}attn.v.weight`, [d, kv * hd]);
    shapes.set(`${p}attn.o.weight`, [h * hd, d]);
    shapes.set(`${p}mlp_norm.gain`, [d]);
    shapes.set(`${p}mlp.gate.weight`, [d, f]);
    shapes.set(`${p}mlp.up.weight`, [d, f]);
    shapes.set(`${p}mlp.down.weight`, [f, d]);
  }
  shapes.set('norm_f.gain', [d]);
  if (!config.tiedEmbeddings) shapes.set('head', [v, d]);
  return shapes;
}

/** Total number of parameters (a tied head adds none). */
export function llamaParameterCount(config: LlamaConfig): number {
  let n = 0;
  for (const shape of llamaWeightShapes(config).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/** Weights that take part in a matmul per token: every block matrix and the head (the embedding lookup does not). */
function matmulWeights(config: LlamaConfig): number {
  const { vocabSize: v, dModel: d, nLayers: l, nHeads: h, nKvHeads: kv, headDim: hd, ffnWidth: f } = config;
  return l * (d * (h + 2 * kv) * hd + h * hd * d + 3 * d * f) + v * d;
}

/**
 * Training FLOPs per token at `sequence` tokens per row (default the context), the GPT's convention
 * (model/config.ts flopsPerToken): 6 per matmul weight (forward 2, backward 4; the head counts, the lookup, norms
 * and rotary do not) plus attention, whose QK^T and AV cost 4 · sequence · nHeads · headDim per token per layer
 * forward, times 3 for training (the full score matrix is computed, so no factor 1/2).
 */
export function llamaFlopsPerToken(config: LlamaConfig, sequence = config.context): number {
  return 6 * matmulWeights(config) + 12 * config.nLayers * sequence * config.nHeads * config.headDim;
}

/** Forward-only FLOPs per token with `attended` positions visible to it (prefill, or one step of generation). */
export function llamaForwardFlopsPerToken(config: LlamaConfig, attended: number): number {
  return 2 * matmulWeights(config) + 4 * config.nLayers * attended * config.nHeads * config.headDim;
}
