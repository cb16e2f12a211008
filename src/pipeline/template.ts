/**
 * A deliberately tiny template language for the prompt files: `{{name}}` inserts a value and
 * `{{#name}}...{{/name}}` keeps a section only when the value is non-empty. Prompts stay readable
 * text files; anything more clever belongs in code, not in templates.
 */
export function renderTemplate(template: string, values: Record<string, string | undefined>): string {
  return compileTemplate(template)(values);
}

type Render = (values: Record<string, string | undefined>) => string;
const compiled = new Map<string, Render>();

/**
 * Parses a template once into literal text and slots; rendering then only concatenates.
 * (Prompts are rendered for every request, so this is on the hot path.)
 */
export function compileTemplate(template: string): Render {
  const known = compiled.get(template);
  if (known) return known;
  type Part = string | { name: string } | { section: string; body: Part[] };
  const parse = (text: string): Part[] => {
    const parts: Part[] = [];
    const re = /\{\{#(\w+)\}\}([\s\S]*?)\{\{\/\1\}\}|\{\{(\w+)\}\}/g;
    let last = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      if (m.index > last) parts.push(text.slice(last, m.index));
      if (m[1] !== undefined) parts.push({ section: m[1], body: parse(m[2] ?? '') });
      else parts.push({ name: m[3] ?? '' });
      last = re.lastIndex;
    }
    if (last < text.length) parts.push(text.slice(last));
    return parts;
  };
  const run = (parts: Part[], values: Record<string, string | undefined>): string => {
    let out = '';
    for (const part of parts) {
      if (typeof part === 'string') out += part;
      else if ('section' in part) {
        if (values[part.section]) out += run(part.body, values);
      } else {
        const value = values[part.name];
        if (value === undefined)
          throw new Error(`prompt template uses {{${part.name}}} but no value was given`);
        out += value;
      }
    }
    return out;
  };
  const parts = parse(template);
  const render: Render = (values) => run(parts, values);
  compiled.set(template, render);
  return render;
}
