/**
 * Reading a feedback drop: JSONL of rated answers {prompt, completion, reward} and verifier prompts
 * {prompt, verifier, gold?}. Validated like a data drop (DropFormatError names the file and line, so
 * ingest quarantines it the same way), deterministically split into a training part and a held-out part
 * (by prompt, so a prompt never sits on both sides). Pure.
 */
import { createHash } from 'node:crypto';
import { DropFormatError, forEachRecord, jsonProblem, MAX_DROP_BYTES, MAX_RECORD_BYTES } from './drops.ts';
import { unexpectedFields } from '../schemas/io.ts';
import { type VerifierSpec, validateVerifier } from './verifiers.ts';

/** A logged answer with its rating in [0, 1]. */
export interface Rating {
  prompt: string;
  completion: string;
  reward: number;
}

/** A prompt whose answers a program checks; `gold` is an optional stricter check (the held-out guard). */
export interface VerifierPrompt {
  prompt: string;
  verifier: VerifierSpec;
  gold?: VerifierSpec;
}

export interface ParsedFeedback {
  ratings: Rating[];
  prompts: VerifierPrompt[];
  heldOutRatings: Rating[];
  heldOutPrompts: VerifierPrompt[];
}

/** Share of prompts held out for the guards, in thousandths. */
const HELD_OUT_PER_MILLE = 200;
const MAX_PROMPT_CHARS = 4096;

function isHeldOut(prompt: string): boolean {
  return createHash('sha256').update(`feedback:${prompt}`).digest().readUInt32BE(0) % 1000 < HELD_OUT_PER_MILLE;
}

function record(value: unknown, file: string, line: number): Rating | VerifierPrompt {
  const fail = (problem: string): never => {
    throw new DropFormatError(file, line, problem);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail('expected a JSON object like {"prompt", "completion", "reward"} or {"prompt", "verifier"}');
  }
  const v = value as Record<string, unknown>;
  if (typeof v.prompt !== 'string' || v.prompt.length === 0) return fail('prompt: must be a non-empty string');
  if (v.prompt.length > MAX_PROMPT_CHARS) return fail(`prompt: over ${MAX_PROMPT_CHARS} characters`);
  if ('verifier' in v) {
    const bad = Object.keys(v).filter((k) => !['prompt', 'verifier', 'gold'].includes(k));
    // Counted, not named: a field's name is the record's content too.
    if (bad.length) return fail(`${unexpectedFields(bad.length)} (a verifier record is {"prompt", "verifier", "gold"?})`);
    try {
      const verifier = validateVerifier(v.verifier);
      const gold = v.gold === undefined ? undefined : validateVerifier(v.gold);
      return gold ? { prompt: v.prompt, verifier, gold } : { prompt: v.prompt, verifier };
    } catch (err) {
      return fail((err as Error).message);
    }
  }
  const bad = Object.keys(v).filter((k) => !['prompt', 'completion', 'reward'].includes(k));
  if (bad.length) return fail(`${unexpectedFields(bad.length)} (a rating is {"prompt", "completion", "reward"})`);
  if (typeof v.completion !== 'string') return fail('completion: must be a string');
  if (typeof v.reward !== 'number' || !Number.isFinite(v.reward) || v.reward < 0 || v.reward > 1) return fail('reward: must be a number between 0 and 1');
  return { prompt: v.prompt, completion: v.completion, reward: v.reward };
}

/** Parses and validates a feedback drop; throws DropFormatError naming the file and line of the first bad record (and counting the rest). */
export function parseFeedback(bytes: Uint8Array, file: string): ParsedFeedback {
  if (bytes.length === 0) throw new DropFormatError(file, undefined, 'the file is empty');
  if (bytes.length > MAX_DROP_BYTES) throw new DropFormatError(file, undefined, `the file is over the ${MAX_DROP_BYTES}-byte limit`);
  let content: string;
  try {
    content = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new DropFormatError(file, undefined, 'the file is not valid UTF-8');
  }
  const out: ParsedFeedback = { ratings: [], prompts: [], heldOutRatings: [], heldOutPrompts: [] };
  const seen = new Set<string>();
  forEachRecord(file, content.split('\n'), (raw, line) => {
    if (Buffer.byteLength(raw) > MAX_RECORD_BYTES) throw new DropFormatError(file, line, `the line is over ${MAX_RECORD_BYTES} bytes`);
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw new DropFormatError(file, line, `not valid JSON (${jsonProblem(err)})`);
    }
    const r = record(value, file, line);
    // Identical records are counted once (a re-sent line is not twice the evidence).
    const key = JSON.stringify(r);
    if (seen.has(key)) return;
    seen.add(key);
    const held = isHeldOut(r.prompt);
    if ('verifier' in r) (held ? out.heldOutPrompts : out.prompts).push(r);
    else (held ? out.heldOutRatings : out.ratings).push(r);
  });
  const total = out.ratings.length + out.prompts.length + out.heldOutRatings.length + out.heldOutPrompts.length;
  if (total === 0) throw new DropFormatError(file, undefined, 'the file holds no records');
  // Every drop with two or more verifier prompts gets a held-out part, so "did the reward rise" is measurable.
  if (out.heldOutPrompts.length === 0 && out.prompts.length >= 2) out.heldOutPrompts.push(out.prompts.pop()!);
  if (out.heldOutRatings.length === 0 && out.ratings.length >= 2) out.heldOutRatings.push(out.ratings.pop()!);
  return out;
}
