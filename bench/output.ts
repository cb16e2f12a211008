import { join } from 'node:path';
import { chooseColumns } from '../src/output/columns.ts';
import { type CardRecord, type OutputFormat, writeOutput } from '../src/output/index.ts';
import { tempDir } from '../test/support/cli.ts';
import type { Bench, BenchRow } from './types.ts';

const CARDS = 50_000;

/** Cards shaped like the vocabulary pipeline's: a short front, a few lines of back, some tags. */
function* cards(): Generator<CardRecord> {
  for (let i = 0; i < CARDS; i++) {
    yield {
      item: i >> 1,
      term: `단어${i >> 1}`,
      fields: {
        Front: `단어${i >> 1}`,
        Back: `word ${i} (noun)\nsa-gwa · [sa.ɡwa]\n사과를 먹어요. — I eat an apple <${i}> & "more".`,
      },
      tags: ['noun', 'food', i % 2 ? 'card::production' : 'card::recognition'],
      key: `단어${i >> 1}|${i % 2}`,
    };
  }
}

/** Every deck writer over the same 50,000 cards: time and the resulting file size. */
export const bench: Bench = async () => {
  const rows: BenchRow[] = [];
  const dir = tempDir('fc-bench-out-');
  const meta = {
    deck: 'Bench',
    noteType: 'Basic',
    tags: ['flashcards'],
    ...chooseColumns(['Front', 'Back'], undefined),
  };
  for (const format of ['anki', 'csv', 'jsonl', 'json', 'apkg'] as OutputFormat[]) {
    const started = performance.now();
    const written = await writeOutput(join(dir, `deck.${format}`), format, cards(), meta);
    const ms = performance.now() - started;
    rows.push({
      name: `write ${CARDS.toLocaleString('en')} cards as ${format}`,
      value: (written.cards / ms) * 1000,
      unit: 'cards/s',
      note: `${(ms / 1000).toFixed(2)} s, ${(written.bytes / 1048576).toFixed(1)} MiB`,
    });
  }
  return rows;
};
