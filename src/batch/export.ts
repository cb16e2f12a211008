import type { CardRecord, DeckMeta, OutputFormat } from '../output/index.ts';
import { writeOutput } from '../output/index.ts';
import type { Pipeline } from '../pipeline/types.ts';
import type { BatchStore } from './store.ts';

/**
 * Writes a batch's deck from stored results, in input order, without any provider call.
 * The file is replaced atomically; items that failed or are unfinished are left out.
 */
export async function exportBatch(
  store: BatchStore,
  batchId: string,
  pipeline: Pipeline,
  output: string,
  format: OutputFormat,
  meta: DeckMeta,
): Promise<{ cards: number; path: string }> {
  function* cards(): Generator<CardRecord> {
    for (const { idx, item, results } of store.finishedItems(batchId)) {
      for (const card of pipeline.toCards(item, results)) {
        yield { item: idx, term: item.term, ...card };
      }
    }
  }
  const written = await writeOutput(output, format, cards(), meta);
  return { cards: written.cards, path: written.path };
}
