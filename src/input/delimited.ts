import { pipeline, Readable } from 'node:stream';
import { type Options, parse } from 'csv-parse';
import { FlashcardsError } from '../core/errors.ts';
import { type ColumnMap, mapColumns, rowFields } from './columns.ts';
import { normalizeTerm } from './term.ts';
import type { InputItem, InputStats } from './types.ts';

/** A word-list row is never this long; hitting it almost always means a quote was left open. */
const MAX_RECORD_BYTES = 64 * 1024;

interface Row {
  cells: string[];
  line: number;
}

/**
 * CSV or TSV with a header row, parsed as a stream. The header decides which column is the term
 * (see columns.ts); rows with an empty term are skipped and counted.
 */
export async function* readDelimitedItems(
  name: string,
  chunks: AsyncIterable<Buffer>,
  delimiter: ',' | '\t',
  stats: InputStats,
): AsyncGenerator<InputItem> {
  const lines = new LineTracker();
  const options: Options<Row, string[]> = {
    bom: true,
    delimiter,
    record_delimiter: ['\r\n', '\n'],
    skip_empty_lines: true,
    relax_column_count: false,
    // TSV exports rarely quote, so a stray quote in a note is text rather than an error.
    relax_quotes: delimiter === '\t',
    max_record_size: MAX_RECORD_BYTES,
    on_record: (cells, info) => ({ cells, line: lines.record(cells, info) }),
  };
  // csv-parse types a record-transforming on_record only together with `columns`.
  const parser = parse(options as unknown as Options);
  // Errors from either side surface through the parser's iterator below.
  pipeline(Readable.from(chunks, { objectMode: false }), parser, () => {});

  let map: ColumnMap | undefined;
  let dataRows = 0;
  try {
    for await (const row of parser as AsyncIterable<Row>) {
      if (!map) {
        checkHeader(name, row.cells, delimiter);
        map = mapColumns(row.cells);
        continue;
      }
      dataRows++;
      const fields = rowFields(map, row.cells);
      if (fields.term === '') {
        stats.skipped++;
        continue;
      }
      const term = normalizeTerm(fields.term, {
        name,
        line: row.line,
        hint: `the term is read from column "${map.termName}"; longer text belongs in another column`,
      });
      yield {
        index: stats.items++,
        line: row.line,
        term,
        position: fields.position,
        type: fields.type,
        context: fields.context,
      };
    }
  } catch (e) {
    throw translateCsvError(e, name, lines, delimiter);
  }
  if (!map) throw new FlashcardsError('input', `${name} is empty`);
  if (dataRows === 0) {
    throw new FlashcardsError('input', `${name} has a header row but no data rows`, {
      hint: 'add one row per term below the header',
    });
  }
  if (stats.items === 0) {
    throw new FlashcardsError('input', `${name}: all ${dataRows} rows have an empty "${map.termName}" cell`, {
      hint: 'the term column is the one named term, word, hangul or front, else the first column',
    });
  }
}

const separators: [string, string][] = [
  ['\t', 'tabs'],
  [';', 'semicolons'],
  [',', 'commas'],
];

/** A one-column header holding another separator means the file was read with the wrong one. */
function checkHeader(name: string, header: string[], delimiter: string): void {
  const only = header[0] ?? '';
  if (header.length !== 1) return;
  const other = separators.find(([sep]) => sep !== delimiter && only.includes(sep));
  if (!other) return;
  throw new FlashcardsError(
    'input',
    `${name}: the header ${JSON.stringify(only)} is one column; is the file separated by ${other[1]}?`,
    {
      hint:
        other[0] === '\t'
          ? 'name it .tsv, or read it as TSV'
          : 'save it as comma-separated CSV or as tab-separated TSV',
    },
  );
}

/**
 * Turns csv-parse's end-of-record line counts into the line where each record starts. csv-parse
 * counts a CRLF inside a quoted cell as two lines, so those are subtracted as they are seen. Fed
 * from on_record, it also sees records lost when a later one in the same chunk fails.
 */
class LineTracker {
  /** Field count of the header (the first record). */
  width: number | undefined;
  #end = 0;
  #empty = 0;
  #overcount = 0;

  record(cells: string[], info: { lines: number; empty_lines: number }): number {
    const start = this.next(info.empty_lines);
    this.width ??= cells.length;
    for (const cell of cells) {
      if (cell.includes('\r\n')) this.#overcount += cell.split('\r\n').length - 1;
    }
    this.#end = info.lines - this.#overcount;
    this.#empty = info.empty_lines;
    return start;
  }

  /** The start line of the record after the last one seen, given csv-parse's running empty-line count. */
  next(emptyLines: number): number {
    return this.#end + 1 + emptyLines - this.#empty;
  }
}

interface CsvErrorLike {
  code: string;
  empty_lines?: unknown;
  record?: unknown;
}

function isCsvError(e: unknown): e is CsvErrorLike {
  const code = e instanceof Error ? (e as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^(CSV_|INVALID_)/.test(code);
}

function translateCsvError(e: unknown, name: string, lines: LineTracker, delimiter: string): unknown {
  if (!isCsvError(e)) return e;
  const line = lines.next(typeof e.empty_lines === 'number' ? e.empty_lines : 0);
  const at = `${name}: line ${line}`;
  const quoteHint = 'write a quote inside a quoted field as "", e.g. "say ""hi"""';
  switch (e.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return new FlashcardsError('input', `${at}: unclosed quote`, {
        hint: 'a field that starts with " must end with "; ' + quoteHint,
        cause: e,
      });
    case 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH': {
      const got = Array.isArray(e.record) ? e.record.length : 0;
      return new FlashcardsError(
        'input',
        `${at} has ${got} ${got === 1 ? 'field' : 'fields'}, the header has ${lines.width}`,
        {
          hint:
            delimiter === ','
              ? 'put cells that contain commas in quotes, e.g. "to go, to leave"'
              : 'every row needs as many tabs as the header',
          cause: e,
        },
      );
    }
    case 'CSV_INVALID_CLOSING_QUOTE':
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
      return new FlashcardsError('input', `${at}: unexpected text after a closing quote`, {
        hint: quoteHint,
        cause: e,
      });
    case 'INVALID_OPENING_QUOTE':
      return new FlashcardsError('input', `${at}: a quote in the middle of an unquoted field`, {
        hint: 'quote the whole field and double the quotes inside it, e.g. "say ""hi"""',
        cause: e,
      });
    case 'CSV_MAX_RECORD_SIZE':
      return new FlashcardsError('input', `${at}: the row is longer than ${MAX_RECORD_BYTES} bytes`, {
        hint: 'is a quote left open on this line?',
        cause: e,
      });
    default:
      return new FlashcardsError('input', `${at}: ${(e as unknown as Error).message}`, { cause: e });
  }
}
