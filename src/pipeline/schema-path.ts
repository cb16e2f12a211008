type Node = Record<string, unknown>;

/** What a JSON Schema says about a path: its sub-schema, "anything" when it does not say, or a miss. */
export type PathLookup = { found: true; schema: unknown } | { found: false; at: string; known: string[] };

const ANYTHING: PathLookup = { found: true, schema: {} };

function asNode(value: unknown): Node | undefined {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Node) : undefined;
}

function isArraySchema(node: Node): boolean {
  const type = node['type'];
  return type === 'array' || (Array.isArray(type) && type.includes('array')) || 'items' in node;
}

/**
 * Follows `path` (object keys, list indexes) through a JSON Schema, as a template's
 * `{{stage.a.0.b}}` would through an answer that matches it. Unions (anyOf/oneOf/allOf) and
 * schemas without `properties` cannot be followed and accept anything below them; a key that a
 * closed object does not declare is a miss, with the keys it does declare.
 */
export function schemaAt(schema: unknown, path: readonly string[]): PathLookup {
  let node = asNode(schema);
  for (let i = 0; i < path.length; i++) {
    if (!node) return ANYTHING;
    const key = path[i]!;
    if ('anyOf' in node || 'oneOf' in node || 'allOf' in node || '$ref' in node) return ANYTHING;
    const properties = asNode(node['properties']);
    if (properties) {
      if (key in properties) {
        node = asNode(properties[key]);
        continue;
      }
      return { found: false, at: path.slice(0, i + 1).join('.'), known: Object.keys(properties) };
    }
    if (isArraySchema(node)) {
      if (!/^\d+$/.test(key))
        return { found: false, at: path.slice(0, i + 1).join('.'), known: ['0', '1', '...'] };
      node = asNode(node['items']);
      continue;
    }
    return ANYTHING;
  }
  return { found: true, schema: node ?? {} };
}

/** The schema of one element of what `cards.from` points at: a list's items, or the object itself. */
export function elementSchema(schema: unknown): unknown {
  const node = asNode(schema);
  return node && isArraySchema(node) ? (node['items'] ?? {}) : (schema ?? {});
}

/** What a schema node declares itself to be; 'open' when it does not say (or says it through a union). */
type Shape = 'object' | 'array' | 'open' | { scalar: string };

function shapeOf(node: Node): Shape {
  if ('anyOf' in node || 'oneOf' in node || 'allOf' in node || '$ref' in node) return 'open';
  const type = node['type'];
  const types = (Array.isArray(type) ? type : type === undefined ? [] : [type]).filter(
    (t): t is string => typeof t === 'string',
  );
  if (types.includes('object') || (types.length === 0 && 'properties' in node)) return 'object';
  if (isArraySchema(node)) return 'array';
  const scalar = types.find((t) => t !== 'null') ?? types[0];
  return scalar === undefined ? 'open' : { scalar };
}

const article = (word: string): string => (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`);

/**
 * Why the schema `cards.from` points at cannot give cards, in words ("a list of strings");
 * undefined when it can: an object (one card), a list of objects (a card each), or a schema that
 * does not say what it holds.
 */
export function cardSourceProblem(schema: unknown): string | undefined {
  const node = asNode(schema);
  if (!node) return undefined;
  const shape = shapeOf(node);
  if (shape === 'object' || shape === 'open') return undefined;
  if (shape !== 'array') return article(shape.scalar);
  const items = asNode(node['items']);
  const element = items ? shapeOf(items) : 'open';
  if (element === 'object' || element === 'open') return undefined;
  return `a list of ${element === 'array' ? 'lists' : `${element.scalar}s`}`;
}
