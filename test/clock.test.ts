import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeClock } from '../src/core/clock.ts';

test('a fake clock fires timers in order as time advances, repeating ones until cancelled', async () => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  clock.timer(30, () => fired.push(`once@${clock.now()}`));
  const cancel = clock.timer(20, () => fired.push(`every@${clock.now()}`), { repeat: true });
  await clock.advance(65);
  assert.deepEqual(fired, ['every@20', 'once@30', 'every@40', 'every@60']);
  cancel();
  await clock.advance(100);
  assert.equal(fired.length, 4);
  assert.equal(clock.pending, 0);
});
