import { VOCAB_SIZE } from './tokenizer.ts';

/** Shape of a decoder-only transformer; stored in every model file so a file is self-describing. */
export interface ModelConfig {
  /** Number of token ids; at least the byte tokenizer's VOCAB_SIZE. */
  vocabSize: number;
  /** Residual stream width. */
  dModel: number;
  /** Number of transformer blocks. */
  nLayers: number;
  /** Attention heads per block; must divide dModel. */
  nHeads: number;
  /** Maximum sequence length (number of learned positions). */
  context: number;
  /** MLP hidden width as a multiple of dModel. */
  mlpRatio: number;
}

/** Named configurations; later foundation versions add larger ones here. */
export const PRESETS = {
  tiny: { vocabSize: VOCAB_SIZE, dModel: 32, nLayers: 1, nHeads: 2, context: 32, mlpRatio: 4 },
  small: { vocabSize: VOCAB_SIZE, dModel: 64, nLayers: 2, nHeads: 4, context: 64, mlpRatio: 4 },
  /** ~3.3M parameters: big enough that the native backend's matmuls, not per-op overhead, set the pace. */
  base: { vocabSize: VOCAB_SIZE, dModel: 256, nLayers: 4, nHeads: 8, context: 256, mlpRatio: 4 },
} as const satisfies Record<string, ModelConfig>;

/** Name of a preset in PRESETS. */
export type PresetName = keyof typeof PRESETS;

/** Returns a copy of a preset, optionally with some fields overridden, validated. */
export function preset(name: PresetName, overrides: Partial<ModelConfig> = {}): ModelConfig {
  return validateConfig({ ...PRESETS[name], ...overrides });
}

const FIELDS = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'context', 'mlpRatio'] as const;

/** Checks an untrusted value (e.g. parsed from a file's metadata) and returns it as a ModelConfig; throws naming the bad field. */
export function validateConfig(value: unknown): ModelConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('model config: expected an object');
  }
  const v = value as Record<string, unknown>;
  for (const key of FIELDS) {
    const x = v[key];
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) {
      throw new Error(`model config: ${key} must be a positive number, got ${JSON.stringify(x)}`);
    }
    if (key !== 'mlpRatio' && !Number.isInteger(x)) {
      throw new Error(`model config: ${key} must be an integer, got ${x}`);
    }
  }
  const config: ModelConfig = {
    vocabSize: v.vocabSize as number,
    dModel: v.dModel as number,
    nLayers: v.nLayers as number,
    nHeads: v.nHeads as number,
    context: v.context as number,
    mlpRatio: v.mlpRatio as number,
  };
  if (config.vocabSize < VOCAB_SIZE) {
    throw new Error(`model config: vocabSize ${config.vocabSize} is smaller than the tokenizer's ${VOCAB_SIZE}`);
  }
  if (config.dModel % config.nHeads !== 0) {
    throw new Error(`model config: dModel ${config.dModel} is not divisible by nHeads ${config.nHeads}`);
  }
  if (config.context < 2) throw new Error(`model config: context must be at least 2, got ${config.context}`);
  if (!Number.isInteger(config.dModel * config.mlpRatio)) {
    throw new Error(`model config: dModel * mlpRatio must be an integer, got ${config.dModel * config.mlpRatio}`);
  }
  return config;
}

/** Width of the MLP hidden layer. */
export function mlpWidth(config: ModelConfig): number {
  return config.dModel * config.mlpRatio;
}

/** Every weight tensor of a model, by name, with its shape; the single source of truth for layout. */
export function weightShapes(config: ModelConfig): Map<string, number[]> {
  const { vocabSize: v, dModel: d, context: t } = config;
  const f = mlpWidth(config);
  const shapes = new Map<string, number[]>([
    ['tok_emb', [v, d]],
    ['pos_emb', [t, d]],
  ]);
  for (let i = 0; i < config.nLayers; i++) {
    const p = `blocks.${i}.`;
    shapes.set(`${p}ln1.gain`, [d]);
    shapes.set(`${p}ln1.bias`, [d]);
    shapes.set(`${p}attn.qkv.weight`, [d, 3 * d]);
    shapes.set(`${p}attn.qkv.bias`, [3 * d]);
    shapes.set(`${p}attn.proj.weight`, [d, d]);
    shapes.set(`${p}attn.proj.bias`, [d]);
    shapes.set(`${p}ln2.gain`, [d]);
    shapes.set(`${p}ln2.bias`, [d]);
    shapes.set(`${p}mlp.fc.weight`, [d, f]);
    shapes.set(`${p}mlp.fc.bias`, [f]);
    shapes.set(`${p}mlp.proj.weight`, [f, d]);
    shapes.set(`${p}mlp.proj.bias`, [d]);
  }
  shapes.set('ln_f.gain', [d]);
  shapes.set('ln_f.bias', [d]);
  return shapes;
}

/** Total number of parameters (the output head is tied to tok_emb, so it adds none). */
export function parameterCount(config: ModelConfig): number {
  let n = 0;
  for (const shape of weightShapes(config).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * Training FLOPs per token: 6 per weight that takes part in a matmul (forward 2, backward 4; the tied
 * head counts, the embedding lookups, norms and biases do not), plus attention: QK^T and AV cost
 * 4·context·dModel per token per layer forward, times 3 for training. The full T×T score matrix is
 * computed (the causal mask does not skip work), so there is no factor 1/2.
 */
export function flopsPerToken(config: ModelConfig): number {
  const { vocabSize: v, dModel: d, nLayers: l, context: t } = config;
  const f = mlpWidth(config);
  const matmulWeights = l * (d * 3 * d + d * d + 2 * d * f) + v * d;
  return 6 * matmulWeights + 12 * l * t * d;
}
