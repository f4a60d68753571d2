/**
 * The Hugging Face `tokenizer.json` format, as far as this project reads or writes it, and the `tokenizer.json`
 * that a GGUF file's tokenizer metadata describes.
 *
 * llama.cpp's converter (convert_hf_to_gguf.py, `_set_vocab_gpt2`) writes a byte-level BPE tokenizer as
 * `tokenizer.ggml.model` = `gpt2`, the vocabulary in id order, the merges as "left right" strings, a token type
 * per token (3 = control: a special added token; 4 = user-defined: a plain added token) and the name of the
 * pre-tokeniser in `tokenizer.ggml.pre`. Going back means naming the pre-tokeniser's rules again: llama.cpp
 * keeps them in llama-vocab.cpp by that name, and each entry below is the Hugging Face equivalent of one of them.
 */
import { CheckpointFormatError } from '../checkpoints/errors.ts';
import type { GGUFTokenizer } from '../checkpoints/gguf.ts';

/** One entry of `added_tokens`. */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** A `tokenizer.json` object; the parts this project looks at are typed, the rest passes through. */
export interface TokenizerJson {
  version?: string;
  added_tokens: AddedTokenJson[];
  normalizer: Record<string, unknown> | null;
  pre_tokenizer: Record<string, unknown> | null;
  post_processor: Record<string, unknown> | null;
  decoder: Record<string, unknown> | null;
  model: {
    type: string;
    vocab: Record<string, number>;
    /** "left right" strings (the old layout) or [left, right] pairs (tokenizers >= 0.20). */
    merges: (string | [string, string])[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/**
 * GPT-2's `bytes_to_unicode`: the character that stands for each byte in a byte-level vocabulary. Printable
 * bytes stand for themselves; the others (controls, space, 0x7f-0xa0, 0xad) for U+0100 onwards, in byte order.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 0x100;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(printable(b) ? b : next++));
})();

/** GGUF token types (llama.cpp's `llama_token_type`). */
export const GGUF_TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };

/**
 * Pre-tokenisers by their llama.cpp name. llama-vocab.cpp gives `smollm` (and `starcoder`, `refact`, which share
 * its case) two regexes: `\p{N}` (each number character alone), then GPT-2's; Hugging Face writes the same as
 * Digits(individual_digits) then ByteLevel(use_regex), which is what SmolLM2's own tokenizer.json says. `gpt-2`
 * is GPT-2's regex alone. Others are refused rather than guessed: a wrong split still encodes, just not as the
 * model was trained.
 */
const PRE_TOKENIZERS: Record<string, Record<string, unknown>> = {
  smollm: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel] },
  starcoder: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel] },
  refact: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel] },
  'gpt-2': byteLevel,
};
export const GGUF_PRE_TOKENIZERS = Object.keys(PRE_TOKENIZERS);

function templateProcessing(bos: string | undefined, eos: string | undefined, ids: Record<string, number>): Record<string, unknown> {
  const special = (t: string) => ({ SpecialToken: { id: t, type_id: 0 } });
  const single = [...(bos ? [special(bos)] : []), { Sequence: { id: 'A', type_id: 0 } }, ...(eos ? [special(eos)] : [])];
  const pair = [...single, ...(bos ? [special(bos)] : []), { Sequence: { id: 'B', type_id: 1 } }, ...(eos ? [special(eos)] : [])];
  const specials: Record<string, unknown> = {};
  for (const t of [bos, eos]) if (t !== undefined) specials[t] = { id: t, ids: [ids[t]], tokens: [t] };
  return { type: 'TemplateProcessing', single, pair, special_tokens: specials };
}

/**
 * The `tokenizer.json` a GGUF byte-level BPE vocabulary describes: BPE over the tokens and merges, the named
 * pre-tokeniser, control tokens as special added tokens and user-defined ones as plain added tokens, a
 * byte-level decoder, no normaliser, and BOS / EOS added only where `add_bos_token` / `add_eos_token` say so.
 */
export function tokenizerJsonFromGGUF(t: GGUFTokenizer, file = 'GGUF'): TokenizerJson {
  if (t.model !== 'gpt2') {
    throw new CheckpointFormatError(file, `tokenizer.ggml.model is ${t.model}: only gpt2 (byte-level BPE) is supported`);
  }
  const pre = PRE_TOKENIZERS[t.pre ?? 'gpt-2'];
  if (pre === undefined) {
    throw new CheckpointFormatError(file, `tokenizer.ggml.pre ${t.pre} is not a known pre-tokeniser (known: ${GGUF_PRE_TOKENIZERS.join(', ')})`);
  }
  if (t.merges === undefined) throw new CheckpointFormatError(file, 'a gpt2 tokenizer without tokenizer.ggml.merges');
  if (t.tokenTypes !== undefined && t.tokenTypes.length !== t.tokens.length) {
    throw new CheckpointFormatError(file, `${t.tokenTypes.length} token types for ${t.tokens.length} tokens`);
  }
  const vocab: Record<string, number> = Object.create(null);
  const added: AddedTokenJson[] = [];
  t.tokens.forEach((token, id) => {
    if (token in vocab) throw new CheckpointFormatError(file, `token ${JSON.stringify(token)} appears twice (ids ${vocab[token]} and ${id})`);
    vocab[token] = id;
    const type = t.tokenTypes?.[id];
    if (type === GGUF_TOKEN_TYPE.control || type === GGUF_TOKEN_TYPE.userDefined) {
      const special = type === GGUF_TOKEN_TYPE.control;
      added.push({ id, content: token, single_word: false, lstrip: false, rstrip: false, normalized: false, special });
    }
  });
  t.merges.forEach((m, i) => {
    const parts = m.split(' ');
    if (parts.length !== 2 || !(parts[0]! + parts[1]! in vocab)) {
      throw new CheckpointFormatError(file, `merge ${i} ${JSON.stringify(m)} is not "left right" of two tokens whose join is a token`);
    }
  });
  const token = (id: number | undefined) => (id === undefined ? undefined : t.tokens[id]);
  const bos = t.addBosToken ? token(t.bosTokenId) : undefined;
  const eos = t.addEosToken ? token(t.eosTokenId) : undefined;
  if (t.addBosToken && bos === undefined) throw new CheckpointFormatError(file, 'add_bos_token is set but there is no bos_token_id');
  if (t.addEosToken && eos === undefined) throw new CheckpointFormatError(file, 'add_eos_token is set but there is no eos_token_id');
  return {
    version: '1.0',
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: structuredClone(pre),
    post_processor: bos || eos ? templateProcessing(bos, eos, vocab) : { ...byteLevel, trim_offsets: false },
    decoder: { ...byteLevel },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: t.merges,
    },
  };
}
