/** Anki's special template fields: a note field with one of these names would never show. */
const RESERVED_FIELDS = new Set(['FrontSide', 'Tags', 'Type', 'Deck', 'Subdeck', 'Card', 'CardFlag']);

/**
 * Why Anki would refuse `name` as a note field (or a card template could not name it), or
 * undefined when it is fine. One rule for pipeline files, .apkg packages and AnkiConnect.
 */
export function ankiFieldNameProblem(name: string): string | undefined {
  if (name.trim() === '') return 'a field name is empty';
  if (name !== name.trim()) return `field name "${name}" has spaces at an end`;
  if (/^[#^/]/.test(name)) return `field name "${name}" starts with ${name[0]}, which Anki templates reserve`;
  if (/[:{}"\t\r\n]/.test(name)) return `field name "${name}" contains one of : { } " or a line break`;
  if (RESERVED_FIELDS.has(name))
    return `field name "${name}" is reserved by Anki for its special {{${name}}} field`;
  return undefined;
}

/** The first problem of a field list: a bad name, or a name used twice (Anki ignores case). */
export function ankiFieldsProblem(fields: readonly string[]): string | undefined {
  if (fields.length === 0) return 'there are no fields';
  const seen = new Set<string>();
  for (const name of fields) {
    const problem = ankiFieldNameProblem(name);
    if (problem) return problem;
    if (seen.has(name.toLowerCase())) return `field name "${name}" appears twice`;
    seen.add(name.toLowerCase());
  }
  return undefined;
}
