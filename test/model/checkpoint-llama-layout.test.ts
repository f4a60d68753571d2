/**
 * What differs between a llama checkpoint in GGUF and in Hugging Face's layout: the query/key row permutation
 * (checked against llama.cpp's own `permute`, run by make-reference.py), the tensor names, and config.json.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointFormatError } from '../../model/checkpoints/errors.ts';
import {
  type LlamaHyperparameters,
  ggufToHfName,
  ggufToHfRotary,
  hfToGgufName,
  hfToGgufRotary,
  llamaHyperparametersFromHfConfig,
  rotaryHeadsOf,
} from '../../model/checkpoints/llama-layout.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures/checkpoints');
const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('the query/key permutation', () => {
  const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference-permute.json'), 'utf8')) as {
    cases: { n_head: number; n_head_kv: number | null; headCount: number; headDim: number; shape: number[]; hf: number[]; gguf: number[] }[];
  };

  it("maps Hugging Face rows to GGUF rows as llama.cpp's permute does, and back", () => {
    expect(ref.cases.length).toBeGreaterThan(0);
    for (const c of ref.cases) {
      const heads = { headCount: c.headCount, headDim: c.headDim };
      expect([...hfToGgufRotary(new Float32Array(c.hf), c.shape, heads)], JSON.stringify(heads)).toEqual(c.gguf);
      expect([...ggufToHfRotary(new Float32Array(c.gguf), c.shape, heads)]).toEqual(c.hf);
      expect(c.gguf).not.toEqual(c.hf);
    }
  });

  it('round-trips to the identity at SmolLM2 sizes (9 query and 3 key heads of 64) and for a bias', () => {
    for (const heads of [
      { headCount: 9, headDim: 64 },
      { headCount: 3, headDim: 64 },
    ]) {
      const shape = [heads.headCount * heads.headDim, 24];
      const w = Float32Array.from({ length: shape[0]! * shape[1]! }, (_, i) => i);
      const there = hfToGgufRotary(w, shape, heads);
      expect(same(there, w)).toBe(false);
      expect(same(ggufToHfRotary(there, shape, heads), w)).toBe(true);
      expect(same(hfToGgufRotary(ggufToHfRotary(w, shape, heads), shape, heads), w)).toBe(true);
      // Still a permutation of whole rows: every value once.
      expect(same(there.slice().sort(), w)).toBe(true);
    }
    const bias = Float32Array.from({ length: 8 }, (_, i) => i);
    expect([...hfToGgufRotary(bias, [8], { headCount: 2, headDim: 4 })]).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
  });

  it('refuses a matrix that is not heads x head dimension', () => {
    expect(() => hfToGgufRotary(new Float32Array(12), [6, 2], { headCount: 2, headDim: 4 })).toThrow(/6 rows is not 2 heads of 4/);
    expect(() => hfToGgufRotary(new Float32Array(6), [6], { headCount: 2, headDim: 3 })).toThrow(/odd/);
  });
});

describe('tensor names', () => {
  const pairs = [
    ['token_embd.weight', 'model.embed_tokens.weight'],
    ['output_norm.weight', 'model.norm.weight'],
    ['output.weight', 'lm_head.weight'],
    ['blk.0.attn_norm.weight', 'model.layers.0.input_layernorm.weight'],
    ['blk.0.attn_q.weight', 'model.layers.0.self_attn.q_proj.weight'],
    ['blk.12.attn_k.weight', 'model.layers.12.self_attn.k_proj.weight'],
    ['blk.3.attn_v.weight', 'model.layers.3.self_attn.v_proj.weight'],
    ['blk.29.attn_output.weight', 'model.layers.29.self_attn.o_proj.weight'],
    ['blk.1.ffn_norm.weight', 'model.layers.1.post_attention_layernorm.weight'],
    ['blk.1.ffn_gate.weight', 'model.layers.1.mlp.gate_proj.weight'],
    ['blk.1.ffn_up.weight', 'model.layers.1.mlp.up_proj.weight'],
    ['blk.1.ffn_down.weight', 'model.layers.1.mlp.down_proj.weight'],
    ['blk.2.attn_q.bias', 'model.layers.2.self_attn.q_proj.bias'],
  ] as const;

  it('maps each llama tensor both ways', () => {
    for (const [gguf, hf] of pairs) {
      expect(ggufToHfName(gguf)).toBe(hf);
      expect(hfToGgufName(hf)).toBe(gguf);
    }
  });

  it('has no name for tensors the other side lacks', () => {
    for (const name of ['rope_freqs.weight', 'blk.0.attn_rot_embd.weight', 'blk.x.attn_q.weight', 'token_embd']) expect(ggufToHfName(name)).toBeUndefined();
    for (const name of ['model.layers.0.self_attn.rotary_emb.inv_freq', 'model.layers.0.mlp.weird.weight', 'model.embed_tokens']) {
      expect(hfToGgufName(name)).toBeUndefined();
    }
  });

  it('says which tensors are permuted and into how many heads', () => {
    const hp = { embeddingLength: 576, headCount: 9, headCountKv: 3, ropeDimensionCount: 64 } as LlamaHyperparameters;
    expect(rotaryHeadsOf('blk.0.attn_q.weight', hp)).toEqual({ headCount: 9, headDim: 64 });
    expect(rotaryHeadsOf('model.layers.4.self_attn.k_proj.weight', hp)).toEqual({ headCount: 3, headDim: 64 });
    for (const name of ['blk.0.attn_v.weight', 'model.layers.0.self_attn.o_proj.weight', 'token_embd.weight', 'nonsense']) {
      expect(rotaryHeadsOf(name, hp)).toBeUndefined();
    }
  });
});

describe('config.json', () => {
  it('reads the llama hyperparameters, with LlamaConfig defaults for the optional ones', () => {
    const config = JSON.parse(readFileSync(join(FIXTURES, 'reference-hf/config.json'), 'utf8'));
    expect(llamaHyperparametersFromHfConfig(config, 'config.json')).toEqual({
      blockCount: 1,
      embeddingLength: 8,
      feedForwardLength: 16,
      headCount: 2,
      headCountKv: 1,
      ropeFreqBase: 100000,
      ropeDimensionCount: 4,
      rmsNormEpsilon: 1e-5,
      contextLength: 64,
      vocabSize: 4,
    });
    const { num_key_value_heads: _kv, rope_theta: _theta, ...bare } = config;
    expect(llamaHyperparametersFromHfConfig(bare, 'config.json')).toMatchObject({ headCountKv: 2, ropeFreqBase: 10000 });
  });

  it('refuses another architecture and a missing width', () => {
    expect(() => llamaHyperparametersFromHfConfig({ model_type: 'qwen2' }, 'c.json')).toThrow(CheckpointFormatError);
    expect(() => llamaHyperparametersFromHfConfig({ model_type: 'qwen2' }, 'c.json')).toThrow('c.json: architecture not supported: model_type is "qwen2"');
    expect(() => llamaHyperparametersFromHfConfig({ model_type: 'llama', hidden_size: 8 }, 'c.json')).toThrow(/num_attention_heads is undefined/);
  });
});
