import { createHash } from 'node:crypto';
import type { ChatMessage } from '../client/chat-client.ts';
import type { LoadedDefinition } from './definition.ts';
import { providerJsonSchema } from './schemas.ts';
import { asText, compileTemplate, lookup, type Scope } from './template.ts';
import type { CardFields, Pipeline, Stage, StageInput, StageItem } from './types.ts';

export interface Languages {
  sourceLanguage: string;
  targetLanguage: string;
}

/** The other columns of a row, one `- name: value` line each; undefined when there are none. */
function contextText(context: Record<string, string>): string | undefined {
  const lines = Object.entries(context)
    .filter(([, v]) => v.trim() !== '')
    .map(([k, v]) => `- ${k}: ${v}`);
  return lines.length ? lines.join('\n') : undefined;
}

function itemScope(item: StageItem, languages: Languages): Record<string, unknown> {
  return {
    term: item.term,
    type: item.type,
    position: item.position,
    context: contextText(item.context),
    row: { ...item.context, term: item.term, type: item.type, position: item.position },
    ...languages,
  };
}

/** Turns a checked pipeline definition into stages that build requests and validate answers. */
export function compilePipeline(def: LoadedDefinition, languages: Languages): Pipeline {
  // An item's variables are built once: each of its stages and its cards read the same.
  const scopes = new WeakMap<StageItem, Record<string, unknown>>();
  const scopeOf = (item: StageItem): Record<string, unknown> => {
    let scope = scopes.get(item);
    if (!scope) {
      scope = itemScope(item, languages);
      scopes.set(item, scope);
    }
    return scope;
  };
  const stages = def.stages.map((stage, i): Stage => {
    const prompt = def.prompts[i]!;
    const jsonSchema = providerJsonSchema(stage.schema);
    const system = prompt.system === undefined ? undefined : compileTemplate(prompt.system);
    const user = compileTemplate(prompt.user);
    // A system prompt that reads only the languages is the same for every request: render it once.
    // One object for every request, so the client and the cache key encode it once per run.
    const fixedSystem: ChatMessage | undefined = system?.variables.every(
      (v) => v === 'sourceLanguage' || v === 'targetLanguage',
    )
      ? { role: 'system', content: system.render({ ...languages }) }
      : undefined;
    return {
      name: stage.name,
      schema: def.validators[i]!,
      jsonSchema,
      responseFormat: {
        type: 'json_schema',
        json_schema: { name: stage.name, strict: true, schema: jsonSchema },
      },
      schemaDigest: createHash('sha256')
        .update(JSON.stringify({ name: stage.name, jsonSchema }))
        .digest('hex'),
      buildMessages({ item, previous }: StageInput): ChatMessage[] {
        const scope: Scope = { ...previous, ...scopeOf(item) };
        const messages: ChatMessage[] = [];
        if (fixedSystem) messages.push(fixedSystem);
        else if (system) messages.push({ role: 'system', content: system.render(scope) });
        messages.push({ role: 'user', content: user.render(scope) });
        return messages;
      },
    };
  });
  // Only what shapes the answers: the card mapping can change without redoing any request.
  const version = createHash('sha256')
    .update(JSON.stringify([def.name, def.prompts, stages.map((s) => s.jsonSchema)]))
    .digest('hex')
    .slice(0, 12);
  const fieldTemplates = Object.entries(def.cards.fields).map(
    ([name, template]) => [name, compileTemplate(template)] as const,
  );
  const tagTemplates = def.cards.tags.map((t) => compileTemplate(t));
  const keyTemplate = def.cards.key === undefined ? undefined : compileTemplate(def.cards.key);
  const from = def.cards.from.split('.');
  const firstField = fieldTemplates[0]?.[0] ?? '';

  return {
    name: def.name,
    description: def.description,
    source: def.source,
    version,
    stages,
    fields: fieldTemplates.map(([name]) => name),
    deck: def.deck,
    noteType: def.noteType,
    toCards(item, results): CardFields[] {
      const found = lookup(results, from);
      const elements = Array.isArray(found) ? found : found === undefined || found === null ? [] : [found];
      const base = { ...results, ...scopeOf(item) };
      const keys = new Map<string, number>();
      const cards: CardFields[] = [];
      elements.forEach((card, index) => {
        const scope: Scope = { ...base, card, index };
        const fields: Record<string, string> = {};
        for (const [name, template] of fieldTemplates) fields[name] = template.render(scope).trim();
        // Anki refuses a note whose first field is empty: it is the sort and duplicate-check field.
        if (!fields[firstField]) return;
        const tags = tagTemplates.flatMap((t) => {
          const value = t.value(scope);
          return (Array.isArray(value) ? value.map(asText) : [asText(value)]).filter((v) => v.trim() !== '');
        });
        const fallback = elements.length > 1 ? `${item.term}|${index}` : item.term;
        let key = keyTemplate ? keyTemplate.render(scope).trim() || fallback : fallback;
        // Two cards of one item with the same key would share a GUID and overwrite each other.
        const seen = keys.get(key) ?? 0;
        keys.set(key, seen + 1);
        if (seen > 0) key = `${key}#${seen + 1}`;
        cards.push({ fields, tags, key });
      });
      return cards;
    },
  };
}
