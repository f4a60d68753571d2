import { describe, expect, it } from 'vitest';
import { PRESETS, flopsPerToken, parameterCount, preset, validateConfig, weightShapes } from '../../model/config.ts';
import { BOS, EOS, PAD, VOCAB_SIZE, decode, encode, encodeDocument } from '../../model/tokenizer.ts';
import { initWeights } from '../../model/transformer.ts';
import { type Weights, decodeSafetensors, encodeSafetensors, loadModel, saveModel, weightsDigest } from '../../model/weights.ts';

describe('tokenizer', () => {
  it('round-trips any text through UTF-8 bytes', () => {
    const text = 'héllo, wörld — 你好 🌍\n\ttabs';
    const ids = encode(text);
    expect(ids.every((i) => i >= 0 && i < 256)).toBe(true);
    expect(ids.length).toBe(Buffer.byteLength(text));
    expect(decode(ids)).toBe(text);
  });

  it('wraps documents in BOS/EOS and skips special tokens when decoding', () => {
    expect(encodeDocument('ab')).toEqual([BOS, 97, 98, EOS]);
    expect(decode([BOS, 104, 105, PAD, EOS])).toBe('hi');
    expect(VOCAB_SIZE).toBe(259);
  });
});

describe('config', () => {
  it('has the presets the issue names', () => {
    expect(PRESETS.tiny).toMatchObject({ dModel: 32, nLayers: 1, context: 32 });
    expect(PRESETS.small).toMatchObject({ dModel: 64, nLayers: 2, nHeads: 4, context: 64 });
  });

  it('rejects invalid configs with a message naming the field', () => {
    expect(() => validateConfig({ ...PRESETS.small, nHeads: 3 })).toThrow(/divisible by nHeads/);
    expect(() => validateConfig({ ...PRESETS.small, dModel: 0 })).toThrow(/dModel/);
    expect(() => validateConfig({ ...PRESETS.small, nLayers: 1.5 })).toThrow(/nLayers must be an integer/);
    expect(() => validateConfig({ ...PRESETS.small, vocabSize: 100 })).toThrow(/vocabSize/);
    expect(() => validateConfig('small')).toThrow(/object/);
  });

  it('counts parameters and FLOPs', () => {
    const c = preset('small');
    // tok 259·64 + pos 64·64 + 2 blocks · (ln 4·64 + qkv 64·192+192 + proj 64·64+64 + fc 64·256+256 + out 256·64+64) + ln_f 128
    expect(parameterCount(c)).toBe(16576 + 4096 + 2 * (256 + 12480 + 4160 + 16640 + 16448) + 128);
    const matmul = 2 * (64 * 192 + 64 * 64 + 2 * 64 * 256) + 259 * 64;
    expect(flopsPerToken(c)).toBe(6 * matmul + 12 * 2 * 64 * 64);
    expect([...weightShapes(c).keys()]).toContain('blocks.1.mlp.proj.weight');
  });
});

function sampleWeights(): Weights {
  return new Map([
    ['b', { shape: [3], data: Float32Array.from([1, -0, Number.NaN]) }],
    ['a', { shape: [2, 2], data: Float32Array.from([0.5, -2.25, 3e-38, 1e30]) }],
    ['scalar', { shape: [], data: Float32Array.from([7]) }],
  ]);
}

describe('safetensors', () => {
  it('writes the reference layout: u64 LE header length, space-padded JSON, LE data in name order', () => {
    const bytes = encodeSafetensors(sampleWeights(), { note: 'x' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const json = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(json).toMatch(/^\{.*\} *$/);
    const header = JSON.parse(json);
    expect(header.__metadata__).toEqual({ note: 'x' });
    expect(header.a).toEqual({ dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] });
    expect(header.b).toEqual({ dtype: 'F32', shape: [3], data_offsets: [16, 28] });
    expect(header.scalar).toEqual({ dtype: 'F32', shape: [], data_offsets: [28, 32] });
    const data = new DataView(bytes.buffer, 8 + n);
    expect(data.getFloat32(4, true)).toBe(-2.25);
    expect(bytes.length).toBe(8 + n + 32);
  });

  it('reads a file laid out as Python writes it (metadata first, other key order)', () => {
    const header = '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
    const bytes = new Uint8Array(8 + padded.length + 8);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(padded.length), true);
    bytes.set(new TextEncoder().encode(padded), 8);
    new DataView(bytes.buffer).setFloat32(8 + padded.length, 1.5, true);
    new DataView(bytes.buffer).setFloat32(8 + padded.length + 4, -4, true);
    const { tensors, metadata } = decodeSafetensors(bytes);
    expect(metadata).toEqual({ format: 'pt' });
    expect(Array.from(tensors.get('w')!.data)).toEqual([1.5, -4]);
  });

  it('round-trips bit for bit (NaN and -0 included) without aliasing the input', () => {
    const w = sampleWeights();
    const bytes = encodeSafetensors(w, {});
    // An odd byte offset: decode must not assume alignment.
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const { tensors } = decodeSafetensors(shifted.subarray(1));
    for (const [name, t] of w) {
      const back = tensors.get(name)!;
      expect(back.shape).toEqual(t.shape);
      expect(Buffer.from(back.data.buffer).equals(Buffer.from(t.data.buffer))).toBe(true);
    }
    shifted.fill(0);
    expect(tensors.get('a')!.data[1]).toBe(-2.25);
  });

  describe('rejects malformed files with a clear error', () => {
    const good = encodeSafetensors(new Map([['x', { shape: [2], data: Float32Array.from([1, 2]) }]]), {});
    const withHeader = (header: object, dataBytes = 8) => {
      let json = JSON.stringify(header);
      json += ' '.repeat((8 - (json.length % 8)) % 8);
      const b = new Uint8Array(8 + json.length + dataBytes);
      new DataView(b.buffer).setBigUint64(0, BigInt(json.length), true);
      b.set(new TextEncoder().encode(json), 8);
      return b;
    };
    const t = (offsets: number[], shape = [1], dtype = 'F32') => ({ dtype, shape, data_offsets: offsets });
    it.each([
      ['too short', good.subarray(0, 5), /shorter than/],
      ['header past the end', good.subarray(0, 20), /exceeds the file/],
      [
        'not JSON',
        (() => {
          const b = good.slice();
          b[8] = 0x5b;
          return b;
        })(),
        /not valid UTF-8 JSON|not a JSON object/,
      ],
      ['unsupported dtype', withHeader({ x: t([0, 8], [2], 'F16') }), /dtype "F16"/],
      ['size mismatch', withHeader({ x: t([0, 8], [3]) }), /needs 12 bytes/],
      ['offsets past the data', withHeader({ x: t([0, 16], [4]) }), /past the data/],
      ['overlap', withHeader({ x: t([0, 4]), y: t([0, 4]) }), /overlaps/],
      ['gap', withHeader({ x: t([4, 8]) }), /gap/],
      ['trailing bytes', withHeader({ x: t([0, 4]) }), /cover 4/],
      ['non-string metadata', withHeader({ __metadata__: { a: 1 }, x: t([0, 8], [2]) }), /__metadata__.a/],
    ])('%s', (_name, bytes, message) => {
      expect(() => decodeSafetensors(bytes as Uint8Array)).toThrow(message);
    });
  });
});

describe('model files', () => {
  it('save then load gives the config and bit-identical weights', () => {
    const config = preset('tiny');
    const weights = initWeights(config, 5);
    const { config: back, weights: loaded, metadata } = loadModel(saveModel(config, weights, { version: 'line:x@1' }));
    expect(back).toEqual(config);
    expect(metadata.version).toBe('line:x@1');
    expect(weightsDigest(loaded)).toBe(weightsDigest(weights));
  });

  it('refuses weights that do not match the config', () => {
    const config = preset('tiny');
    const weights = initWeights(config, 5);
    weights.delete('ln_f.bias');
    expect(() => saveModel(config, weights)).toThrow(/missing tensor ln_f.bias/);
    expect(() => loadModel(encodeSafetensors(initWeights(config, 5), { format: 'other' }))).toThrow(/format/);
  });

  it('digests identify weights exactly', () => {
    const config = preset('tiny');
    expect(weightsDigest(initWeights(config, 1))).toBe(weightsDigest(initWeights(config, 1)));
    expect(weightsDigest(initWeights(config, 1))).not.toBe(weightsDigest(initWeights(config, 2)));
    const w = initWeights(config, 1);
    w.get('tok_emb')!.data[0] = Math.fround(w.get('tok_emb')!.data[0]! * (1 + 2 ** -20));
    expect(weightsDigest(w)).not.toBe(weightsDigest(initWeights(config, 1)));
  });
});
