/**
 * A GGUF v3 writer (little-endian): metadata of every type, tensors from float32 stored as F32, F16 or BF16 (or
 * quantised as Q8_0 / Q4_0 / Q4_1 with the reference rounding), or raw bytes of any type id as given.
 *
 * Written the way gguf-py's GGUFWriter lays a file out: header, metadata, tensor index, padding to the alignment,
 * then each tensor's data padded to the alignment. The alignment is `general.alignment` when the metadata sets it
 * (a uint32 power of two), else 32. Tensors are encoded and written one at a time, so memory holds one of them.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VALUE_TYPES, type GGUFArray, type GGUFValue, type GGUFValueTypeName } from './gguf.ts';
import { GGML_TYPE, type GgmlTypeName, ggmlByteLength, ggmlTypeLayout, quantize } from './gguf-quants.ts';

/** A float32 tensor to store as `type` (default F32). */
export interface GGUFWriteTensor {
  name: string;
  /** Row-major shape, outermost first; written reversed (innermost first), as GGUF lists dimensions. */
  shape: readonly number[];
  data: Float32Array;
  type?: GgmlTypeName;
}

/** Bytes already encoded, written as they are: pass-through of quantised data, and malformed files for tests. */
export interface GGUFRawTensor {
  name: string;
  /** Dimensions in GGUF order, innermost first. */
  ggufDims: readonly number[];
  /** ggml type id, not checked. */
  type: number;
  bytes: Uint8Array;
}

export interface GGUFWriteOptions {
  /** Header version, 3 by default (2 has the same layout for little-endian files). */
  version?: number;
}

class Sink {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(1 << 16);
  private view = new DataView(this.cur.buffer);
  private at = 0;
  length = 0;

  private room(n: number): DataView {
    if (this.at + n > this.cur.length) {
      this.chunks.push(this.cur.subarray(0, this.at));
      this.cur = new Uint8Array(Math.max(1 << 16, n));
      this.view = new DataView(this.cur.buffer);
      this.at = 0;
    }
    return this.view;
  }
  private advance(n: number): number {
    const at = this.at;
    this.at += n;
    this.length += n;
    return at;
  }
  u8(v: number) {
    this.room(1).setUint8(this.advance(1), v);
  }
  i8(v: number) {
    this.room(1).setInt8(this.advance(1), v);
  }
  u16(v: number) {
    this.room(2).setUint16(this.advance(2), v, true);
  }
  i16(v: number) {
    this.room(2).setInt16(this.advance(2), v, true);
  }
  u32(v: number) {
    this.room(4).setUint32(this.advance(4), v, true);
  }
  i32(v: number) {
    this.room(4).setInt32(this.advance(4), v, true);
  }
  f32(v: number) {
    this.room(4).setFloat32(this.advance(4), v, true);
  }
  f64(v: number) {
    this.room(8).setFloat64(this.advance(8), v, true);
  }
  u64(v: bigint | number) {
    this.room(8).setBigUint64(this.advance(8), BigInt(v), true);
  }
  i64(v: bigint) {
    this.room(8).setBigInt64(this.advance(8), v, true);
  }
  bytes(b: Uint8Array) {
    this.room(b.length);
    this.cur.set(b, this.advance(b.length));
  }
  string(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  take(): Uint8Array[] {
    return [...this.chunks, this.cur.subarray(0, this.at)];
  }
}

const typeId = (t: GGUFValueTypeName) => GGUF_VALUE_TYPES.indexOf(t);

function checkInteger(v: number, type: GGUFValueTypeName): void {
  const range: Partial<Record<GGUFValueTypeName, [number, number]>> = {
    uint8: [0, 0xff],
    int8: [-0x80, 0x7f],
    uint16: [0, 0xffff],
    int16: [-0x8000, 0x7fff],
    uint32: [0, 0xffffffff],
    int32: [-0x80000000, 0x7fffffff],
  };
  const r = range[type];
  if (r && !(Number.isInteger(v) && v >= r[0] && v <= r[1])) throw new Error(`gguf: ${v} is not a ${type}`);
}

function writeScalar(s: Sink, type: GGUFValueTypeName, v: number | bigint | boolean | string | GGUFArray): void {
  if (typeof v === 'number') checkInteger(v, type);
  switch (type) {
    case 'uint8':
      return s.u8(v as number);
    case 'int8':
      return s.i8(v as number);
    case 'uint16':
      return s.u16(v as number);
    case 'int16':
      return s.i16(v as number);
    case 'uint32':
      return s.u32(v as number);
    case 'int32':
      return s.i32(v as number);
    case 'float32':
      return s.f32(v as number);
    case 'float64':
      return s.f64(v as number);
    case 'uint64':
      return s.u64(v as bigint);
    case 'int64':
      return s.i64(v as bigint);
    case 'bool':
      return s.u8(v ? 1 : 0);
    case 'string':
      return s.string(v as string);
    case 'array':
      return writeArray(s, v as GGUFArray);
  }
}

function writeArray(s: Sink, a: GGUFArray): void {
  s.u32(typeId(a.itemType));
  s.u64(a.values.length);
  for (const v of a.values) writeScalar(s, a.itemType, v);
}

function writeValue(s: Sink, v: GGUFValue): void {
  s.u32(typeId(v.type));
  writeScalar(s, v.type, v.value);
}

function isRaw(t: GGUFWriteTensor | GGUFRawTensor): t is GGUFRawTensor {
  return 'bytes' in t;
}

const pad = (n: number, alignment: number) => Math.ceil(n / alignment) * alignment;

/** Writes a GGUF file at `path` (replacing it); metadata in the order given, tensors in the order given. */
export function writeGGUF(
  path: string,
  metadata: ReadonlyMap<string, GGUFValue> | Readonly<Record<string, GGUFValue>>,
  tensors: readonly (GGUFWriteTensor | GGUFRawTensor)[],
  options: GGUFWriteOptions = {},
): void {
  const entries = metadata instanceof Map ? [...metadata] : Object.entries(metadata);
  const align = entries.find(([k]) => k === 'general.alignment')?.[1];
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (align !== undefined) {
    if (align.type !== 'uint32' || align.value === 0 || (align.value & (align.value - 1)) !== 0) {
      throw new Error('gguf: general.alignment must be a uint32 power of two');
    }
    alignment = align.value;
  }

  const planned = tensors.map((t) => {
    if (isRaw(t)) return { name: t.name, dims: [...t.ggufDims], type: t.type, byteLength: t.bytes.length };
    const type = GGML_TYPE[t.type ?? 'F32'];
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`gguf: tensor ${t.name} has shape [${t.shape}] but ${t.data.length} values`);
    const byteLength = ggmlByteLength(ggmlTypeLayout(type)!, count);
    if (byteLength === undefined) throw new Error(`gguf: tensor ${t.name} of ${count} values is not a whole number of ${t.type} blocks`);
    return { name: t.name, dims: [...t.shape].reverse(), type, byteLength };
  });

  const s = new Sink();
  s.u32(GGUF_MAGIC);
  s.u32(options.version ?? 3);
  s.u64(tensors.length);
  s.u64(entries.length);
  for (const [key, value] of entries) {
    s.string(key);
    writeValue(s, value);
  }
  let offset = 0;
  for (const t of planned) {
    s.string(t.name);
    s.u32(t.dims.length);
    for (const d of t.dims) s.u64(d);
    s.u32(t.type);
    s.u64(offset);
    offset = pad(offset + t.byteLength, alignment);
  }
  s.bytes(new Uint8Array(pad(s.length, alignment) - s.length));

  const fd = openSync(path, 'w');
  try {
    let pos = 0;
    const write = (b: Uint8Array) => {
      for (let done = 0; done < b.length;) done += writeSync(fd, b, done, b.length - done, pos + done);
      pos += b.length;
    };
    for (const chunk of s.take()) write(chunk);
    tensors.forEach((t, i) => {
      const bytes = isRaw(t) ? t.bytes : quantize(planned[i]!.type, t.data);
      write(bytes);
      write(new Uint8Array(pad(bytes.length, alignment) - bytes.length));
    });
  } finally {
    closeSync(fd);
  }
}
