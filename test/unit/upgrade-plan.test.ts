/**
 * Which lines an automatic foundation upgrade reaches (registry/upgrades.ts planUpgrade), on an in-memory view of
 * the registry: `auto` lines whose stable version stands on an older foundation version, and no others; why each
 * other line is left out; and the teacher-shape refusal a named upgrade gets, for an `auto` line too.
 */
import { describe, expect, it } from 'vitest';
import { planUpgrade } from '../../registry/upgrades.ts';

type Line = { name: string; kind: 'foundation' | 'application'; foundationLine: string | null; upgradePolicy: 'auto' | 'manual' | 'off'; modelConfig: object };
const shape = { context: 32, vocabSize: 259 };
const lines: Line[] = [
  { name: 'base', kind: 'foundation', foundationLine: null, upgradePolicy: 'manual', modelConfig: shape },
  { name: 'support', kind: 'application', foundationLine: 'base', upgradePolicy: 'auto', modelConfig: shape },
  { name: 'fresh', kind: 'application', foundationLine: 'base', upgradePolicy: 'auto', modelConfig: shape },
  { name: 'current', kind: 'application', foundationLine: 'base', upgradePolicy: 'auto', modelConfig: shape },
  { name: 'held', kind: 'application', foundationLine: 'base', upgradePolicy: 'manual', modelConfig: shape },
];
const stable: Record<string, number | null> = { base: 2, support: 3, fresh: null, current: 1, held: 1, narrow: 1 };
const versions: Record<string, { version: number; foundationVersion: { line: string; version: number } | null }[]> = {
  base: [1, 2].map((version) => ({ version, foundationVersion: null })),
  support: [1, 2, 3].map((version) => ({ version, foundationVersion: { line: 'base', version: 1 } })),
  fresh: [],
  current: [{ version: 1, foundationVersion: { line: 'base', version: 2 } }],
  held: [{ version: 1, foundationVersion: { line: 'base', version: 1 } }],
};
const registry = {
  getLine: async (name: string) => lines.find((l) => l.name === name)!,
  listLines: async () => lines,
  getChannels: async (name: string) => [{ channel: 'stable', version: stable[name] ?? null, epoch: 1, updatedAt: new Date(0) }],
  listVersions: async (name: string) => versions[name]!,
} as unknown as Parameters<typeof planUpgrade>[0];

describe('the automatic upgrade plan', () => {
  it('takes the auto lines on an older foundation version, not one with no stable version or one already on it', async () => {
    // Before: every auto line, so a line with no stable version got a transfer that could only be rejected
    // ("has no stable version to transfer from"), shown as a rejected upgrade in `perennial status`.
    expect(await planUpgrade(registry, { foundation: 'base', version: 2 })).toEqual({
      lines: ['support'],
      refused: [],
      skipped: [
        { line: 'fresh', reason: 'no stable version to transfer from' },
        { line: 'current', reason: 'current@1 stands on base@2 already' },
        { line: 'held', reason: 'upgrade policy manual: perennial upgrade held --to base@2' },
      ],
    });
  });

  it('still takes a line the operator names, whatever its stable version', async () => {
    expect(await planUpgrade(registry, { foundation: 'base', version: 2, lines: ['held'] })).toEqual({ lines: ['held'], skipped: [], refused: [] });
  });

  it('refuses an auto line whose model cannot teach the foundation shape, with the reason a named upgrade gets', async () => {
    // Before: the automatic plan took it, and its transfer failed later in training.
    const narrow: Line = { name: 'narrow', kind: 'application', foundationLine: 'base', upgradePolicy: 'auto', modelConfig: { ...shape, context: 16 } };
    const withNarrow = {
      ...registry,
      getLine: async (name: string) => (name === 'narrow' ? narrow : registry.getLine(name)),
      listLines: async () => [...lines, narrow],
      listVersions: async (name: string) => (name === 'narrow' ? [{ version: 1, foundationVersion: { line: 'base', version: 1 } }] : registry.listVersions(name)),
    } as typeof registry;
    const plan = await planUpgrade(withNarrow, { foundation: 'base', version: 2 });
    expect(plan.lines).toEqual(['support']);
    const named = await planUpgrade(withNarrow, { foundation: 'base', version: 2, lines: ['narrow'] }).catch((e: Error) => e.message);
    expect(named).toMatch(/^narrow \(context 16, vocabulary 259\) cannot teach a model of base's shape \(context 32, vocabulary 259\)/);
    expect(plan.refused).toEqual([{ line: 'narrow', reason: named }]);
  });
});
