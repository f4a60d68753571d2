import { createHash } from 'node:crypto';
import { type ModelConfig, validateConfig, weightShapes } from './config.ts';

/** Named float32 tensors, as stored on disk and passed between training, evaluation and the registry. */
export type Weights = Map<string, { shape: number[]; data: Float32Array }>;

/** Value of `format` in the metadata of a model file. */
export const MODEL_FORMAT = 'perennial-model/1';

// The reference implementation refuses headers over 100 MB; so do we, before allocating anything.
const MAX_HEADER_BYTES = 100_000_000;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface HeaderEntry {
  dtype: 'F32';
  shape: number[];
  data_offsets: [number, number];
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function float32Bytes(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  data.forEach((x, i) => view.setFloat32(i * 4, x, true));
  return out;
}

/**
 * Serialises tensors in the safetensors layout: u64 little-endian header length, a JSON header
 * (dtype, shape, data_offsets per tensor, string-valued `__metadata__`) padded with spaces to a
 * multiple of 8 bytes, then the raw little-endian data. Tensors are written in name order so the
 * same weights always give the same bytes.
 */
export function encodeSafetensors(tensors: Weights, metadata: Record<string, string> = {}): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, HeaderEntry | Record<string, string>> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    if (elementCount(t.shape) !== t.data.length) {
      throw new Error(`safetensors: tensor ${name} has shape [${t.shape}] but ${t.data.length} values`);
    }
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  const jsonBytes = new TextEncoder().encode(json);
  const padded = Math.ceil(jsonBytes.length / 8) * 8;
  json += ' '.repeat(padded - jsonBytes.length);

  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(new TextEncoder().encode(json), 8);
  let pos = 8 + padded;
  for (const name of names) {
    const bytes = float32Bytes(tensors.get(name)!.data);
    out.set(bytes, pos);
    pos += bytes.length;
  }
  return out;
}

/** Parses a safetensors file of F32 tensors, validating the header strictly; the result does not alias `bytes`. */
export function decodeSafetensors(bytes: Uint8Array): { tensors: Weights; metadata: Record<string, string> } {
  const fail = (why: string): never => {
    throw new Error(`safetensors: ${why}`);
  };
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8))) {
    fail(`header length ${headerLength} exceeds the file (${bytes.length} bytes) or the 100 MB limit`);
  }
  const n = Number(headerLength);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (err) {
    fail(`header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('header is not a JSON object');
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;

  let metadata: Record<string, string> = {};
  const entries: { name: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
      }
      metadata = { ...(raw as Record<string, string>) };
      continue;
    }
    if (typeof raw !== 'object' || raw === null) fail(`tensor ${name}: entry is not an object`);
    const e = raw as Partial<Record<keyof HeaderEntry, unknown>>;
    if (e.dtype !== 'F32') fail(`tensor ${name}: dtype ${JSON.stringify(e.dtype)} is not supported (only F32)`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor ${name}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`tensor ${name}: data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`tensor ${name}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLength) fail(`tensor ${name}: data_offsets end ${end} is past the data (${dataLength} bytes)`);
    const expected = elementCount(shape as number[]) * 4;
    if (end - begin !== expected) {
      fail(`tensor ${name}: shape [${shape}] needs ${expected} bytes but data_offsets span ${end - begin}`);
    }
    entries.push({ name, shape: shape as number[], begin, end });
  }

  // The data must be covered exactly once: sorted by offset, each tensor starts where the last ended.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of entries) {
    if (e.begin !== cursor) {
      fail(
        e.begin < cursor
          ? `tensor ${e.name} overlaps the previous tensor (starts at ${e.begin}, previous ends at ${cursor})`
          : `gap in the data before tensor ${e.name} (bytes ${cursor}..${e.begin} belong to no tensor)`,
      );
    }
    cursor = e.end;
  }
  if (cursor !== dataLength) fail(`data is ${dataLength} bytes but the tensors cover ${cursor}`);

  const tensors: Weights = new Map();
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const count = (e.end - e.begin) / 4;
    const data = new Float32Array(count);
    if (LITTLE_ENDIAN) {
      // Copy through bytes: the source offset need not be 4-byte aligned.
      new Uint8Array(data.buffer).set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    } else {
      for (let i = 0; i < count; i++) data[i] = view.getFloat32(dataStart + e.begin + i * 4, true);
    }
    tensors.set(e.name, { shape: e.shape, data });
  }
  return { tensors, metadata };
}

/** Hex sha256 of the weights' canonical encoding (metadata-free safetensors, name order): equal iff names, shapes and bits are equal. */
export function weightsDigest(weights: Weights): string {
  return createHash('sha256').update(encodeSafetensors(weights)).digest('hex');
}

/** Checks that `weights` has exactly the tensors and shapes `config` calls for; throws naming the first difference. */
export function checkWeights(config: ModelConfig, weights: Weights): void {
  const shapes = weightShapes(config);
  for (const [name, shape] of shapes) {
    const t = weights.get(name);
    if (!t) throw new Error(`weights: missing tensor ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`weights: tensor ${name} has shape [${t.shape}], the config needs [${shape}]`);
    }
    if (t.data.length !== elementCount(shape)) throw new Error(`weights: tensor ${name} has ${t.data.length} values`);
  }
  for (const name of weights.keys()) {
    if (!shapes.has(name)) throw new Error(`weights: unexpected tensor ${name} for this config`);
  }
}

/** Serialises a model: weights plus metadata `format`, `config` (JSON) and any extra string fields. */
export function saveModel(config: ModelConfig, weights: Weights, extraMeta: Record<string, string> = {}): Uint8Array {
  checkWeights(config, weights);
  return encodeSafetensors(weights, { ...extraMeta, format: MODEL_FORMAT, config: JSON.stringify(config) });
}

/** Parses a model file written by saveModel, checking that the weights match the stored config. */
export function loadModel(bytes: Uint8Array): { config: ModelConfig; weights: Weights; metadata: Record<string, string> } {
  const { tensors, metadata } = decodeSafetensors(bytes);
  if (metadata.format !== MODEL_FORMAT) {
    throw new Error(`model file: format ${JSON.stringify(metadata.format)} is not ${MODEL_FORMAT}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(metadata.config ?? '');
  } catch {
    throw new Error('model file: metadata.config is missing or not JSON');
  }
  const config = validateConfig(raw);
  checkWeights(config, tensors);
  return { config, weights: tensors, metadata };
}

/** Deep copy of weights, so a caller can keep a snapshot while training mutates its own. */
export function cloneWeights(weights: Weights): Weights {
  const out: Weights = new Map();
  for (const [name, t] of weights) out.set(name, { shape: [...t.shape], data: t.data.slice() });
  return out;
}
