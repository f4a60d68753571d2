import { describe, expect, it } from 'vitest';
import { DropFormatError } from '../../domain/drops.ts';
import { parseFeedback } from '../../domain/feedback.ts';
import { RL_GUARD_DEFAULTS, overOptimisation, ratingsFell, rlVerdict } from '../../domain/rl-guards.ts';
import { validateVerifier, verify } from '../../domain/verifiers.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const fails = (text: string, file = 'f.jsonl') => {
  try {
    parseFeedback(enc(text), file);
  } catch (err) {
    expect(err).toBeInstanceOf(DropFormatError);
    return (err as Error).message;
  }
  throw new Error('expected a DropFormatError');
};

describe('verifiers', () => {
  it('score exact, regex, json shape and numeric answers', () => {
    expect(verify({ kind: 'exact', answer: '42' }, ' 42\n')).toBe(1);
    expect(verify({ kind: 'exact', answer: '42' }, '420')).toBe(0);
    expect(verify({ kind: 'regex', pattern: '^\\[[a-z]+\\]$' }, '[ok]')).toBe(1);
    expect(verify({ kind: 'regex', pattern: '^\\[[a-z]+\\]$' }, 'ok')).toBe(0);
    const shape = { kind: 'json', shape: { name: 'string', n: 'number' } } as const;
    expect(verify(shape, '{"name":"a","n":3}')).toBe(1);
    expect(verify(shape, '{"name":"a","n":"3"}')).toBe(0);
    expect(verify(shape, 'not json')).toBe(0);
    expect(verify({ kind: 'numeric', value: 7, tolerance: 0.5 }, '7.4')).toBe(1);
    expect(verify({ kind: 'numeric', value: 7, tolerance: 0.5 }, '7.6')).toBe(0);
    expect(verify({ kind: 'numeric', value: 7, tolerance: 0 }, '7 apples')).toBe(0);
  });

  it('reject bad specs naming the problem', () => {
    expect(() => validateVerifier({ kind: 'regex', pattern: '(' })).toThrow(/not a valid RE2 regular expression \(missing closing \)\)/);
    expect(() => validateVerifier({ kind: 'numeric', value: 'x' })).toThrow(/"value" must be a finite number/);
    expect(() => validateVerifier({ kind: 'json', shape: { a: 'date' } })).toThrow(/entry 1 of "shape" has a type that is not one of/);
    expect(() => validateVerifier({ kind: 'magic' })).toThrow(/"kind" must be one of/);
    expect(() => validateVerifier({ kind: 'exact', answer: 'a', extra: 1 })).toThrow(/verifier exact: 1 unexpected field \(it takes "kind", "answer"\)/);
  });

  it('run regex verifiers in linear time: ^(.+)+\\u0000 on 30 and 4096 characters takes milliseconds (JS RegExp took seconds on 30)', () => {
    const evil = validateVerifier({ kind: 'regex', pattern: '^(.+)+\u0000' });
    for (const n of [30, 4096]) {
      const started = performance.now();
      expect(verify(evil, 'a'.repeat(n))).toBe(0);
      expect(performance.now() - started).toBeLessThan(100);
    }
    expect(verify(evil, 'abc\u0000')).toBe(1);
  });

  it('refuse patterns RE2 cannot run or that compile too large, without quoting them', () => {
    for (const pattern of ['(sk_live_1)\\1', '(?=sk_live_1)x', '(?<=sk_live_1)x', '(?<!sk_live_1)x', '\\u0041sk_live_1']) {
      let message = '';
      try {
        validateVerifier({ kind: 'regex', pattern });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/^verifier regex: "pattern" is not a valid RE2 regular expression \(.+\); RE2 has no backreferences, lookahead or lookbehind/);
      expect(message).not.toContain('sk_live_1');
    }
    expect(() => validateVerifier({ kind: 'regex', pattern: '[ab]*a[ab]{250}$' })).toThrow(/compiles to \d+ RE2 instructions, over the limit of 200/);
    expect(validateVerifier({ kind: 'regex', pattern: '^\\d{4}-\\d{2}-\\d{2}$' })).toEqual({ kind: 'regex', pattern: '^\\d{4}-\\d{2}-\\d{2}$' });
  });

  it('count unexpected fields and name a bad shape entry by position, never quoting drop text', () => {
    const secret = 'sk_live_0123456789abcdef';
    const message = (v: unknown) => {
      try {
        validateVerifier(v);
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('expected a refusal');
    };
    const extra = message({ kind: 'regex', pattern: 'e', [secret]: 1, other: 2 });
    expect(extra).toBe('verifier regex: 2 unexpected fields (it takes "kind", "pattern")');
    const shape = message({ kind: 'json', shape: { ok: 'string', [secret]: 'date' } });
    expect(shape).toBe('verifier json: entry 2 of "shape" has a type that is not one of string, number, boolean, object, array, null');
    expect(extra + shape).not.toContain('sk_live');
  });
});

describe('reading a feedback drop', () => {
  it('reads ratings and verifier prompts, dedups, and holds some out deterministically', () => {
    const lines = Array.from({ length: 40 }, (_, i) =>
      JSON.stringify({ prompt: `${i}+1=`, verifier: { kind: 'numeric', value: i + 1 }, gold: { kind: 'exact', answer: `${i + 1}` } }),
    );
    lines.push(JSON.stringify({ prompt: 'hi', completion: 'hello', reward: 0.8 }), JSON.stringify({ prompt: 'hi', completion: 'hello', reward: 0.8 }));
    lines.push(JSON.stringify({ prompt: 'yo', completion: 'x', reward: 0 }));
    const a = parseFeedback(enc(lines.join('\n')), 'f.jsonl');
    expect(a).toEqual(parseFeedback(enc(lines.join('\n')), 'f.jsonl'));
    expect(a.prompts.length + a.heldOutPrompts.length).toBe(40);
    expect(a.heldOutPrompts.length).toBeGreaterThan(0);
    expect(a.ratings.length + a.heldOutRatings.length).toBe(2);
    expect(a.prompts.every((p) => !a.heldOutPrompts.some((h) => h.prompt === p.prompt))).toBe(true);
  });

  it('names the file and line of a bad record', () => {
    expect(fails('{"prompt":"a","verifier":{"kind":"regex","pattern":"("}}', 'fb.jsonl')).toBe(
      'fb.jsonl: line 1: verifier regex: "pattern" is not a valid RE2 regular expression (missing closing )); RE2 has no backreferences, lookahead or lookbehind, and writes \\x{41} for \\u0041',
    );
    expect(fails('{"prompt":"a","completion":"b","reward":1}\n{"prompt":"a","completion":"b","reward":3}')).toMatch(
      /line 2: reward: must be a number between 0 and 1/,
    );
    expect(fails('\n{"prompt":"a","completion":"b"')).toMatch(/line 2: not valid JSON/);
    expect(fails('{"prompt":"a","completion":"b","reward":3}\n{"prompt":"a","completion":"b","reward":1}\n{oops')).toMatch(
      /line 1: reward: must be a number between 0 and 1; 1 more bad line: 3$/,
    );
    expect(fails('{"prompt":"","verifier":{"kind":"exact","answer":"1"}}')).toMatch(/line 1: prompt: must be a non-empty string/);
    expect(fails('{"prompt":"a","verifier":{"kind":"exact","answer":"1"},"note":1}')).toMatch(/line 1: 1 unexpected field \(a verifier record/);
    expect(fails('')).toMatch(/the file is empty/);
    expect(fails('\n\n')).toMatch(/holds no records/);
  });
});

describe('RL guards', () => {
  const policy = { ...RL_GUARD_DEFAULTS, klBudget: 0.3 };
  const c = (step: number, reward: number, gold: number, kl = 0.1) => ({ step, reward, gold, kl });

  it('catches over-optimisation only after two consecutive diverging checks', () => {
    const base = c(0, 0.1, 0.1, 0);
    expect(overOptimisation([base, c(5, 0.6, 0.05)], policy)).toBeUndefined();
    expect(overOptimisation([base, c(5, 0.6, 0.05), c(10, 0.9, 0.1)], policy)).toMatch(
      /^over-optimisation: held-out reward 0.100 -> 0.900 while gold 0.100 -> 0.100/,
    );
    expect(overOptimisation([base, c(5, 0.6, 0.05), c(10, 0.7, 0.5), c(15, 0.9, 0.1)], policy)).toBeUndefined();
    // Gold following the reward is not divergence.
    expect(overOptimisation([base, c(5, 0.6, 0.5), c(10, 0.9, 0.8)], policy)).toBeUndefined();
  });

  it('accepts a rise within budget and names every failed condition', () => {
    expect(rlVerdict([c(0, 0.1, 0.1, 0), c(10, 0.6, 0.5, 0.2)], policy)).toEqual({ accept: true, reasons: [] });
    const v = rlVerdict([c(0, 0.5, 0.5, 0), c(10, 0.4, 0.3, 0.4)], policy);
    expect(v.accept).toBe(false);
    expect(v.reasons).toEqual([
      'held-out reward did not rise (0.500 -> 0.400)',
      'gold reward fell (0.500 -> 0.300)',
      'KL to the released version 0.4000 is over the budget 0.3',
    ]);
  });

  it('treats held-out ratings as a second gold: falling agreement fails the release and counts as divergence', () => {
    const r = (step: number, reward: number, ratings: number) => ({ ...c(step, reward, reward), ratings });
    expect(ratingsFell(r(5, 0.6, 0.46), r(0, 0.1, 0.5), policy)).toBe(false);
    expect(ratingsFell(r(5, 0.6, 0.4), r(0, 0.1, 0.5), policy)).toBe(true);
    expect(ratingsFell(c(5, 0.6, 0.6), c(0, 0.1, 0.1), policy)).toBe(false);
    // Gold follows the reward, but the ratings fall: over-optimisation after two checks, named with the agreement.
    expect(overOptimisation([r(0, 0.1, 0.5), r(5, 0.6, 0.3), r(10, 0.9, 0.2)], policy)).toMatch(/and rating agreement 0\.500 -> 0\.200 for 2 consecutive checks/);
    expect(rlVerdict([r(0, 0.1, 0.5), r(10, 0.6, 0.3)], policy).reasons).toEqual(['agreement with the held-out ratings fell (0.500 -> 0.300)']);
    expect(rlVerdict([r(0, 0.1, 0.5), r(10, 0.6, 0.7)], policy)).toEqual({ accept: true, reasons: [] });
  });
});
