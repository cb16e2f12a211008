import type { Stage } from './types.ts';

export type AnswerCheck = { ok: true; value: unknown } | { ok: false; detail: string };

/**
 * An answer's text checked against its stage: JSON, then the stage's schema. Every place that
 * accepts an answer (a fresh one, a cached one, the dry run's cache lookup) goes through here.
 */
export function validateAnswer(stage: Pick<Stage, 'name' | 'schema'>, content: string): AnswerCheck {
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
