/** Content digests: the one sha256 the loop names drops, artifacts and records by. */
import { createHash } from 'node:crypto';

/** sha256 of bytes or a UTF-8 string, as 64 lower-case hex characters. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
