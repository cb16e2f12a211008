import type { CardRecord, DeckMeta, OutputFormat } from '../output/index.ts';
import { writeOutput } from '../output/index.ts';
import type { Pipeline } from '../pipeline/types.ts';
import type { BatchStore } from './store.ts';

/** What an export made of the finished items. */
export interface ExportTally {
  items: number;
  /** Finished items that gave no card at all (their answers did not fill the first field). */
  withoutCards: number;
}

/**
 * A batch's cards from stored results, in input order; failed and unfinished items are left out.
 * Keys are made unique over the whole batch (a repeated key gets "#2", "#3"), so no two notes
 * share a GUID and overwrite each other in Anki.
 */
export function* batchCards(
  store: BatchStore,
  batchId: string,
  pipeline: Pipeline,
  tally: ExportTally = { items: 0, withoutCards: 0 },
): Generator<CardRecord> {
  const taken = new Set<string>();
  for (const { idx, item, results } of store.finishedItems(batchId)) {
    tally.items++;
    const cards = pipeline.toCards(item, results);
    if (cards.length === 0) tally.withoutCards++;
    for (const card of cards) {
      // The next free "#n": a key that already carries a suffix (from toCards) cannot collide.
      let key = card.key;
      for (let n = 2; taken.has(key); n++) key = `${card.key}#${n}`;
      taken.add(key);
      yield { item: idx, term: item.term, fields: card.fields, tags: card.tags, key };
    }
  }
}

/** One line for people when finished items made no cards: a pipeline's cards section that finds nothing. */
export function emptyItemsWarning(tally: ExportTally, pipeline: Pipeline): string | undefined {
  if (tally.withoutCards === 0) return undefined;
  const where = pipeline.source === 'built-in' ? `the ${pipeline.name} pipeline` : pipeline.source;
  return `${tally.withoutCards} of ${tally.items} finished item(s) made no card: their answers left the first field empty; check the cards section of ${where}`;
}

/** Writes a batch's deck from stored results without any provider call; the file is replaced atomically. */
export async function exportBatch(
  store: BatchStore,
  batchId: string,
  pipeline: Pipeline,
  output: string,
  format: OutputFormat,
  meta: DeckMeta,
): Promise<{ cards: number; path: string; tally: ExportTally }> {
  const tally: ExportTally = { items: 0, withoutCards: 0 };
  const written = await writeOutput(output, format, batchCards(store, batchId, pipeline, tally), meta);
  return { cards: written.cards, path: written.path, tally };
}
