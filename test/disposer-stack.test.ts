import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DisposerStack, withDisposer } from '../src/core/disposer-stack.ts';

describe('DisposerStack', () => {
  test('runs cleanups last registered first, all of them, and rethrows the first failure', async () => {
    const stack = new DisposerStack();
    const ran: string[] = [];
    stack.defer(() => ran.push('a'));
    stack.defer(() => {
      ran.push('b');
      throw new Error('b failed');
    });
    stack.use({ close: () => ran.push('c') });
    stack.use({ [Symbol.asyncDispose]: async () => void ran.push('d') });
    await assert.rejects(stack.disposeAsync(), /b failed/);
    assert.deepEqual(ran, ['d', 'c', 'b', 'a']);
    await stack.disposeAsync();
    assert.equal(ran.length, 4, 'a second dispose runs nothing');
    assert.throws(() => stack.defer(() => {}), /already disposed/);
  });

  test('withDisposer disposes after the body, and the body error wins over a cleanup error', async () => {
    const ran: string[] = [];
    assert.equal(
      await withDisposer(async (stack) => {
        stack.defer(() => ran.push('cleanup'));
        return 42;
      }),
      42,
    );
    assert.deepEqual(ran, ['cleanup']);
    await assert.rejects(
      withDisposer(async (stack) => {
        stack.defer(() => {
          throw new Error('cleanup failed');
        });
        throw new Error('body failed');
      }),
      /body failed/,
    );
  });
});
