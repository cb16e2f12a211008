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
