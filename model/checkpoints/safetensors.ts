/**
 * A reader for Hugging Face checkpoint folders: `config.json` plus one `model.safetensors`, or shards listed by
 * `model.safetensors.index.json` (`weight_map`: tensor name -> shard file). F32, F16 and BF16 tensors are read as
 * float32, one at a time, by positioned reads; opening a folder reads only the shards' headers.
 *
 * Each shard's header is checked as the reference implementation checks it (safetensors' `validate`): a JSON
 * object under 100 MB inside the file, known dtypes, shapes of non-negative integers, `data_offsets` that match
 * the shape, lie inside the file, and cover the data exactly once (no overlap, no gap, nothing after the last
 * tensor). model/weights.ts reads and writes the project's own F32 files from memory; this reads other people's.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointFormatError } from './errors.ts';
import { GGML_TYPE, dequantize } from './gguf-quants.ts';
import { type LlamaHyperparameters, llamaHyperparametersFromHfConfig } from './llama-layout.ts';

/** The reference refuses headers over 100 MB; so does this, before allocating anything. */
const MAX_HEADER_BYTES = 100_000_000;

/** Bytes per element of every dtype the format defines (sub-byte float types left out: refused as unknown). */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
  C64: 8,
};
const READABLE = { F32: GGML_TYPE.F32, F16: GGML_TYPE.F16, BF16: GGML_TYPE.BF16 } as const;
export type SafetensorsDtype = keyof typeof READABLE;

export interface SafetensorsTensorInfo {
  name: string;
  /** As the header says: F32, F16, BF16 are readable; other dtypes are listed but `readTensor` refuses them. */
  dtype: string;
  /** Row-major shape, outermost first (safetensors' own order). */
  shape: number[];
  /** The shard holding it. */
  file: string;
  /** Position of its first byte in that file. */
  fileOffset: number;
  byteLength: number;
}

function readExactly(fd: number, length: number, position: number, file: string, what: string): Uint8Array {
  const bytes = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const r = readSync(fd, bytes, got, length - got, position + got);
    if (r === 0) throw new CheckpointFormatError(file, `truncated: the file ended at byte ${position + got} while reading ${what}`);
    got += r;
  }
  return bytes;
}

/** One safetensors file: its header parsed and checked, tensor data read on demand. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly fileSize: number,
    /** The header's string-valued `__metadata__`. */
    readonly metadata: Readonly<Record<string, string>>,
    readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>,
  ) {}

  /** Reads and checks the header of `path`; refuses a file it cannot read with a CheckpointFormatError. */
  static open(path: string): SafetensorsFile {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const fail = (reason: string): never => {
        throw new CheckpointFormatError(path, reason);
      };
      if (size < 8) fail(`not a safetensors file: ${size} bytes, shorter than the 8-byte header length`);
      const n = new DataView(readExactly(fd, 8, 0, path, 'the header length').buffer).getBigUint64(0, true);
      if (n > BigInt(size - 8)) fail(`header past the file end: the header length is ${n} bytes and the file has ${size - 8} after it`);
      if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} is over the 100 MB limit`);
      const headerLength = Number(n);
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(readExactly(fd, headerLength, 8, path, 'the header')));
      } catch (err) {
        fail(`header is not valid UTF-8 JSON (${(err as Error).message})`);
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('header is not a JSON object');
      const dataStart = 8 + headerLength;
      const { metadata, tensors } = checkHeader(parsed as Record<string, unknown>, path, dataStart, size);
      return new SafetensorsFile(path, size, metadata, tensors);
    } finally {
      closeSync(fd);
    }
  }

  readTensor(name: string): { shape: number[]; data: Float32Array } {
    const t = this.tensors.get(name);
    if (t === undefined) throw new CheckpointFormatError(this.path, `no tensor named "${name}"`);
    return readTensorAt(t, this.fileSize);
  }
}

function checkHeader(
  header: Record<string, unknown>,
  path: string,
  dataStart: number,
  size: number,
): { metadata: Record<string, string>; tensors: Map<string, SafetensorsTensorInfo> } {
  const fail = (reason: string): never => {
    throw new CheckpointFormatError(path, reason);
  };
  let metadata: Record<string, string> = {};
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
      metadata = { ...(raw as Record<string, string>) };
      continue;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`tensor "${name}": entry is not an object`);
    const e = raw as Record<string, unknown>;
    const dtype = e.dtype;
    if (typeof dtype !== 'string' || DTYPE_BYTES[dtype] === undefined) fail(`tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`tensor "${name}": data_offsets [${begin}, ${end}] end before they begin`);
    const expected = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype as string]!;
    if (end - begin !== expected) fail(`tensor "${name}": shape [${shape}] of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`);
    if (dataStart + end > size) {
      fail(`truncated tensor data: tensor "${name}" needs bytes ${dataStart + begin}..${dataStart + end} but the file ends at ${size}`);
    }
    entries.push({ name, dtype: dtype as string, shape: shape as number[], begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous = '';
  for (const e of entries) {
    if (e.begin < cursor) fail(`tensor "${e.name}" overlaps tensor "${previous}" (starts at ${e.begin}, which ends at ${cursor})`);
    if (e.begin > cursor) fail(`gap in the data before tensor "${e.name}": bytes ${cursor}..${e.begin} belong to no tensor`);
    cursor = e.end;
    previous = e.name;
  }
  if (dataStart + cursor !== size) fail(`${size - dataStart - cursor} bytes after the last tensor belong to no tensor`);
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, file: path, fileOffset: dataStart + e.begin, byteLength: e.end - e.begin });
  }
  return { metadata, tensors };
}

function readTensorAt(t: SafetensorsTensorInfo, fileSize: number): { shape: number[]; data: Float32Array } {
  const type = READABLE[t.dtype as SafetensorsDtype] as number | undefined;
  if (type === undefined) throw new CheckpointFormatError(t.file, `tensor "${t.name}" is ${t.dtype}, which this reader does not read (F32, F16, BF16)`);
  const fd = openSync(t.file, 'r');
  try {
    const now = fstatSync(fd).size;
    if (now !== fileSize) throw new CheckpointFormatError(t.file, `the file changed size since it was opened (${fileSize} -> ${now} bytes)`);
    const bytes = readExactly(fd, t.byteLength, t.fileOffset, t.file, `tensor "${t.name}"`);
    return { shape: [...t.shape], data: dequantize(type, bytes, t.byteLength / DTYPE_BYTES[t.dtype]!) };
  } finally {
    closeSync(fd);
  }
}

export const HF_CONFIG = 'config.json';
export const HF_SINGLE = 'model.safetensors';
export const HF_INDEX = 'model.safetensors.index.json';

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new CheckpointFormatError(path, `not valid JSON (${(err as Error).message})`);
  }
}

/** A shard name from an index must be a file in the folder itself: no paths, no parent directories. */
function isPlainFileName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !/[/\\\0]/.test(name);
}

/** A Hugging Face checkpoint folder: its config and every tensor of its shards, by name. */
export class HfCheckpoint {
  private constructor(
    readonly dir: string,
    /** config.json as parsed. */
    readonly config: Readonly<Record<string, unknown>>,
    /** Shards by file name, in the order first named. */
    readonly shards: ReadonlyMap<string, SafetensorsFile>,
    readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>,
  ) {}

  /** Opens `dir`: config.json, then model.safetensors.index.json if present, else model.safetensors. */
  static open(dir: string): HfCheckpoint {
    const configPath = join(dir, HF_CONFIG);
    if (!existsSync(configPath)) throw new CheckpointFormatError(dir, `not a Hugging Face checkpoint folder: no ${HF_CONFIG}`);
    const config = readJson(configPath);
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new CheckpointFormatError(configPath, 'config is not a JSON object');

    const shards = new Map<string, SafetensorsFile>();
    const tensors = new Map<string, SafetensorsTensorInfo>();
    const indexPath = join(dir, HF_INDEX);
    if (existsSync(indexPath)) {
      const index = readJson(indexPath) as { weight_map?: unknown } | null;
      const map = index?.weight_map;
      if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new CheckpointFormatError(indexPath, 'no weight_map object');
      for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
        if (typeof shard !== 'string' || !isPlainFileName(shard)) {
          throw new CheckpointFormatError(
            indexPath,
            `weight_map gives tensor "${name}" the shard ${JSON.stringify(shard)}, which is not a file name in the folder`,
          );
        }
        let file = shards.get(shard);
        if (file === undefined) {
          const shardPath = join(dir, shard);
          if (!existsSync(shardPath))
            throw new CheckpointFormatError(indexPath, `weight_map names the shard ${shard} (for tensor "${name}"), which is missing`);
          file = SafetensorsFile.open(shardPath);
          shards.set(shard, file);
        }
        const info = file.tensors.get(name);
        if (info === undefined) throw new CheckpointFormatError(file.path, `weight_map puts tensor "${name}" in this shard, which has no such tensor`);
        tensors.set(name, info);
      }
      if (tensors.size === 0) throw new CheckpointFormatError(indexPath, 'weight_map is empty');
    } else {
      const single = join(dir, HF_SINGLE);
      if (!existsSync(single)) throw new CheckpointFormatError(dir, `not a Hugging Face checkpoint folder: neither ${HF_SINGLE} nor ${HF_INDEX}`);
      const file = SafetensorsFile.open(single);
      shards.set(HF_SINGLE, file);
      for (const [name, info] of file.tensors) tensors.set(name, info);
    }
    return new HfCheckpoint(dir, config as Record<string, unknown>, shards, tensors);
  }

  /** One tensor as float32, with its row-major shape. */
  readTensor(name: string): { shape: number[]; data: Float32Array } {
    const t = this.tensors.get(name);
    if (t === undefined) throw new CheckpointFormatError(this.dir, `no tensor named "${name}"`);
    return readTensorAt(t, [...this.shards.values()].find((s) => s.path === t.file)!.fileSize);
  }

  /** The llama hyperparameters of config.json; refuses another `model_type` as an architecture not supported. */
  llama(): LlamaHyperparameters {
    return llamaHyperparametersFromHfConfig(this.config, join(this.dir, HF_CONFIG));
  }
}

/** Opens a Hugging Face checkpoint folder; see HfCheckpoint. */
export function openHfCheckpoint(dir: string): HfCheckpoint {
  return HfCheckpoint.open(dir);
}

/** Opens one safetensors file; see SafetensorsFile. */
export function openSafetensors(path: string): SafetensorsFile {
  return SafetensorsFile.open(path);
}
