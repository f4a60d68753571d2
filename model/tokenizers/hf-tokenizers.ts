/**
 * `@huggingface/tokenizers` with types that resolve here. Its 0.2.0 declaration files import one another without
 * file extensions, which `moduleResolution: NodeNext` does not resolve, so every export would read as `any`.
 * These are the parts this project uses, written as the package's own .d.ts files declare them.
 */
import * as hf from '@huggingface/tokenizers';

export interface HfEncoding {
  ids: number[];
  tokens: string[];
}

export interface HfPreTokenizer {
  pre_tokenize_text(text: string, options?: unknown): string[];
}

export interface HfTokenizerModel {
  vocab: string[];
  tokens_to_ids: Map<string, number>;
  unk_token?: string | null;
  end_of_word_suffix?: string | null;
}

export interface HfTokenizer {
  pre_tokenizer: HfPreTokenizer | null;
  model: HfTokenizerModel | null;
  encode(text: string, options?: { add_special_tokens?: boolean }): HfEncoding;
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean | null }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
}

export interface HfDigits extends HfPreTokenizer {
  config: { individual_digits?: boolean };
  pattern: RegExp;
}
export interface HfByteLevel extends HfPreTokenizer {
  pattern: RegExp;
}
export interface HfSequence extends HfPreTokenizer {
  tokenizers: (HfPreTokenizer | null)[];
}
export interface HfBPE extends HfTokenizerModel {
  byte_fallback: boolean;
  bpe(token: string): string[];
}

type Class<T> = abstract new (...args: never[]) => T;

const lib = hf as unknown as {
  Tokenizer: new (tokenizerJson: object, config: object) => HfTokenizer;
  BPE: Class<HfBPE>;
  DigitsPreTokenizer: Class<HfDigits>;
  ByteLevelPreTokenizer: Class<HfByteLevel>;
  SequencePreTokenizer: Class<HfSequence>;
};

export const { Tokenizer, BPE, DigitsPreTokenizer, ByteLevelPreTokenizer, SequencePreTokenizer } = lib;
