/** RFC 6962 Merkle trees over the audit entries: the full tree (for exports and verification) and its frontier (for seals). */
import { createHash } from 'node:crypto';
import { sha256Hex } from './canonical.ts';

// RFC 6962 section 2.1: domain-separated leaf and node hashes.
function leafHash(bytes: string): Buffer {
  return createHash('sha256')
    .update(Buffer.from([0]))
    .update(bytes, 'utf8')
    .digest();
}
function nodeHash(left: Buffer, right: Buffer): Buffer {
  return createHash('sha256')
    .update(Buffer.from([1]))
    .update(left)
    .update(right)
    .digest();
}

/**
 * Merkle tree hashes of every prefix of a list of leaves, RFC 6962 style. Perfect subtrees are hashed once
 * (levels[j][i] covers leaves i*2^j .. (i+1)*2^j - 1), so the root of any prefix costs O(log n).
 */
export class MerkleTree {
  readonly #levels: Buffer[][] = [[]];

  /** Adds the next leaf (the entry's bytes, before the 0x00 prefix). */
  push(entryBytes: string): void {
    let node = leafHash(entryBytes);
    let j = 0;
    this.#levels[0]!.push(node);
    // Complete every perfect subtree this leaf closes.
    while (this.#levels[j]!.length % 2 === 0) {
      const level = this.#levels[j]!;
      node = nodeHash(level[level.length - 2]!, level[level.length - 1]!);
      j += 1;
      (this.#levels[j] ??= []).push(node);
    }
  }

  get size(): number {
    return this.#levels[0]!.length;
  }

  /** The roots of the perfect subtrees of the first n leaves, largest first (the frontier), as hex. */
  subtrees(n: number = this.size): string[] {
    return this.#parts(n).map((p) => p.toString('hex'));
  }

  #parts(n: number): Buffer[] {
    if (n < 0 || n > this.size) throw new RangeError(`tree has ${this.size} leaves, asked for ${n}`);
    // n's binary digits, high to low, are the perfect subtrees left to right.
    const parts: Buffer[] = [];
    let start = 0;
    for (let j = n === 0 ? -1 : Math.floor(Math.log2(n)); j >= 0; j--) {
      if (n & (2 ** j)) {
        parts.push(this.#levels[j]![start / 2 ** j]!);
        start += 2 ** j;
      }
    }
    return parts;
  }

  /** MTH(D[0:n]) for n <= size, as hex; the empty tree hashes to sha256(""). */
  root(n: number = this.size): string {
    const parts = this.#parts(n);
    if (n === 0) return sha256Hex('');
    // Fold the perfect subtrees from the right.
    let acc = parts[parts.length - 1]!;
    for (let i = parts.length - 2; i >= 0; i--) acc = nodeHash(parts[i]!, acc);
    return acc.toString('hex');
  }
}

/**
 * The frontier of an RFC 6962 tree: the roots of its perfect subtrees, largest first (one per set bit of the
 * size). It is all a seal needs to extend the tree by the entries since: O(log n) state, O(1) amortised per leaf.
 */
export class MerkleFrontier {
  #size: number;
  readonly #nodes: Buffer[];

  constructor(size = 0, nodes: readonly string[] = []) {
    const bits = size.toString(2).replace(/0/g, '').length;
    if (!Number.isSafeInteger(size) || size < 0 || nodes.length !== bits || !nodes.every((n) => /^[0-9a-f]{64}$/.test(n)))
      throw new RangeError(`a frontier of ${size} leaves has ${bits} nodes of 64 hex digits, got ${nodes.length}`);
    this.#size = size;
    this.#nodes = nodes.map((n) => Buffer.from(n, 'hex'));
  }

  /** The frontier of the first `n` leaves of a full tree. */
  static of(tree: MerkleTree, n: number = tree.size): MerkleFrontier {
    return new MerkleFrontier(n, tree.subtrees(n));
  }

  get size(): number {
    return this.#size;
  }

  push(entryBytes: string): void {
    let node = leafHash(entryBytes);
    // Each trailing 1 bit of the size is a perfect subtree of the same height as `node`: merge them.
    for (let s = this.#size; s & 1; s = Math.floor(s / 2)) node = nodeHash(this.#nodes.pop()!, node);
    this.#nodes.push(node);
    this.#size += 1;
  }

  /** MTH of the leaves so far, as hex. */
  root(): string {
    if (this.#size === 0) return sha256Hex('');
    let acc = this.#nodes[this.#nodes.length - 1]!;
    for (let i = this.#nodes.length - 2; i >= 0; i--) acc = nodeHash(this.#nodes[i]!, acc);
    return acc.toString('hex');
  }

  nodes(): string[] {
    return this.#nodes.map((n) => n.toString('hex'));
  }
}
