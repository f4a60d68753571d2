/**
 * A reader for GGUF files (llama.cpp's checkpoint format, versions 2 and 3, little-endian): the metadata, the
 * tensor index and one tensor at a time as float32.
 *
 * The file is read by positioned reads: opening it reads the header, the metadata and the tensor index and no
 * tensor data, so listing a 100 MB model reads a few megabytes (most of it the tokenizer). Every length and count
 * is checked against the bytes left in the file before anything is allocated for it.
 *
 * Shapes: GGUF lists a tensor's dimensions innermost (fastest-varying) first, ggml's `ne[0], ne[1], ...`.
 * `GGUFTensorInfo.shape` is the row-major shape, outermost first (the reverse), which is what Hugging Face,
 * numpy and TensorFlow.js call the shape: a GGUF `attn_k` listed as `[576, 192]` is a 192 x 576 matrix, 192 rows
 * of 576. `ggufDims` keeps the file's order.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { CheckpointFormatError } from './errors.ts';
import { SUPPORTED_TYPE_NAMES, dequantize, ggmlByteLength, ggmlTypeLayout } from './gguf-quants.ts';
import type { LlamaHyperparameters } from './llama-layout.ts';

/** "GGUF" read as a little-endian uint32. */
export const GGUF_MAGIC = 0x46554747;
export const GGUF_DEFAULT_ALIGNMENT = 32;
const SUPPORTED_VERSIONS = [2, 3];
/** ggml's GGML_MAX_DIMS. */
const MAX_DIMS = 4;
/** Arrays of arrays are legal; a file nesting deeper than this is hostile, not a model. */
const MAX_ARRAY_DEPTH = 8;
// Small reads keep opening cheap: a header without a tokenizer fits one, SmolLM2's 1.6 MB tokenizer takes 26.
const CHUNK = 1 << 16;

/** Metadata value types by their id in the file. */
export const GGUF_VALUE_TYPES = [
  'uint8',
  'int8',
  'uint16',
  'int16',
  'uint32',
  'int32',
  'float32',
  'bool',
  'string',
  'array',
  'uint64',
  'int64',
  'float64',
] as const;
export type GGUFValueTypeName = (typeof GGUF_VALUE_TYPES)[number];
export type GGUFNumberType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
/** 64-bit integers are kept exact, as bigint. */
export type GGUFBigIntType = 'uint64' | 'int64';

export type GGUFArray =
  | { itemType: GGUFNumberType; values: number[] }
  | { itemType: GGUFBigIntType; values: bigint[] }
  | { itemType: 'bool'; values: boolean[] }
  | { itemType: 'string'; values: string[] }
  | { itemType: 'array'; values: GGUFArray[] };

/** One metadata value with the type the file gave it (writers need the type to write it back). */
export type GGUFValue =
  | { type: GGUFNumberType; value: number }
  | { type: GGUFBigIntType; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; value: GGUFArray };

export interface GGUFTensorInfo {
  name: string;
  /** ggml type id: 0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0, 30 BF16, others listed but not dequantised. */
  type: number;
  typeName: string;
  /** Dimensions in the file's order, innermost first. */
  ggufDims: number[];
  /** Row-major shape, outermost first: `ggufDims` reversed. */
  shape: number[];
  elementCount: number;
  /** Position of the tensor's first byte in the file. */
  fileOffset: number;
  byteLength: number;
}

const NUMBER_TYPES = new Set<GGUFValueTypeName>(['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'float64']);

/** Minimum bytes one encoded value of each type takes, to bound an array's length before reading it. */
const MIN_BYTES: Record<GGUFValueTypeName, number> = {
  uint8: 1,
  int8: 1,
  bool: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  uint64: 8,
  int64: 8,
  float64: 8,
  string: 8,
  array: 12,
};

/** A cursor over the file that reads what it needs in chunks at explicit positions. */
class Cursor {
  pos = 0;
  /** What is being read, for error messages. */
  context = 'the header';
  private buf = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private start = 0;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });

  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly file: string,
  ) {}

  fail(reason: string): never {
    throw new CheckpointFormatError(this.file, reason);
  }

  get remaining(): number {
    return this.size - this.pos;
  }

  /** Makes bytes [pos, pos + n) available at `pos - start` in the buffer. */
  private need(n: number): number {
    if (n > this.remaining) {
      this.fail(`header past the file end: ${this.context} needs bytes ${this.pos}..${this.pos + n} but the file is ${this.size} bytes`);
    }
    if (this.pos < this.start || this.pos + n > this.start + this.buf.length) {
      const length = Math.min(Math.max(n, CHUNK), this.remaining);
      if (this.buf.length < length || this.buf.length > CHUNK) this.buf = new Uint8Array(Math.max(length, CHUNK));
      let got = 0;
      while (got < length) {
        const r = readSync(this.fd, this.buf, got, length - got, this.pos + got);
        if (r === 0) this.fail(`the file ended at byte ${this.pos + got} while reading ${this.context}, though it reported ${this.size} bytes`);
        got += r;
      }
      this.view = new DataView(this.buf.buffer, 0, length);
      this.start = this.pos;
    }
    const at = this.pos - this.start;
    this.pos += n;
    return at;
  }

  // `need` may replace the buffer and its view, so each reader asks for the bytes before it looks at the view.
  u8 = () => {
    const at = this.need(1);
    return this.buf[at]!;
  };
  i8 = () => {
    const at = this.need(1);
    return this.view.getInt8(at);
  };
  u16 = () => {
    const at = this.need(2);
    return this.view.getUint16(at, true);
  };
  i16 = () => {
    const at = this.need(2);
    return this.view.getInt16(at, true);
  };
  u32 = () => {
    const at = this.need(4);
    return this.view.getUint32(at, true);
  };
  i32 = () => {
    const at = this.need(4);
    return this.view.getInt32(at, true);
  };
  f32 = () => {
    const at = this.need(4);
    return this.view.getFloat32(at, true);
  };
  f64 = () => {
    const at = this.need(8);
    return this.view.getFloat64(at, true);
  };
  u64 = () => {
    const at = this.need(8);
    return this.view.getBigUint64(at, true);
  };
  i64 = () => {
    const at = this.need(8);
    return this.view.getBigInt64(at, true);
  };

  /** A uint64 that must fit a JavaScript number (lengths, counts, offsets). */
  size64(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${this.context}: ${what} ${v} is absurd for a file of ${this.size} bytes`);
    return Number(v);
  }

  /** Bounds a count of items of at least `minBytes` each by what is left in the file, before allocating. */
  count(what: string, minBytes: number): number {
    const n = this.size64(what);
    if (n * minBytes > this.remaining) {
      this.fail(`${this.context}: ${what} ${n} is absurd: that needs at least ${n * minBytes} bytes and ${this.remaining} remain in the file`);
    }
    return n;
  }

  string(): string {
    const n = this.count('string length', 1);
    const at = this.need(n);
    // Fast path: most keys and tokens are ASCII.
    let ascii = true;
    for (let i = at; i < at + n; i++) if (this.buf[i]! >= 0x80) ascii = false;
    if (ascii) return n < 64 ? String.fromCharCode(...this.buf.subarray(at, at + n)) : Buffer.from(this.buf.buffer, at, n).toString('latin1');
    try {
      return this.utf8.decode(this.buf.subarray(at, at + n));
    } catch {
      return this.fail(`${this.context}: a string of ${n} bytes at byte ${this.pos - n} is not valid UTF-8`);
    }
  }
}

function valueType(c: Cursor): GGUFValueTypeName {
  const id = c.u32();
  const name = GGUF_VALUE_TYPES[id];
  if (name === undefined) c.fail(`${c.context}: unknown metadata value type ${id}`);
  return name;
}

function readArray(c: Cursor, depth: number): GGUFArray {
  if (depth > MAX_ARRAY_DEPTH) c.fail(`${c.context}: arrays nested more than ${MAX_ARRAY_DEPTH} deep`);
  const itemType = valueType(c);
  const n = c.count('array length', MIN_BYTES[itemType]);
  const read = <T>(one: () => T): T[] => {
    const values = new Array<T>(n);
    for (let i = 0; i < n; i++) values[i] = one();
    return values;
  };
  switch (itemType) {
    case 'uint64':
    case 'int64':
      return { itemType, values: read(itemType === 'uint64' ? c.u64 : c.i64) };
    case 'bool':
      return { itemType, values: read(() => readBool(c)) };
    case 'string':
      return { itemType, values: read(() => c.string()) };
    case 'array':
      return { itemType, values: read(() => readArray(c, depth + 1)) };
    default:
      return { itemType, values: read(numberReader(c, itemType)) };
  }
}

function readBool(c: Cursor): boolean {
  const b = c.u8();
  if (b > 1) c.fail(`${c.context}: bool byte ${b} is neither 0 nor 1`);
  return b === 1;
}

function numberReader(c: Cursor, type: GGUFNumberType): () => number {
  return { uint8: c.u8, int8: c.i8, uint16: c.u16, int16: c.i16, uint32: c.u32, int32: c.i32, float32: c.f32, float64: c.f64 }[type];
}

function readValue(c: Cursor): GGUFValue {
  const type = valueType(c);
  switch (type) {
    case 'uint64':
      return { type, value: c.u64() };
    case 'int64':
      return { type, value: c.i64() };
    case 'bool':
      return { type, value: readBool(c) };
    case 'string':
      return { type, value: c.string() };
    case 'array':
      return { type, value: readArray(c, 1) };
    default:
      return { type, value: numberReader(c, type)() };
  }
}

/** The plain JavaScript value of a metadata value: numbers, bigints, booleans, strings and nested arrays. */
export type GGUFPlain = number | bigint | boolean | string | GGUFPlain[];

function plainArray(a: GGUFArray): GGUFPlain[] {
  return a.itemType === 'array' ? a.values.map(plainArray) : a.values;
}

/** An opened GGUF file: header, metadata and tensor index in memory; tensor data read on demand. */
export class GGUFFile {
  private readonly byName = new Map<string, GGUFTensorInfo>();

  private constructor(
    readonly path: string,
    readonly version: number,
    readonly fileSize: number,
    readonly metadata: ReadonlyMap<string, GGUFValue>,
    /** Tensors in the order the file lists them. */
    readonly tensors: readonly GGUFTensorInfo[],
    readonly alignment: number,
    /** Position of the tensor data section (tensor offsets in the file are relative to it). */
    readonly dataOffset: number,
  ) {
    for (const t of tensors) this.byName.set(t.name, t);
  }

  /** Reads the header, metadata and tensor index of `path`; refuses a file it cannot read with a CheckpointFormatError. */
  static open(path: string): GGUFFile {
    const fd = openSync(path, 'r');
    try {
      return GGUFFile.parse(path, fd, fstatSync(fd).size);
    } finally {
      closeSync(fd);
    }
  }

  private static parse(path: string, fd: number, size: number): GGUFFile {
    // Annotated so that `c.fail(...)` (returning never) narrows types after it.
    const c: Cursor = new Cursor(fd, size, path);
    if (size < 4) c.fail(`not a GGUF file: it is ${size} bytes, shorter than the 4-byte magic`);
    const magic = c.u32();
    if (magic !== GGUF_MAGIC) {
      const hex = [0, 8, 16, 24].map((s) => ((magic >>> s) & 0xff).toString(16).padStart(2, '0')).join(' ');
      c.fail(`not a GGUF file: bad magic ${hex} (expected 47 47 55 46, "GGUF")`);
    }
    c.context = 'the version';
    const version = c.u32();
    if (!SUPPORTED_VERSIONS.includes(version)) {
      const swapped = ((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24);
      c.fail(
        SUPPORTED_VERSIONS.includes(swapped)
          ? `big-endian GGUF (version ${swapped}) is not supported`
          : `GGUF version ${version} is not supported (this reader reads versions ${SUPPORTED_VERSIONS.join(' and ')})`,
      );
    }
    c.context = 'the tensor count';
    // Each tensor's index entry takes at least 24 bytes: name length, dimension count, type and offset.
    const tensorCount = c.count('tensor count', 24);
    c.context = 'the metadata count';
    // Each key-value takes at least 13 bytes: key length, value type and a one-byte value.
    const kvCount = c.count('metadata count', 13);

    const metadata = new Map<string, GGUFValue>();
    for (let i = 0; i < kvCount; i++) {
      c.context = `metadata entry ${i}'s key`;
      const key = c.string();
      if (metadata.has(key)) c.fail(`metadata key "${key}" appears twice`);
      c.context = `metadata "${key}"`;
      metadata.set(key, readValue(c));
    }

    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const align = metadata.get('general.alignment');
    if (align !== undefined) {
      if (align.type !== 'uint32') c.fail(`general.alignment is a ${align.type}, not a uint32`);
      if (align.value === 0 || (align.value & (align.value - 1)) !== 0) c.fail(`general.alignment ${align.value} is not a power of two`);
      alignment = align.value;
    }

    const index: { name: string; dims: number[]; type: number; offset: number }[] = [];
    const names = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      c.context = `tensor ${i}'s name`;
      const name = c.string();
      if (names.has(name)) c.fail(`tensor "${name}" is listed twice`);
      names.add(name);
      c.context = `tensor "${name}"`;
      const nDims = c.u32();
      if (nDims > MAX_DIMS) c.fail(`tensor "${name}" has ${nDims} dimensions (at most ${MAX_DIMS})`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(c.size64('dimension'));
      const type = c.u32();
      const offset = c.size64('data offset');
      index.push({ name, dims, type, offset });
    }
    const dataOffset = Math.ceil(c.pos / alignment) * alignment;

    const tensors: GGUFTensorInfo[] = index.map(({ name, dims, type, offset }) => {
      const layout = ggmlTypeLayout(type);
      if (layout === undefined) c.fail(`tensor "${name}": unknown quantisation type ${type}`);
      const elementCount = dims.reduce((a, b) => a * b, 1);
      if (!Number.isSafeInteger(elementCount)) c.fail(`tensor "${name}": dimensions [${dims}] are absurd`);
      if ((dims[0] ?? 1) % layout.blockSize !== 0) {
        c.fail(`tensor "${name}": innermost dimension ${dims[0]} is not a multiple of ${layout.name}'s block of ${layout.blockSize}`);
      }
      const byteLength = ggmlByteLength(layout, elementCount)!;
      if (offset % alignment !== 0) c.fail(`tensor "${name}": data offset ${offset} is not a multiple of the alignment ${alignment}`);
      const fileOffset = dataOffset + offset;
      if (fileOffset + byteLength > size) {
        c.fail(`truncated tensor data: tensor "${name}" needs bytes ${fileOffset}..${fileOffset + byteLength} but the file ends at ${size}`);
      }
      return { name, type, typeName: layout.name, ggufDims: dims, shape: [...dims].reverse(), elementCount, fileOffset, byteLength };
    });
    const byOffset = [...tensors].sort((a, b) => a.fileOffset - b.fileOffset);
    for (let i = 1; i < byOffset.length; i++) {
      const prev = byOffset[i - 1]!;
      const t = byOffset[i]!;
      if (t.fileOffset < prev.fileOffset + prev.byteLength) c.fail(`tensor "${t.name}" overlaps tensor "${prev.name}"`);
    }
    return new GGUFFile(path, version, size, metadata, tensors, alignment, dataOffset);
  }

  tensor(name: string): GGUFTensorInfo | undefined {
    return this.byName.get(name);
  }

  /** The raw bytes of one tensor as stored (quantised blocks included), read by one positioned read. */
  readTensorBytes(name: string): Uint8Array {
    const t = this.byName.get(name);
    if (t === undefined) throw new CheckpointFormatError(this.path, `no tensor named "${name}"`);
    const bytes = new Uint8Array(t.byteLength);
    const fd = openSync(this.path, 'r');
    try {
      const now = fstatSync(fd).size;
      if (now !== this.fileSize) throw new CheckpointFormatError(this.path, `the file changed size since it was opened (${this.fileSize} -> ${now} bytes)`);
      let got = 0;
      while (got < t.byteLength) {
        const r = readSync(fd, bytes, got, t.byteLength - got, t.fileOffset + got);
        if (r === 0) throw new CheckpointFormatError(this.path, `truncated tensor data: tensor "${name}" ends at byte ${t.fileOffset + got}`);
        got += r;
      }
    } finally {
      closeSync(fd);
    }
    return bytes;
  }

  /** One tensor dequantised to float32, with its row-major shape. */
  readTensor(name: string): { shape: number[]; data: Float32Array } {
    const t = this.byName.get(name);
    if (t === undefined) throw new CheckpointFormatError(this.path, `no tensor named "${name}"`);
    if (!ggmlTypeLayout(t.type)?.supported) {
      throw new CheckpointFormatError(
        this.path,
        `tensor "${name}" is ${t.typeName} (type ${t.type}), which this reader cannot dequantise (${SUPPORTED_TYPE_NAMES})`,
      );
    }
    return { shape: [...t.shape], data: dequantize(t.type, this.readTensorBytes(name), t.elementCount) };
  }

  /** The plain value of a metadata key, or undefined when the file has no such key. */
  get(key: string): GGUFPlain | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    return v.type === 'array' ? plainArray(v.value) : v.value;
  }

  private wrongType(key: string, wanted: string): never {
    throw new CheckpointFormatError(this.path, `metadata "${key}" is a ${describe(this.metadata.get(key)!)}, not ${wanted}`);
  }

  getString(key: string): string | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    return v.type === 'string' ? v.value : this.wrongType(key, 'a string');
  }

  /** A number of any numeric type (a 64-bit integer only when it is exact as a number). */
  getNumber(key: string): number | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    if (typeof v.value === 'number') return v.value;
    if (typeof v.value === 'bigint' && v.value <= BigInt(Number.MAX_SAFE_INTEGER) && v.value >= -BigInt(Number.MAX_SAFE_INTEGER)) return Number(v.value);
    return this.wrongType(key, 'a number');
  }

  getBoolean(key: string): boolean | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    return v.type === 'bool' ? v.value : this.wrongType(key, 'a bool');
  }

  getStringArray(key: string): string[] | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    return v.type === 'array' && v.value.itemType === 'string' ? v.value.values : this.wrongType(key, 'an array of strings');
  }

  getNumberArray(key: string): number[] | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    if (v.type === 'array' && NUMBER_TYPES.has(v.value.itemType)) return v.value.values as number[];
    return this.wrongType(key, 'an array of numbers');
  }

  /** `general.architecture` (`llama`, `qwen2`, `gemma`, ...), or undefined when the file does not say. */
  get architecture(): string | undefined {
    return this.getString('general.architecture');
  }
}

function describe(v: GGUFValue): string {
  return v.type === 'array' ? `array of ${v.value.itemType}` : v.type;
}

/** Opens a GGUF file (header, metadata, tensor index); see GGUFFile. */
export function openGGUF(path: string): GGUFFile {
  return GGUFFile.open(path);
}

/** Architectures the project has a model for. */
export const SUPPORTED_ARCHITECTURES = ['llama'] as const;

/** Refuses a file whose `general.architecture` is not `llama` (missing counts as not supported). */
export function requireLlama(gguf: GGUFFile): void {
  const arch = gguf.architecture;
  if (arch !== 'llama') {
    throw new CheckpointFormatError(
      gguf.path,
      arch === undefined
        ? 'architecture not supported: the file has no general.architecture (supported: llama)'
        : `architecture not supported: general.architecture is "${arch}" (supported: ${SUPPORTED_ARCHITECTURES.join(', ')})`,
    );
  }
}

/**
 * The llama hyperparameters of a GGUF file (keys `llama.*`). Optional keys take llama.cpp's defaults:
 * `head_count_kv` = `head_count`, `rope.dimension_count` = embedding / heads, `rope.freq_base` = 10000,
 * `vocab_size` = the tokenizer's token count.
 */
export function llamaHyperparameters(gguf: GGUFFile): LlamaHyperparameters {
  requireLlama(gguf);
  const required = (key: string): number => {
    const v = gguf.getNumber(`llama.${key}`);
    if (v === undefined) throw new CheckpointFormatError(gguf.path, `llama model without llama.${key}`);
    return v;
  };
  const embeddingLength = required('embedding_length');
  const headCount = required('attention.head_count');
  const vocabSize = gguf.getNumber('llama.vocab_size') ?? gguf.getStringArray('tokenizer.ggml.tokens')?.length;
  if (vocabSize === undefined) throw new CheckpointFormatError(gguf.path, 'llama model without llama.vocab_size or tokenizer.ggml.tokens');
  return {
    blockCount: required('block_count'),
    embeddingLength,
    feedForwardLength: required('feed_forward_length'),
    headCount,
    headCountKv: gguf.getNumber('llama.attention.head_count_kv') ?? headCount,
    ropeFreqBase: gguf.getNumber('llama.rope.freq_base') ?? 10000,
    ropeDimensionCount: gguf.getNumber('llama.rope.dimension_count') ?? embeddingLength / headCount,
    rmsNormEpsilon: required('attention.layer_norm_rms_epsilon'),
    contextLength: required('context_length'),
    vocabSize,
  };
}

/** The tokenizer as GGUF metadata describes it (`tokenizer.ggml.*`, `tokenizer.chat_template`). */
export interface GGUFTokenizer {
  /** `gpt2` for byte-level BPE, `llama` for SentencePiece, ... */
  model: string;
  /** Pre-tokeniser name (`smollm`, `llama-bpe`, ...), when given. */
  pre?: string;
  tokens: string[];
  scores?: number[];
  tokenTypes?: number[];
  /** BPE merges, each "left right". */
  merges?: string[];
  bosTokenId?: number;
  eosTokenId?: number;
  unknownTokenId?: number;
  paddingTokenId?: number;
  addBosToken?: boolean;
  addEosToken?: boolean;
  chatTemplate?: string;
}

/** Reads the tokenizer metadata; refuses a file without `tokenizer.ggml.model` and `tokenizer.ggml.tokens`. */
export function ggufTokenizer(gguf: GGUFFile): GGUFTokenizer {
  const model = gguf.getString('tokenizer.ggml.model');
  const tokens = gguf.getStringArray('tokenizer.ggml.tokens');
  if (model === undefined || tokens === undefined)
    throw new CheckpointFormatError(gguf.path, 'no tokenizer: tokenizer.ggml.model or tokenizer.ggml.tokens is missing');
  const out: GGUFTokenizer = { model, tokens };
  const set = <K extends keyof GGUFTokenizer>(k: K, v: GGUFTokenizer[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('pre', gguf.getString('tokenizer.ggml.pre'));
  set('scores', gguf.getNumberArray('tokenizer.ggml.scores'));
  set('tokenTypes', gguf.getNumberArray('tokenizer.ggml.token_type'));
  set('merges', gguf.getStringArray('tokenizer.ggml.merges'));
  set('bosTokenId', gguf.getNumber('tokenizer.ggml.bos_token_id'));
  set('eosTokenId', gguf.getNumber('tokenizer.ggml.eos_token_id'));
  set('unknownTokenId', gguf.getNumber('tokenizer.ggml.unknown_token_id'));
  set('paddingTokenId', gguf.getNumber('tokenizer.ggml.padding_token_id'));
  set('addBosToken', gguf.getBoolean('tokenizer.ggml.add_bos_token'));
  set('addEosToken', gguf.getBoolean('tokenizer.ggml.add_eos_token'));
  set('chatTemplate', gguf.getString('tokenizer.chat_template'));
  for (const [k, id] of [
    ['bosTokenId', out.bosTokenId],
    ['eosTokenId', out.eosTokenId],
    ['unknownTokenId', out.unknownTokenId],
    ['paddingTokenId', out.paddingTokenId],
  ] as const) {
    if (id !== undefined && (!Number.isInteger(id) || id < 0 || id >= tokens.length)) {
      throw new CheckpointFormatError(gguf.path, `tokenizer ${k} ${id} is not a token id (vocabulary of ${tokens.length})`);
    }
  }
  return out;
}
