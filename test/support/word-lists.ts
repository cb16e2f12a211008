import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './cli.ts';

/** The first `n` rows of fixtures/korean-200.csv as a word list in `dir`, and their terms. */
export function koreanWords(dir: string, n: number): { path: string; terms: string[] } {
  const lines = readFileSync(join(repoRoot, 'fixtures', 'korean-200.csv'), 'utf8')
    .trim()
    .split(/\r?\n/);
  const rows = lines.slice(1, n + 1);
  const path = join(dir, `words-${n}.csv`);
  writeFileSync(path, `${[lines[0], ...rows].join('\n')}\n`);
  return { path, terms: rows.map((r) => r.split(',')[1] ?? '') };
}

/** The distinct terms of a TSV deck (its first column), and how many cards came twice (by GUID). */
export function deckTerms(path: string): { terms: Set<string>; duplicateCards: number } {
  const rows = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'));
  const guids = new Set(rows.map((r) => r.split('\t')[3]));
  return {
    terms: new Set(rows.map((r) => r.split('\t')[0] ?? '')),
    duplicateCards: rows.length - guids.size,
  };
}
