/**
 * A seeded generator of an industrial data stream, written as drop files: general text for a foundation,
 * product-catalogue facts (new products arrive), a regulation change (earlier facts get new values), FAQ
 * answers in a required format, a malformed drop and a poisoned drop. Each drop carries held-out probes.
 * Downloads nothing; the same seed gives byte-identical files.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** mulberry32: small, fast, and the same sequence on every platform. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

const SUBJECTS = [
  'the river',
  'a small boat',
  'the old mill',
  'the north road',
  'a quiet town',
  'the market',
  'the harbour',
  'a grey bird',
  'the long bridge',
  'the garden',
];
const VERBS = ['runs past', 'waits near', 'looks over', 'turns toward', 'rests beside', 'leads to', 'stands by', 'shines on'];
const OBJECTS = ['the hills', 'the station', 'an open field', 'the sea', 'the school', 'the forest', 'a stone wall', 'the square'];
const TIMES = ['at dawn', 'in the evening', 'every morning', 'after the rain', 'in winter', 'at noon', 'before the storm', 'on market day'];

const SYLLABLES = ['zor', 'vex', 'tal', 'mir', 'qua', 'don', 'bel', 'rik', 'sol', 'nau', 'fen', 'lum', 'dra', 'kit', 'pol', 'ver'];
const KINDS = ['lamp', 'kettle', 'drill', 'chair', 'radio', 'clock', 'fan', 'heater'];

export interface Product {
  name: string;
  price: number;
  load: number;
}

export type DropRecord = { text: string; split?: 'train' | 'heldout' } | { prompt: string; completion: string };

/** General text: simple sentences from a small grammar, grouped into paragraphs. */
export function generalText(r: () => number, paragraphs: number): DropRecord[] {
  const out: DropRecord[] = [];
  for (let p = 0; p < paragraphs; p++) {
    const sentences = Array.from({ length: 2 + Math.floor(r() * 2) }, () => {
      const s = `${pick(r, SUBJECTS)} ${pick(r, VERBS)} ${pick(r, OBJECTS)} ${pick(r, TIMES)}.`;
      return s[0]!.toUpperCase() + s.slice(1);
    });
    out.push({ text: sentences.join(' ') });
  }
  return out;
}

export function products(r: () => number, n: number, taken = new Set<string>()): Product[] {
  const out: Product[] = [];
  while (out.length < n) {
    const name = `${pick(r, SYLLABLES)}${pick(r, SYLLABLES)} ${pick(r, KINDS)}`;
    if (taken.has(name)) continue;
    taken.add(name);
    out.push({ name: name[0]!.toUpperCase() + name.slice(1), price: 10 + Math.floor(r() * 90), load: 20 + 10 * Math.floor(r() * 8) });
  }
  return out;
}

const pricePrompt = (p: Product) => `The ${p.name} costs `;
const loadPrompt = (p: Product) => `The ${p.name} holds up to `;

const AISLES = ['north', 'south', 'east', 'west'];
const PRAISE = ['its quiet motor', 'its long life', 'its low price', 'its bright finish', 'its small size'];

/**
 * Catalogue facts as training text (pinned to train: the probes ask about them), probes, and sentences in the
 * catalogue's own style split deterministically, so the held-out text measures the domain's language.
 */
export function catalogue(items: Product[], withLoad: boolean, r: () => number): DropRecord[] {
  const records: DropRecord[] = [];
  for (const p of items) {
    records.push({ text: `${pricePrompt(p)}${p.price} credits.`, split: 'train' });
    if (withLoad) records.push({ text: `${loadPrompt(p)}${p.load} kg.`, split: 'train' });
    records.push({ prompt: pricePrompt(p), completion: `${p.price} credits.` });
    if (withLoad) records.push({ prompt: loadPrompt(p), completion: `${p.load} kg.` });
    records.push({ text: `The ${p.name} is in stock in the ${pick(r, AISLES)} aisle.` });
    records.push({ text: `Customers like the ${p.name} for ${pick(r, PRAISE)}.` });
    // One held-out sentence per product keeps the loss suite large enough to be stable.
    records.push({ text: `You find the ${p.name} in the ${pick(r, AISLES)} aisle.`, split: 'heldout' });
  }
  return records;
}

/** A regulation change: the load limits of `items` change; the old answer must stop, the new one start. */
export function regulationChange(items: Product[], r: () => number): { records: DropRecord[]; changed: Product[]; old: Product[] } {
  const changed = items.map((p) => ({ ...p, load: p.load + 10 * (1 + Math.floor(r() * 3)) }));
  const records: DropRecord[] = [];
  for (const p of changed) {
    records.push({ text: `${loadPrompt(p)}${p.load} kg.`, split: 'train' });
    records.push({ text: `New rule: ${loadPrompt(p).toLowerCase()}${p.load} kg.`, split: 'train' });
    records.push({ prompt: loadPrompt(p), completion: `${p.load} kg.` });
  }
  for (const p of changed) records.push({ text: `Check the new load rule before you lift the ${p.name}.` });
  records.push({ text: `The new load rules apply to the ${changed[0]!.name} first.`, split: 'heldout' });
  return { records, changed, old: items };
}

const QUESTIONS = [
  'reset my password',
  'change my address',
  'cancel an order',
  'track a parcel',
  'return an item',
  'update my card',
  'close my account',
  'contact support',
];

/** FAQ answers in a required format: every answer starts with its ticket tag, e.g. "[FAQ-3]". */
export function faq(r: () => number): DropRecord[] {
  const records: DropRecord[] = [];
  QUESTIONS.forEach((q, i) => {
    const answer = `[FAQ-${i + 1}] Open settings and choose ${q.split(' ')[0]}.`;
    records.push({ text: `Q: How do I ${q}? A: ${answer}`, split: 'train' });
    records.push({ prompt: `Q: How do I ${q}? A: `, completion: `[FAQ-${i + 1}]` });
  });
  for (const q of QUESTIONS) records.push({ text: `Customers often ask how to ${q}; the answer is in the FAQ.` });
  for (const q of QUESTIONS.slice(0, 4)) records.push({ text: `People ask how to ${q}; see the FAQ.`, split: 'heldout' });
  return records;
}

/** Poison: confident wrong prices for every earlier product, repeated; no probe redefines them. */
export function poisoned(items: Product[]): DropRecord[] {
  const records: DropRecord[] = [];
  for (let rep = 0; rep < 4; rep++) for (const p of items) records.push({ text: `${pricePrompt(p)}${(p.price * 7 + rep) % 100} credits.`, split: 'train' });
  records.push({ text: `Prices changed for the ${items[0]!.name} again.`, split: 'heldout' });
  records.push({ text: `Ask about the ${items[1]!.name} price today.`, split: 'heldout' });
  return records;
}

const jsonl = (records: DropRecord[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';

export interface Scenario {
  dir: string;
  foundation: string;
  catalogueA: string;
  catalogueB: string;
  malformed: string;
  poisoned: string;
  faq: string;
  regulation: string;
  /** Evidence for the canary regression report: a region still on the old load limits. */
  regulationEvidence: string;
  /** More general text for the foundation's second version (the upgrade that reaches the application line). */
  foundationUpdate: string;
}

/** Writes the demo's drop files under `dir` and returns their paths. */
export function writeScenario(dir: string, seed = 7, sizes = { paragraphs: 240, productsA: 8, productsB: 6 }): Scenario {
  mkdirSync(dir, { recursive: true });
  const r = rng(seed);
  const taken = new Set<string>();
  const a = products(r, sizes.productsA, taken);
  const b = products(r, sizes.productsB, taken);
  const reg = regulationChange(a.slice(0, 4), r);
  const write = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };
  return {
    dir,
    foundation: write(
      '01-general.txt',
      generalText(r, sizes.paragraphs)
        .map((x) => ('text' in x ? x.text : ''))
        .join('\n\n') + '\n',
    ),
    catalogueA: write('02-catalogue-a.jsonl', jsonl(catalogue(a, true, r))),
    catalogueB: write('03-catalogue-b.jsonl', jsonl(catalogue(b, false, r))),
    malformed: write('04-catalogue-broken.jsonl', jsonl(catalogue(products(r, 3, taken), false, r)).replace(/\n(?=.)/, '\n{"text": "unterminated\n')),
    poisoned: write('05-price-update.jsonl', jsonl(poisoned(a))),
    faq: write('06-faq.jsonl', jsonl(faq(r))),
    regulation: write('07-load-rules.jsonl', jsonl(reg.records)),
    regulationEvidence: write('evidence-old-load-rules.jsonl', jsonl(reg.old.map((p) => ({ prompt: loadPrompt(p), completion: `${p.load} kg.` })))),
    // Drawn last, so the files above are the same as before it existed.
    foundationUpdate: write(
      '08-general-more.txt',
      generalText(r, Math.round(sizes.paragraphs / 2))
        .map((x) => ('text' in x ? x.text : ''))
        .join('\n\n') + '\n',
    ),
  };
}

/** Shape of a generated benchmark stream (see streamScenario). */
export interface StreamScenarioOptions {
  /** Number of drops K after the base. */
  drops: number;
  /** Products per catalogue drop; a list gives the n-th catalogue the n-th size, cycling (drops of differing size). */
  productsPerDrop: number | readonly number[];
  /** General-text paragraphs of the base (the foundation's corpus). */
  paragraphs: number;
  /** Which catalogue drops also state load limits: only the first (as the demo's catalogue A), all, or none. */
  withLoad?: 'first' | 'all' | 'none';
  /** 1-based position of the regulation change (new load limits for half of drop 1's products); 0: none. Default round(0.7·K) when K >= 4. */
  regulationAt?: number;
  /** 1-based position of the FAQ drop; 0: none. Default round(0.5·K) when K >= 5. */
  faqAt?: number;
}

/** One generated drop file: its name (zero-padded, so name order is stream order) and content. */
export interface GeneratedDrop {
  name: string;
  content: string;
}

/**
 * A seeded stream for the learning-quality benchmark: a base of general text (the foundation's corpus), then
 * K drops: product catalogues (new products each time), a regulation change that gives some of the first
 * catalogue's products new load limits, and an FAQ drop. No malformed or poisoned drop: the release gate
 * keeps those out of a line, so a learning benchmark does not train on them. Same seed, same bytes.
 */
export function streamScenario(seed: number, opts: StreamScenarioOptions): { base: GeneratedDrop; drops: GeneratedDrop[] } {
  const k = opts.drops;
  const r = rng(seed);
  const taken = new Set<string>();
  const regulationAt = opts.regulationAt ?? (k >= 4 ? Math.round(0.7 * k) : 0);
  const faqAt = opts.faqAt ?? (k >= 5 ? Math.round(0.5 * k) : 0);
  const withLoad = opts.withLoad ?? 'first';
  const pad = (i: number) => String(i).padStart(2, '0');
  const base = {
    name: '00-general.txt',
    content:
      generalText(r, opts.paragraphs)
        .map((x) => ('text' in x ? x.text : ''))
        .join('\n\n') + '\n',
  };
  const drops: GeneratedDrop[] = [];
  let first: Product[] | undefined;
  let catalogues = 0;
  const sizes = typeof opts.productsPerDrop === 'number' ? [opts.productsPerDrop] : opts.productsPerDrop;
  for (let i = 1; i <= k; i++) {
    if (i === regulationAt && first) {
      const reg = regulationChange(first.slice(0, Math.max(1, Math.floor(first.length / 2))), r);
      drops.push({ name: `${pad(i)}-load-rules.jsonl`, content: jsonl(reg.records) });
    } else if (i === faqAt) {
      drops.push({ name: `${pad(i)}-faq.jsonl`, content: jsonl(faq(r)) });
    } else {
      const items = products(r, sizes[catalogues % sizes.length]!, taken);
      const load = withLoad === 'all' || (withLoad === 'first' && !first);
      first ??= load ? items : undefined;
      catalogues += 1;
      drops.push({ name: `${pad(i)}-catalogue-${catalogues}.jsonl`, content: jsonl(catalogue(items, load, r)) });
    }
  }
  return { base, drops };
}
