/** The Merkle frontier a seal keeps gives the same RFC 6962 roots as the full tree, for every size and from stored nodes. */
import { describe, expect, it } from 'vitest';
import { MerkleFrontier, MerkleTree } from '../../registry/audit.ts';

describe('MerkleFrontier', () => {
  it('matches the full tree at every size, also when resumed from its stored nodes', () => {
    const tree = new MerkleTree();
    const frontier = new MerkleFrontier();
    expect(frontier.root()).toBe(tree.root(0));
    for (let i = 0; i < 150; i++) {
      tree.push(`entry ${i}`);
      frontier.push(`entry ${i}`);
      expect(frontier.root(), `size ${i + 1}`).toBe(tree.root());
      // What a seal stores and the next one resumes from.
      const stored = MerkleFrontier.of(tree, i + 1);
      expect(stored.nodes()).toEqual(frontier.nodes());
      const resumed = new MerkleFrontier(stored.size, stored.nodes());
      resumed.push('next');
      const extended = new MerkleTree();
      for (let j = 0; j <= i; j++) extended.push(`entry ${j}`);
      extended.push('next');
      expect(resumed.root()).toBe(extended.root());
    }
  });

  it('refuses a frontier whose node count does not fit its size', () => {
    expect(() => new MerkleFrontier(3, ['a'.repeat(64)])).toThrow(/a frontier of 3 leaves has 2 nodes/);
    expect(() => new MerkleFrontier(1, ['not hex'])).toThrow(RangeError);
  });
});
