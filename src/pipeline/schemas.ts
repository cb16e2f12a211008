import { z } from 'zod';

/** Stage 1: everything a learner needs to know about one term. */
export const analysisSchema = z.object({
  term: z.string().describe('The term exactly as given'),
  lemma: z.string().describe('Dictionary form of the term'),
  partOfSpeech: z.string(),
  pronunciation: z.object({
    romanization: z.string(),
    ipa: z.string().nullable(),
  }),
  meanings: z
    .array(z.object({ gloss: z.string(), explanation: z.string() }))
    .min(1)
    .max(4),
  examples: z
    .array(z.object({ sentence: z.string(), translation: z.string() }))
    .min(1)
    .max(3),
  usageNotes: z.string(),
  mnemonic: z.string(),
  nearSynonyms: z.array(z.object({ term: z.string(), difference: z.string() })).max(3),
});
export type Analysis = z.infer<typeof analysisSchema>;

export const cardTypes = ['recognition', 'production', 'cloze', 'usage'] as const;

/** Stage 2: the cards made from an analysis. */
export const cardsSchema = z.object({
  cards: z
    .array(
      z.object({
        front: z.string(),
        back: z.string(),
        cardType: z.enum(cardTypes),
        tags: z.array(z.string()).max(5),
      }),
    )
    .min(1)
    .max(4),
});
export type Cards = z.infer<typeof cardsSchema>;

/**
 * The JSON Schema sent as `response_format`. Derived from the zod schema so the type, the local
 * validator and what the provider is asked for can never drift apart: the local check is never
 * stricter than what the provider was told. (Strings carry no minLength: strict mode rejects it.)
 */
export function providerJsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12' });
  return closeObjects(rest) as Record<string, unknown>;
}

/**
 * Strict mode wants `additionalProperties: false` on every object. The zod objects themselves
 * stay open (extra keys are stripped, not refused): a model that adds a field it was not asked
 * for still gives a usable answer.
 */
function closeObjects(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(closeObjects);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    out[key] =
      key === 'properties' && value && typeof value === 'object'
        ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, closeObjects(v)]))
        : closeObjects(value);
  }
  if (out['type'] === 'object' && 'properties' in out) out['additionalProperties'] = false;
  return out;
}
