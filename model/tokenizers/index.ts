/**
 * Tokenizers of pretrained models: byte-level BPE from a GGUF file's metadata or a Hugging Face folder's
 * `tokenizer.json`, with the model's chat template. The tiny GPT's byte tokenizer stays in model/tokenizer.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointFormatError } from '../checkpoints/errors.ts';
import { ggufTokenizer, openGGUF } from '../checkpoints/gguf.ts';
import { BpeTokenizer, type BpeTokenizerSpec } from './bpe.ts';
import type { TokenizerJson } from './tokenizer-json.ts';

export { BpeTokenizer, TokenizerInputError, vocabDigest } from './bpe.ts';
export type { BpeTokenizerSpec, DecodeOptions, EncodeOptions, TextTokenizer } from './bpe.ts';
export { ChatTemplate, ChatTemplateError, renderChatTemplate } from './chat-template.ts';
export type { ChatMessage, ChatTemplateOptions, ChatTemplateTokens } from './chat-template.ts';
export { BYTE_TO_CHAR, GGUF_PRE_TOKENIZERS, GGUF_TOKEN_TYPE, tokenizerJsonFromGGUF } from './tokenizer-json.ts';
export type { AddedTokenJson, TokenizerJson } from './tokenizer-json.ts';

/** The tokenizer a GGUF file describes (`tokenizer.ggml.*`, `tokenizer.chat_template`). */
export function loadGGUFTokenizer(path: string): BpeTokenizer {
  return BpeTokenizer.fromGGUF(ggufTokenizer(openGGUF(path)), path);
}

export const HF_TOKENIZER = 'tokenizer.json';
export const HF_TOKENIZER_CONFIG = 'tokenizer_config.json';
export const HF_CHAT_TEMPLATE = 'chat_template.jinja';

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CheckpointFormatError(path, `not valid JSON: ${(e as Error).message}`);
  }
}

/** tokenizer_config.json writes a special token as its text or as an AddedToken object. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/** The chat template: `chat_template.jinja` if present, else tokenizer_config.json's (a string, or named ones). */
function chatTemplateOf(dir: string, config: Record<string, unknown>): string | undefined {
  const file = join(dir, HF_CHAT_TEMPLATE);
  if (existsSync(file)) return readFileSync(file, 'utf8');
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t as { name?: unknown; template?: unknown }[];
    const pick = named.find((x) => x.name === 'default') ?? named[0];
    if (typeof pick?.template === 'string') return pick.template;
  }
  return undefined;
}

/**
 * The tokenizer of a Hugging Face folder: `tokenizer.json`, and from `tokenizer_config.json` (when present) the
 * chat template and which tokens are BOS, EOS, PAD, UNK. Whether `encode` adds BOS is the tokenizer.json's
 * post-processor's call, as in the `tokenizers` library.
 */
export function loadHfTokenizer(dir: string): BpeTokenizer {
  const path = join(dir, HF_TOKENIZER);
  if (!existsSync(path)) throw new CheckpointFormatError(dir, `no ${HF_TOKENIZER} in the folder`);
  const json = readJson(path) as TokenizerJson;
  if (json === null || typeof json !== 'object' || typeof json.model !== 'object' || json.model === null) {
    throw new CheckpointFormatError(path, 'not a tokenizer.json: no model');
  }
  if (json.model.type !== 'BPE') throw new CheckpointFormatError(path, `model type ${json.model.type}: only BPE is supported`);
  const configPath = join(dir, HF_TOKENIZER_CONFIG);
  const config = (existsSync(configPath) ? readJson(configPath) : {}) as Record<string, unknown>;
  const idOf = (key: string) => {
    const text = tokenText(config[key]);
    if (text === undefined) return undefined;
    const added = json.added_tokens?.find((t) => t.content === text);
    return added?.id ?? json.model.vocab[text];
  };
  const spec: Omit<BpeTokenizerSpec, 'tokenizerJson'> = {};
  const template = chatTemplateOf(dir, config);
  if (template !== undefined) spec.chatTemplate = template;
  for (const [key, field] of [
    ['bos_token', 'bosTokenId'],
    ['eos_token', 'eosTokenId'],
    ['pad_token', 'padTokenId'],
    ['unk_token', 'unkTokenId'],
  ] as const) {
    const id = idOf(key);
    if (id !== undefined) spec[field] = id;
  }
  return BpeTokenizer.fromTokenizerJson({ ...json, added_tokens: json.added_tokens ?? [] }, spec);
}
