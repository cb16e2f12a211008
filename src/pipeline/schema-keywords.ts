import { didYouMean } from '../core/suggest.ts';

/**
 * The JSON Schema keywords a stage schema may use, by what their value holds. The union of what
 * JSON Schema (2020-12, with the draft-4/7 spellings still met in the wild), OpenAPI's additions,
 * providers' strict structured output and the local validator (zod's fromJSONSchema) know: a
 * keyword outside it is a typo, and a typo is silently ignored by all of them, so a misspelt
 * `propertes:` would otherwise give answers with no fields and cards with empty sides.
 */

/** Keywords whose value is one schema (or `true`/`false`). */
const SCHEMA_VALUED = [
  'additionalProperties',
  'additionalItems',
  'contains',
  'propertyNames',
  'not',
  'if',
  'then',
  'else',
  'unevaluatedItems',
  'unevaluatedProperties',
  'contentSchema',
];

/** Keywords whose value is a list of schemas. */
const SCHEMA_LISTS = ['anyOf', 'oneOf', 'allOf', 'prefixItems'];

/** `items`: one schema, or a list of them (draft 4-7 tuples). */
const ITEMS = 'items';

/** Keywords whose value maps names (data, not keywords) to schemas. */
const SCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'];

/** `dependencies` (draft 7): a name maps to a schema or to a list of property names. */
const DEPENDENCIES = 'dependencies';

/** Keywords whose value is plain data: nothing inside them is a keyword. */
const VALUE_KEYWORDS = [
  // Identification and references.
  '$schema',
  '$id',
  'id',
  '$ref',
  '$anchor',
  '$dynamicRef',
  '$dynamicAnchor',
  '$recursiveRef',
  '$recursiveAnchor',
  '$vocabulary',
  '$comment',
  // Any type.
  'type',
  'enum',
  'const',
  // Annotations.
  'title',
  'description',
  'default',
  'examples',
  'example',
  'deprecated',
  'readOnly',
  'writeOnly',
  // OpenAPI 3.0's way of saying "or null".
  'nullable',
  // Objects.
  'required',
  'dependentRequired',
  'minProperties',
  'maxProperties',
  // Arrays.
  'minItems',
  'maxItems',
  'uniqueItems',
  'minContains',
  'maxContains',
  // Strings.
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'contentEncoding',
  'contentMediaType',
  // Numbers.
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
];

/** Every keyword a schema may hold, for "did you mean". */
export const SCHEMA_KEYWORDS: readonly string[] = [
  ...SCHEMA_MAPS,
  ITEMS,
  ...SCHEMA_VALUED,
  ...SCHEMA_LISTS,
  DEPENDENCIES,
  ...VALUE_KEYWORDS,
];

const KNOWN = new Set(SCHEMA_KEYWORDS);

/** An unknown keyword: where it is (`<at>.propertes`, as people read YAML) and the closest known one. */
export interface UnknownKeyword {
  at: string;
  keyword: string;
  guess: string | undefined;
}

type Node = Record<string, unknown>;

function asNode(value: unknown): Node | undefined {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Node) : undefined;
}

/** The sub-schemas a keyword's value holds, each with its place. */
function subschemas(key: string, value: unknown, at: string): Array<[unknown, string]> {
  if (SCHEMA_MAPS.includes(key) || key === DEPENDENCIES) {
    // A list of names (as `dependencies` allows) is not a node: it holds no schema.
    return Object.entries(asNode(value) ?? {}).map(([name, sub]) => [sub, `${at}.${name}`]);
  }
  if (SCHEMA_LISTS.includes(key) || (key === ITEMS && Array.isArray(value))) {
    return Array.isArray(value) ? value.map((sub, i) => [sub, `${at}[${i}]`]) : [];
  }
  if (key === ITEMS || SCHEMA_VALUED.includes(key)) return [[value, at]];
  return [];
}

/**
 * The first keyword of `schema` (at any depth where a schema can be) that JSON Schema does not
 * know, in document order; undefined when there is none. `at` is the schema's own place, e.g.
 * `stages[0].schema`. Property names under `properties` and values under `enum`, `const` or
 * `default` are data and never checked. Malformed values (a string where a schema belongs) are
 * left to the validator, which says what it expected.
 */
export function unknownKeyword(schema: unknown, at: string): UnknownKeyword | undefined {
  const node = asNode(schema);
  if (!node) return undefined;
  for (const [key, value] of Object.entries(node)) {
    const here = `${at}.${key}`;
    if (!KNOWN.has(key)) return { at: here, keyword: key, guess: didYouMean(key, SCHEMA_KEYWORDS) };
    for (const [sub, place] of subschemas(key, value, here)) {
      const found = unknownKeyword(sub, place);
      if (found) return found;
    }
  }
  return undefined;
}
