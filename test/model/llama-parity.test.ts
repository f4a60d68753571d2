/**
 * The Llama decoder against an implementation no one here wrote: test/fixtures/llama/make-reference.py writes a tiny
 * random model as a Hugging Face folder (BF16), a GGUF (F32, q/k permuted by llama.cpp's converter) and a Q8_0 GGUF
 * with an untied head, and the logits of a float64 NumPy forward pass over each. Each source is loaded by
 * model/llama/load.ts and run on every test backend.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../model/backend.ts';
import { hfToGgufRotary } from '../../model/checkpoints/llama-layout.ts';
import { loadLlamaCheckpoint, loadLlamaGGUF, loadLlamaHf } from '../../model/llama/load.ts';
import { LlamaModel } from '../../model/llama/model.ts';
import type { Weights } from '../../model/weights.ts';
import { TEST_BACKENDS } from './fixtures.ts';

const HERE = join(import.meta.dirname, '../fixtures/llama');

interface Reference {
  config: Record<string, unknown>;
  batch: number;
  time: number;
  ids: number[];
  wrongPairingRelError: number;
  logits: Record<string, string>;
}
const reference = JSON.parse(readFileSync(join(HERE, 'reference.json'), 'utf8')) as Reference;
const ids = Int32Array.from(reference.ids);

function float32(b64: string): Float32Array {
  const bytes = Buffer.from(b64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}
const expected = { tied: float32(reference.logits.tied!), q8_0: float32(reference.logits.q8_0!) };

/** Max over rows of max|a − b| / max|b| within the row: the error relative to the row's logit scale. */
function maxRelError(actual: Float32Array, want: Float32Array, vocab: number): number {
  let worst = 0;
  for (let r = 0; r < want.length / vocab; r++) {
    let diff = 0;
    let scale = 0;
    for (let j = r * vocab; j < (r + 1) * vocab; j++) {
      diff = Math.max(diff, Math.abs(actual[j]! - want[j]!));
      scale = Math.max(scale, Math.abs(want[j]!));
    }
    worst = Math.max(worst, diff / scale);
  }
  return worst;
}

function logitsOf(config: LlamaModel['config'], weights: Weights): Float32Array {
  const model = LlamaModel.create(config, weights);
  try {
    const t = tf.tidy(() => model.logits(ids, reference.batch));
    const out = Float32Array.from(t.dataSync());
    t.dispose();
    return out;
  } finally {
    model.dispose();
  }
}

const SOURCES = [
  ['tiny-hf', 'tied'],
  ['tiny-f32.gguf', 'tied'],
  ['tiny-q8_0.gguf', 'q8_0'],
] as const;

describe('Llama parity with the NumPy reference', () => {
  const loaded = new Map(SOURCES.map(([file]) => [file, loadLlamaCheckpoint(join(HERE, file))]));
  const errors: string[] = [];
  afterAll(() => {
    // The measured errors, for the report (vitest prints console output of the file).
    console.log(`llama parity, max relative logit error: ${errors.join('; ')}`);
  });

  it('reads the config the reference wrote, from each source', () => {
    const { config: want } = reference;
    expect(loaded.get('tiny-hf')!.config).toEqual({ ...want, rmsEps: 1e-5 });
    // GGUF stores the epsilon as float32.
    expect(loaded.get('tiny-f32.gguf')!.config).toEqual({ ...want, rmsEps: Math.fround(1e-5) });
    expect(loaded.get('tiny-q8_0.gguf')!.config).toEqual({ ...want, rmsEps: Math.fround(1e-5), tiedEmbeddings: false });
    expect(loaded.get('tiny-hf')!.source.format).toBe('hf');
    expect(loaded.get('tiny-q8_0.gguf')!.source.format).toBe('gguf');
  });

  it('the F32 GGUF and the BF16 folder hold the same weights once q/k rows are converted', () => {
    const hf = loaded.get('tiny-hf')!.weights;
    const gguf = loaded.get('tiny-f32.gguf')!.weights;
    expect([...gguf.keys()]).toEqual([...hf.keys()]);
    for (const [name, t] of hf) expect(Buffer.from(gguf.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
  });

  it.each(TEST_BACKENDS)('gives the reference logits from every source on %s (max relative error <= 1e-3)', async (backend) => {
    await initBackend({ force: backend });
    const before = tf.memory().numTensors;
    const bySource = new Map<string, Float32Array>();
    for (const [file, which] of SOURCES) {
      const { config, weights } = loaded.get(file)!;
      const logits = logitsOf(config, weights);
      const err = maxRelError(logits, expected[which], config.vocabSize);
      errors.push(`${file} on ${backend} ${err.toExponential(2)}`);
      expect(err, `${file} on ${backend}`).toBeLessThanOrEqual(1e-3);
      bySource.set(file, logits);
    }
    // Same weights through two readers: the same logits, bit for bit on one backend.
    expect(Buffer.from(bySource.get('tiny-f32.gguf')!.buffer).equals(Buffer.from(bySource.get('tiny-hf')!.buffer))).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a forward pass over q/k rows left in GGUF order misses by far (the check can fail)', async () => {
    await initBackend({ force: 'cpu' });
    const { config, weights } = loaded.get('tiny-hf')!;
    const wrong: Weights = new Map(weights);
    for (const [name, t] of weights) {
      const m = /attn\.(q|k)\.weight$/.exec(name);
      if (!m) continue;
      // Internal matrices are [in, out]: permute the output columns as llama.cpp permutes rows.
      const [rows, cols] = t.shape as [number, number];
      const tr = new Float32Array(t.data.length);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) tr[c * rows + r] = t.data[r * cols + c]!;
      const heads = { headCount: m[1] === 'q' ? config.nHeads : config.nKvHeads, headDim: config.headDim };
      const permuted = hfToGgufRotary(tr, [cols, rows], heads);
      const back = new Float32Array(t.data.length);
      for (let r = 0; r < cols; r++) for (let c = 0; c < rows; c++) back[c * cols + r] = permuted[r * rows + c]!;
      wrong.set(name, { shape: t.shape, data: back });
    }
    const err = maxRelError(logitsOf(config, wrong), expected.tied, config.vocabSize);
    expect(err).toBeGreaterThan(0.05);
    expect(err).toBeCloseTo(reference.wrongPairingRelError, 1);
  });
});

describe('Llama checkpoints this decoder would run wrongly are refused', () => {
  let root = '';
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'perennial-llama-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** A copy of the fixture folder with config.json changed by `edit`. */
  function hfWith(edit: (config: Record<string, unknown>) => void): string {
    const dir = mkdtempSync(join(root, 'hf-'));
    cpSync(join(HERE, 'tiny-hf'), dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    edit(config);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    return dir;
  }

  it('rope scaling, biases, another activation, a missing head, inconsistent heads', () => {
    expect(() => loadLlamaHf(hfWith((c) => (c.rope_scaling = { rope_type: 'llama3', factor: 8 })))).toThrow(/rope_scaling .* is not supported/);
    expect(() => loadLlamaHf(hfWith((c) => (c.attention_bias = true)))).toThrow(/attention_bias is true: biases are not supported/);
    expect(() => loadLlamaHf(hfWith((c) => (c.hidden_act = 'gelu')))).toThrow(/hidden_act "gelu" is not supported/);
    expect(() => loadLlamaHf(hfWith((c) => (c.tie_word_embeddings = false)))).toThrow(/tie_word_embeddings is false but there is no lm_head.weight/);
    expect(() => loadLlamaHf(hfWith((c) => (c.num_key_value_heads = 3)))).toThrow(/nHeads 4 is not a multiple of nKvHeads 3/);
    expect(() => loadLlamaHf(hfWith((c) => (c.intermediate_size = 65)))).toThrow(/tensor "model.layers.0.mlp.gate_proj.weight" has shape \[64,32\], the hyperparameters call for \[65,32\]/);
    expect(() => loadLlamaHf(hfWith((c) => (c.model_type = 'qwen2')))).toThrow(/architecture not supported/);
  });

  it('a GGUF that is not a llama decoder', () => {
    expect(() => loadLlamaGGUF(join(HERE, '../checkpoints/reference.gguf'))).toThrow(/reference.gguf: partial rotary is not supported: 16 rotated dimensions of a 2-wide head/);
  });
});
