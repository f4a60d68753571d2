import { type Dirent, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const SMOLLM_GGUF = 'SmolLM2-135M-Instruct.Q4_1.gguf';

/**
 * The embedded model's GGUF where installed: PERENNIAL_SMOLLM_GGUF, or anywhere under .tools/ up to four folders
 * deep; undefined where it is not, so the tests that need it skip.
 */
export function findSmolLMGGUF(): string | undefined {
  if (process.env.PERENNIAL_SMOLLM_GGUF) return process.env.PERENNIAL_SMOLLM_GGUF;
  const walk = (dir: string, depth: number): string | undefined => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return undefined;
    }
    for (const e of entries) if (e.isFile() && e.name === SMOLLM_GGUF) return join(dir, e.name);
    if (depth === 0) return undefined;
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const found = walk(join(dir, e.name), depth - 1);
      if (found) return found;
    }
    return undefined;
  };
  return walk(join(import.meta.dirname, '../../.tools'), 4);
}
