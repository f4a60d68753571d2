/**
 * Small seeded pseudo-random generators. Everything that must be reproducible (weight init, batch
 * selection, sampling) draws from these instead of Math.random or tf.random*, so results do not depend
 * on the backend or on how many numbers some other code consumed before.
 */

/** Mixes a 32-bit integer thoroughly (the finaliser of MurmurHash3); used to derive independent seeds. */
export function mix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Derives a seed from a base seed and a list of integers (a step number, a row index, a stream tag). */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = mix32(seed ^ 0x9e3779b9);
  for (const p of parts) h = mix32(h ^ mix32(p + 0x632be5ab));
  return h;
}

/** 32-bit FNV-1a hash of a string's UTF-16 code units: a stable number for a name. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A mulberry32 generator: fast, 32-bit state, good enough for batch sampling and init. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal by Box-Muller; V8's Math.log/cos are fdlibm ports, so this is identical everywhere. */
  normal(): number {
    const u = 1 - this.next(); // (0, 1]: log(0) would be -Infinity
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}
