/**
 * Canonical JSON (RFC 8785 style for the values we store): object keys sorted by UTF-16 code units, no
 * whitespace, ECMAScript number formatting. The same value always gives the same bytes, so hashes and
 * signatures over it are reproducible years later and in any other language.
 */

/** Serialises `value` canonically; throws on values JSON cannot represent faithfully. */
export function canonicalJson(value: unknown): string {
  return write(value, '$');
}

function write(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      // PostgreSQL's jsonb cannot store U+0000; refusing it here keeps database and hash in agreement.
      if (value.includes('\u0000')) throw new TypeError(`${path}: strings may not contain NUL characters`);
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${path}: ${value} is not a finite number`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v, i) => write(v, `${path}[${i}]`)).join(',')}]`;
      if (value instanceof Date) return JSON.stringify(value.toISOString());
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new TypeError(`${path}: only plain objects can be serialised`);
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${write(k, path)}:${write(v, `${path}.${k}`)}`).join(',')}}`;
    }
    default:
      throw new TypeError(`${path}: a ${typeof value} cannot be serialised`);
  }
}

export { sha256Hex } from '../domain/digest.ts';
