/**
 * The Hugging Face folder reader against a sharded folder the safetensors package wrote
 * (test/fixtures/checkpoints/reference-hf, F32 / F16 / BF16, with what safetensors reads back), a single-file
 * folder written by the project's own encoder, and malformed headers and indexes these tests write.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointFormatError } from '../../model/checkpoints/errors.ts';
import { openHfCheckpoint, openSafetensors } from '../../model/checkpoints/safetensors.ts';
import { encodeSafetensors } from '../../model/weights.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures/checkpoints');
let root = '';
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'perennial-safetensors-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;

const LLAMA_CONFIG = {
  model_type: 'llama',
  hidden_size: 4,
  intermediate_size: 8,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 16,
  vocab_size: 3,
};

/** A folder with config.json and the given files (name -> bytes or JSON). */
function folder(files: Record<string, Uint8Array | object>, config: object = LLAMA_CONFIG): string {
  const dir = join(root, `m${folders++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content instanceof Uint8Array ? content : JSON.stringify(content));
  return dir;
}

/** A safetensors file from a header object and data bytes, the header padded with spaces as the format does. */
function st(header: object, data: Uint8Array): Uint8Array {
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const text = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

const sha = (a: Float32Array) =>
  createHash('sha256')
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');

function refused(file: string, fn: () => unknown, reason: RegExp): void {
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(CheckpointFormatError);
  expect((error as CheckpointFormatError).file).toBe(file);
  expect((error as CheckpointFormatError).reason).toMatch(reason);
}

describe('the sharded folder written by the safetensors package', () => {
  const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference-hf.json'), 'utf8')) as {
    tensors: { name: string; shape: number[]; dtype: string; shard: string; first: number[]; sha256: string }[];
  };

  it('lists every tensor of the weight_map with its dtype, shape and shard', () => {
    const hf = openHfCheckpoint(join(FIXTURES, 'reference-hf'));
    expect([...hf.tensors.keys()].sort()).toEqual(ref.tensors.map((t) => t.name));
    expect([...hf.shards.keys()].sort()).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    for (const t of ref.tensors) {
      const info = hf.tensors.get(t.name)!;
      expect([info.dtype, info.shape, info.file.endsWith(t.shard)], t.name).toEqual([t.dtype, t.shape, true]);
    }
    expect(new Set(ref.tensors.map((t) => t.dtype))).toEqual(new Set(['F32', 'F16', 'BF16']));
  });

  it('reads F32, F16 and BF16 as float32 exactly as safetensors reads them', () => {
    const hf = openHfCheckpoint(join(FIXTURES, 'reference-hf'));
    for (const t of ref.tensors) {
      const { shape, data } = hf.readTensor(t.name);
      expect(shape).toEqual(t.shape);
      expect([...data.subarray(0, 8)], t.name).toEqual(t.first);
      expect(sha(data), t.name).toBe(t.sha256);
    }
    expect(hf.llama()).toMatchObject({ embeddingLength: 8, headCount: 2, headCountKv: 1, ropeFreqBase: 100000, vocabSize: 4 });
  });
});

describe('a single model.safetensors', () => {
  it("reads the project's own F32 files", () => {
    const weights = new Map([
      ['model.norm.weight', { shape: [4], data: new Float32Array([1, 2, 3, 4]) }],
      ['model.embed_tokens.weight', { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 8) }],
    ]);
    const dir = folder({ 'model.safetensors': encodeSafetensors(weights, { format: 'pt' }) });
    const hf = openHfCheckpoint(dir);
    expect([...hf.shards.keys()]).toEqual(['model.safetensors']);
    expect(hf.shards.get('model.safetensors')!.metadata).toEqual({ format: 'pt' });
    for (const [name, t] of weights) expect(hf.readTensor(name)).toEqual(t);
  });

  it('reads F16 and BF16 bits by hand', () => {
    // 1, -2, 0.5 in half (0x3c00, 0xc000, 0x3800) and 1.5, -3 in bfloat16 (0x3fc0, 0xc040)
    const data = new Uint8Array([0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0xc0, 0x3f, 0x40, 0xc0]);
    const file = join(
      folder({
        'model.safetensors': st({ h: { dtype: 'F16', shape: [3], data_offsets: [0, 6] }, b: { dtype: 'BF16', shape: [2], data_offsets: [6, 10] } }, data),
      }),
      'model.safetensors',
    );
    const s = openSafetensors(file);
    expect([...s.readTensor('h').data]).toEqual([1, -2, 0.5]);
    expect([...s.readTensor('b').data]).toEqual([1.5, -3]);
  });
});

describe('files it refuses, and why', () => {
  const f32 = (n: number) => new Uint8Array(new Float32Array(n).fill(1).buffer);
  const one = (header: object, data: Uint8Array) => join(folder({ 'model.safetensors': st(header, data) }), 'model.safetensors');

  it('truncated tensor data and a header past the file end', () => {
    const file = one({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(4));
    truncateSync(file, readFileSync(file).length - 4);
    refused(file, () => openSafetensors(file), /truncated tensor data: tensor "a" needs bytes/);
    const past = one({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(1));
    const bytes = readFileSync(past);
    bytes.writeBigUint64LE(10_000n, 0);
    writeFileSync(past, bytes);
    refused(past, () => openSafetensors(past), /header past the file end: the header length is 10000 bytes/);
    const tiny = one({}, new Uint8Array());
    writeFileSync(tiny, new Uint8Array(5));
    refused(tiny, () => openSafetensors(tiny), /shorter than the 8-byte header length/);
  });

  it('overlapping, out-of-range and gapped offsets, and bytes nobody owns', () => {
    const cases: [object, Uint8Array, RegExp][] = [
      [
        { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
        f32(3),
        /tensor "b" overlaps tensor "a"/,
      ],
      [{ a: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, f32(2), /truncated tensor data: tensor "a"/],
      [{ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(2), /gap in the data before tensor "a": bytes 0\.\.4/],
      [{ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(2), /4 bytes after the last tensor/],
      [{ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(2), /shape \[3\] of F32 needs 12 bytes but data_offsets span 8/],
      [{ a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, f32(1), /end before they begin/],
      [{ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, f32(0), /not a list of non-negative integers/],
      [{ a: { dtype: 'F99', shape: [1], data_offsets: [0, 4] } }, f32(1), /tensor "a": unknown dtype "F99"/],
      [{ __metadata__: { n: 1 } }, f32(0), /__metadata__.n is not a string/],
    ];
    for (const [header, data, reason] of cases) {
      const file = one(header, data);
      refused(file, () => openSafetensors(file), reason);
    }
    const notJson = one({}, new Uint8Array());
    writeFileSync(notJson, Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"a"')]));
    refused(notJson, () => openSafetensors(notJson), /header is not valid UTF-8 JSON/);
  });

  it('a dtype it knows but does not read: listed, refused when read', () => {
    const file = one({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(16));
    const s = openSafetensors(file);
    expect(s.tensors.get('ids')!.dtype).toBe('I64');
    refused(file, () => s.readTensor('ids'), /"ids" is I64, which this reader does not read \(F32, F16, BF16\)/);
  });

  it('a weight_map naming a missing shard, a path outside the folder, or a tensor its shard lacks', () => {
    const shard = st({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(1));
    const missing = folder({
      'model-1.safetensors': shard,
      'model.safetensors.index.json': { weight_map: { a: 'model-1.safetensors', b: 'model-2.safetensors' } },
    });
    refused(
      join(missing, 'model.safetensors.index.json'),
      () => openHfCheckpoint(missing),
      /names the shard model-2.safetensors \(for tensor "b"\), which is missing/,
    );
    const outside = folder({ 'model.safetensors.index.json': { weight_map: { a: '../m0/model.safetensors' } } });
    refused(join(outside, 'model.safetensors.index.json'), () => openHfCheckpoint(outside), /not a file name in the folder/);
    const lacking = folder({
      'model-1.safetensors': shard,
      'model.safetensors.index.json': { weight_map: { a: 'model-1.safetensors', c: 'model-1.safetensors' } },
    });
    refused(join(lacking, 'model-1.safetensors'), () => openHfCheckpoint(lacking), /weight_map puts tensor "c" in this shard, which has no such tensor/);
    const noMap = folder({ 'model.safetensors.index.json': { metadata: {} } });
    refused(join(noMap, 'model.safetensors.index.json'), () => openHfCheckpoint(noMap), /no weight_map/);
  });

  it('a folder without config.json or weights, and a config of another architecture', () => {
    const empty = join(root, `m${folders++}`);
    mkdirSync(empty);
    refused(empty, () => openHfCheckpoint(empty), /no config.json/);
    const noWeights = folder({});
    refused(noWeights, () => openHfCheckpoint(noWeights), /neither model.safetensors nor model.safetensors.index.json/);
    const qwen = folder({}, { model_type: 'qwen2' });
    copyFileSync(join(FIXTURES, 'reference-hf/model-00001-of-00002.safetensors'), join(qwen, 'model.safetensors'));
    refused(join(qwen, 'config.json'), () => openHfCheckpoint(qwen).llama(), /architecture not supported: model_type is "qwen2"/);
  });
});
