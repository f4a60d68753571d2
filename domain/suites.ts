/**
 * Suite data: what a suite measures, resolved from the drops in the artifact store. A probe whose prompt a
 * later suite answers differently (a regulation change) is superseded: it leaves the earlier suite, so the
 * gate does not hold the new answer against the old one.
 */
import { createHash } from 'node:crypto';
import { DropFormatError, parseDrop, type ParsedDrop, type Probe } from './drops.ts';
import { parseFeedback } from './feedback.ts';

/** An evaluation suite: a named held-out part of an accepted drop (text for loss, probes for exact match). */
export interface SuiteRef {
  name: string;
  kind: 'text' | 'probe';
  /** The line that owns it (an application line also carries its foundation's suites). */
  line: string;
  /** The raw content digest of the drop the suite comes from. */
  dropDigest: string;
  /** A regression report's evidence: every text record is evaluated, none was trained on. */
  evidence?: boolean;
}

export type SuiteData = { kind: 'text'; texts: string[]; dataDigest: string } | { kind: 'probe'; probes: Probe[]; superseded: number; dataDigest: string };

export interface DropSource {
  get(digest: string): Promise<Uint8Array>;
}

/** Parses drops from the store once per process; drops are immutable, so the cache never goes stale. */
export class DropCache {
  private readonly parsed = new Map<string, ParsedDrop>();
  private static readonly LIMIT = 256;
  constructor(private readonly store: DropSource) {}

  async get(digest: string): Promise<ParsedDrop> {
    const hit = this.parsed.get(digest);
    if (hit) return hit;
    const drop = parseStored(await this.store.get(digest), `drop ${digest.slice(0, 12)}`);
    if (this.parsed.size >= DropCache.LIMIT) this.parsed.delete(this.parsed.keys().next().value!);
    this.parsed.set(digest, drop);
    return drop;
  }
}

/**
 * A stored drop as text data. A feedback drop (ratings, verifier prompts: never a valid text drop, its records
 * carry `reward` or `verifier`) holds no text to train on or evaluate, so in the replay buffer it adds nothing.
 */
function parseStored(bytes: Uint8Array, file: string): ParsedDrop {
  try {
    return parseDrop(bytes, file);
  } catch (err) {
    if (!(err instanceof DropFormatError)) throw err;
    try {
      parseFeedback(bytes, file);
    } catch {
      throw err;
    }
    return { format: 'jsonl', train: [], heldOut: [], probes: [] };
  }
}

function digestOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/** Resolves every suite in `suites` (oldest first) to the records it evaluates. */
export async function resolveSuites(suites: SuiteRef[], drops: DropCache): Promise<Map<string, SuiteData>> {
  const out = new Map<string, SuiteData>();
  const probeSets = await Promise.all(suites.map(async (s) => (s.kind === 'probe' ? (await drops.get(s.dropDigest)).probes : [])));
  suites.forEach((suite, i) => {
    if (suite.kind === 'text') return;
    const later = new Map<string, string>();
    for (const set of probeSets.slice(i + 1)) for (const p of set) later.set(p.prompt, p.completion);
    const own = probeSets[i]!;
    const probes = own.filter((p) => !later.has(p.prompt) || later.get(p.prompt) === p.completion);
    out.set(suite.name, { kind: 'probe', probes, superseded: own.length - probes.length, dataDigest: digestOf(probes) });
  });
  for (const suite of suites) {
    if (suite.kind !== 'text') continue;
    const drop = await drops.get(suite.dropDigest);
    const texts = suite.evidence ? [...drop.heldOut, ...drop.train] : drop.heldOut;
    out.set(suite.name, { kind: 'text', texts, dataDigest: digestOf(texts) });
  }
  return out;
}

/** The suites a newly ingested drop brings: its held-out text and its probes, when it has them. */
export function suitesOfDrop(line: string, source: string, digest: string, drop: ParsedDrop): SuiteRef[] {
  const base = `${source}-${digest.slice(0, 8)}`;
  const suites: SuiteRef[] = [];
  if (drop.heldOut.length) suites.push({ name: base, kind: 'text', line, dropDigest: digest });
  if (drop.probes.length) suites.push({ name: `${base}-probes`, kind: 'probe', line, dropDigest: digest });
  return suites;
}
