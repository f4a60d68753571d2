/** The learning benchmark's generator (bench/scenario.ts): drops of differing size. */
import { describe, expect, it } from 'vitest';
import { streamScenario } from '../../bench/scenario.ts';

const probesOf = (content: string) => content.split('\n').filter((l) => l.includes('"prompt"')).length;

describe('streamScenario', () => {
  it('gives the n-th catalogue the n-th size of a list, cycling, with no product twice', () => {
    const s = streamScenario(7, { drops: 5, productsPerDrop: [1, 3], paragraphs: 1, withLoad: 'none', faqAt: 0, regulationAt: 0 });
    expect(s.drops.map((d) => probesOf(d.content))).toEqual([1, 3, 1, 3, 1]);
    const names = s.drops.flatMap((d) => [...d.content.matchAll(/"prompt":"The (\w+ \w+) costs/g)].map((m) => m[1]));
    expect(new Set(names).size).toBe(names.length);
  });

  it('with one size is the stream it always was', () => {
    const opts = { drops: 4, paragraphs: 2, withLoad: 'first' as const };
    expect(streamScenario(7, { ...opts, productsPerDrop: [4] })).toEqual(streamScenario(7, { ...opts, productsPerDrop: 4 }));
  });
});
