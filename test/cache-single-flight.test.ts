import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SingleFlight } from '../src/cache/index.ts';

/** A promise the test settles by hand. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('SingleFlight', () => {
  test('20 identical concurrent calls make one upstream call and all get its value', async () => {
    const flight = new SingleFlight();
    const upstream = deferred<string>();
    let calls = 0;
    const fn = (): Promise<string> => {
      calls++;
      return upstream.promise;
    };
    const results = Array.from({ length: 20 }, () => flight.run('k', fn));
    assert.equal(flight.size, 1);
    upstream.resolve('card');
    assert.deepEqual(await Promise.all(results), new Array(20).fill('card'));
    assert.equal(calls, 1);
    assert.equal(flight.size, 0);
  });

  test('different keys run separately', async () => {
    const flight = new SingleFlight();
    let calls = 0;
    const fn = async (): Promise<number> => ++calls;
    const [a, b] = await Promise.all([flight.run('a', fn), flight.run('b', fn)]);
    assert.deepEqual([a, b].sort(), [1, 2]);
    assert.equal(calls, 2);
  });

  test('a rejection reaches every waiter and frees the key for the next call', async () => {
    const flight = new SingleFlight();
    const upstream = deferred<string>();
    const waiters = Array.from({ length: 5 }, () => flight.run('k', () => upstream.promise));
    upstream.reject(new Error('503 from provider'));
    const outcomes = await Promise.allSettled(waiters);
    assert.deepEqual(
      outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).message : 'fulfilled')),
      new Array(5).fill('503 from provider'),
    );
    assert.equal(flight.size, 0);
    assert.equal(await flight.run('k', async () => 'retried'), 'retried');
  });

  test('a function that throws synchronously rejects instead of throwing and frees the key', async () => {
    const flight = new SingleFlight();
    const thrower = (): Promise<string> => {
      throw new Error('bad request');
    };
    await assert.rejects(flight.run('k', thrower), { message: 'bad request' });
    assert.equal(flight.size, 0);
  });

  test('a call that starts after the first one settled runs again', async () => {
    const flight = new SingleFlight();
    let calls = 0;
    const fn = async (): Promise<number> => ++calls;
    assert.equal(await flight.run('k', fn), 1);
    assert.equal(await flight.run('k', fn), 2);
  });
});
