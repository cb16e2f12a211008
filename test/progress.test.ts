import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { memoryIo } from '../src/commands/context.ts';
import { createProgress, type ProgressMode, progressMode } from '../src/ui/progress.ts';

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
      now: () => 0,
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
