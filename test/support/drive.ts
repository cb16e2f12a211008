import type { FakeClock } from '../../src/core/clock.ts';

/**
 * Awaits `p` while moving a fake clock forward `stepMs` at a time, letting the code under test run
 * to its next sleep before each step, until `p` settles (or `maxMs` of fake time have passed).
 */
export async function drive<T>(clock: FakeClock, p: Promise<T>, stepMs = 10, maxMs = 600_000): Promise<T> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let t = 0; !settled && t < maxMs; t += stepMs) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (!settled) await clock.advance(stepMs);
  }
  return p;
}
