import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  batchCards,
  ExportAborted,
  exportBatch,
  FinishedFeed,
  liveBatchCards,
  startLiveExport,
} from '../src/batch/export.ts';
import type { BatchMeta, BatchResults, ItemData, JobOutcome } from '../src/batch/store.ts';
import { FakeClock } from '../src/core/clock.ts';
import type { CardRecord, DeckMeta } from '../src/output/index.ts';
import type { Pipeline } from '../src/pipeline/types.ts';
import { stateDbs } from './support/state-db.ts';

const STAGES = ['analyze', 'cards'];
const dbs = stateDbs();

/** Only what the export reads of a pipeline: one card per answer, keyed by its term. */
const pipeline = {
  toCards: (item: { term: string }, results: Record<string, unknown>) => {
    const back = (results['cards'] as { back?: string } | undefined)?.back ?? '';
    return back === '' ? [] : [{ fields: { Front: item.term, Back: back }, tags: [], key: item.term }];
  },
} as unknown as Pipeline;

const deck: DeckMeta = { deck: 'D', noteType: 'N', fields: ['Front', 'Back'], columns: [], tags: [] };

/** A loaded batch; terms repeat so that the batch-wide key numbering ("#2") is exercised too. */
async function setup(terms: string[]) {
  const file = dbs.tempDb();
  const dir = path.dirname(file);
  const { catalog, queue, results: store } = dbs.openStores(file, new FakeClock(1000));
  const meta: BatchMeta = {
    id: 'b',
    inputName: 'words.txt',
    inputDigest: 'd',
    settingsHash: 's',
    pipeline: 'test',
    stages: STAGES,
    model: 'm',
    baseUrl: 'http://127.0.0.1:1/v1',
    outputPath: null,
    format: 'anki',
    settings: {},
  };
  await catalog.create(meta, 'loader');
  const items: (ItemData & { idx: number })[] = terms.map((term, idx) => ({
    idx,
    term,
    line: idx + 1,
    context: {},
  }));
  await catalog.insertItems('b', items, STAGES);
  await catalog.finishLoading('b', terms.length);
  /** The lease token of each item, as the run that finishes it claimed it. */
  const tokens = new Map<number, number>();
  /** Claims whatever is claimable, as a run starting now would. */
  const claimAll = async (): Promise<void> => {
    for (const c of await queue.claim('b', 'run', 60_000, terms.length)) tokens.set(c.idx, c.token);
  };
  await claimAll();
  const outcome = (idx: number, stage: string): JobOutcome => ({
    batchId: 'b',
    idx,
    stage,
    token: tokens.get(idx) ?? 0,
    attempts: 1,
    requests: 1,
    promptTokens: 1,
    completionTokens: 1,
    cached: false,
    durationMs: 1,
    requestMs: 1,
  });
  /** Stores an item's answers as the runner does; returns what the runner hands the feed. */
  const finish = async (idx: number, back: string): Promise<Record<string, unknown>> => {
    const results = { analyze: { n: idx }, cards: { back } };
    await store.completeJob(outcome(idx, 'analyze'), results.analyze, false);
    await store.completeJob(outcome(idx, 'cards'), results.cards, true);
    return results;
  };
  const fail = (idx: number): Promise<void> =>
    store.failJob(outcome(idx, 'analyze'), 'invalid_response', 'bad');
  return { dir, store, items, finish, fail, claimAll };
}

async function collect(cards: AsyncIterable<CardRecord>, into: CardRecord[]): Promise<void> {
  for await (const card of cards) into.push(card);
}

/** The cards an export after the run makes. */
async function stored(store: BatchResults): Promise<CardRecord[]> {
  const cards: CardRecord[] = [];
  await collect(batchCards(store, 'b', pipeline), cards);
  return cards;
}

/** A live export over `feed`: `got` fills as the writer makes cards, `done` settles when it ends. */
function liveWriter(store: BatchResults, feed: FinishedFeed): { got: CardRecord[]; done: Promise<void> } {
  const got: CardRecord[] = [];
  return { got, done: collect(liveBatchCards(store, 'b', pipeline, feed), got) };
}

describe('the live export', () => {
  test('makes the same cards as an export after the run, and makes them while the run goes on', async () => {
    const { store, items, finish, fail } = await setup(['a', 'b', 'a', 'c', 'd', 'a', 'e']);
    await finish(1, 'done before this run');
    const feed = new FinishedFeed();
    const { got, done: consumer } = liveWriter(store, feed);

    feed.done(0, items[0]!, await finish(0, 'zero'));
    await feed.caughtUp(1);
    assert.deepEqual(
      got.map((c) => c.item),
      [0],
      'item 0 is written at once; item 1 (done before) waits for the end',
    );
    feed.done(3, items[3]!, await finish(3, 'three'));
    await fail(2);
    feed.done(6, items[6]!, await finish(6, ''));
    feed.done(5, items[5]!, await finish(5, 'five'));
    await finish(4, 'by another process');
    feed.end();
    await consumer;

    assert.deepEqual(got, await stored(store));
    assert.deepEqual(
      got.map((c) => [c.item, c.key]),
      [
        [0, 'a'],
        [1, 'b'],
        [3, 'c'],
        [4, 'd'],
        [5, 'a#2'],
      ],
    );
  });

  test('an item that failed and was then finished by another process is in the deck', async () => {
    const { store, items, finish, fail, claimAll } = await setup(['a', 'b', 'c']);
    const feed = new FinishedFeed();
    const { got, done: consumer } = liveWriter(store, feed);
    feed.done(0, items[0]!, await finish(0, 'zero'));
    await fail(1);
    feed.done(2, items[2]!, await finish(2, 'two'));
    await feed.caughtUp(1);
    assert.deepEqual(
      got.map((c) => c.item),
      [0],
      'the writer waits at the failed item',
    );
    await store.requeueFailed('b');
    // Another process claims it again and finishes it.
    await claimAll();
    await finish(1, 'retried elsewhere');
    feed.end();
    await consumer;
    assert.deepEqual(
      got.map((c) => c.item),
      [0, 1, 2],
    );
    assert.deepEqual(got, await stored(store));
  });

  test('a feed over its limit falls back to the database without losing or repeating a card', async () => {
    const terms = Array.from({ length: 400 }, (_, i) => `t${i}`);
    const { store, items, finish } = await setup(terms);
    const feed = new FinishedFeed();
    const { got, done: consumer } = liveWriter(store, feed);
    // Item 0 comes last: everything else piles up in the feed, past its limit.
    for (let i = 1; i < terms.length; i++) feed.done(i, items[i]!, await finish(i, `x${i}`));
    feed.done(0, items[0]!, await finish(0, 'x0'));
    feed.end();
    await consumer;
    assert.deepEqual(got, await stored(store));
    assert.equal(got.length, terms.length);
  });

  test('an aborted feed ends the cards with ExportAborted', async () => {
    const { store, items, finish } = await setup(['a', 'b']);
    const feed = new FinishedFeed();
    const { done: consumer } = liveWriter(store, feed);
    feed.done(0, items[0]!, await finish(0, 'zero'));
    feed.abort();
    await assert.rejects(consumer, ExportAborted);
  });

  test('the deck file appears only when the feed ends, equal to a later export; an abort keeps the old file', async () => {
    const { dir, store, items, finish } = await setup(['a', 'b', 'c']);
    const file = path.join(dir, 'deck.tsv');
    fs.writeFileSync(file, 'old deck\n');

    const aborted = startLiveExport({
      results: store,
      batchId: 'b',
      pipeline,
      output: file,
      format: 'anki',
      meta: deck,
    });
    aborted.feed.done(0, items[0]!, await finish(0, 'zero'));
    await aborted.feed.caughtUp(1);
    aborted.feed.abort();
    await assert.rejects(aborted.result, ExportAborted);
    assert.equal(fs.readFileSync(file, 'utf8'), 'old deck\n');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['deck.tsv', 'state.db', 'state.db-shm', 'state.db-wal']);

    const live = startLiveExport({
      results: store,
      batchId: 'b',
      pipeline,
      output: file,
      format: 'anki',
      meta: deck,
    });
    live.feed.done(1, items[1]!, await finish(1, 'one'));
    live.feed.done(2, items[2]!, await finish(2, 'two'));
    // Item 0 was finished before this run: the writer waits for it (it comes from the database at the end).
    await live.feed.caughtUp(0);
    assert.equal(fs.readFileSync(file, 'utf8'), 'old deck\n', 'not replaced before the run ends');
    live.feed.end();
    const written = await live.result;
    assert.equal(written.cards, 3);
    assert.deepEqual(written.tally, { items: 3, withoutCards: 0 });
    const again = path.join(dir, 'again.tsv');
    await exportBatch({ results: store, batchId: 'b', pipeline, output: again, format: 'anki', meta: deck });
    assert.equal(fs.readFileSync(file, 'utf8'), fs.readFileSync(again, 'utf8'));
  });
});
