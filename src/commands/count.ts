import { usageError } from '../core/errors.ts';

/**
 * A whole number >= 1 for an option such as --limit, as typed on the command line (a string) or
 * passed by a caller (a number). The message quotes what the user typed: `got "abc"`, not NaN.
 */
export function parseCount(flag: string, raw: number | string): number {
  const n = typeof raw === 'number' ? raw : /^\s*\d+\s*$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw usageError(
      `${flag} must be an integer >= 1, got ${typeof raw === 'number' ? raw : JSON.stringify(raw)}`,
    );
  }
  return n;
}
