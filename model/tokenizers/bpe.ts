/**
 * Byte-level BPE, the tokenizer of GPT-2, Llama 3, SmolLM2 and most open models: `@huggingface/tokenizers` (a
 * pure JavaScript port of Hugging Face's Rust `tokenizers`) runs a `tokenizer.json`, either the model's own or one
 * built from GGUF metadata (tokenizer-json.ts).
 *
 * The port differs from the Rust library in three places that a corpus check against `tokenizers` from PyPI found
 * (test/model/tokenizer-bpe.test.ts), and `rustParity` below sets them right on the parsed tokenizer:
 * - Digits splits on `\d`, which in a JavaScript regex is ASCII 0-9 only; the Rust library splits on
 *   `char::is_numeric` (every Unicode number: ٣, ², ½, Ⅻ, 𝟘), as llama.cpp's `\p{N}` does.
 * - ByteLevel's GPT-2 regex runs in Oniguruma in Rust, where `\s` is Unicode White_Space: it includes U+0085
 *   (next line) and not U+FEFF (byte order mark); JavaScript's `\s` is the other way round.
 * - A character with no token of its own (SmolLM2 has no token for 21 of the 256 bytes, among them 0x04, 0x06,
 *   0x13, 0x14, 0x16, 0x1d) is dropped by the Rust BPE before merging, so its neighbours may merge; the port
 *   merges first and drops it after. Both lose the byte: such text cannot round-trip through this vocabulary.
 */
import { createHash } from 'node:crypto';
import type { GGUFTokenizer } from '../checkpoints/gguf.ts';
import { type ChatMessage, ChatTemplate, type ChatTemplateOptions } from './chat-template.ts';
import { BYTE_TO_CHAR, type TokenizerJson, tokenizerJsonFromGGUF } from './tokenizer-json.ts';
import {
  BPE,
  ByteLevelPreTokenizer,
  DigitsPreTokenizer,
  type HfPreTokenizer,
  type HfTokenizer,
  SequencePreTokenizer,
  Tokenizer,
} from './hf-tokenizers.ts';

/** What a tokenizer is, as data: enough to rebuild it exactly, and small enough to record beside a model. */
export interface BpeTokenizerSpec {
  tokenizerJson: TokenizerJson;
  chatTemplate?: string;
  /** The ids a model treats as begin and end of text (the post-processor decides whether `encode` adds them). */
  bosTokenId?: number;
  eosTokenId?: number;
  padTokenId?: number;
  unkTokenId?: number;
}

export interface EncodeOptions {
  /** Add the BOS / EOS the tokenizer's post-processor adds (as the model was trained): true by default. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave out special (control) tokens such as `<|im_end|>`: false by default. */
  skipSpecialTokens?: boolean;
}

/** Bad input to the tokenizer (an id outside the vocabulary); named so callers can tell it from a bug. */
export class TokenizerInputError extends Error {
  override readonly name = 'TokenizerInputError';
}

// The Rust library's Digits pre-tokeniser splits on char::is_numeric, the Unicode categories Nd, Nl and No.
const DIGITS_INDIVIDUAL = /[^\p{N}]+|\p{N}/gu;
const DIGITS_CONTIGUOUS = /[^\p{N}]+|\p{N}+/gu;
// Oniguruma's Unicode \s: U+0009-000D, U+0020, U+0085, and the Zs, Zl, Zp characters.
const WS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
// GPT-2's pattern as the Rust ByteLevel pre-tokeniser writes it, with that \s.
const GPT2_PATTERN = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  'gu',
);

function rustParityPre(p: HfPreTokenizer | null): void {
  if (p instanceof DigitsPreTokenizer) {
    p.pattern = p.config.individual_digits ? DIGITS_INDIVIDUAL : DIGITS_CONTIGUOUS;
  } else if (p instanceof ByteLevelPreTokenizer) {
    p.pattern = GPT2_PATTERN;
  } else if (p instanceof SequencePreTokenizer) {
    for (const q of p.tokenizers) rustParityPre(q);
  }
}

function rustParity(tokenizer: HfTokenizer): void {
  rustParityPre(tokenizer.pre_tokenizer);
  const model = tokenizer.model;
  if (!(model instanceof BPE) || model.unk_token != null || model.byte_fallback || model.end_of_word_suffix) return;
  const merge = model.bpe.bind(model);
  const known = model.tokens_to_ids;
  model.bpe = (token: string) => {
    for (const c of token) {
      if (!known.has(c)) return merge(Array.from(token).filter((d) => known.has(d)).join(''));
    }
    return merge(token);
  };
}

const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));
const utf8 = new TextEncoder();

/** sha256 of the tokens in id order joined by newlines, a blank line, then the merges as "left right" lines. */
export function vocabDigest(tokens: readonly string[], merges: readonly string[]): string {
  return createHash('sha256')
    .update(tokens.join('\n') + '\n\n' + merges.join('\n'))
    .digest('hex');
}

/** What training, evaluation and generation need of any tokenizer (the tiny GPT's byte tokenizer fits it too). */
export interface TextTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
}

export class BpeTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly unkTokenId: number | undefined;
  /** Whether `encode` (with special tokens) puts BOS first, as the post-processor says. */
  readonly addsBos: boolean;
  /** Ids of the special added tokens (`<|im_start|>`, `<|endoftext|>`, ...). */
  readonly specialTokenIds: ReadonlySet<number>;
  readonly chatTemplate: ChatTemplate | undefined;
  private readonly addedTokens: ReadonlySet<number>;
  private readonly tokenizer: HfTokenizer;
  private readonly tokens: string[];

  constructor(readonly spec: BpeTokenizerSpec) {
    const json = spec.tokenizerJson;
    if (json.model.type !== 'BPE') throw new Error(`tokenizer.json: model ${json.model.type} is not BPE`);
    this.tokenizer = new Tokenizer(json, { clean_up_tokenization_spaces: false });
    rustParity(this.tokenizer);
    // Ids may have gaps (a vocabulary can leave ids unused); `tokens[id]` is undefined there.
    this.tokens = [];
    for (const [token, id] of this.tokenizer.get_vocab(true)) if (token !== undefined) this.tokens[id] = token;
    this.vocabSize = this.tokens.length;
    const check = (what: string, id: number | undefined) => {
      if (id !== undefined && (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)) {
        throw new Error(`tokenizer: ${what} ${id} is outside the vocabulary of ${this.vocabSize}`);
      }
      return id;
    };
    this.bosTokenId = check('bos id', spec.bosTokenId);
    this.eosTokenId = check('eos id', spec.eosTokenId);
    this.padTokenId = check('pad id', spec.padTokenId);
    this.unkTokenId = check('unk id', spec.unkTokenId);
    this.specialTokenIds = new Set(json.added_tokens.filter((t) => t.special).map((t) => t.id));
    this.addedTokens = new Set(json.added_tokens.map((t) => t.id));
    const probe = this.tokenizer.encode('a', { add_special_tokens: true }).ids;
    this.addsBos = this.bosTokenId !== undefined && probe.length > 1 && probe[0] === this.bosTokenId;
    const name = (id: number | undefined) => (id === undefined ? undefined : this.tokens[id]);
    const tokens = { bosToken: name(this.bosTokenId), eosToken: name(this.eosTokenId), unkToken: name(this.unkTokenId), padToken: name(this.padTokenId) };
    this.chatTemplate = spec.chatTemplate === undefined ? undefined : new ChatTemplate(spec.chatTemplate, tokens);
  }

  /** From a Hugging Face `tokenizer.json` (parsed), with what tokenizer_config.json adds. */
  static fromTokenizerJson(tokenizerJson: TokenizerJson, extra: Omit<BpeTokenizerSpec, 'tokenizerJson'> = {}): BpeTokenizer {
    return new BpeTokenizer({ ...extra, tokenizerJson });
  }

  /** From GGUF tokenizer metadata (`ggufTokenizer(openGGUF(path))`); `file` names it in errors. */
  static fromGGUF(t: GGUFTokenizer, file?: string): BpeTokenizer {
    const spec: BpeTokenizerSpec = { tokenizerJson: tokenizerJsonFromGGUF(t, file) };
    if (t.chatTemplate !== undefined) spec.chatTemplate = t.chatTemplate;
    if (t.bosTokenId !== undefined) spec.bosTokenId = t.bosTokenId;
    if (t.eosTokenId !== undefined) spec.eosTokenId = t.eosTokenId;
    if (t.paddingTokenId !== undefined) spec.padTokenId = t.paddingTokenId;
    if (t.unknownTokenId !== undefined) spec.unkTokenId = t.unknownTokenId;
    return new BpeTokenizer(spec);
  }

  /** Token ids of `text`; special tokens written in the text (`<|im_start|>`) become their ids. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /** Text of `ids`, bytes joined before UTF-8 decoding; a cut-off character becomes U+FFFD. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const list = Array.from(ids);
    for (const id of list) {
      if (!Number.isInteger(id) || this.tokens[id] === undefined) {
        throw new TokenizerInputError(`token id ${id} is not in the vocabulary (ids 0-${this.vocabSize - 1})`);
      }
    }
    if (list.length === 0) return '';
    return this.tokenizer.decode(list, { skip_special_tokens: options.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
  }

  /**
   * The bytes token `id` stands for: an added token's text as UTF-8, else each character's byte (a character
   * outside the byte alphabet as its own UTF-8, as the Rust decoder does). Generation joins these to print
   * only whole characters while a multi-byte character is still arriving token by token.
   */
  tokenBytes(id: number): Uint8Array {
    const token = this.tokens[id];
    if (token === undefined) throw new TokenizerInputError(`token id ${id} is not in the vocabulary (ids 0-${this.vocabSize - 1})`);
    if (this.addedTokens.has(id)) return utf8.encode(token);
    const out: number[] = [];
    for (const c of token) {
      const b = CHAR_TO_BYTE.get(c);
      if (b !== undefined) out.push(b);
      else out.push(...utf8.encode(c));
    }
    return Uint8Array.from(out);
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  /** The prompt text the model's chat template makes of `messages`; refuses a tokenizer without a template. */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === undefined) throw new Error('tokenizer: this model has no chat template');
    return this.chatTemplate.apply(messages, options);
  }

  /**
   * Ids of the chat prompt. The template writes BOS itself where the model wants one, so the post-processor's
   * BOS is not added again (as `transformers`' apply_chat_template(tokenize=True) does).
   */
  encodeChat(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }

  /** The vocabulary's identity: `vocabDigest` over the tokens in id order and the merges. */
  vocabDigest(): string {
    const merges = this.spec.tokenizerJson.model.merges.map((m) => (typeof m === 'string' ? m : m.join(' ')));
    return vocabDigest(this.tokens, merges);
  }
}
