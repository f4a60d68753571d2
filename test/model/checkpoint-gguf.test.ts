/**
 * The GGUF reader against files no one here wrote (test/fixtures/checkpoints/reference.gguf, made by gguf-py's
 * GGUFWriter, with the values gguf-py's reader and dequantiser read back), and against small files these tests
 * write: each quantisation type with known values, metadata of every type, alignment padding, and each malformed
 * file refused with its reason.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CheckpointFormatError } from '../../model/checkpoints/errors.ts';
import { type GGUFValue, ggufTokenizer, llamaHyperparameters, openGGUF, requireLlama } from '../../model/checkpoints/gguf.ts';
import { GGML_TYPE, type GgmlTypeName, floatToBfloat16, floatToHalf, halfToFloat, quantize } from '../../model/checkpoints/gguf-quants.ts';
import { writeGGUF } from '../../model/checkpoints/gguf-write.ts';
import { findSmolLMGGUF } from './smollm-file.ts';

// Counts the bytes the reader asks for, to show that opening reads the header and not the tensor data.
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  return { ...real, readSync: vi.fn(real.readSync) };
});

const FIXTURES = join(import.meta.dirname, '../fixtures/checkpoints');
let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'perennial-gguf-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const path = (name = `f${files++}.gguf`) => join(dir, name);

/** The source values make-reference.py quantised: integers over 256 in float32, two degenerate blocks. */
function source(count: number, seed: number, special: boolean): Float32Array {
  const x = new Float32Array(count);
  for (let i = 0; i < count; i++) x[i] = (((i * 7919 + seed * 104729) % 2001) - 1000) / 256;
  if (special && count >= 96) {
    x.fill(0, 32, 64);
    x.fill(0.75, 64, 96);
  }
  return x;
}

const sha = (b: Uint8Array | Float32Array) =>
  createHash('sha256')
    .update(new Uint8Array(b.buffer, b.byteOffset, b.byteLength))
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
  expect((error as CheckpointFormatError).message).toContain(file);
  expect((error as CheckpointFormatError).reason).toMatch(reason);
}

const str = (value: string): GGUFValue => ({ type: 'string', value });
const u32 = (value: number): GGUFValue => ({ type: 'uint32', value });

describe('the reference file written by gguf-py', () => {
  const ref = JSON.parse(readFileSync(join(FIXTURES, 'reference-gguf.json'), 'utf8'));
  const file = join(FIXTURES, 'reference.gguf');
  const g = openGGUF(file);

  it('reads the header, alignment and every metadata value as gguf-py does', () => {
    expect([g.version, g.alignment, g.dataOffset, g.tensors.length]).toEqual([ref.version, ref.alignment, ref.dataOffset, ref.tensorCount]);
    expect([...g.metadata.keys()]).toEqual(Object.keys(ref.metadata));
    for (const [key, { types, value }] of Object.entries<{ types: string[]; value: unknown }>(ref.metadata)) {
      const v = g.metadata.get(key)!;
      const got: string[] = [v.type];
      for (let a = v.type === 'array' ? v.value : undefined; a; a = a.itemType === 'array' ? a.values[0] : undefined) got.push(a.itemType);
      expect(got, key).toEqual(types);
      const plain = g.get(key);
      // gguf-py's JSON carries 64-bit integers as decimal strings.
      const comparable = JSON.parse(JSON.stringify(plain, (_k, x) => (typeof x === 'bigint' ? x.toString() : x)));
      expect(comparable, key).toEqual(value);
    }
  });

  it('dequantises every tensor bit for bit as gguf.quants.dequantize, shapes outermost first', () => {
    for (const t of ref.tensors) {
      const info = g.tensor(t.name)!;
      expect([info.typeName, info.type, info.ggufDims, info.shape, info.fileOffset, info.byteLength], t.name).toEqual([
        t.type,
        t.typeId,
        t.ggufDims,
        t.shape,
        t.fileOffset,
        t.byteLength,
      ]);
      const { shape, data } = g.readTensor(t.name);
      expect(shape).toEqual(t.shape);
      expect([...data.subarray(0, 8)]).toEqual(t.first);
      expect(sha(data), t.name).toBe(t.sha256);
      expect(sha(g.readTensorBytes(t.name)), t.name).toBe(t.rawSha256);
    }
  });

  it('quantises the same source values to the same bytes as gguf.quants.quantize', () => {
    for (const t of ref.tensors) {
      const count = t.shape.reduce((a: number, b: number) => a * b, 1);
      expect(sha(quantize(GGML_TYPE[t.type as GgmlTypeName], source(count, t.seed, t.special))), t.name).toBe(t.rawSha256);
    }
  });

  it('rounds to float16 as numpy and to bfloat16 as gguf-py at ties, the subnormal edge and overflow', () => {
    const hard = ref.rounding.cases as [number, number, number][];
    expect(hard.map(([x]) => [x, floatToHalf(x), floatToBfloat16(x)])).toEqual(hard);
    const changed: number[] = [];
    for (let h = 0; h < 65536; h++) if (((h & 0x7c00) !== 0x7c00 || (h & 0x3ff) === 0) && floatToHalf(halfToFloat(h)) !== h) changed.push(h);
    expect(changed).toEqual([]);
    expect(floatToHalf(NaN) & 0x7e00).toBe(0x7e00);
    expect(floatToBfloat16(NaN) & 0x7fc0).toBe(0x7fc0);
  });

  it('gives the llama hyperparameters and the tokenizer', () => {
    requireLlama(g);
    expect(llamaHyperparameters(g)).toEqual({
      blockCount: 1,
      embeddingLength: 64,
      feedForwardLength: 32,
      headCount: 4,
      headCountKv: 2,
      ropeFreqBase: 100000,
      ropeDimensionCount: 16,
      rmsNormEpsilon: Math.fround(1e-5),
      contextLength: 128,
      vocabSize: 4,
    });
    const tok = ggufTokenizer(g);
    expect(tok).toMatchObject({ model: 'gpt2', pre: 'smollm', tokens: ['<|endoftext|>', 'a', 'b', 'ab'], tokenTypes: [3, 1, 1, 1], merges: ['a b'] });
    expect(tok).toMatchObject({ bosTokenId: 1, eosTokenId: 0, addBosToken: false });
    expect(tok.chatTemplate).toContain('<|im_start|>');
  });
});

describe('round trips through the writer', () => {
  /** A block's bytes built by hand from its scale and quants, and the weights the block rules say it holds. */
  function handBlocks(type: 'Q8_0' | 'Q4_0' | 'Q4_1'): { bytes: Uint8Array; expected: number[] } {
    const d = 0.0625 + 2 ** -10; // an f16 with low mantissa bits set
    const m = -1.5;
    const q = Array.from({ length: 32 }, (_, i) => (type === 'Q8_0' ? ((i * 37) % 256) - 128 : (i * 7) % 16));
    const head = type === 'Q4_1' ? [floatToHalf(d), floatToHalf(m)] : [floatToHalf(d)];
    const quants = type === 'Q8_0' ? q.map((x) => x & 0xff) : Array.from({ length: 16 }, (_, i) => q[i]! | (q[i + 16]! << 4));
    const bytes = new Uint8Array([...head.flatMap((h) => [h & 0xff, h >> 8]), ...quants]);
    const expected = q.map((x) => Math.fround(type === 'Q8_0' ? d * x : type === 'Q4_0' ? d * (x - 8) : d * x + m));
    return { bytes, expected };
  }

  it('reads hand-made Q8_0, Q4_0 and Q4_1 blocks as d*q, d*(q-8) and d*q+m exactly', () => {
    const file = path();
    const blocks = { Q8_0: handBlocks('Q8_0'), Q4_0: handBlocks('Q4_0'), Q4_1: handBlocks('Q4_1') };
    writeGGUF(
      file,
      { 'general.architecture': str('llama') },
      Object.entries(blocks).map(([type, b]) => ({ name: type, ggufDims: [32], type: GGML_TYPE[type as GgmlTypeName], bytes: b.bytes })),
    );
    const g = openGGUF(file);
    for (const [type, b] of Object.entries(blocks)) expect([...g.readTensor(type).data], type).toEqual(b.expected);
    expect(blocks.Q4_0.expected.slice(0, 3)).toEqual([-0.5078125, -0.0634765625, 0.380859375]);
  });

  it('quantises floats that each type holds exactly and reads them back unchanged', () => {
    const exact: Record<GgmlTypeName, Float32Array> = {
      F32: new Float32Array([Math.PI, -1e-30, 3e38, 0]).map(Math.fround),
      F16: new Float32Array([1, -2.5, 65504, 2 ** -24, -0, 0.333251953125]),
      BF16: new Float32Array([1, -2.5, 2 ** 100, -(2 ** -120), 0.333984375, 1.5]),
      // d = 0.5: each block's largest magnitude is 63.5 = 127 * d.
      Q8_0: Float32Array.from({ length: 64 }, (_, i) => (i % 32 === 5 ? -63.5 : ((i * 29) % 255) / 2 - 63.5)),
      // d = 0.25: the largest magnitude, -2, is -8 * d; values -2 .. 1.75.
      Q4_0: Float32Array.from({ length: 64 }, (_, i) => (i % 16) / 4 - 2),
      // min -1, d = 0.125: values -1 .. 0.875 in steps of d.
      Q4_1: Float32Array.from({ length: 64 }, (_, i) => ((i * 11) % 16) / 8 - 1),
    };
    const file = path();
    writeGGUF(
      file,
      {},
      Object.entries(exact).map(([type, data]) => ({ name: type, shape: [data.length], data, type: type as GgmlTypeName })),
    );
    const g = openGGUF(file);
    for (const [type, data] of Object.entries(exact)) {
      expect(g.tensor(type)!.typeName).toBe(type);
      expect([...g.readTensor(type).data], type).toEqual([...data]);
    }
  });

  it('keeps the shape row-major: a 3 x 64 matrix is listed as [64, 3] and read as rows of 64', () => {
    const file = path();
    const data = source(192, 9, false);
    writeGGUF(file, {}, [{ name: 'm', shape: [3, 64], data, type: 'F32' }]);
    const t = openGGUF(file).tensor('m')!;
    expect([t.ggufDims, t.shape]).toEqual([
      [64, 3],
      [3, 64],
    ]);
    expect(openGGUF(file).readTensor('m').data).toEqual(data);
  });

  it('round-trips metadata of every value type, nested and empty arrays included', () => {
    const metadata: Record<string, GGUFValue> = {
      u8: { type: 'uint8', value: 255 },
      i8: { type: 'int8', value: -128 },
      u16: { type: 'uint16', value: 65535 },
      i16: { type: 'int16', value: -32768 },
      u32: { type: 'uint32', value: 4294967295 },
      i32: { type: 'int32', value: -2147483648 },
      f32: { type: 'float32', value: Math.fround(0.1) },
      f64: { type: 'float64', value: -1.7976931348623157e308 },
      u64: { type: 'uint64', value: 2n ** 64n - 1n },
      i64: { type: 'int64', value: -(2n ** 63n) },
      yes: { type: 'bool', value: true },
      no: { type: 'bool', value: false },
      s: str('ÿ ✓ 🦙 \u0000 end'),
      empty: str(''),
      strings: { type: 'array', value: { itemType: 'string', values: ['Ġthe', '', 'ü'] } },
      floats: { type: 'array', value: { itemType: 'float32', values: [0.5, -0] } },
      bigs: { type: 'array', value: { itemType: 'int64', values: [-1n, 2n ** 62n] } },
      bools: { type: 'array', value: { itemType: 'bool', values: [false, true] } },
      none: { type: 'array', value: { itemType: 'uint16', values: [] } },
      nested: {
        type: 'array',
        value: {
          itemType: 'array',
          values: [
            { itemType: 'string', values: ['a', 'b'] },
            { itemType: 'string', values: [] },
            { itemType: 'string', values: ['c'] },
          ],
        },
      },
    };
    const file = path();
    writeGGUF(file, metadata, [], { version: 2 });
    const g = openGGUF(file);
    expect(g.version).toBe(2);
    expect(Object.fromEntries(g.metadata)).toEqual(metadata);
    expect(g.get('nested')).toEqual([['a', 'b'], [], ['c']]);
    expect([g.getNumber('i32'), g.getNumber('u32'), g.getString('s'), g.getBoolean('no'), g.getNumber('missing')]).toEqual([
      -2147483648,
      4294967295,
      'ÿ ✓ 🦙 \u0000 end',
      false,
      undefined,
    ]);
    refused(file, () => g.getNumber('u64'), /"u64" is a uint64, not a number/);
    refused(file, () => g.getString('u8'), /"u8" is a uint8, not a string/);
  });

  it('pads the tensor data to the alignment: 32 by default, general.alignment when set', () => {
    const odd = { name: 'odd', shape: [3], data: new Float32Array([1, 2, 3]), type: 'F16' as const };
    const next = { name: 'next', shape: [2], data: new Float32Array([4, 5]) };
    for (const alignment of [undefined, 128]) {
      const file = path();
      writeGGUF(file, alignment ? { 'general.alignment': u32(alignment) } : { 'general.name': str('x') }, [odd, next]);
      const g = openGGUF(file);
      const a = alignment ?? 32;
      expect(g.alignment).toBe(a);
      expect(g.dataOffset % a).toBe(0);
      expect(g.tensor('odd')!.fileOffset).toBe(g.dataOffset);
      expect(g.tensor('next')!.fileOffset).toBe(g.dataOffset + a);
      expect([...g.readTensor('odd').data, ...g.readTensor('next').data]).toEqual([1, 2, 3, 4, 5]);
    }
  });

  it('opening reads the header, not the tensor data; a tensor is read alone', () => {
    const file = path();
    const big = new Float32Array(1 << 20).fill(0.5);
    writeGGUF(file, { 'general.architecture': str('llama') }, [
      { name: 'big', shape: [1024, 1024], data: big },
      { name: 'small', shape: [4], data: new Float32Array([1, 2, 3, 4]) },
    ]);
    const readSync = vi.mocked(fs.readSync);
    const bytesRead = () => readSync.mock.calls.reduce((n, call) => n + Number((call as unknown[])[3] ?? 0), 0);
    readSync.mockClear();
    const g = openGGUF(file);
    expect(bytesRead()).toBeLessThanOrEqual(64 * 1024);
    readSync.mockClear();
    expect([...g.readTensor('small').data]).toEqual([1, 2, 3, 4]);
    expect(bytesRead()).toBe(16);
  });
});

describe('files it refuses, and why', () => {
  /** A valid small file to break: a tokenizer array, two tensors (one Q8_0). */
  function valid(): string {
    const file = path();
    writeGGUF(
      file,
      {
        'general.architecture': str('llama'),
        'general.alignment': u32(64),
        'tokenizer.ggml.tokens': { type: 'array', value: { itemType: 'string', values: ['a', 'b', 'c'] } },
      },
      [
        { name: 'first', shape: [32], data: source(32, 1, false), type: 'Q8_0' },
        { name: 'second', shape: [2, 8], data: source(16, 2, false) },
      ],
    );
    return file;
  }
  const bytesOf = (file: string) => new Uint8Array(readFileSync(file));
  /** Where `marker` (a string) ends in the file. */
  const after = (bytes: Uint8Array, marker: string) => Buffer.from(bytes).indexOf(Buffer.from(marker)) + marker.length;
  function patched(edit: (b: Uint8Array, v: DataView) => void): string {
    const file = valid();
    const b = bytesOf(file);
    edit(b, new DataView(b.buffer));
    writeFileSync(file, b);
    return file;
  }

  it('bad magic, and a file too short for one', () => {
    const file = patched((b) => b.set([0x47, 0x47, 0x4a, 0x54], 0));
    refused(file, () => openGGUF(file), /not a GGUF file: bad magic 47 47 4a 54/);
    const tiny = path();
    writeFileSync(tiny, 'GG');
    refused(tiny, () => openGGUF(tiny), /shorter than the 4-byte magic/);
  });

  it('versions it does not read, big-endian files named as such', () => {
    for (const [version, reason] of [
      [1, /GGUF version 1 is not supported/],
      [4, /GGUF version 4 is not supported/],
      [0x03000000, /big-endian GGUF \(version 3\)/],
    ] as const) {
      const file = patched((_, v) => v.setUint32(4, version, true));
      refused(file, () => openGGUF(file), reason);
    }
  });

  it('truncated tensor data, naming the tensor', () => {
    const file = valid();
    truncateSync(file, fs.statSync(file).size - 70);
    refused(file, () => openGGUF(file), /truncated tensor data: tensor "second" needs bytes \d+\.\.\d+ but the file ends at \d+/);
  });

  it('a file that changes under an open reader', () => {
    const file = valid();
    const g = openGGUF(file);
    truncateSync(file, g.tensor('second')!.fileOffset + 8);
    refused(file, () => g.readTensor('second'), /changed size since it was opened/);
  });

  it('header or metadata past the file end', () => {
    const file = valid();
    const cut = after(bytesOf(file), 'tokenizer.ggml.tokens') + 10;
    truncateSync(file, cut);
    refused(file, () => openGGUF(file), /header past the file end: metadata "tokenizer.ggml.tokens" needs bytes/);
  });

  it('an unknown quantisation type, by its id; a known one it cannot dequantise, by name, only when read', () => {
    const file = path();
    writeGGUF(file, {}, [{ name: 'w', ggufDims: [32], type: 99, bytes: new Uint8Array(32) }]);
    refused(file, () => openGGUF(file), /tensor "w": unknown quantisation type 99/);
    const k = path();
    writeGGUF(k, {}, [{ name: 'w', ggufDims: [256], type: 12, bytes: new Uint8Array(144) }]);
    const g = openGGUF(k);
    expect(g.tensor('w')!.typeName).toBe('Q4_K');
    refused(k, () => g.readTensor('w'), /"w" is Q4_K \(type 12\), which this reader cannot dequantise \(F32, F16, Q4_0, Q4_1, Q8_0, BF16\)/);
  });

  it('absurd counts and lengths, before allocating for them', () => {
    const cases: [(b: Uint8Array, v: DataView) => void, RegExp][] = [
      [(_, v) => v.setBigUint64(8, 2n ** 40n, true), /tensor count 1099511627776 is absurd/],
      [(_, v) => v.setBigUint64(16, 2n ** 50n, true), /metadata count 1125899906842624 is absurd/],
      [(_, v) => v.setBigUint64(24, 2n ** 62n, true), /metadata entry 0's key: string length 4611686018427387904 is absurd/],
      [(b, v) => v.setBigUint64(after(b, 'tokenizer.ggml.tokens') + 8, 2n ** 33n, true), /"tokenizer.ggml.tokens": array length 8589934592 is absurd/],
      [(b, v) => v.setUint32(after(b, 'tokenizer.ggml.tokens'), 13, true), /"tokenizer.ggml.tokens": unknown metadata value type 13/],
      [(b, v) => v.setUint32(after(b, 'first'), 5, true), /tensor "first" has 5 dimensions \(at most 4\)/],
      [(b, v) => v.setBigUint64(after(b, 'second') + 4 + 8, 2n ** 40n, true), /truncated tensor data: tensor "second"/],
      [(b, v) => v.setBigUint64(after(b, 'first') + 4, 33n, true), /innermost dimension 33 is not a multiple of Q8_0's block of 32/],
    ];
    for (const [edit, reason] of cases) {
      const file = patched(edit);
      refused(file, () => openGGUF(file), reason);
    }
  });

  it('misplaced tensors and a bad alignment', () => {
    const offsetOfSecond = (b: Uint8Array) => after(b, 'second') + 4 + 16 + 4;
    const overlap = patched((b, v) => v.setBigUint64(offsetOfSecond(b), 0n, true));
    refused(overlap, () => openGGUF(overlap), /tensor "second" overlaps tensor "first"|tensor "first" overlaps tensor "second"/);
    const unaligned = patched((b, v) => v.setBigUint64(offsetOfSecond(b), 65n, true));
    refused(unaligned, () => openGGUF(unaligned), /data offset 65 is not a multiple of the alignment 64/);
    const align = patched((b, v) => v.setUint32(after(b, 'general.alignment') + 4, 48, true));
    refused(align, () => openGGUF(align), /general.alignment 48 is not a power of two/);
    const dup = path();
    writeGGUF(
      dup,
      {},
      [0, 1].map(() => ({ name: 'w', ggufDims: [1], type: GGML_TYPE.F32, bytes: new Uint8Array(4) })),
    );
    refused(dup, () => openGGUF(dup), /tensor "w" is listed twice/);
  });

  it('an architecture it has no model for', () => {
    const qwen = path();
    writeGGUF(qwen, { 'general.architecture': str('qwen2') }, []);
    refused(qwen, () => requireLlama(openGGUF(qwen)), /architecture not supported: general.architecture is "qwen2" \(supported: llama\)/);
    refused(qwen, () => llamaHyperparameters(openGGUF(qwen)), /architecture not supported/);
    const none = path();
    writeGGUF(none, {}, []);
    refused(none, () => requireLlama(openGGUF(none)), /no general.architecture/);
  });
});

const smollm = findSmolLMGGUF();

// Skipped where the model is not installed; the values are gguf-py 0.19.0's reading of the same file.
describe.skipIf(smollm === undefined)('the embedded SmolLM2-135M-Instruct Q4_1 file', () => {
  it('lists 272 tensors and 33 keys, the hyperparameters and tokenizer of MODELS-NOTES.md, and reads attn_k as gguf-py', () => {
    const g = openGGUF(smollm!);
    expect([g.version, g.tensors.length, g.metadata.size, g.architecture]).toEqual([3, 272, 33, 'llama']);
    expect(llamaHyperparameters(g)).toEqual({
      blockCount: 30,
      embeddingLength: 576,
      feedForwardLength: 1536,
      headCount: 9,
      headCountKv: 3,
      ropeFreqBase: 100000,
      ropeDimensionCount: 64,
      rmsNormEpsilon: Math.fround(1e-5),
      contextLength: 8192,
      vocabSize: 49152,
    });
    const tok = ggufTokenizer(g);
    expect([
      tok.model,
      tok.pre,
      tok.tokens.length,
      tok.merges?.length,
      tok.bosTokenId,
      tok.eosTokenId,
      tok.unknownTokenId,
      tok.paddingTokenId,
      tok.addBosToken,
    ]).toEqual(['gpt2', 'smollm', 49152, 48900, 1, 2, 0, 2, false]);
    const counts = new Map<string, number>();
    for (const t of g.tensors) counts.set(t.typeName, (counts.get(t.typeName) ?? 0) + 1);
    expect(Object.fromEntries(counts)).toEqual({ Q8_0: 1, Q4_1: 210, F32: 61 });
    expect(g.tensor('output.weight')).toBeUndefined();
    const k = g.readTensor('blk.0.attn_k.weight');
    expect([g.tensor('blk.0.attn_k.weight')!.ggufDims, k.shape]).toEqual([
      [576, 192],
      [192, 576],
    ]);
    expect([...k.data.subarray(0, 4)]).toEqual([-0.1552734375, 0.3402099609375, -0.485595703125, -0.3204345703125]);
    expect(sha(k.data)).toBe('29614b1cceeca5d59dc07bcd5666f4c7a2ec661c1be425905f2d1b9aa7358073');
  });
});
