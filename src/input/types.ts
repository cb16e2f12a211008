export type InputFormat = 'csv' | 'tsv' | 'text';

export const INPUT_FORMATS: readonly InputFormat[] = ['csv', 'tsv', 'text'];

export interface InputItem {
  /** 0-based position among the yielded items, in input order. */
  index: number;
  /** 1-based line in the file where the row starts. */
  line: number;
  term: string;
  position?: string | undefined;
  type?: string | undefined;
  /** Other non-empty cells of the row, keyed by their header, for the prompt. */
  context: Record<string, string>;
}

export interface InputStats {
  items: number;
  /** Rows skipped because their term cell was empty. */
  skipped: number;
}

export interface InputSource {
  /** The path as given, or 'stdin'. */
  name: string;
  format: InputFormat;
  /** Read once; items are parsed lazily while the consumer iterates. */
  items: AsyncIterable<InputItem>;
  /** SHA-256 (hex) of the raw bytes; valid after `items` is fully consumed. */
  digest(): string;
  /** Counts so far; final after `items` is fully consumed. */
  stats(): InputStats;
}
