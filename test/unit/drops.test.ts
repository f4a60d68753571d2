import { describe, expect, it } from 'vitest';
import { DropFormatError, parseDrop } from '../../domain/drops.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const fails = (bytes: Uint8Array, file: string) => {
  try {
    parseDrop(bytes, file);
  } catch (err) {
    expect(err).toBeInstanceOf(DropFormatError);
    return (err as Error).message;
  }
  throw new Error('expected a DropFormatError');
};

describe('reading a drop', () => {
  it('reads JSONL text and probe records and splits text deterministically', () => {
    const lines = Array.from({ length: 200 }, (_, i) => JSON.stringify({ text: `record number ${i}` }));
    lines.push(JSON.stringify({ prompt: 'The lamp costs ', completion: '42' }));
    const a = parseDrop(enc(lines.join('\n')), 'd.jsonl');
    const b = parseDrop(enc(lines.join('\n')), 'd.jsonl');
    expect(a).toEqual(b);
    expect(a.train.length + a.heldOut.length).toBe(200);
    expect(a.heldOut.length).toBeGreaterThan(15);
    expect(a.heldOut.length).toBeLessThan(50);
    expect(a.probes).toEqual([{ prompt: 'The lamp costs ', completion: '42' }]);
  });

  it('honours a pinned split and always holds out something', () => {
    const d = parseDrop(enc('{"text":"a","split":"train"}\n{"text":"b","split":"train"}\n'), 'x.jsonl');
    expect(d.train.length + d.heldOut.length).toBe(2);
    expect(d.heldOut.length).toBe(1);
  });

  it('reads plain text as paragraphs', () => {
    const d = parseDrop(enc('first paragraph\nstill first\n\nsecond\n\n\nthird\n'), 'notes.txt');
    expect([...d.train, ...d.heldOut].sort()).toEqual(['first paragraph\nstill first', 'second', 'third']);
  });

  it('names the file and line of every kind of bad record', () => {
    expect(fails(enc(''), 'empty.jsonl')).toBe('empty.jsonl: the file is empty');
    expect(fails(enc('{"text":"ok"}\n{"text": 5}\n'), 'types.jsonl')).toMatch(/^types.jsonl: line 2: text: /);
    expect(fails(enc('{"text":"ok"}\n\n{oops\n'), 'bad.jsonl')).toMatch(/^bad.jsonl: line 3: not valid JSON/);
    expect(fails(enc('{"text":"ok"}\n[1,2]\n'), 'arr.jsonl')).toMatch(/line 2: expected a JSON object/);
    expect(fails(enc('{"prompt":"p"}\n'), 'probe.jsonl')).toMatch(/line 1: completion: /);
    // Counted, not named: a field's name is content too (an API key once was one).
    expect(fails(enc('{"text":"x","extra":1,"sk-live-KEY":2}\n'), 'extra.jsonl')).toBe(
      'extra.jsonl: line 1: 2 unexpected fields (a record is {"text", "split"?} or {"prompt", "completion"})',
    );
    expect(fails(new Uint8Array([0x7b, 0x7d, 0x0a, 0xff, 0xfe, 0x0a]), 'bin.jsonl')).toBe('bin.jsonl: line 2: the file is not valid UTF-8');
    expect(fails(enc('a\u0000b'), 'nul.txt')).toBe('nul.txt: line 1: the line contains a NUL character');
    expect(fails(enc('{"text":"' + 'x'.repeat(1024 * 1024 + 1) + '"}'), 'huge.jsonl')).toMatch(/line 1: the line is over/);
    expect(fails(enc('['.repeat(100_000) + ']'.repeat(100_000)), 'deep.jsonl')).toMatch(/line 1: /);
    expect(fails(enc('\n\n  \n'), 'blank.txt')).toBe('blank.txt: the file holds no records');
  });

  it('names the first bad record and counts the rest, so one pass finds every line to fix', () => {
    const lines = ['{"text":"ok"}', '{oops', '{"text": 5}', '', '{"text":"ok too"}', '[1]', '{"prompt":"p"}'];
    expect(fails(enc(lines.join('\n')), 'two.jsonl')).toMatch(/^two\.jsonl: line 2: not valid JSON \([^)]*\); 3 more bad lines: 3, 6, 7$/);
    const many = ['{"text":"ok"}', ...Array.from({ length: 9 }, () => '{"text": 5}')].join('\n');
    expect(fails(enc(many), 'many.jsonl')).toMatch(/^many\.jsonl: line 2: text: [^;]*; 8 more bad lines: 3, 4, 5, 6, 7, …$/);
    expect(fails(enc('{"text":"ok"}\n{"text": 5}\n{"text":"fine"}\n'), 'one.jsonl')).toMatch(/^one\.jsonl: line 2: text: [^;]*$/);
  });
});
