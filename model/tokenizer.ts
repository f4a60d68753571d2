/**
 * The byte tokenizer: every UTF-8 byte is a token (0-255), followed by a few special tokens. No
 * vocabulary file, no merges, nothing to version: any text round-trips exactly.
 */

/** Begin-of-document token: every training document and every prompt starts with it. */
export const BOS = 256;
/** End-of-document token. */
export const EOS = 257;
/** Padding: fills short windows and is never a prediction target. */
export const PAD = 258;
/** Number of token ids the tokenizer can produce (256 bytes + BOS, EOS, PAD). */
export const VOCAB_SIZE = 259;

const encoder = new TextEncoder();
// Not fatal: a model can emit a byte sequence that is not valid UTF-8; decode it with U+FFFD.
const decoder = new TextDecoder('utf-8', { fatal: false });

/** Encodes text as its UTF-8 bytes (no special tokens). */
export function encode(text: string): number[] {
  return Array.from(encoder.encode(text));
}

/** Encodes a document for training or evaluation: BOS, the bytes, EOS. */
export function encodeDocument(text: string): number[] {
  return [BOS, ...encoder.encode(text), EOS];
}

/** Decodes token ids to text, skipping special tokens; invalid UTF-8 becomes U+FFFD. */
export function decode(ids: ArrayLike<number>): string {
  const bytes: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id >= 0 && id < 256) bytes.push(id);
  }
  return decoder.decode(new Uint8Array(bytes));
}
