/**
 * Training batches from a weighted mixture of text sources. Each document is BOS + UTF-8 bytes + EOS;
 * a source's documents are concatenated into one token stream, and a training window is
 * context + 1 consecutive tokens starting at a document start or every `context` tokens inside a
 * long document. Windows start at document boundaries so that what the model memorises is what
 * greedy decoding from BOS + prompt at position 0 reproduces. The batch for step k is a pure
 * function of (seed, k): resuming needs no RNG state.
 */
import { deriveSeed, Rng } from './random.ts';
import { BOS, EOS, PAD } from './tokenizer.ts';

/** A named body of documents and its share of the batches. */
export interface Source {
  name: string;
  /** Relative weight; the mixture normalises weights over the sources that have data. */
  weight: number;
  docs: string[];
  /** With a teacher: false trains this source's rows on cross-entropy alone, without distillation (default true). */
  distill?: boolean;
}

interface PackedSource {
  name: string;
  weight: number;
  distill: boolean;
  /** All documents' tokens back to back (ids fit in 16 bits: the vocabulary is 259). */
  stream: Uint16Array;
  /** Offsets into `stream` where a window may start. */
  starts: Uint32Array;
}

const encoder = new TextEncoder();

function pack(source: Source, context: number): PackedSource {
  const encoded = source.docs.map((d) => encoder.encode(d));
  const length = encoded.reduce((n, e) => n + e.length + 2, 0);
  const stream = new Uint16Array(length);
  const starts: number[] = [];
  let pos = 0;
  for (const bytes of encoded) {
    const docLength = bytes.length + 2;
    // A start every `context` tokens covers each prediction inside the document once per pass.
    for (let s = 0; s < docLength - 1; s += context) starts.push(pos + s);
    stream[pos] = BOS;
    stream.set(bytes, pos + 1);
    stream[pos + docLength - 1] = EOS;
    pos += docLength;
  }
  return { name: source.name, weight: source.weight, distill: source.distill !== false, stream, starts: Uint32Array.from(starts) };
}

/** One training batch: ids and next-token targets, row-major [batchSize, context]. */
export interface Batch {
  ids: Int32Array;
  targets: Int32Array;
  /** Per row: 1 when its source is distilled (with a teacher), 0 when it is not. */
  distill: Float32Array;
}

/** Draws deterministic batches from a weighted mixture of sources. */
export class BatchSampler {
  private readonly sources: PackedSource[];
  private readonly cumulative: number[];

  constructor(
    sources: readonly Source[],
    private readonly context: number,
    private readonly seed: number,
  ) {
    for (const s of sources) {
      if (!Number.isFinite(s.weight) || s.weight < 0) {
        throw new Error(`source ${s.name}: weight must be a non-negative number, got ${s.weight}`);
      }
    }
    this.sources = sources.filter((s) => s.weight > 0 && s.docs.length > 0).map((s) => pack(s, context));
    if (this.sources.length === 0) throw new Error('no training data: every source is empty or has weight 0');
    const total = this.sources.reduce((n, s) => n + s.weight, 0);
    let acc = 0;
    this.cumulative = this.sources.map((s) => (acc += s.weight / total));
  }

  /** Number of windows per source (a pass over a source is this many rows). */
  windowCounts(): Record<string, number> {
    return Object.fromEntries(this.sources.map((s) => [s.name, s.starts.length]));
  }

  /** The batch for `step`: each row picks a source by weight, then a window uniformly, from (seed, step). */
  batch(step: number, batchSize: number): Batch {
    const t = this.context;
    const ids = new Int32Array(batchSize * t);
    const targets = new Int32Array(batchSize * t);
    const distill = new Float32Array(batchSize);
    const rng = new Rng(deriveSeed(this.seed, step));
    for (let row = 0; row < batchSize; row++) {
      const u = rng.next();
      let si = this.cumulative.findIndex((c) => u < c);
      if (si < 0) si = this.sources.length - 1; // u just below 1 and rounding in the cumulative sum
      const src = this.sources[si]!;
      distill[row] = src.distill ? 1 : 0;
      const start = src.starts[rng.int(src.starts.length)]!;
      for (let j = 0; j < t; j++) {
        const p = start + j;
        ids[row * t + j] = p < src.stream.length ? src.stream[p]! : PAD;
        targets[row * t + j] = p + 1 < src.stream.length ? src.stream[p + 1]! : PAD;
      }
    }
    return { ids, targets, distill };
  }

  /** Whether some source is kept out of distillation (then the trainer masks its rows). */
  get masksDistillation(): boolean {
    return this.sources.some((s) => !s.distill);
  }
}
