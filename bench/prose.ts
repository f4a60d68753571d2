/**
 * The accounting of `bench:prose`, pure: a plain-text drop split the way ingest splits it, the held-out bytes
 * that xz and gzip compress, and the model's cost of the same text in bits per byte.
 */
import { spawnSync } from 'node:child_process';
import { parseDrop } from '../domain/drops.ts';

export interface ProseSplit {
  /** Paragraphs as ingest splits them (15% held out by hash). */
  train: string[];
  heldOut: string[];
  /** The same paragraphs as files, each paragraph followed by "\n\n": what the compressors see. */
  trainFile: Buffer;
  heldOutFile: Buffer;
  /**
   * Tokens the loop's evaluation predicts on the held-out suite: each paragraph's bytes and its EOS (BOS
   * is context, never a target). evaluateLoss's `tokens` must equal this.
   */
  predictedTokens: number;
}

const asFile = (paragraphs: string[]) => Buffer.from(paragraphs.map((p) => `${p}\n\n`).join(''));

export function splitProse(bytes: Uint8Array, file: string): ProseSplit {
  const drop = parseDrop(bytes, file);
  if (drop.format !== 'text') throw new Error(`${file}: expected a plain-text drop, got ${drop.format}`);
  return {
    train: drop.train,
    heldOut: drop.heldOut,
    trainFile: asFile(drop.train),
    heldOutFile: asFile(drop.heldOut),
    predictedTokens: drop.heldOut.reduce((n, p) => n + Buffer.byteLength(p) + 1, 0),
  };
}

/** Bytes of `input` after `tool -9`. */
export function compressedBytes(tool: 'xz' | 'gzip', input: Buffer): number {
  const run = spawnSync(tool, ['-9', '-c'], { input, maxBuffer: 1 << 30 });
  if (run.status !== 0) throw new Error(`${tool} -9 failed: ${run.error?.message ?? run.stderr.toString().trim()}`);
  return run.stdout.length;
}

/**
 * The model's cost of the held-out file in bits per byte: mean loss (nats per predicted token) times the
 * predicted tokens, in bits, over the file's bytes. Each EOS stands for the "\n\n" after its paragraph.
 */
export function modelBitsPerByte(meanLossNats: number, split: ProseSplit): number {
  return (meanLossNats * split.predictedTokens) / Math.LN2 / split.heldOutFile.length;
}

/** Compressor bits per byte of the held-out file, alone and given the train part (xz(train + held-out) - xz(train)). */
export function compressorBitsPerByte(tool: 'xz' | 'gzip', split: ProseSplit): { alone: number; givenTrain: number } {
  const bpb = (bytes: number) => (8 * bytes) / split.heldOutFile.length;
  return {
    alone: bpb(compressedBytes(tool, split.heldOutFile)),
    givenTrain: bpb(compressedBytes(tool, Buffer.concat([split.trainFile, split.heldOutFile])) - compressedBytes(tool, split.trainFile)),
  };
}
