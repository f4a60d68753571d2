/**
 * The byte-level BPE tokenizer against Hugging Face's Rust `tokenizers` (from PyPI), on a 300 KB corpus of varied
 * text (test/fixtures/tokenizers/make-reference.py wrote the corpus and every expected id):
 * - always: a small BPE trained for the tests (500 merges, SmolLM2's pre-tokeniser and special tokens), read
 *   from its Hugging Face folder, its tokenizer.json alone, and its GGUF twin; chat templates against jinja2;
 * - where the embedded SmolLM2-135M-Instruct GGUF is installed: the real 49,152-token vocabulary.
 */
import { Tokenizer } from '../../model/tokenizers/hf-tokenizers.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CheckpointFormatError } from '../../model/checkpoints/errors.ts';
import { type GGUFTokenizer, ggufTokenizer, openGGUF } from '../../model/checkpoints/gguf.ts';
import {
  BpeTokenizer,
  type ChatMessage,
  ChatTemplateError,
  type TokenizerJson,
  TokenizerInputError,
  loadGGUFTokenizer,
  loadHfTokenizer,
  renderChatTemplate,
  tokenizerJsonFromGGUF,
} from '../../model/tokenizers/index.ts';
import { findSmolLMGGUF } from './smollm-file.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures/tokenizers');
const gz = <T>(name: string): T => JSON.parse(gunzipSync(readFileSync(join(FIXTURES, name))).toString('utf8')) as T;

interface ChatCase {
  messages: ChatMessage[];
  addGenerationPrompt: boolean;
  text: string;
}
interface Expected {
  tokenizers: string;
  vocabDigest: string;
  ids: number[][];
  chat: ChatCase[];
}
interface TinyExpected extends Expected {
  holes: { removedTokens: string[]; texts: number[]; ids: number[][] };
}
interface SmolExpected extends Expected {
  fileSha256: string;
  chatTemplate: string;
}

const corpus = gz<{ texts: string[]; kinds: string[] }>('corpus.json.gz');
const tiny = gz<TinyExpected>('tiny-bpe.expected.json.gz');
const tinyJson = (): TokenizerJson => JSON.parse(readFileSync(join(FIXTURES, 'tiny-hf/tokenizer.json'), 'utf8')) as TokenizerJson;
const tinyMeta = (): GGUFTokenizer => ggufTokenizer(openGGUF(join(FIXTURES, 'tiny-bpe.gguf')));
const utf8 = new TextEncoder();

/** Encodes every text and lists those whose ids differ from `expected`, describing the first difference. */
function compare(encode: (text: string) => number[], texts: readonly string[], expected: readonly number[][]) {
  const bad: number[] = [];
  let first = '';
  let tokens = 0;
  texts.forEach((text, i) => {
    const got = encode(text);
    const want = expected[i]!;
    tokens += got.length;
    if (got.length === want.length && got.every((id, k) => id === want[k])) return;
    bad.push(i);
    if (first) return;
    let k = 0;
    while (got[k] === want[k]) k++;
    first = `text ${i} (${corpus.kinds[i] ?? '?'}) ${JSON.stringify(text.slice(0, 60))}: token ${k} is ${JSON.stringify(got.slice(k, k + 4))}, expected ${JSON.stringify(want.slice(k, k + 4))}`;
  });
  return { bad, first, tokens };
}

describe('a small byte-level BPE trained by tokenizers (always)', () => {
  const bytes = corpus.texts.reduce((n, t) => n + utf8.encode(t).length, 0);

  it('the corpus is the one the ids were made for: 677 texts, 300 KB, of every kind', () => {
    expect([corpus.texts.length, bytes]).toEqual([677, 300_286]);
    expect(new Set(corpus.kinds)).toEqual(
      new Set(['edge', 'prose', 'code', 'numbers', 'whitespace', 'emoji', 'chat', 'sentences', 'scripts', 'codepoints', 'ascii', 'long']),
    );
  });

  it('encodes every text as tokenizers does, from the Hugging Face folder and from the GGUF twin', () => {
    const sources = { folder: loadHfTokenizer(join(FIXTURES, 'tiny-hf')), gguf: loadGGUFTokenizer(join(FIXTURES, 'tiny-bpe.gguf')) };
    for (const [name, tok] of Object.entries(sources)) {
      const r = compare((t) => tok.encode(t), corpus.texts, tiny.ids);
      expect(r.bad.length, `${name}: ${r.bad.length} of ${corpus.texts.length} texts differ; ${r.first}`).toBe(0);
      expect(r.tokens).toBe(166_839);
      expect(tok.vocabDigest(), name).toBe(tiny.vocabDigest);
    }
  });

  it('decodes every text back exactly (all 256 bytes have a token), special tokens included or skipped', () => {
    const tok = loadGGUFTokenizer(join(FIXTURES, 'tiny-bpe.gguf'));
    const lost = corpus.texts.filter((t) => tok.decode(tok.encode(t)) !== t);
    expect(lost).toEqual([]);
    const chat = '<|im_start|>user\nHi <tool_call>!<|im_end|>\n<|endoftext|>';
    const ids = tok.encode(chat);
    expect(ids[0]).toBe(tok.tokenToId('<|im_start|>'));
    expect(ids.filter((id) => tok.specialTokenIds.has(id)).map((id) => tok.idToToken(id))).toEqual(['<|im_start|>', '<|im_end|>', '<|endoftext|>']);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('user\nHi <tool_call>!\n');
    expect(tok.decode([])).toBe('');
    // Token by token, the bytes join to the text's UTF-8 (what streaming generation prints from).
    for (const t of corpus.texts.slice(0, 200)) {
      const bytes = Buffer.concat(tok.encode(t).map((id) => tok.tokenBytes(id)));
      expect(bytes.equals(Buffer.from(t, 'utf8')), JSON.stringify(t.slice(0, 40))).toBe(true);
    }
    expect(new TextDecoder().decode(tok.tokenBytes(tok.tokenToId('<|im_end|>')!))).toBe('<|im_end|>');
    expect(() => tok.decode([tok.vocabSize])).toThrow(TokenizerInputError);
    expect(() => tok.decode([1.5])).toThrow(TokenizerInputError);
    expect(() => tok.tokenBytes(-1)).toThrow(TokenizerInputError);
  });

  it('drops a byte the vocabulary has no token for before merging, as the Rust library does', () => {
    const json = tinyJson();
    for (const t of tiny.holes.removedTokens) delete json.model.vocab[t];
    const tok = BpeTokenizer.fromTokenizerJson(json);
    const texts = tiny.holes.texts.map((i) => corpus.texts[i]!);
    expect(texts.length).toBeGreaterThan(20);
    const r = compare((t) => tok.encode(t), texts, tiny.holes.ids);
    expect(r.bad.length, r.first).toBe(0);
    expect(tok.decode(tok.encode('a\x14b\x04'))).toBe('ab');
    // The port alone merges before dropping, and gets some of these texts wrong.
    const raw = new Tokenizer(json, { clean_up_tokenization_spaces: false });
    expect(compare((t) => raw.encode(t).ids, texts, tiny.holes.ids).bad.length).toBeGreaterThan(0);
  });

  it('the corrections to @huggingface/tokenizers are needed: without them it differs on Unicode digits, U+FEFF and U+0085', () => {
    const raw = new Tokenizer(tinyJson(), { clean_up_tokenization_spaces: false });
    const bad = compare((t) => raw.encode(t).ids, corpus.texts, tiny.ids).bad.map((i) => corpus.texts[i]!);
    expect(bad.some((t) => /(?![0-9])\p{N}/u.test(t))).toBe(true);
    expect(bad.some((t) => t.includes('\ufeff'))).toBe(true);
    expect(bad.some((t) => t.includes('\x85'))).toBe(true);
    const tok = BpeTokenizer.fromTokenizerJson(tinyJson());
    expect(tok.encode('٣٤ ½')).not.toEqual(raw.encode('٣٤ ½').ids);
  });

  it('adds BOS / EOS only where the metadata says so, and never twice in a chat prompt', () => {
    const meta = tinyMeta();
    const plain = BpeTokenizer.fromGGUF(meta);
    expect([plain.addsBos, plain.bosTokenId, plain.eosTokenId, plain.padTokenId, plain.unkTokenId]).toEqual([false, 1, 2, 0, 0]);
    const withBos = BpeTokenizer.fromGGUF({ ...meta, addBosToken: true, addEosToken: true });
    const text = corpus.texts[200]!;
    expect(withBos.addsBos).toBe(true);
    expect(withBos.encode(text)).toEqual([1, ...tiny.ids[200]!, 2]);
    expect(withBos.encode(text, { addSpecialTokens: false })).toEqual(tiny.ids[200]);
    // The template writes BOS itself (here the same token as <|im_start|>): the post-processor adds nothing more.
    const messages = [{ role: 'user', content: 'Hi' }];
    const chat = withBos.encodeChat(messages);
    expect(chat).toEqual(plain.encode(plain.applyChatTemplate(messages)));
    expect(chat.slice(0, 2)).toEqual([1, 1]);
  });

  it('renders its chat template as jinja2 does (transformers settings), from the folder and the GGUF', () => {
    for (const tok of [loadHfTokenizer(join(FIXTURES, 'tiny-hf')), loadGGUFTokenizer(join(FIXTURES, 'tiny-bpe.gguf'))]) {
      expect(tiny.chat.length).toBe(8);
      for (const c of tiny.chat) expect(tok.applyChatTemplate(c.messages, { addGenerationPrompt: c.addGenerationPrompt })).toBe(c.text);
      expect(() => tok.applyChatTemplate([{ role: 'tool', content: 'x' }])).toThrow(new ChatTemplateError('roles must be user or assistant, not tool'));
    }
    expect(() => renderChatTemplate('{% for m in messages %}', [])).toThrow(ChatTemplateError);
  });

  it('refuses GGUF tokenizer metadata it cannot turn into a tokenizer.json, saying what is wrong', () => {
    const meta = tinyMeta();
    const refused = (t: GGUFTokenizer, reason: RegExp) => {
      const e = (() => {
        try {
          tokenizerJsonFromGGUF(t, 'x.gguf');
        } catch (err) {
          return err;
        }
      })();
      expect(e).toBeInstanceOf(CheckpointFormatError);
      expect((e as CheckpointFormatError).message).toMatch(reason);
    };
    refused({ ...meta, model: 'llama' }, /^x\.gguf: tokenizer\.ggml\.model is llama: only gpt2/);
    refused({ ...meta, pre: 'qwen2' }, /tokenizer\.ggml\.pre qwen2 is not a known pre-tokeniser \(known: smollm, /);
    refused({ ...meta, merges: ['Ġ t', 'Ġt h e'] }, /merge 1 "Ġt h e" is not "left right"/);
    refused({ ...meta, tokens: [...meta.tokens.slice(0, -1), meta.tokens[5]!] }, /appears twice/);
    refused({ ...meta, tokenTypes: [1, 1] }, /2 token types for 760 tokens/);
    refused({ ...meta, addBosToken: true, bosTokenId: undefined }, /add_bos_token is set but there is no bos_token_id/);
  });
});

const smollmPath = findSmolLMGGUF();

describe('SmolLM2-135M-Instruct chat template (always: the template is in the fixture)', () => {
  const smol = gz<SmolExpected>('smollm2.expected.json.gz');
  it('renders as jinja2 does, with the default system message and the generation prompt', () => {
    expect(smol.chat.length).toBe(8);
    const tokens = { bosToken: '<|im_start|>', eosToken: '<|im_end|>' };
    for (const c of smol.chat) expect(renderChatTemplate(smol.chatTemplate, c.messages, { addGenerationPrompt: c.addGenerationPrompt }, tokens)).toBe(c.text);
    expect(renderChatTemplate(smol.chatTemplate, [{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
  });
});

// Skipped where the model is not installed (npm install fetches it; PERENNIAL_SMOLLM_GGUF names another copy).
describe.skipIf(smollmPath === undefined)('the embedded SmolLM2-135M-Instruct tokenizer (where installed)', () => {
  const smol = gz<SmolExpected>('smollm2.expected.json.gz');
  const tok = smollmPath === undefined ? undefined : loadGGUFTokenizer(smollmPath);

  it('is the vocabulary the ids were made from, with its template, no BOS, and the test vector of MODELS-NOTES.md', () => {
    expect(tok!.vocabDigest()).toBe(smol.vocabDigest);
    expect(tok!.chatTemplate?.source).toBe(smol.chatTemplate);
    expect([tok!.vocabSize, tok!.addsBos, tok!.bosTokenId, tok!.eosTokenId, tok!.specialTokenIds.size]).toEqual([49152, false, 1, 2, 17]);
    expect(tok!.encode('The capital of France is')).toEqual([504, 3575, 282, 4649, 314]);
    expect(tok!.encodeChat([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true }).slice(0, 2)).toEqual([1, 9690]);
  });

  it('encodes every corpus text as tokenizers does', () => {
    const t0 = performance.now();
    const r = compare((t) => tok!.encode(t), corpus.texts, smol.ids);
    const seconds = (performance.now() - t0) / 1000;
    expect(r.bad.length, `${r.bad.length} of ${corpus.texts.length} texts differ; ${r.first}`).toBe(0);
    expect(r.tokens).toBe(141_980);
    console.info(`SmolLM2 tokenizer: ${corpus.texts.length} texts, ${r.tokens} tokens, ${Math.round(r.tokens / seconds)} tokens/s`);
  });

  it('decodes back exactly, less the 21 bytes the vocabulary has no token for', () => {
    // Of those 21, text can hold the six ASCII controls below and the lead bytes 0xf1, 0xf2 (U+40000-U+BFFFF).
    const missing = new Set<number>();
    for (let b = 0; b < 0x80; b++) if (tok!.encode(String.fromCharCode(b)).length === 0) missing.add(b);
    expect([...missing]).toEqual([0x04, 0x06, 0x13, 0x14, 0x16, 0x1d]);
    for (const b of [0xf1, 0xf2]) missing.add(b);
    const strip = (t: string) => new TextDecoder('utf-8', { ignoreBOM: true }).decode(new Uint8Array([...utf8.encode(t)].filter((b) => !missing.has(b))));
    const lost = corpus.texts.filter((t) => tok!.decode(tok!.encode(t)) !== strip(t));
    expect(lost).toEqual([]);
  });
});
