/**
 * Reading a data drop: format detection, strict validation that names the offending record, and the
 * deterministic train / held-out split. Pure (bytes in, records out), so ingest, evaluation, training and
 * the benchmarks all read a drop the same way.
 */
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { ProbeRecord, TextRecord, unexpectedFields } from '../schemas/io.ts';
import { sha256Hex } from './digest.ts';

export const MAX_DROP_BYTES = 256 * 1024 * 1024;
export const MAX_RECORD_BYTES = 1024 * 1024;
/** Share of text records held out for evaluation, in thousandths. */
const HELD_OUT_PER_MILLE = 150;

export interface Probe {
  prompt: string;
  completion: string;
}

export interface ParsedDrop {
  format: 'jsonl' | 'text';
  /** Text records used for training. */
  train: string[];
  /** Text records held out: the drop's loss suite. */
  heldOut: string[];
  /** Prompt/completion pairs: the drop's exact-match suite (evaluated, never trained on directly). */
  probes: Probe[];
}

/** Bad input: names the file and, where there is one, the 1-based line. */
export class DropFormatError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly problem: string,
  ) {
    super(`${file}${line === undefined ? '' : `: line ${line}`}: ${problem}`);
    this.name = 'DropFormatError';
  }
}

export { sha256Hex };

function isHeldOut(text: string): boolean {
  return createHash('sha256').update(text).digest().readUInt32BE(0) % 1000 < HELD_OUT_PER_MILLE;
}

/** Parses and validates a drop. Throws DropFormatError naming the file and line of the first bad record (and counting the rest). */
export function parseDrop(bytes: Uint8Array, file: string): ParsedDrop {
  if (bytes.length === 0) throw new DropFormatError(file, undefined, 'the file is empty');
  if (bytes.length > MAX_DROP_BYTES) throw new DropFormatError(file, undefined, `the file is ${bytes.length} bytes, over the ${MAX_DROP_BYTES}-byte limit`);
  let content: string;
  try {
    content = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new DropFormatError(file, firstInvalidUtf8Line(bytes), 'the file is not valid UTF-8');
  }
  const lines = content.split('\n');
  lines.forEach((l, i) => {
    if (Buffer.byteLength(l) > MAX_RECORD_BYTES) throw new DropFormatError(file, i + 1, `the line is over ${MAX_RECORD_BYTES} bytes`);
    if (l.includes('\u0000')) throw new DropFormatError(file, i + 1, 'the line contains a NUL character');
  });
  const format = detectFormat(file, content);
  const drop: ParsedDrop = { format, train: [], heldOut: [], probes: [] };
  if (format === 'text') {
    for (const paragraph of content.split(/\n\s*\n/)) {
      const text = paragraph.trim();
      if (text) (isHeldOut(text) ? drop.heldOut : drop.train).push(text);
    }
  } else {
    forEachRecord(file, lines, (raw, line) => {
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (err) {
        throw new DropFormatError(file, line, `not valid JSON (${jsonProblem(err)})`);
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new DropFormatError(file, line, 'expected a JSON object like {"text": "..."} or {"prompt": "...", "completion": "..."}');
      }
      if ('prompt' in value || 'completion' in value) {
        const probe = ProbeRecord.safeParse(value);
        if (!probe.success) throw new DropFormatError(file, line, recordProblem(probe.error));
        drop.probes.push(probe.data);
        return;
      }
      const record = TextRecord.safeParse(value);
      if (!record.success) throw new DropFormatError(file, line, recordProblem(record.error));
      const split = record.data.split ?? (isHeldOut(record.data.text) ? 'heldout' : 'train');
      (split === 'heldout' ? drop.heldOut : drop.train).push(record.data.text);
    });
  }
  if (drop.train.length + drop.heldOut.length + drop.probes.length === 0) throw new DropFormatError(file, undefined, 'the file holds no records');
  // Every drop with two or more texts gets a held-out part, so "did it learn the new data" is measurable.
  if (drop.heldOut.length === 0 && drop.train.length >= 2) {
    const pick = drop.train.reduce((best, t) => (sha256Hex(t) < sha256Hex(best) ? t : best));
    drop.train.splice(drop.train.indexOf(pick), 1);
    drop.heldOut.push(pick);
  }
  return drop;
}

/**
 * Reads each non-blank line (1-based `line`) with `read`. A line it refuses does not stop the others: the error
 * names the first bad line and its problem, then how many more there are and the first of their line numbers,
 * so one pass over the file finds what to fix. Nothing of a record's content goes into the message.
 */
export function forEachRecord(file: string, lines: string[], read: (raw: string, line: number) => void): void {
  let first: DropFormatError | undefined;
  const more: number[] = [];
  lines.forEach((raw, i) => {
    if (!raw.trim()) return;
    try {
      read(raw, i + 1);
    } catch (err) {
      if (!(err instanceof DropFormatError)) throw err;
      if (first) more.push(i + 1);
      else first = err;
    }
  });
  if (!first) return;
  if (!more.length) throw first;
  const shown = `${more.slice(0, MORE_SHOWN).join(', ')}${more.length > MORE_SHOWN ? ', …' : ''}`;
  throw new DropFormatError(file, first.line, `${first.problem}; ${more.length} more bad line${more.length > 1 ? 's' : ''}: ${shown}`);
}

/** How many further bad lines an error names by number. */
const MORE_SHOWN = 5;

const lowerFirst = (s: string) => s.charAt(0).toLowerCase() + s.slice(1);

/**
 * What is wrong with a line that JSON.parse refused, without the line's content: V8 quotes the start of the
 * input in some messages, and these messages travel in workflow histories and audit entries, where training
 * data must never go.
 */
export function jsonProblem(err: unknown): string {
  if (err instanceof RangeError) return 'nesting too deep';
  const message = String((err as Error | undefined)?.message ?? err);
  const at = /^(.*?) in JSON at position (\d+)/s.exec(message);
  if (at) return `${lowerFirst(at[1]!)} at column ${Number(at[2]) + 1}`;
  if (/^Unexpected token\b/.test(message)) return 'unexpected character';
  if (/^Unexpected end of JSON input/.test(message)) return 'the record ends early';
  return lowerFirst(message.replace(/(["'`]).*?\1/gs, '…').slice(0, 200));
}

/**
 * A record's schema problems, one line, naming the known fields at fault and quoting nothing of the record:
 * unknown fields are counted, not named, since a field's name is the record's content too.
 */
function recordProblem(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      if (i.code === 'unrecognized_keys') return `${unexpectedFields(i.keys.length)} (a record is {"text", "split"?} or {"prompt", "completion"})`;
      return i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message;
    })
    .join('; ');
}

function detectFormat(file: string, content: string): 'jsonl' | 'text' {
  if (/\.(jsonl|ndjson|json)$/i.test(file)) return 'jsonl';
  if (/\.(txt|md|text)$/i.test(file)) return 'text';
  return content.trimStart().startsWith('{') ? 'jsonl' : 'text';
}

function firstInvalidUtf8Line(bytes: Uint8Array): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let line = 1;
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      try {
        decoder.decode(bytes.subarray(start, i));
      } catch {
        return line;
      }
      line++;
      start = i + 1;
    }
  }
  return line;
}
