/**
 * Llama weights in the project's own terms: seeded initial weights, the shape check, and model files in the
 * project's safetensors format (model/weights.ts), whose metadata says the family and holds the config.
 */
import { Rng, deriveSeed, hashString } from '../random.ts';
import { MODEL_FORMAT, type Weights, decodeSafetensors, encodeSafetensors } from '../weights.ts';
import { LLAMA_FAMILY, type LlamaConfig, llamaWeightShapes, validateLlamaConfig } from './config.ts';

const INIT_STD = 0.02;

/**
 * Seeded initial weights, computed in plain JS so they are bit-identical on every backend: N(0, 0.02) for the
 * embedding, the head and every matrix (Hugging Face's initializer_range), the residual outputs (attn.o, mlp.down)
 * scaled by 1/sqrt(2·nLayers) as the GPT's are, unit norm gains. Each tensor draws from a stream seeded by
 * (seed, its name).
 */
export function initLlamaWeights(config: LlamaConfig, seed: number): Weights {
  const weights: Weights = new Map();
  const residualStd = INIT_STD / Math.sqrt(2 * config.nLayers);
  for (const [name, shape] of llamaWeightShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('.gain')) {
      data.fill(1);
    } else {
      const std = name.endsWith('attn.o.weight') || name.endsWith('mlp.down.weight') ? residualStd : INIT_STD;
      const rng = new Rng(deriveSeed(seed, hashString(name)));
      for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
    }
    weights.set(name, { shape, data });
  }
  return weights;
}

/** Checks that `weights` has exactly the tensors and shapes `config` calls for; throws naming the first difference. */
export function checkLlamaWeights(config: LlamaConfig, weights: Weights): void {
  const shapes = llamaWeightShapes(config);
  for (const [name, shape] of shapes) {
    const t = weights.get(name);
    if (!t) throw new Error(`llama weights: missing tensor ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`llama weights: tensor ${name} has shape [${t.shape}], the config needs [${shape}]`);
    }
    if (t.data.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`llama weights: tensor ${name} has ${t.data.length} values for [${shape}]`);
  }
  for (const name of weights.keys()) {
    if (!shapes.has(name)) throw new Error(`llama weights: unexpected tensor ${name} for this config`);
  }
}

/**
 * The family a model file's metadata names: `family`, or 'gpt' for files written before there was more than one
 * (model/weights.ts saveModel writes no family).
 */
export function modelFamily(metadata: Readonly<Record<string, string>>): string {
  return metadata.family ?? 'gpt';
}

/** Serialises a Llama model: weights plus metadata `format` (perennial-model/1), `family` 'llama', `config` (JSON) and any extra string fields. */
export function saveLlamaModel(config: LlamaConfig, weights: Weights, extraMeta: Record<string, string> = {}): Uint8Array {
  const valid = validateLlamaConfig(config);
  checkLlamaWeights(valid, weights);
  return encodeSafetensors(weights, { ...extraMeta, format: MODEL_FORMAT, family: LLAMA_FAMILY, config: JSON.stringify(valid) });
}

/** Parses a model file written by saveLlamaModel; refuses another format or family, or weights that do not match the stored config. */
export function loadLlamaModel(bytes: Uint8Array): { config: LlamaConfig; weights: Weights; metadata: Record<string, string> } {
  const { tensors, metadata } = decodeSafetensors(bytes);
  if (metadata.format !== MODEL_FORMAT) throw new Error(`model file: format ${JSON.stringify(metadata.format)} is not ${MODEL_FORMAT}`);
  const family = modelFamily(metadata);
  if (family !== LLAMA_FAMILY) throw new Error(`model file: family is ${JSON.stringify(family)}, not "${LLAMA_FAMILY}"`);
  let raw: unknown;
  try {
    raw = JSON.parse(metadata.config ?? '');
  } catch {
    throw new Error('model file: metadata.config is missing or not JSON');
  }
  const config = validateLlamaConfig(raw);
  checkLlamaWeights(config, tensors);
  return { config, weights: tensors, metadata };
}
