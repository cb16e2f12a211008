import type { CardRecord, DeckMeta, OutputFormat } from '../output/index.ts';
import { writeOutput } from '../output/index.ts';
import type { Pipeline } from '../pipeline/types.ts';
import type { BatchStore } from './store.ts';

/** A batch's cards from stored results, in input order; failed and unfinished items are left out. */
export function* batchCards(store: BatchStore, batchId: string, pipeline: Pipeline): Generator<CardRecord> {
  for (const { idx, item, results } of store.finishedItems(batchId)) {
    for (const card of pipeline.toCards(item, results)) {
      yield { item: idx, term: item.term, ...card };
    }
  }
}

/** Writes a batch's deck from stored results without any provider call; the file is replaced atomically. */
export async function exportBatch(
  store: BatchStore,
  batchId: string,
  pipeline: Pipeline,
  output: string,
  format: OutputFormat,
  meta: DeckMeta,
): Promise<{ cards: number; path: string }> {
  const written = await writeOutput(output, format, batchCards(store, batchId, pipeline), meta);
  return { cards: written.cards, path: written.path };
}
