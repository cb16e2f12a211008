import { extname } from 'node:path';
import { isKnownColumn } from './columns.ts';
import type { InputFormat } from './types.ts';

const byExtension: Record<string, InputFormat> = {
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.tab': 'tsv',
  '.txt': 'text',
  '.list': 'text',
};

/** The format named by the file's extension; stdin and unknown extensions are sniffed instead. */
export function formatFromExtension(path: string): InputFormat | undefined {
  if (path === '-') return undefined;
  return byExtension[extname(path).toLowerCase()];
}

/**
 * Guesses from the first non-empty line: a tab means TSV; a comma means CSV only when the line
 * reads like a header, because a plain list may hold phrases such as "안녕, 친구".
 */
export function sniffFormat(headText: string): InputFormat {
  const first = firstNonEmptyLine(headText);
  if (first.includes('\t')) return 'tsv';
  if (first.includes(',') && looksLikeHeader(first.split(','))) return 'csv';
  return 'text';
}

export function detectFormat(path: string, headText: string): InputFormat {
  return formatFromExtension(path) ?? sniffFormat(headText);
}

function firstNonEmptyLine(text: string): string {
  for (const line of text.split('\n', 50)) {
    if (line.trim() !== '') return line.trim();
  }
  return '';
}

const identifier = /^[A-Za-z_][\w .()-]{0,63}$/;

function looksLikeHeader(cells: string[]): boolean {
  const names = cells.map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
  return names.some(isKnownColumn) || names.every((n) => identifier.test(n));
}
