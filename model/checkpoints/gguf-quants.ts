/**
 * ggml tensor types: their block layouts, dequantisation to float32 and the reference quantisers.
 *
 * The block rules follow ggml-quants.c and the `gguf` package's `quants.py` (which is bit-exact with it):
 * - Q8_0, 32 weights: f16 scale `d`, then 32 int8 `q`; `w = d * q`.
 * - Q4_0, 32 weights: f16 `d`, then 16 bytes; low nibbles are weights 0-15, high nibbles 16-31; `w = d * (q - 8)`.
 * - Q4_1, 32 weights: f16 `d`, f16 `m`, then 16 bytes as in Q4_0; `w = d * q + m`.
 * Every product here is exact in float32 (an 11-bit scale times a 4- or 8-bit integer) and Q4_1's sum is rounded
 * once, so these results equal numpy's float32 arithmetic bit for bit.
 */

/** Ids of the ggml types this module can dequantise (ggml.h `enum ggml_type`). */
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 8, BF16: 30 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

/** Every type ggml knows, as [name, weights per block, bytes per block] (gguf-py `GGML_QUANT_SIZES`). */
const KNOWN_TYPES: Record<number, readonly [string, number, number]> = {
  0: ['F32', 1, 4],
  1: ['F16', 1, 2],
  2: ['Q4_0', 32, 18],
  3: ['Q4_1', 32, 20],
  6: ['Q5_0', 32, 22],
  7: ['Q5_1', 32, 24],
  8: ['Q8_0', 32, 34],
  9: ['Q8_1', 32, 40],
  10: ['Q2_K', 256, 84],
  11: ['Q3_K', 256, 110],
  12: ['Q4_K', 256, 144],
  13: ['Q5_K', 256, 176],
  14: ['Q6_K', 256, 210],
  15: ['Q8_K', 256, 292],
  16: ['IQ2_XXS', 256, 66],
  17: ['IQ2_XS', 256, 74],
  18: ['IQ3_XXS', 256, 98],
  19: ['IQ1_S', 256, 50],
  20: ['IQ4_NL', 32, 18],
  21: ['IQ3_S', 256, 110],
  22: ['IQ2_S', 256, 82],
  23: ['IQ4_XS', 256, 136],
  24: ['I8', 1, 1],
  25: ['I16', 1, 2],
  26: ['I32', 1, 4],
  27: ['I64', 1, 8],
  28: ['F64', 1, 8],
  29: ['IQ1_M', 256, 56],
  30: ['BF16', 1, 2],
  34: ['TQ1_0', 256, 54],
  35: ['TQ2_0', 256, 66],
  39: ['MXFP4', 32, 17],
};

export interface GgmlTypeLayout {
  id: number;
  name: string;
  /** Weights per block (1 for plain element types). */
  blockSize: number;
  /** Bytes per block. */
  blockBytes: number;
  /** Whether `dequantize` can turn it into float32. */
  supported: boolean;
}

const SUPPORTED = new Set<number>(Object.values(GGML_TYPE));

/** The layout of a ggml type id, or undefined when ggml has no such type (a file naming it cannot be sized). */
export function ggmlTypeLayout(id: number): GgmlTypeLayout | undefined {
  const known = KNOWN_TYPES[id];
  if (known === undefined) return undefined;
  return { id, name: known[0], blockSize: known[1], blockBytes: known[2], supported: SUPPORTED.has(id) };
}

/** Names of the types `dequantize` reads, for error messages. */
export const SUPPORTED_TYPE_NAMES = Object.keys(GGML_TYPE).join(', ');

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

let halfTable: Float32Array | undefined;
/** All 65536 half-precision values as float32, built on first use (256 KB) so each f16 is one lookup. */
function halves(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    t[h] = exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  halfTable = t;
  return t;
}

/** The float value of IEEE half-precision bits. */
export function halfToFloat(bits: number): number {
  return halves()[bits & 0xffff]!;
}

/**
 * IEEE half-precision bits nearest to `x` (ties to even, overflow to infinity, NaN kept quiet), as numpy's
 * `astype(np.float16)`. `x` is rounded to float32 first, which is exact for the float32 inputs used here.
 */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa moves into the exponent, and past the largest half into infinity, as it should.
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** bfloat16 bits nearest to `x` (ties to even, NaN made quiet), as ggml_compute_fp32_to_bf16. */
export function floatToBfloat16(x: number): number {
  f32[0] = x;
  const n = u32[0]!;
  if ((n & 0x7fffffff) > 0x7f800000) return ((n >>> 16) & 0xffff) | 0x40;
  return Math.floor((n + 0x7fff + ((n >>> 16) & 1)) / 65536) & 0xffff;
}

/** Byte length of `count` weights of a type, or undefined when count is not a whole number of blocks. */
export function ggmlByteLength(layout: GgmlTypeLayout, count: number): number | undefined {
  if (count % layout.blockSize !== 0) return undefined;
  return (count / layout.blockSize) * layout.blockBytes;
}

/**
 * Dequantises `count` weights of ggml type `type` from `bytes` (little-endian, exactly the tensor's bytes).
 * Throws a plain Error for a type it cannot read or a byte length that does not match: callers that read a file
 * check both first and report them as the file's fault.
 */
export function dequantize(type: number, bytes: Uint8Array, count: number): Float32Array {
  const layout = ggmlTypeLayout(type);
  if (!layout?.supported) throw new Error(`ggml type ${layout?.name ?? 'unknown'} (${type}) cannot be dequantised`);
  const expected = ggmlByteLength(layout, count);
  if (expected !== bytes.length) throw new Error(`${count} ${layout.name} weights need ${expected} bytes, got ${bytes.length}`);
  const out = new Float32Array(count);
  const h = halves();
  switch (type) {
    case GGML_TYPE.F32: {
      if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
      else {
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      }
      break;
    }
    case GGML_TYPE.F16:
      for (let i = 0; i < count; i++) out[i] = h[bytes[2 * i]! | (bytes[2 * i + 1]! << 8)]!;
      break;
    case GGML_TYPE.BF16: {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = ((bytes[2 * i]! | (bytes[2 * i + 1]! << 8)) << 16) >>> 0;
      break;
    }
    case GGML_TYPE.Q8_0:
      for (let b = 0, o = 0, w = 0; w < count; b++, o += 34, w += 32) {
        const d = h[bytes[o]! | (bytes[o + 1]! << 8)]!;
        for (let i = 0; i < 32; i++) out[w + i] = d * ((bytes[o + 2 + i]! << 24) >> 24);
      }
      break;
    case GGML_TYPE.Q4_0:
      for (let o = 0, w = 0; w < count; o += 18, w += 32) {
        const d = h[bytes[o]! | (bytes[o + 1]! << 8)]!;
        for (let i = 0; i < 16; i++) {
          const q = bytes[o + 2 + i]!;
          out[w + i] = d * ((q & 0x0f) - 8);
          out[w + 16 + i] = d * ((q >> 4) - 8);
        }
      }
      break;
    case GGML_TYPE.Q4_1:
      for (let o = 0, w = 0; w < count; o += 20, w += 32) {
        const d = h[bytes[o]! | (bytes[o + 1]! << 8)]!;
        const m = h[bytes[o + 2]! | (bytes[o + 3]! << 8)]!;
        for (let i = 0; i < 16; i++) {
          const q = bytes[o + 4 + i]!;
          // d * q is exact and the sum of two halves is exact in double: the store rounds once, as float32 does.
          out[w + i] = d * (q & 0x0f) + m;
          out[w + 16 + i] = d * (q >> 4) + m;
        }
      }
      break;
  }
  return out;
}

const fr = Math.fround;

/** Rounds half away from zero, as gguf-py's `np_roundf` (and C's roundf). */
function roundf(v: number): number {
  const a = Math.abs(v);
  const floored = Math.floor(a);
  return Math.sign(v) * (floored + Math.floor(2 * (a - floored)));
}

function packNibbles(out: Uint8Array, at: number, q: Uint8Array): void {
  for (let i = 0; i < 16; i++) out[at + i] = q[i]! | (q[i + 16]! << 4);
}

function setHalf(out: Uint8Array, at: number, x: number): void {
  const bits = floatToHalf(x);
  out[at] = bits & 0xff;
  out[at + 1] = bits >> 8;
}

/**
 * Encodes float32 values as ggml type `type` (F32, F16, BF16, Q8_0, Q4_0, Q4_1) with the reference rounding of
 * gguf-py's `quants.quantize` (float32 arithmetic throughout), so the bytes equal what llama.cpp's tools write.
 * The count must be a whole number of blocks (32 for the Q types).
 */
export function quantize(type: number, values: Float32Array): Uint8Array {
  const layout = ggmlTypeLayout(type);
  if (!layout?.supported) throw new Error(`ggml type ${layout?.name ?? 'unknown'} (${type}) cannot be written`);
  const size = ggmlByteLength(layout, values.length);
  if (size === undefined) throw new Error(`${values.length} values are not a whole number of ${layout.name} blocks of ${layout.blockSize}`);
  const out = new Uint8Array(size);
  const q = new Uint8Array(32);
  switch (type) {
    case GGML_TYPE.F32: {
      if (LITTLE_ENDIAN) out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      else {
        const view = new DataView(out.buffer);
        values.forEach((x, i) => view.setFloat32(i * 4, x, true));
      }
      break;
    }
    case GGML_TYPE.F16:
      values.forEach((x, i) => setHalf(out, 2 * i, x));
      break;
    case GGML_TYPE.BF16:
      values.forEach((x, i) => {
        const bits = floatToBfloat16(x);
        out[2 * i] = bits & 0xff;
        out[2 * i + 1] = bits >> 8;
      });
      break;
    case GGML_TYPE.Q8_0:
      for (let o = 0, w = 0; w < values.length; o += 34, w += 32) {
        let amax = 0;
        for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[w + i]!));
        const d = fr(amax / 127);
        const id = d === 0 ? 0 : fr(1 / d);
        setHalf(out, o, d);
        for (let i = 0; i < 32; i++) out[o + 2 + i] = roundf(fr(values[w + i]! * id)) & 0xff;
      }
      break;
    case GGML_TYPE.Q4_0:
      for (let o = 0, w = 0; w < values.length; o += 18, w += 32) {
        // The weight of largest magnitude, sign kept (the first such, as numpy's argmax).
        let max = 0;
        for (let i = 0; i < 32; i++) if (Math.abs(values[w + i]!) > Math.abs(max)) max = values[w + i]!;
        const d = fr(max / -8);
        const id = d === 0 ? 0 : fr(1 / d);
        for (let i = 0; i < 32; i++) q[i] = Math.min(15, Math.max(0, Math.trunc(fr(fr(values[w + i]! * id) + 8.5))));
        setHalf(out, o, d);
        packNibbles(out, o + 2, q);
      }
      break;
    case GGML_TYPE.Q4_1:
      for (let o = 0, w = 0; w < values.length; o += 20, w += 32) {
        let max = -Infinity;
        let min = Infinity;
        for (let i = 0; i < 32; i++) {
          max = Math.max(max, values[w + i]!);
          min = Math.min(min, values[w + i]!);
        }
        const d = fr(fr(max - min) / 15);
        const id = d === 0 ? 0 : fr(1 / d);
        for (let i = 0; i < 32; i++) q[i] = Math.min(15, Math.max(0, Math.trunc(fr(fr(fr(values[w + i]! - min) * id) + 0.5))));
        setHalf(out, o, d);
        setHalf(out, o + 2, min);
        packNibbles(out, o + 4, q);
      }
      break;
  }
  return out;
}
