/**
 * Drops fuzzed with fast-check: whatever the bytes, parseDrop accepts them or throws a DropFormatError that
 * names the file and the record's line and quotes none of the drop's text (errors travel in workflow
 * histories). Where the generator knows the answer (valid files, one bad record, invalid UTF-8 on one line,
 * a huge line), the answer must be exactly that.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonProblem, parseDrop } from '../../domain/drops.ts';
import {
  LEAK_MARKER,
  anyDrop,
  contractViolations,
  emptyish,
  hugeLine,
  invalidUtf8,
  jsonValues,
  oneBadRecord,
  randomBytes,
  tryParse,
  validJsonl,
  type FuzzDrop,
} from '../../scripts/chaos/fuzz.ts';

const holds = (input: FuzzDrop) => {
  expect(contractViolations(input, tryParse(input.bytes, input.file))).toEqual([]);
};

describe('fuzzed drops', () => {
  it('accepts every valid JSONL file with every record', () => {
    fc.assert(fc.property(validJsonl, holds), { numRuns: 150, seed: 11 });
  });

  it('rejects a file with one bad record at exactly its line, quoting none of it', () => {
    fc.assert(fc.property(oneBadRecord, holds), { numRuns: 250, seed: 12 });
  });

  it('rejects invalid UTF-8 at the line that holds it', () => {
    fc.assert(fc.property(invalidUtf8, holds), { numRuns: 120, seed: 13 });
  });

  it('never crashes on random bytes, arbitrary JSON values, blank files or any mix of them', () => {
    for (const [arb, runs] of [
      [randomBytes, 200],
      [jsonValues, 200],
      [emptyish, 60],
      [anyDrop, 300],
    ] as const)
      fc.assert(fc.property(arb, holds), { numRuns: runs, seed: 14 });
  });

  it('rejects a line over the 1 MiB record limit at that line', () => {
    fc.assert(fc.property(hugeLine, holds), { numRuns: 4, seed: 15 });
  });

  it('reads the same bytes the same way every time', () => {
    fc.assert(
      fc.property(anyDrop, (d) => {
        expect(tryParse(d.bytes, d.file)).toEqual(tryParse(d.bytes, d.file));
      }),
      { numRuns: 100, seed: 16 },
    );
  });

  it('says what JSON.parse found without quoting the record', () => {
    const problem = (s: string) => {
      try {
        JSON.parse(s);
      } catch (err) {
        return jsonProblem(err);
      }
      throw new Error('parsed');
    };
    expect(problem(`{"text": ${LEAK_MARKER}}`)).toBe('unexpected character');
    expect(problem(`{"text": "${LEAK_MARKER}",}`)).toMatch(/^expected double-quoted property name at column \d+$/);
    expect(problem(`{"text": "${LEAK_MARKER}`)).toMatch(/^unterminated string at column \d+$/);
    expect(problem('{"a":')).toBe('the record ends early');
    // The message a user sees names file, line and column.
    expect(() => parseDrop(new TextEncoder().encode(`{"text":"ok"}\n{"text": "${LEAK_MARKER}" x}\n`), 'f.jsonl')).toThrow(
      /^f\.jsonl: line 2: not valid JSON \(expected ',' or '}' after property value at column \d+\)$/,
    );
  });
});
