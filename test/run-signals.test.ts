import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runSignals } from '../src/batch/run-signals.ts';
import { FakeClock } from '../src/core/clock.ts';

/** The process's signals (first and second Ctrl-C) and a run's signals on a fake clock. */
function setup(deadlineInMs: number | undefined, graceMs = 5000) {
  const clock = new FakeClock(0);
  const outer = { hard: new AbortController(), stop: new AbortController() };
  const run = runSignals({
    signal: outer.hard.signal,
    stopSignal: outer.stop.signal,
    deadlineInMs,
    graceMs,
    clock,
  });
  const state = (): [boolean, boolean] => [run.stopSignal.aborted, run.signal.aborted];
  return { clock, outer, run, state };
}

describe('runSignals', () => {
  test('without a deadline nothing is scheduled and nothing stops by itself', async () => {
    const { clock, state } = setup(undefined);
    assert.equal(clock.pending, 0);
    await clock.advance(86_400_000);
    assert.deepEqual(state(), [false, false]);
  });

  test('at the deadline new work stops; requests in flight are cancelled exactly graceMs later', async () => {
    const { clock, state } = setup(60_000, 5000);
    await clock.advance(59_999);
    assert.deepEqual(state(), [false, false]);
    await clock.advance(1);
    assert.deepEqual(state(), [true, false], 'stop at the deadline, requests in flight go on');
    await clock.advance(4999);
    assert.deepEqual(state(), [true, false]);
    await clock.advance(1);
    assert.deepEqual(state(), [true, true], 'cancelled at the end of the grace');
    assert.equal(clock.pending, 0);
  });

  test('a deadline already passed stops at once', async () => {
    const { clock, state } = setup(-10, 100);
    await clock.advance(0);
    assert.deepEqual(state(), [true, false]);
    await clock.advance(100);
    assert.deepEqual(state(), [true, true]);
  });

  test('dispose cancels the deadline, and the grace once it has begun', async () => {
    const before = setup(1000);
    before.run.dispose();
    assert.equal(before.clock.pending, 0);
    await before.clock.advance(10_000);
    assert.deepEqual(before.state(), [false, false]);

    const during = setup(1000, 5000);
    await during.clock.advance(1000);
    during.run.dispose();
    assert.equal(during.clock.pending, 0);
    await during.clock.advance(10_000);
    assert.deepEqual(during.state(), [true, false], 'the run ended by itself within the grace');
  });

  test('the first Ctrl-C stops new work only; the second cancels requests in flight', () => {
    const { outer, state } = setup(undefined);
    outer.stop.abort();
    assert.deepEqual(state(), [true, false]);
    outer.hard.abort();
    assert.deepEqual(state(), [true, true]);
  });
});
