/**
 * Built-in verifiers for feedback prompts: programs that score a completion 0 or 1 (exact answer,
 * regular expression, JSON shape, numeric answer with tolerance). Pure; a bad spec throws a plain Error
 * whose message the feedback parser wraps with the file and line. Messages never quote the drop's text
 * (field names, keys, pattern fragments): they reach workflow histories and the audit log.
 *
 * Regular expressions run on RE2 (re2js): matching is linear in the completion's length, so no pattern a
 * feedback drop carries can stall a worker by backtracking (`^(.+)+\u0000` under JS RegExp took seconds on
 * 30 characters). RE2 syntax: no backreferences, lookahead or lookbehind; `\x{41}`, not `\u0041`.
 */
import { isDeepStrictEqual } from 'node:util';
import { RE2JS } from 're2js';

/** A verifier as written in a feedback record. */
export type VerifierSpec =
  | { kind: 'exact'; answer: string }
  | { kind: 'regex'; pattern: string }
  | { kind: 'json'; shape: Record<string, JsonType> }
  | { kind: 'numeric'; value: number; tolerance: number };

export type JsonType = 'string' | 'number' | 'boolean' | 'object' | 'array' | 'null';
const JSON_TYPES: readonly JsonType[] = ['string', 'number', 'boolean', 'object', 'array', 'null'];
const MAX_PATTERN = 500;
/**
 * RE2 instructions a pattern may compile to. Matching costs at worst about instructions x characters
 * (`[ab]*a[ab]{250}$`, 256 instructions, took 75 ms on 4096 characters): 200 keeps a check on a full
 * completion to tens of milliseconds and is far above what an answer check needs (`^\[[a-z]+\]$` is 8).
 */
const MAX_PROGRAM = 200;
/** Completions are scored on at most this many characters (bounds regex cost). */
const MAX_SCORED = 4096;

/** Compiled patterns, reused across checks (an RL update checks the same few patterns thousands of times). */
const compiled = new Map<string, RE2JS>();
const MAX_COMPILED = 256;

/** The pattern compiled by RE2; throws a message that names the problem and never quotes the pattern. */
function compileRegex(pattern: string): RE2JS {
  const hit = compiled.get(pattern);
  if (hit) return hit;
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (err) {
    // re2js's description is the kind of problem ("invalid escape sequence"); its message adds the fragment.
    const what = typeof (err as { getDescription?: unknown }).getDescription === 'function' ? String((err as { getDescription(): unknown }).getDescription()) : 'cannot be parsed';
    throw new Error(
      `verifier regex: "pattern" is not a valid RE2 regular expression (${what}); RE2 has no backreferences, lookahead or lookbehind, and writes \\x{41} for \\u0041`,
    );
  }
  if (re.programSize() > MAX_PROGRAM) {
    throw new Error(`verifier regex: "pattern" compiles to ${re.programSize()} RE2 instructions, over the limit of ${MAX_PROGRAM} (large repeat counts such as {500} cost the most)`);
  }
  if (compiled.size >= MAX_COMPILED) compiled.clear();
  compiled.set(pattern, re);
  return re;
}

/** Checks an untrusted verifier value; throws naming the bad field. */
export function validateVerifier(value: unknown): VerifierSpec {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('verifier: expected an object with a "kind"');
  const v = value as Record<string, unknown>;
  const extra = (allowed: string[]) => {
    const bad = Object.keys(v).filter((k) => !allowed.includes(k));
    // Counted, never quoted: a field name is drop content (it has held an API key).
    if (bad.length) throw new Error(`verifier ${String(v.kind)}: ${bad.length} unexpected field${bad.length === 1 ? '' : 's'} (it takes ${allowed.map((k) => JSON.stringify(k)).join(', ')})`);
  };
  switch (v.kind) {
    case 'exact':
      extra(['kind', 'answer']);
      if (typeof v.answer !== 'string') throw new Error('verifier exact: "answer" must be a string');
      return { kind: 'exact', answer: v.answer };
    case 'regex': {
      extra(['kind', 'pattern']);
      if (typeof v.pattern !== 'string' || v.pattern.length === 0) throw new Error('verifier regex: "pattern" must be a non-empty string');
      if (v.pattern.length > MAX_PATTERN) throw new Error(`verifier regex: "pattern" is over ${MAX_PATTERN} characters`);
      compileRegex(v.pattern);
      return { kind: 'regex', pattern: v.pattern };
    }
    case 'json': {
      extra(['kind', 'shape']);
      const shape = v.shape;
      if (typeof shape !== 'object' || shape === null || Array.isArray(shape) || Object.keys(shape).length === 0) {
        throw new Error('verifier json: "shape" must be a non-empty object of field name to type');
      }
      // The bad entry by position, not by its key (drop content).
      Object.values(shape).forEach((t, i) => {
        if (!JSON_TYPES.includes(t as JsonType)) throw new Error(`verifier json: entry ${i + 1} of "shape" has a type that is not one of ${JSON_TYPES.join(', ')}`);
      });
      return { kind: 'json', shape: shape as Record<string, JsonType> };
    }
    case 'numeric':
      extra(['kind', 'value', 'tolerance']);
      if (typeof v.value !== 'number' || !Number.isFinite(v.value)) throw new Error('verifier numeric: "value" must be a finite number');
      if (v.tolerance !== undefined && (typeof v.tolerance !== 'number' || !(v.tolerance >= 0) || !Number.isFinite(v.tolerance))) {
        throw new Error('verifier numeric: "tolerance" must be a non-negative number');
      }
      return { kind: 'numeric', value: v.value, tolerance: (v.tolerance as number | undefined) ?? 0 };
    default:
      throw new Error(`verifier: "kind" must be one of exact, regex, json, numeric`);
  }
}

/** Whether `gold` is a check of its own: given, and not the verifier again (which could never disagree with it). */
export function hasIndependentGold(p: { verifier: VerifierSpec; gold?: VerifierSpec }): boolean {
  return p.gold !== undefined && !isDeepStrictEqual(p.gold, p.verifier);
}

function jsonType(x: unknown): JsonType {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'array';
  return typeof x as JsonType;
}

/** Scores a completion: 1 when it passes the check, else 0. Leading/trailing whitespace is ignored. */
export function verify(spec: VerifierSpec, completion: string): number {
  const text = completion.slice(0, MAX_SCORED).trim();
  switch (spec.kind) {
    case 'exact':
      return text === spec.answer.trim() ? 1 : 0;
    case 'regex':
      return compileRegex(spec.pattern).test(text) ? 1 : 0;
    case 'json': {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return 0;
      }
      if (jsonType(parsed) !== 'object') return 0;
      const obj = parsed as Record<string, unknown>;
      return Object.entries(spec.shape).every(([k, t]) => Object.hasOwn(obj, k) && jsonType(obj[k]) === t) ? 1 : 0;
    }
    case 'numeric': {
      if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return 0;
      return Math.abs(Number(text) - spec.value) <= spec.tolerance ? 1 : 0;
    }
  }
}
