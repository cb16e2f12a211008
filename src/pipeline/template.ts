/**
 * A deliberately tiny template language for the prompt files: `{{name}}` inserts a value and
 * `{{#name}}...{{/name}}` keeps a section only when the value is non-empty. Prompts stay readable
 * text files; anything more clever belongs in code, not in templates.
 */
export function renderTemplate(template: string, values: Record<string, string | undefined>): string {
  const withSections = template.replace(
    /\{\{#(\w+)\}\}([\s\S]*?)\{\{\/\1\}\}/g,
    (_match, name: string, body: string) => (values[name] ? body : ''),
  );
  return withSections.replace(/\{\{(\w+)\}\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`prompt template uses {{${name}}} but no value was given`);
    return value;
  });
}
