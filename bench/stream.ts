/**
 * A stream of data drops and the evaluation suites it defines. A drop is read exactly as the release loop
 * reads it (`parseDrop`: format detection, validation, the deterministic train / held-out split), so a folder
 * of a user's own drop files is measured the same way as the built-in generator's.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseDrop } from '../domain/drops.ts';
import type { Probe } from '../model/evaluate.ts';

/** One drop of the stream: its training part and its held-out suites. */
export interface StreamDrop {
  name: string;
  /** Training texts. */
  train: string[];
  /** Held-out texts: the drop's loss suite. */
  heldOut: string[];
  /** Prompt/completion pairs: the drop's exact-match suite (evaluated, never trained on). */
  probes: Probe[];
}

/** A suite: one drop's held-out text (loss) or its probes (exact match). */
export interface Suite {
  name: string;
  kind: 'text' | 'probe';
  metric: 'loss' | 'exactMatch';
  /** The drop that introduces it: 1..K, or 0 for the starting model's own data (the base). */
  drop: number;
  texts: string[];
  probes: Probe[];
  /** Probes left out because a later drop answers the same prompt differently (a regulation change). */
  superseded: number;
}

/** A drop that changes earlier answers, with the answers it replaces. */
export interface Supersession {
  /** The changing drop (1..K). */
  drop: number;
  /** The earlier probes whose completion it replaces: the "old answer" the model should stop giving. */
  oldAnswers: Probe[];
}

/** Reads one drop file with the release loop's parser (throws DropFormatError naming file and line). */
export function readDropFile(path: string, name = path.split('/').at(-1) ?? path): StreamDrop {
  const parsed = parseDrop(readFileSync(path), name);
  return { name: dropName(name), train: parsed.train, heldOut: parsed.heldOut, probes: parsed.probes };
}

/** A suite-friendly name from a file name: extension dropped. */
export function dropName(file: string): string {
  return file.replace(/\.(jsonl|ndjson|json|txt|md|text)$/i, '');
}

/** Reads the drop bytes of a generator or a client with the release loop's parser. */
export function dropFromBytes(bytes: Uint8Array, file: string): StreamDrop {
  const parsed = parseDrop(bytes, file);
  return { name: dropName(file), train: parsed.train, heldOut: parsed.heldOut, probes: parsed.probes };
}

/**
 * The drops of a folder, in file-name order (plain code-point order, so zero-pad numbers: 01-, 02-, ...).
 * Hidden files and sub-folders are ignored. An invalid file throws, unless `skipInvalid` is set, in which
 * case it is left out and reported in `skipped` (as the release loop quarantines it).
 */
export function readDropFolder(dir: string, opts: { skipInvalid?: boolean } = {}): { drops: StreamDrop[]; skipped: { file: string; reason: string }[] } {
  const files = readdirSync(dir)
    .filter((f) => !f.startsWith('.') && statSync(join(dir, f)).isFile())
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const drops: StreamDrop[] = [];
  const skipped: { file: string; reason: string }[] = [];
  for (const f of files) {
    try {
      drops.push(readDropFile(join(dir, f), f));
    } catch (err) {
      if (!opts.skipInvalid) throw err;
      skipped.push({ file: f, reason: err instanceof Error ? err.message : String(err) });
    }
  }
  return { drops, skipped };
}

/**
 * The suites of a stream, oldest first: per drop (and for the base, as drop 0) a text suite when it has
 * held-out text and a probe suite when it has probes. As in the release loop, a probe that a later drop
 * answers differently leaves its suite (the gate must not hold the new answer against the old one); here
 * the whole stream is known, so every row of the matrix evaluates the same probes. The replaced answers
 * are returned per changing drop, to measure how often the old answer is still given.
 */
export function buildSuites(drops: StreamDrop[], base?: StreamDrop): { suites: Suite[]; supersessions: Supersession[] } {
  const all = base ? [base, ...drops] : drops;
  const offset = base ? 0 : 1;
  const suites: Suite[] = [];
  const supersessions: Supersession[] = [];
  all.forEach((d, n) => {
    const index = n + offset;
    if (d.heldOut.length) suites.push({ name: d.name, kind: 'text', metric: 'loss', drop: index, texts: d.heldOut, probes: [], superseded: 0 });
    if (d.probes.length) {
      const later = new Map<string, string>();
      for (const e of all.slice(n + 1)) for (const p of e.probes) later.set(p.prompt, p.completion);
      const kept = d.probes.filter((p) => !later.has(p.prompt) || later.get(p.prompt) === p.completion);
      if (kept.length) {
        suites.push({
          name: `${d.name}-probes`,
          kind: 'probe',
          metric: 'exactMatch',
          drop: index,
          texts: [],
          probes: kept,
          superseded: d.probes.length - kept.length,
        });
      }
    }
    const earlier = new Map<string, Probe>();
    for (const e of all.slice(0, n)) for (const p of e.probes) earlier.set(p.prompt, p);
    const oldAnswers = d.probes.flatMap((p) => {
      const old = earlier.get(p.prompt);
      return old && old.completion !== p.completion ? [old] : [];
    });
    if (index >= 1 && oldAnswers.length) supersessions.push({ drop: index, oldAnswers });
  });
  return { suites, supersessions };
}
