/**
 * Chat templates: the Jinja template a model ships (`tokenizer.chat_template` in GGUF, `chat_template` in
 * tokenizer_config.json) rendered by `@huggingface/jinja`, which compiles it as `transformers` does
 * (trim_blocks, lstrip_blocks, `raise_exception`, `strftime_now`, loop controls).
 */
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplateOptions {
  /** End with the header of an assistant turn, so the model writes the reply (the template decides its text). */
  addGenerationPrompt?: boolean;
  /** More variables for templates that use them (`tools`, `documents`, ...). */
  variables?: Record<string, unknown>;
}

/** The special tokens a template may name: `bos_token`, `eos_token`, `unk_token`, `pad_token`. */
export interface ChatTemplateTokens {
  bosToken?: string;
  eosToken?: string;
  unkToken?: string;
  padToken?: string;
}

/** A chat template that failed to parse or to render; `reason` is the template engine's message. */
export class ChatTemplateError extends Error {
  override readonly name = 'ChatTemplateError';
  constructor(readonly reason: string) {
    super(`chat template: ${reason}`);
  }
}

/** A parsed chat template: parsing happens once, here, so a broken template is refused when the model loads. */
export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    readonly tokens: ChatTemplateTokens = {},
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`does not parse: ${(e as Error).message}`);
    }
  }

  /** The prompt text for `messages`; special tokens appear as text, which the tokenizer encodes to their ids. */
  apply(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    const { bosToken, eosToken, unkToken, padToken } = this.tokens;
    try {
      return this.template.render({
        ...options.variables,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: options.addGenerationPrompt ?? false,
        bos_token: bosToken ?? '',
        eos_token: eosToken ?? '',
        unk_token: unkToken ?? '',
        pad_token: padToken ?? '',
      });
    } catch (e) {
      throw new ChatTemplateError((e as Error).message);
    }
  }
}

/** Renders `template` once for `messages` (parse and render; keep a `ChatTemplate` to render it often). */
export function renderChatTemplate(
  template: string,
  messages: readonly ChatMessage[],
  options: ChatTemplateOptions = {},
  tokens: ChatTemplateTokens = {},
): string {
  return new ChatTemplate(template, tokens).apply(messages, options);
}
