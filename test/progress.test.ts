import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { progressMode } from '../src/ui/progress.ts';

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
