import { relative } from 'node:path';

export type SourceKind = 'default' | 'file' | 'env' | 'flag' | 'preset';

/** Where a value came from: {kind:'file', detail:'/x/.flashcardrc'}, {kind:'env', detail:'FLASHCARDS_MODEL'}. */
export interface ValueSource {
  kind: SourceKind;
  detail: string;
}

/** A file path as people want to read it in messages: relative to cwd when inside it. */
export function displayPath(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  return rel === '' || rel.startsWith('..') || rel.startsWith('/') ? file : rel;
}

/** One-line description of a source: "default", "preset groq", "env FLASHCARDS_MODEL", "--model", a path. */
export function describeSource(source: ValueSource): string {
  switch (source.kind) {
    case 'default':
      return 'default';
    case 'preset':
      return `preset ${source.detail}`;
    case 'env':
      return `env ${source.detail}`;
    case 'flag':
    case 'file':
      return source.detail;
  }
}
