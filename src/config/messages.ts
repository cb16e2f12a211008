import type { z } from 'zod';
import { formatMs, type LeafShape } from './schema.ts';

/** How a received value reads in a message: strings quoted, numbers bare, long values cut. */
export function formatGot(raw: unknown): string {
  if (typeof raw === 'number' || typeof raw === 'boolean' || raw === null || raw === undefined)
    return String(raw);
  const text = JSON.stringify(raw) ?? String(raw);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function bound(value: number, shape: LeafShape): string {
  return shape.duration ? formatMs(value) : String(value);
}

/**
 * What the value must be, from the first zod issue: "an integer >= 1", "a number > 0",
 * "a duration like 30s, 25m or 2h". Short enough to end a one-line message.
 */
export function expectation(shape: LeafShape, issue: z.core.$ZodIssue | undefined): string {
  if (issue?.code === 'too_small' && typeof issue.minimum === 'number') {
    return `${shape.noun} ${issue.inclusive ? '>=' : '>'} ${bound(issue.minimum, shape)}`;
  }
  if (issue?.code === 'too_big' && typeof issue.maximum === 'number') {
    return `${shape.noun} ${issue.inclusive ? '<=' : '<'} ${bound(issue.maximum, shape)}`;
  }
  if (shape.shape) return shape.shape;
  if (shape.min === undefined) return shape.noun;
  return `${shape.noun} ${shape.minExclusive ? '>' : '>='} ${bound(shape.min, shape)}`;
}
