import type { CardRecord, DeckMeta, OutputFormat } from '../output/index.ts';
import { writeOutput } from '../output/index.ts';
import type { Pipeline } from '../pipeline/types.ts';
import type { BatchResults, ItemData } from './store.ts';

/** What an export made of the finished items. */
export interface ExportTally {
  items: number;
  /** Finished items that gave no card at all (their answers did not fill the first field). */
  withoutCards: number;
}

/** Turns finished items into card records, keeping keys unique over everything it has seen. */
class CardMaker {
  readonly #taken = new Set<string>();
  readonly #pipeline: Pipeline;
  readonly #tally: ExportTally;

  constructor(pipeline: Pipeline, tally: ExportTally) {
    this.#pipeline = pipeline;
    this.#tally = tally;
  }

  *cards(idx: number, item: ItemData, results: Record<string, unknown>): Generator<CardRecord> {
    this.#tally.items++;
    const cards = this.#pipeline.toCards(item, results);
    if (cards.length === 0) this.#tally.withoutCards++;
    for (const card of cards) {
      // The next free "#n": a key that already carries a suffix (from toCards) cannot collide.
      let key = card.key;
      for (let n = 2; this.#taken.has(key); n++) key = `${card.key}#${n}`;
      this.#taken.add(key);
      yield { item: idx, term: item.term, fields: card.fields, tags: card.tags, key };
    }
  }
}

/**
 * A batch's cards from stored results, in input order; failed and unfinished items are left out.
 * Keys are made unique over the whole batch (a repeated key gets "#2", "#3"), so no two notes
 * share a GUID and overwrite each other in Anki.
 */
export async function* batchCards(
  results: BatchResults,
  batchId: string,
  pipeline: Pipeline,
  tally: ExportTally = { items: 0, withoutCards: 0 },
): AsyncGenerator<CardRecord> {
  yield* storedCards(results, batchId, new CardMaker(pipeline, tally), 0);
}

/** Cards of the items stored as finished, from item `fromIdx` on, in input order. */
async function* storedCards(
  results: BatchResults,
  batchId: string,
  maker: CardMaker,
  fromIdx: number,
): AsyncGenerator<CardRecord> {
  for await (const finished of results.finishedItems(batchId, fromIdx))
    yield* maker.cards(finished.idx, finished.item, finished.results);
}

/**
 * Items kept for the live export at most; later ones are read back from the database at the end.
 * A run keeps about `concurrency` items out of order; a run answered from the cache outruns the
 * writer, and each held item costs ~25 KB of parsed answers.
 */
const FEED_LIMIT = 256;

/**
 * Items as a run finishes them, for an export that writes the deck while the run goes on (see
 * `liveBatchCards`). Holds at most FEED_LIMIT items' results, always including the one the writer
 * waits for: memory stays bounded when an early item is held up (a long retry) while later ones
 * pile up. A failed item is not reported: it may still be retried and finished (`batches retry`,
 * another process with --retry-failed), so the writer stops at it and the end reads the database.
 */
export class FinishedFeed {
  readonly #items = new Map<number, { item: ItemData; results: Record<string, unknown> }>();
  #wanted = 0;
  #wake: (() => void) | undefined;
  #state: 'running' | 'ended' | 'aborted' = 'running';
  /** The item the writer waits for while it waits; undefined while it works. */
  #waitingAt: number | undefined;
  #caughtUp: { idx: number; resolve: () => void }[] = [];

  done(idx: number, item: ItemData, results: Record<string, unknown>): void {
    if (idx === this.#wanted || this.#items.size < FEED_LIMIT) this.#items.set(idx, { item, results });
    this.#notify();
  }

  /** The run is over: everything not written yet comes from the database. */
  end(): void {
    if (this.#state !== 'running') return;
    this.#state = 'ended';
    this.#notify();
  }

  /** The run stopped before finishing: the export is dropped (its temp file removed). */
  abort(): void {
    if (this.#state !== 'running') return;
    this.#state = 'aborted';
    this.#notify();
  }

  get state(): 'running' | 'ended' | 'aborted' {
    return this.#state;
  }

  /** The item at `idx` if the run finished it; else the feed keeps room for it from now on. */
  take(idx: number): { item: ItemData; results: Record<string, unknown> } | undefined {
    this.#wanted = idx;
    const entry = this.#items.get(idx);
    if (entry) this.#items.delete(idx);
    return entry;
  }

  /** Called by the writer when it has nothing to write: resolves at the next change. */
  changed(): Promise<void> {
    this.#waitingAt = this.#wanted;
    const reached = this.#caughtUp.filter((w) => w.idx <= this.#wanted);
    this.#caughtUp = this.#caughtUp.filter((w) => w.idx > this.#wanted);
    for (const w of reached) w.resolve();
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  /**
   * Resolves once the writer has made the cards of every item before `idx` and waits for the run:
   * how a caller knows what the deck holds so far without waiting on a timer (used by tests).
   */
  caughtUp(idx: number): Promise<void> {
    if (this.#waitingAt !== undefined && this.#waitingAt >= idx) return Promise.resolve();
    return new Promise((resolve) => this.#caughtUp.push({ idx, resolve }));
  }

  #notify(): void {
    this.#waitingAt = undefined;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** Thrown into a live export when its run stops: the deck is not replaced by a partial one. */
export class ExportAborted extends Error {
  constructor() {
    super('the run stopped before the deck was complete');
    this.name = 'ExportAborted';
  }
}

/**
 * The same cards as `batchCards`, made while the run goes on: items this run finishes are turned
 * into cards as soon as input order allows, so at the end only the last few (and anything done
 * before this run, by another process, or beyond the feed's limit) are read back from the database.
 */
export async function* liveBatchCards(
  results: BatchResults,
  batchId: string,
  pipeline: Pipeline,
  feed: FinishedFeed,
  tally: ExportTally = { items: 0, withoutCards: 0 },
): AsyncGenerator<CardRecord> {
  const maker = new CardMaker(pipeline, tally);
  let next = 0;
  while (feed.state === 'running') {
    const entry = feed.take(next);
    if (entry === undefined) {
      await feed.changed();
      // Cards are made after pending I/O: the run's next requests go out first.
      await new Promise<void>((resolve) => setImmediate(resolve));
      continue;
    }
    yield* maker.cards(next, entry.item, entry.results);
    next++;
  }
  if (feed.state === 'aborted') throw new ExportAborted();
  yield* storedCards(results, batchId, maker, next);
}

/** One line for people when finished items made no cards: a pipeline's cards section that finds nothing. */
export function emptyItemsWarning(tally: ExportTally, pipeline: Pipeline): string | undefined {
  if (tally.withoutCards === 0) return undefined;
  const where = pipeline.source === 'built-in' ? `the ${pipeline.name} pipeline` : pipeline.source;
  return `${tally.withoutCards} of ${tally.items} finished item(s) made no card: their answers left the first field empty; check the cards section of ${where}`;
}

/** What writing a deck made: cards written, the file, and the items behind them. */
export interface ExportResult {
  cards: number;
  path: string;
  tally: ExportTally;
}

async function writeDeck(
  output: string,
  format: OutputFormat,
  meta: DeckMeta,
  cards: (tally: ExportTally) => Iterable<CardRecord> | AsyncIterable<CardRecord>,
): Promise<ExportResult> {
  const tally: ExportTally = { items: 0, withoutCards: 0 };
  const written = await writeOutput(output, format, cards(tally), meta);
  return { cards: written.cards, path: written.path, tally };
}

/** A batch's deck to write: where its cards come from and where they go. */
export interface DeckJob {
  results: BatchResults;
  batchId: string;
  pipeline: Pipeline;
  output: string;
  format: OutputFormat;
  meta: DeckMeta;
}

/** Writes a batch's deck from stored results without any provider call; the file is replaced atomically. */
export function exportBatch(d: DeckJob): Promise<ExportResult> {
  return writeDeck(d.output, d.format, d.meta, (tally) =>
    batchCards(d.results, d.batchId, d.pipeline, tally),
  );
}

export interface LiveExport {
  feed: FinishedFeed;
  /** The written deck once `feed.end()` is called; rejects with ExportAborted after `feed.abort()`. */
  result: Promise<ExportResult>;
}

/**
 * Starts writing a batch's deck file while its run goes on: into a temp file, renamed over
 * `output` only when the feed ends (a stopped run leaves the old file as it was).
 */
export function startLiveExport(d: DeckJob): LiveExport {
  const feed = new FinishedFeed();
  const result = writeDeck(d.output, d.format, d.meta, (tally) =>
    liveBatchCards(d.results, d.batchId, d.pipeline, feed, tally),
  );
  // Awaited once the run ends; until then a failure must not count as an unhandled rejection.
  result.catch(() => {});
  return { feed, result };
}
