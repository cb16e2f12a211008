/** A source of uniform numbers in [0, 1); injected so jitter is reproducible in tests. */
export type Random = () => number;

export const systemRandom: Random = Math.random;

/** mulberry32: a tiny, fast, well-distributed seeded generator for tests and benchmarks. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One of `values`, uniformly; `values` must not be empty. */
export function pick<T>(rnd: Random, values: readonly T[]): T {
  return values[Math.min(Math.floor(rnd() * values.length), values.length - 1)] as T;
}

/** FNV-1a over UTF-16 code units: tiny, stable, good enough to turn a text into a seed. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
