import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { memoryIo } from '../src/commands/context.ts';
import { FakeClock } from '../src/core/clock.ts';
import {
  createProgress,
  type LiveFigures,
  type ProgressMode,
  type ProgressState,
  progressLine,
  progressMode,
} from '../src/ui/progress.ts';

const shown = { quiet: false, json: false, progress: true };

describe('progressMode', () => {
  test('a sized terminal gets the spinner; pipes and cron get plain lines', () => {
    assert.equal(progressMode({ isTTY: true, columns: 120 }, shown), 'spinner');
    assert.equal(progressMode({ isTTY: false, columns: undefined }, shown), 'lines');
  });

  test('a terminal that reports no width gets plain lines, not a spinner that clears lines forever', () => {
    assert.equal(progressMode({ isTTY: true, columns: 0 }, shown), 'lines');
    assert.equal(progressMode({ isTTY: true, columns: undefined }, shown), 'lines');
  });

  test('--quiet, --json and --no-progress show nothing', () => {
    const tty = { isTTY: true, columns: 80 };
    assert.equal(progressMode(tty, { ...shown, quiet: true }), 'off');
    assert.equal(progressMode(tty, { ...shown, json: true }), 'off');
    assert.equal(progressMode(tty, { ...shown, progress: false }), 'off');
  });
});

describe('progress notices', () => {
  /** A progress display writing to memory; its periodic line never comes within a test. */
  const display = async (mode: ProgressMode) => {
    const io = memoryIo();
    const progress = await createProgress({
      io,
      mode,
      clock: new FakeClock(0),
      intervalMs: 60_000,
      lastStage: 'cards',
      maxWaitMs: 180_000,
    });
    return { io, progress };
  };

  test('the provider going down and coming back each get a line of their own, once', async () => {
    const { io, progress } = await display('lines');
    const move = (from: string, to: string): void =>
      progress.emit({ type: 'breaker_transition', key: 'k', from, to, cause: 'connection refused' });
    move('closed', 'open');
    move('open', 'half_open');
    move('half_open', 'open');
    move('open', 'half_open');
    move('half_open', 'closed');
    progress.stop();
    assert.deepEqual(io.stderr, [
      'warning: requests paused, the provider is failing: connection refused; the run gives up after 3m00s of this (--max-wait)\n',
      'provider answering again: requests resumed\n',
    ]);
  });

  test('with progress off there are no notices either', async () => {
    const { io, progress } = await display('off');
    progress.emit({ type: 'breaker_transition', key: 'k', from: 'closed', to: 'open', cause: 'x' });
    progress.stop();
    assert.deepEqual(io.stderr, []);
  });
});

describe('the progress line', () => {
  const state = (over: Partial<ProgressState> = {}): ProgressState => ({
    total: 500,
    alreadyDone: 0,
    itemsDone: 117,
    itemsFailed: 3,
    cacheHits: 0,
    retries: 0,
    promptTokens: 900_000,
    completionTokens: 300_000,
    breaker: { state: 'closed', until: null },
    ratePerSec: 2,
    ...over,
  });
  const live: LiveFigures = {
    inFlight: 14,
    limit: 32,
    pace: { rpm: 600, tpm: null, source: 'learned' },
    batch: { total: 500, done: 240, failed: 3 },
  };

  test('shows the whole batch, requests in flight, the pace and where it comes from, tokens and cost, ETA', () => {
    assert.equal(
      progressLine(state(), live, 0, 0.42),
      '240/500 items (3 failed) | 14 in flight (up to 32) | pace 600/min (learned) | 1.2M tokens, ~$0.42 | ETA 2m09s',
    );
  });

  test('names a breaker that is not closed and the time to its next probe', () => {
    const open = state({ breaker: { state: 'open', until: 12_000 } });
    assert.match(progressLine(open, live, 0, null), / \| breaker open, next probe in 12\.0s \| /);
    const isolated = state({ breaker: { state: 'isolated', until: null } });
    assert.match(progressLine(isolated, live, 0, null), /breaker isolated, until closed by hand/);
  });

  test('without live figures (or a price) it shows what the events said', () => {
    assert.equal(
      progressLine(state({ ratePerSec: 0 }), undefined, 0, null),
      '117/500 items (3 failed) | 1.2M tokens | ETA ?',
    );
  });

  test('without a terminal the same line comes every interval, on the clock', async () => {
    const io = memoryIo();
    const clock = new FakeClock(0);
    const progress = await createProgress({
      io,
      mode: 'lines',
      clock,
      intervalMs: 10_000,
      lastStage: 'cards',
      live: async () => live,
    });
    progress.emit({
      type: 'run_started',
      batchId: 'b',
      input: 'w.txt',
      total: 500,
      remaining: 500,
      resumed: false,
      model: 'm',
      baseUrl: 'u',
      concurrency: 'steered',
    });
    await clock.advance(20_000);
    progress.stop();
    await clock.advance(20_000);
    assert.equal(io.stderr.length, 2);
    assert.match(
      io.stderr[1] ?? '',
      /^progress: 240\/500 items \(3 failed\) \| 14 in flight \(up to 32\) \| /,
    );
  });
});
