import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { openSqliteBatchStores } from '../src/batch/sqlite-stores.ts';
import { batchesList, batchesShow } from '../src/commands/batches.ts';
import { type CommandContext, memoryIo } from '../src/commands/context.ts';
import { FakeClock } from '../src/core/clock.ts';
import { openDatabase } from '../src/db/open.ts';
import { meta, outcome, STAGES, T0 } from './conformance/batch-fixtures.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function setup() {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-batches-')));
  dirs.push(root);
  const home = path.join(root, 'home');
  const clock = new FakeClock(T0);
  const io = memoryIo();
  const ctx: CommandContext = { home, cwd: root, env: {}, io, clock, verbose: false };
  return { root, home, clock, io, ctx };
}

/**
 * A batch of `n` items in `home`'s state.db, as a run leaves it: every item done through both
 * stages (10 prompt + 5 completion tokens a job) except those in `failed`, which failed their
 * first stage.
 */
async function seed(
  home: string,
  clock: FakeClock,
  id: string,
  n: number,
  opts: { model?: string; failed?: number[] } = {},
): Promise<void> {
  fs.mkdirSync(home, { recursive: true });
  const db = openDatabase(path.join(home, 'state.db'));
  try {
    const { catalog, queue, results } = openSqliteBatchStores(db, clock);
    await catalog.create({ ...meta(id), model: opts.model ?? 'test-model' }, 'loader');
    await catalog.insertItems(
      id,
      Array.from({ length: n }, (_, i) => ({ idx: i, term: `w${i}`, line: i + 1, context: {} })),
      STAGES,
    );
    await catalog.finishLoading(id, n);
    await queue.claim(id, 'run-1', 60_000, n);
    for (let idx = 0; idx < n; idx++) {
      if (opts.failed?.includes(idx)) {
        await results.failJob(outcome(id, idx, 'analyze'), 'server', 'provider returned HTTP 500');
        continue;
      }
      await results.completeJob(outcome(id, idx, 'analyze'), { term: `w${idx}` }, false);
      await results.completeJob(outcome(id, idx, 'cards'), { cards: [] }, true);
    }
    await results.flush();
  } finally {
    db.close();
  }
}

describe('batches list', () => {
  test('with no batches says so on stdout, and --json gives an empty list', async () => {
    const { ctx, io } = setup();
    assert.equal(await batchesList(ctx, { json: false }), 0);
    assert.equal(await batchesList(ctx, { json: true }), 0);
    assert.deepEqual(io.stdout, ['no batches yet\n', '{"batches":[]}\n']);
    assert.deepEqual(io.stderr, []);
  });

  test('each batch costs its tokens at its model price; a model without a price costs null and shows "-"', async () => {
    const { ctx, io, home, clock } = setup();
    await seed(home, clock, 'b1priced00001', 3, { model: 'gpt-4o-mini' });
    await seed(home, clock, 'b2unpriced001', 2);
    assert.equal(await batchesList(ctx, { json: true }), 0);
    const { batches } = JSON.parse(io.stdout.join('')) as { batches: Record<string, unknown>[] };
    const byId = Object.fromEntries(batches.map((b) => [b['id'], b]));
    // 3 items x 2 stages x (10 prompt + 5 completion) at 0.15 / 0.6 USD per 1M tokens.
    assert.deepEqual(
      ['tokens', 'promptTokens', 'completionTokens', 'cost'].map((k) => byId['b1priced00001']?.[k]),
      [90, 60, 30, (60 * 0.15 + 30 * 0.6) / 1_000_000],
    );
    assert.equal(byId['b2unpriced001']?.['cost'], null);

    io.stdout.length = 0;
    assert.equal(await batchesList(ctx, { json: false }), 0);
    const text = io.stdout.join('');
    assert.match(text, /│ b1priced00001 │ .* │ 3\/0\/3 +│ 90 +│ \$0\.0000 │ gpt-4o-mini │/);
    assert.match(text, /│ b2unpriced001 │ .* │ 2\/0\/2 +│ 60 +│ - +│ test-model +│/);
    assert.match(
      text,
      /│ id +│ input +│ created +│ status +│ done\/failed\/total │ tokens │ cost +│ model +│/,
    );
    assert.deepEqual(io.stderr, []);
  });

  test('prices from the configuration count, over the built-in ones', async () => {
    const { ctx, io, home, clock, root } = setup();
    fs.writeFileSync(
      path.join(root, '.flashcardrc'),
      'prices:\n  test-model: { input: 1000, output: 2000 }\n',
    );
    await seed(home, clock, 'b1', 1);
    await batchesList(ctx, { json: true });
    const [b] = (JSON.parse(io.stdout.join('')) as { batches: { cost: number }[] }).batches;
    assert.equal(b?.cost, (20 * 1000 + 10 * 2000) / 1_000_000);
  });

  test('a broken config file does not hide the batches: built-in prices, and a warning on stderr', async () => {
    const { ctx, io, home, clock, root } = setup();
    fs.writeFileSync(path.join(root, '.flashcardrc'), 'concurency: 3\n');
    await seed(home, clock, 'b1', 1, { model: 'gpt-4o-mini' });
    assert.equal(await batchesList(ctx, { json: true }), 0);
    const [b] = (JSON.parse(io.stdout.join('')) as { batches: { cost: number }[] }).batches;
    assert.equal(b?.cost, (20 * 0.15 + 10 * 0.6) / 1_000_000);
    assert.match(io.stderr.join(''), /^warning: costs use the built-in prices: .*concurency/);
  });
});

describe('batches show', () => {
  test('takes a unique prefix of the id, like cache show', async () => {
    const { ctx, io, home, clock } = setup();
    await seed(home, clock, 'b1a2b3c4d5e6', 2);
    await seed(home, clock, 'b9ffffffffff', 1);
    assert.equal(await batchesShow(ctx, { id: 'b1a', json: true }), 0);
    assert.equal((JSON.parse(io.stdout.join('')) as { id: string }).id, 'b1a2b3c4d5e6');
  });

  test('the full id wins over a longer id it is a prefix of', async () => {
    const { ctx, io, home, clock } = setup();
    await seed(home, clock, 'b1a2b3c4d5e6', 1);
    await seed(home, clock, 'b1a2b3c4d5e6-2', 1);
    await batchesShow(ctx, { id: 'b1a2b3c4d5e6', json: true });
    assert.equal((JSON.parse(io.stdout.join('')) as { id: string }).id, 'b1a2b3c4d5e6');
  });

  test('an ambiguous prefix is an error naming the candidates (exit 2); no match is "no batch" (exit 2)', async () => {
    const { ctx, home, clock } = setup();
    await seed(home, clock, 'b1a2b3c4d5e6', 1);
    await seed(home, clock, 'b1a9ffffffff', 1);
    await assert.rejects(batchesShow(ctx, { id: 'b1a', json: false }), {
      exitCode: 2,
      message:
        /^batch id prefix "b1a" is ambiguous: it matches (b1a2b3c4d5e6|b1a9ffffffff) \(words\.txt\), (b1a2b3c4d5e6|b1a9ffffffff) \(words\.txt\)$/,
      hint: 'give more characters of the id',
    });
    await assert.rejects(batchesShow(ctx, { id: 'b7', json: false }), {
      exitCode: 2,
      message: 'no batch b7',
    });
  });

  test('numbers failed items as the input does, from 1, in the text and in --json alike', async () => {
    const { ctx, io, home, clock } = setup();
    await seed(home, clock, 'b1', 4, { failed: [2] });
    await batchesShow(ctx, { id: 'b1', json: true });
    const shown = JSON.parse(io.stdout.join('')) as { failures: { item: number; term: string }[] };
    assert.deepEqual(
      shown.failures.map((f) => [f.item, f.term]),
      [[3, 'w2']],
    );
    io.stdout.length = 0;
    await batchesShow(ctx, { id: 'b1', json: false });
    const text = io.stdout.join('');
    assert.match(text, /^failed item 3 "w2": server: provider returned HTTP 500$/m);
    assert.match(text, /^items: 3 done, 1 failed, 0 pending of 4$/m);
    assert.match(text, /│ analyze │ 3 +│ 1 +│/);
    assert.deepEqual(io.stderr, []);
  });
  test('groups failed items by cause, most frequent first, with a count and the first item as example', async () => {
    const { ctx, io, home, clock } = setup();
    await seed(home, clock, 'b1', 6, { failed: [1, 2, 4] });
    await batchesShow(ctx, { id: 'b1', json: true });
    const shown = JSON.parse(io.stdout.join('')) as { failureGroups: unknown[] };
    assert.deepEqual(shown.failureGroups, [
      {
        errorKind: 'server',
        message: 'provider returned HTTP 500',
        count: 3,
        example: { item: 2, term: 'w1', message: 'provider returned HTTP 500' },
      },
    ]);
    io.stdout.length = 0;
    await batchesShow(ctx, { id: 'b1', json: false });
    assert.match(
      io.stdout.join(''),
      /^failures by cause:\n {2}3× server: provider returned HTTP 500 \(e\.g\. item 2 "w1"\)$/m,
    );
  });
});
