/**
 * The small template language of prompts and card fields: `{{name}}` or `{{stage.field.sub}}`
 * inserts a value, `{{#name}}...{{/name}}` keeps a section only when the value is non-empty.
 * Strings go in as they are, numbers and booleans as text, lists of strings joined with ", ",
 * anything else as indented JSON. Anything cleverer belongs in code or in a later stage.
 */

export type Scope = Readonly<Record<string, unknown>>;
type Part = string | { path: string[] } | { section: string[]; body: Part[] };

export interface CompiledTemplate {
  /** Every variable the template reads, as dotted paths, sections included. */
  readonly variables: readonly string[];
  render(scope: Scope): string;
  /**
   * The raw value when the whole template is one `{{path}}` (so a list can stay a list, as tags
   * want), otherwise the rendered text.
   */
  value(scope: Scope): unknown;
}

const compiled = new Map<string, CompiledTemplate>();

/** Parses a template once (cached by text): prompts are rendered for every request, a hot path. */
export function compileTemplate(template: string): CompiledTemplate {
  const known = compiled.get(template);
  if (known) return known;
  const variables = new Set<string>();
  const parse = (text: string): Part[] => {
    const parts: Part[] = [];
    const re = /\{\{#([\w.-]+)\}\}([\s\S]*?)\{\{\/\1\}\}|\{\{\s*([\w.-]+)\s*\}\}/g;
    let last = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      if (m.index > last) parts.push(text.slice(last, m.index));
      const name = m[1] ?? m[3] ?? '';
      variables.add(name);
      if (m[1] !== undefined) parts.push({ section: name.split('.'), body: parse(m[2] ?? '') });
      else parts.push({ path: name.split('.') });
      last = re.lastIndex;
    }
    if (last < text.length) parts.push(text.slice(last));
    return parts;
  };
  const run = (parts: Part[], scope: Scope): string => {
    let out = '';
    for (const part of parts) {
      if (typeof part === 'string') out += part;
      else if ('section' in part) {
        if (present(lookup(scope, part.section))) out += run(part.body, scope);
      } else out += asText(lookup(scope, part.path));
    }
    return out;
  };
  const parts = parse(template);
  const only =
    parts.length === 1 && typeof parts[0] !== 'string' && 'path' in parts[0]! ? parts[0] : undefined;
  const result: CompiledTemplate = {
    variables: [...variables],
    render: (scope) => run(parts, scope),
    value: (scope) => (only ? lookup(scope, only.path) : run(parts, scope)),
  };
  compiled.set(template, result);
  return result;
}

/** Follows a dotted path through objects (and list indexes); undefined when any step is missing. */
export function lookup(scope: Scope, path: readonly string[]): unknown {
  let value: unknown = scope;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function present(value: unknown): boolean {
  if (value === undefined || value === null || value === false) return false;
  if (typeof value === 'string') return value.trim() !== '';
  if (Array.isArray(value)) return value.length > 0;
  return true;
}

/** How a value reads inside text. */
export function asText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number'))
    return value.join(', ');
  return JSON.stringify(value, null, 2);
}
