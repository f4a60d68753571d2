/**
 * Fuzzed drops (fast-check): random bytes, invalid UTF-8, huge lines, deep JSON, wrong field types, empty
 * files, valid files with one bad record, and what each must come to: accepted, or rejected with a message
 * that names the file (and the record's line where there is one) and quotes none of the drop's text.
 * Shared by test/unit/fuzz*.test.ts, test/stack/security-ingest.test.ts and `npm run chaos`.
 */
import fc from 'fast-check';
import { DropFormatError, parseDrop } from '../../domain/drops.ts';

/** Text that must never appear in an error message: planted in the content of bad records. */
export const LEAK_MARKER = 'zqxLEAKMARKERqxz';

export interface FuzzDrop {
  /** What kind of input this is (for the figures and failure messages). */
  label: string;
  file: string;
  bytes: Uint8Array;
  /** What parseDrop must say, when the generator knows: accepted with this many records, or rejected at this line. */
  expect?: { accepted: true; records: number } | { accepted: false; line?: number; problem?: RegExp };
}

export type DropOutcome =
  | { kind: 'accepted'; records: number; train: number }
  | { kind: 'rejected'; message: string; line?: number }
  /** parseDrop threw something other than a DropFormatError: a bug that would fail an activity. */
  | { kind: 'crash'; error: string };

export function tryParse(bytes: Uint8Array, file: string): DropOutcome {
  try {
    const d = parseDrop(bytes, file);
    return { kind: 'accepted', records: d.train.length + d.heldOut.length + d.probes.length, train: d.train.length };
  } catch (err) {
    if (err instanceof DropFormatError) return { kind: 'rejected', message: err.message, line: err.line };
    return { kind: 'crash', error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
}

/** Every way the outcome breaks the contract for this input; empty when it holds. */
export function contractViolations(input: FuzzDrop, outcome: DropOutcome): string[] {
  const out: string[] = [];
  const lines = new TextDecoder().decode(input.bytes).split('\n').length;
  if (outcome.kind === 'crash') out.push(`${input.label}: parseDrop crashed with ${outcome.error}`);
  if (outcome.kind === 'rejected') {
    if (!outcome.message.startsWith(`${input.file}: `) && !outcome.message.startsWith(`${input.file}:`))
      out.push(`${input.label}: the message does not start with the file name: ${outcome.message.slice(0, 200)}`);
    if (outcome.line !== undefined && (outcome.line < 1 || outcome.line > lines)) out.push(`${input.label}: line ${outcome.line} of ${lines}`);
    if (outcome.line !== undefined && !outcome.message.includes(`line ${outcome.line}:`))
      out.push(`${input.label}: the message does not name line ${outcome.line}`);
    if (outcome.message.includes(LEAK_MARKER)) out.push(`${input.label}: the message quotes the drop's content: ${outcome.message.slice(0, 200)}`);
    if (outcome.message.length > 4000) out.push(`${input.label}: a ${outcome.message.length}-character message`);
  }
  const e = input.expect;
  if (e?.accepted === true && (outcome.kind !== 'accepted' || outcome.records !== e.records))
    out.push(`${input.label}: expected ${e.records} records accepted, got ${JSON.stringify(outcome).slice(0, 300)}`);
  if (e?.accepted === false) {
    if (outcome.kind !== 'rejected') out.push(`${input.label}: expected a rejection, got ${JSON.stringify(outcome).slice(0, 300)}`);
    else {
      if (e.line !== undefined && outcome.line !== e.line)
        out.push(`${input.label}: expected line ${e.line}, got ${outcome.line}: ${outcome.message.slice(0, 200)}`);
      if (e.problem && !e.problem.test(outcome.message)) out.push(`${input.label}: expected ${e.problem}, got: ${outcome.message.slice(0, 200)}`);
    }
  }
  return out;
}

const enc = (s: string) => new TextEncoder().encode(s);
const jsonlName = fc.constantFrom('drop.jsonl', 'x.ndjson', 'data.json', 'odd name (1).jsonl', 'ünïcödé.jsonl');
const anyName = fc.constantFrom('drop.jsonl', 'notes.txt', 'README.md', 'raw', 'x.ndjson', 'weird name', '.hidden');

/** Text without NUL, newlines or the marker: the body of a valid record. */
const text = fc
  .string({ minLength: 1, maxLength: 60, unit: 'grapheme' })
  .map((s) => s.replace(/[\u0000\n\r]/g, ' '))
  .filter((s) => s.trim().length > 0 && !s.includes(LEAK_MARKER));

const validRecord = fc.oneof(
  text.map((t) => ({ text: t })),
  fc.tuple(text, fc.constantFrom('train', 'heldout')).map(([t, split]) => ({ text: t, split })),
  fc.tuple(text, text).map(([prompt, completion]) => ({ prompt, completion })),
);

/** Lines that are bad in a known way; each plants the marker where it would be the drop's content. */
const badLine: fc.Arbitrary<{ line: string; problem: RegExp }> = fc.oneof(
  fc.constant({ line: `{"text": "${LEAK_MARKER}" broken`, problem: /not valid JSON/ }),
  fc.constant({ line: `{"text": ${LEAK_MARKER}}`, problem: /not valid JSON/ }),
  fc.constant({ line: `{"text": "${LEAK_MARKER}",}`, problem: /not valid JSON/ }),
  fc.constant({ line: `{"text": "${LEAK_MARKER}`, problem: /not valid JSON/ }),
  fc.constant({ line: `${LEAK_MARKER}`, problem: /not valid JSON/ }),
  fc.constant({ line: `[1, 2, "${LEAK_MARKER}"]`, problem: /expected a JSON object/ }),
  fc.constant({ line: `"${LEAK_MARKER}"`, problem: /expected a JSON object/ }),
  fc.constant({ line: `{"text": 5}`, problem: /text: / }),
  fc.constant({ line: `{"text": null}`, problem: /text: / }),
  fc.constant({ line: `{"text": ["${LEAK_MARKER}"]}`, problem: /text: / }),
  fc.constant({ line: `{"text": ""}`, problem: /text is empty/ }),
  fc.constant({ line: `{"text": "${LEAK_MARKER}", "split": "later"}`, problem: /split: / }),
  fc.constant({ line: `{"text": "${LEAK_MARKER}", "extra": 1}`, problem: /: 1 unexpected field \(/ }),
  // A field's name is content too (an API key was once one): counted, never quoted.
  fc.constant({ line: `{"text": "fine", "${LEAK_MARKER}": 1, "sk-live-${LEAK_MARKER}": 2}`, problem: /: 2 unexpected fields \(/ }),
  fc.constant({ line: `{"prompt": "${LEAK_MARKER}"}`, problem: /completion: / }),
  fc.constant({ line: `{"prompt": 1, "completion": "${LEAK_MARKER}"}`, problem: /prompt: / }),
  fc.constant({ line: `{}`, problem: /text: / }),
  fc.integer({ min: 2, max: 3000 }).map((depth) => ({ line: '['.repeat(depth) + ']'.repeat(depth), problem: /expected a JSON object/ })),
  fc.constant({ line: '['.repeat(200_000) + ']'.repeat(200_000), problem: /not valid JSON \(nesting too deep\)|expected a JSON object/ }),
  fc.constant({ line: '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000), problem: /not valid JSON \(nesting too deep\)|text: |unexpected field/ }),
  fc.constant({ line: `{"text": "a\u0000${LEAK_MARKER}"}`, problem: /NUL/ }),
);

/** A valid JSONL drop: every record accepted, blank lines skipped. */
export const validJsonl: fc.Arbitrary<FuzzDrop> = fc
  .tuple(jsonlName, fc.array(fc.oneof({ weight: 6, arbitrary: validRecord }, { weight: 1, arbitrary: fc.constant(null) }), { minLength: 1, maxLength: 30 }))
  .filter(([, rows]) => rows.some((r) => r !== null))
  .map(([file, rows]) => ({
    label: 'valid-jsonl',
    file,
    bytes: enc(rows.map((r) => (r === null ? '   ' : JSON.stringify(r))).join('\n') + '\n'),
    expect: { accepted: true as const, records: rows.filter((r) => r !== null).length },
  }));

/** A valid JSONL drop with one bad record: rejected at exactly that line, without quoting it. */
export const oneBadRecord: fc.Arbitrary<FuzzDrop> = fc
  .tuple(jsonlName, fc.array(validRecord, { maxLength: 12 }), badLine, fc.nat())
  .map(([file, rows, bad, at]) => {
    const lines = rows.map((r) => JSON.stringify(r));
    const k = lines.length ? at % (lines.length + 1) : 0;
    lines.splice(k, 0, bad.line);
    return { label: 'one-bad-record', file, bytes: enc(lines.join('\n') + '\n'), expect: { accepted: false as const, line: k + 1, problem: bad.problem } };
  });

/** Invalid UTF-8 on one line of an otherwise valid drop: rejected at that line. */
export const invalidUtf8: fc.Arbitrary<FuzzDrop> = fc
  .tuple(
    anyName,
    fc.array(validRecord, { minLength: 1, maxLength: 8 }),
    fc.constantFrom([0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf]),
    fc.nat(),
  )
  .map(([file, rows, bad, at]) => {
    const lines = rows.map((r) => enc(JSON.stringify(r)));
    const k = at % lines.length;
    const line = lines[k]!;
    const cut = Math.min(line.length, 3);
    lines[k] = new Uint8Array([...line.subarray(0, cut), ...bad, ...line.subarray(cut)]);
    const bytes = new Uint8Array(lines.reduce((n, l) => n + l.length + 1, 0));
    let o = 0;
    for (const l of lines) {
      bytes.set(l, o);
      bytes[o + l.length] = 0x0a;
      o += l.length + 1;
    }
    return { label: 'invalid-utf8', file, bytes, expect: { accepted: false as const, line: k + 1, problem: /not valid UTF-8/ } };
  });

/** Arbitrary JSON values one per line (wrong shapes and types mostly). */
export const jsonValues: fc.Arbitrary<FuzzDrop> = fc
  .tuple(
    jsonlName,
    fc.array(
      fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.dictionary(fc.constantFrom('text', 'prompt', 'completion', 'split', 'x'), fc.jsonValue({ maxDepth: 2 }))),
      { minLength: 1, maxLength: 10 },
    ),
  )
  .map(([file, values]) => ({ label: 'json-values', file, bytes: enc(values.map((v) => JSON.stringify(v)).join('\n')) }));

/** Random bytes under any name. */
export const randomBytes: fc.Arbitrary<FuzzDrop> = fc
  .tuple(anyName, fc.uint8Array({ maxLength: 2048 }))
  .map(([file, bytes]) => ({ label: 'random-bytes', file, bytes }));

/** Empty, blank and whitespace-only files. */
export const emptyish: fc.Arbitrary<FuzzDrop> = fc
  .tuple(anyName, fc.array(fc.constantFrom(' ', '\n', '\t', '\r\n', '\u00a0'), { maxLength: 20 }))
  .map(([file, ws]) => ({
    label: 'empty',
    file,
    bytes: enc(ws.join('')),
    expect: { accepted: false as const, problem: /the file is empty|holds no records|not valid JSON|expected a JSON object/ },
  }));

/** Plain text of arbitrary strings (paragraphs). */
export const plainText: fc.Arbitrary<FuzzDrop> = fc
  .tuple(fc.constantFrom('notes.txt', 'a.md', 'raw'), fc.array(fc.string({ maxLength: 200, unit: 'binary' }), { maxLength: 10 }))
  .map(([file, paras]) => ({ label: 'plain-text', file, bytes: enc(paras.join('\n\n')) }));

/** A line over the 1 MiB record limit at a random line: rejected at that line (a few runs: each is 1 MiB). */
export const hugeLine: fc.Arbitrary<FuzzDrop> = fc
  .tuple(fc.array(validRecord, { maxLength: 5 }), fc.nat(), fc.integer({ min: 1, max: 4096 }))
  .map(([rows, at, extra]) => {
    const lines = rows.map((r) => JSON.stringify(r));
    const k = lines.length ? at % (lines.length + 1) : 0;
    lines.splice(k, 0, JSON.stringify({ text: LEAK_MARKER + 'x'.repeat(1024 * 1024 + extra) }));
    return {
      label: 'huge-line',
      file: 'huge.jsonl',
      bytes: enc(lines.join('\n')),
      expect: { accepted: false as const, line: k + 1, problem: /over 1048576 bytes/ },
    };
  });

/** Everything but the huge lines, weighted toward inputs with a known answer. */
export const anyDrop: fc.Arbitrary<FuzzDrop> = fc.oneof(
  { weight: 3, arbitrary: oneBadRecord },
  { weight: 2, arbitrary: validJsonl },
  { weight: 2, arbitrary: invalidUtf8 },
  { weight: 2, arbitrary: jsonValues },
  { weight: 2, arbitrary: randomBytes },
  { weight: 1, arbitrary: emptyish },
  { weight: 1, arbitrary: plainText },
);
