/**
 * Which lines an automatic foundation upgrade reaches (registry/upgrades.ts planUpgrade), on an in-memory view of
 * the registry: `auto` lines whose stable version stands on an older foundation version, and no others.
 */
import { describe, expect, it } from 'vitest';
import { planUpgrade } from '../../registry/upgrades.ts';

type Line = { name: string; kind: 'foundation' | 'application'; foundationLine: string | null; upgradePolicy: 'auto' | 'manual' | 'off'; modelConfig: object };
const lines: Line[] = [
  { name: 'base', kind: 'foundation', foundationLine: null, upgradePolicy: 'manual', modelConfig: {} },
  { name: 'support', kind: 'application', foundationLine: 'base', upgradePolicy: 'auto', modelConfig: {} },
  { name: 'fresh', kind: 'application', foundationLine: 'base', upgradePolicy: 'auto', modelConfig: {} },
  { name: 'current', kind: 'application', foundationLine: 'base', upgradePolicy: 'auto', modelConfig: {} },
  { name: 'held', kind: 'application', foundationLine: 'base', upgradePolicy: 'manual', modelConfig: {} },
];
const stable: Record<string, number | null> = { base: 2, support: 3, fresh: null, current: 1, held: 1 };
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
    expect(await planUpgrade(registry, { foundation: 'base', version: 2 })).toEqual({ lines: ['support'] });
  });

  it('still takes a line the operator names, whatever its stable version', async () => {
    expect(await planUpgrade(registry, { foundation: 'base', version: 2, lines: ['held'] })).toEqual({ lines: ['held'] });
  });
});
