import type { Stage } from './types.ts';

/** An answer text checked against its stage: the parsed value, or what is wrong with it. */
export type CheckedAnswer = { ok: true; value: unknown } | { ok: false; detail: string };

/**
 * Parses an answer (fresh from the provider or stored in the cache) as JSON and validates it
 * with the stage's schema. Never throws: a cached body can be corrupt or written by an older
 * schema, and every caller treats that as "no usable answer".
 */
export function validateAnswer(stage: Stage, content: string): CheckedAnswer {
  let json: unknown;
  try {
    json = JSON.parse(content);
  } catch {
    return { ok: false, detail: `the ${stage.name} answer is not valid JSON` };
  }
  const parsed = stage.schema.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issues = parsed.error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
  return { ok: false, detail: `the ${stage.name} answer does not match its schema (${issues})` };
}
