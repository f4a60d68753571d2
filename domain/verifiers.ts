/**
 * Built-in verifiers for feedback prompts: programs that score a completion 0 or 1 (exact answer,
 * regular expression, JSON shape, numeric answer with tolerance). Pure; a bad spec throws a plain Error
 * whose message the feedback parser wraps with the file and line.
 */

/** A verifier as written in a feedback record. */
export type VerifierSpec =
  | { kind: 'exact'; answer: string }
  | { kind: 'regex'; pattern: string }
  | { kind: 'json'; shape: Record<string, JsonType> }
  | { kind: 'numeric'; value: number; tolerance: number };

export type JsonType = 'string' | 'number' | 'boolean' | 'object' | 'array' | 'null';
const JSON_TYPES: readonly JsonType[] = ['string', 'number', 'boolean', 'object', 'array', 'null'];
const MAX_PATTERN = 500;
/** Completions are scored on at most this many characters (bounds regex cost). */
const MAX_SCORED = 4096;

/** Checks an untrusted verifier value; throws naming the bad field. */
export function validateVerifier(value: unknown): VerifierSpec {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('verifier: expected an object with a "kind"');
  const v = value as Record<string, unknown>;
  const extra = (allowed: string[]) => {
    const bad = Object.keys(v).filter((k) => !allowed.includes(k));
    if (bad.length) throw new Error(`verifier: unexpected field ${JSON.stringify(bad[0]!.slice(0, 40))}`);
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
      try {
        new RegExp(v.pattern, 'u');
      } catch {
        throw new Error('verifier regex: "pattern" is not a valid regular expression');
      }
      return { kind: 'regex', pattern: v.pattern };
    }
    case 'json': {
      extra(['kind', 'shape']);
      const shape = v.shape;
      if (typeof shape !== 'object' || shape === null || Array.isArray(shape) || Object.keys(shape).length === 0) {
        throw new Error('verifier json: "shape" must be a non-empty object of field name to type');
      }
      for (const [k, t] of Object.entries(shape)) {
        if (!JSON_TYPES.includes(t as JsonType)) throw new Error(`verifier json: shape.${k.slice(0, 40)} must be one of ${JSON_TYPES.join(', ')}`);
      }
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
      return new RegExp(spec.pattern, 'u').test(text) ? 1 : 0;
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
