/**
 * Which column plays which part. Header names are matched trimmed and case-insensitively; the
 * first matching column wins, and any other column becomes prompt context.
 */
const termNames = new Set(['term', 'word', 'hangul', 'front']);
const positionNames = new Set(['position', 'id']);
const typeNames = new Set(['type', 'pos']);

export interface ColumnMap {
  term: number;
  /** The header of the term column, for messages. */
  termName: string;
  position: number | undefined;
  type: number | undefined;
  context: { index: number; key: string }[];
}

export interface RowFields {
  term: string;
  position: string | undefined;
  type: string | undefined;
  context: Record<string, string>;
}

export function isKnownColumn(name: string): boolean {
  const n = name.trim().toLowerCase();
  return termNames.has(n) || positionNames.has(n) || typeNames.has(n);
}

export function mapColumns(header: readonly string[]): ColumnMap {
  const names = header.map((h) => h.trim());
  const find = (set: Set<string>): number | undefined => {
    const i = names.findIndex((n) => set.has(n.toLowerCase()));
    return i === -1 ? undefined : i;
  };
  const position = find(positionNames);
  const type = find(typeNames);
  // Without a named term column, the first column not claimed by position or type holds the term.
  const term =
    find(termNames) ??
    Math.max(
      0,
      names.findIndex((_, i) => i !== position && i !== type),
    );
  const used = new Set<string>();
  const context: ColumnMap['context'] = [];
  names.forEach((name, index) => {
    if (index === term || index === position || index === type) return;
    let key = name === '' ? `column${index + 1}` : name;
    for (let n = 2; used.has(key); n++) key = `${name || `column${index + 1}`}_${n}`;
    used.add(key);
    context.push({ index, key });
  });
  return { term, termName: names[term] || `column ${term + 1}`, position, type, context };
}

/** Cells are trimmed and CRLF inside quoted cells becomes LF; empty optional cells are left out. */
export function rowFields(map: ColumnMap, cells: readonly string[]): RowFields {
  const context: Record<string, string> = {};
  for (const { index, key } of map.context) {
    const value = clean(cells[index]);
    if (value !== undefined) context[key] = value;
  }
  return {
    term: clean(cells[map.term]) ?? '',
    position: map.position === undefined ? undefined : clean(cells[map.position]),
    type: map.type === undefined ? undefined : clean(cells[map.type]),
    context,
  };
}

function clean(cell: string | undefined): string | undefined {
  if (cell === undefined) return undefined;
  const value = (cell.includes('\r') ? cell.replace(/\r\n?/g, '\n') : cell).trim();
  return value === '' ? undefined : value;
}
