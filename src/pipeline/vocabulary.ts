import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { type Analysis, analysisSchema, type Cards, cardsSchema, providerJsonSchema } from './schemas.ts';
import { renderTemplate } from './template.ts';
import type { CardFields, ChatMessage, Pipeline, Stage, StageInput } from './types.ts';

export interface Languages {
  sourceLanguage: string;
  targetLanguage: string;
}

/** Prompts live as text files in the source tree; from dist/ they are read at ../../src/pipeline/prompts. */
const promptDir = new URL('../../src/pipeline/prompts/', import.meta.url);

function loadPrompt(name: string): string {
  return readFileSync(new URL(name, promptDir), 'utf8');
}

function defineStage<T>(
  name: string,
  schema: z.ZodType<T>,
  prompts: { system: string; user: string },
  userValues: (input: StageInput) => Record<string, string | undefined>,
  languages: Languages,
): Stage<T> {
  const system = renderTemplate(prompts.system, { ...languages });
  const jsonSchema = providerJsonSchema(schema);
  return {
    name,
    schema,
    jsonSchema,
    responseFormat: { type: 'json_schema', json_schema: { name, strict: true, schema: jsonSchema } },
    schemaDigest: createHash('sha256').update(JSON.stringify({ name, jsonSchema })).digest('hex'),
    buildMessages(input): ChatMessage[] {
      return [
        { role: 'system', content: system },
        { role: 'user', content: renderTemplate(prompts.user, { ...languages, ...userValues(input) }) },
      ];
    },
  };
}

function contextText(context: Record<string, string>): string | undefined {
  const lines = Object.entries(context)
    .filter(([, v]) => v.trim() !== '')
    .map(([k, v]) => `- ${k}: ${v}`);
  return lines.length ? lines.join('\n') : undefined;
}

/** The built-in two-stage vocabulary pipeline: analyse a term, then write 1-4 cards from the analysis. */
export function vocabularyPipeline(languages: Languages): Pipeline {
  const prompts = {
    analyze: { system: loadPrompt('analyze.system.md'), user: loadPrompt('analyze.user.md') },
    cards: { system: loadPrompt('cards.system.md'), user: loadPrompt('cards.user.md') },
  };
  const analyze = defineStage<Analysis>(
    'analyze',
    analysisSchema,
    prompts.analyze,
    ({ item }) => ({ term: item.term, type: item.type, context: contextText(item.context) }),
    languages,
  );
  const cards = defineStage<Cards>(
    'cards',
    cardsSchema,
    prompts.cards,
    ({ item, previous }) => ({ term: item.term, analysis: JSON.stringify(previous['analyze'], null, 2) }),
    languages,
  );
  const version = createHash('sha256')
    .update(JSON.stringify([prompts, analyze.jsonSchema, cards.jsonSchema]))
    .digest('hex')
    .slice(0, 12);

  return {
    name: 'vocabulary',
    version,
    stages: [analyze as Stage, cards as Stage],
    toCards(item, results): CardFields[] {
      const analysis = results['analyze'] as Analysis | undefined;
      const made = results['cards'] as Cards | undefined;
      if (!made) return [];
      const pos = (analysis?.partOfSpeech ?? item.type ?? '').toLowerCase().replace(/\s+/g, '-');
      return made.cards
        .filter((c) => c.front.trim() !== '' && c.back.trim() !== '')
        .map((c) => ({
          front: c.front,
          back: c.back,
          cardType: c.cardType,
          tags: [...new Set([...c.tags, ...(pos ? [pos] : []), `card::${c.cardType}`])],
        }));
    },
  };
}
