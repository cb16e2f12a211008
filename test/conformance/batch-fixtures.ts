import assert from 'node:assert/strict';
import { afterEach } from 'node:test';
import type { BatchMeta, BatchStores, JobOutcome } from '../../src/batch/store.ts';
import { FakeClock } from '../../src/core/clock.ts';

/** A backend opened for one test: every `connect()` is another process on the same shared state. */
export interface BatchBackend {
  connect(): Promise<BatchStores>;
  close(): Promise<void>;
}

export type OpenBatchBackend = (clock: FakeClock) => Promise<BatchBackend>;

export const T0 = Date.UTC(2026, 0, 1);
export const STAGES = ['analyze', 'cards'] as const;

export function meta(id: string): BatchMeta {
  return {
    id,
    inputName: 'words.txt',
    inputDigest: 'digest',
    settingsHash: 'settings',
    pipeline: 'vocabulary',
    stages: [...STAGES],
    model: 'test-model',
    baseUrl: 'http://127.0.0.1:1/v1',
    outputPath: null,
    format: 'jsonl',
    settings: { model: 'test-model' },
  };
}

/** A job's outcome as the runner reports it; `token` 1 is the item's first claim. */
export function outcome(
  batchId: string,
  idx: number,
  stage: string,
  extra: Partial<JobOutcome> = {},
): JobOutcome {
  return {
    batchId,
    idx,
    stage,
    token: 1,
    attempts: 1,
    requests: 1,
    promptTokens: 10,
    completionTokens: 5,
    cached: false,
    durationMs: 100,
    requestMs: 80,
    ...extra,
  };
}

export const idxs = (items: readonly { idx: number }[]): number[] => items.map((i) => i.idx);

/** Moves the fake clock to `at` (firing the group commits that fall due on the way). */
export async function setNow(clock: FakeClock, at: number): Promise<void> {
  await clock.advance(at - clock.now());
}

export interface Fixture {
  clock: FakeClock;
  /** The first process: it made the batch. */
  a: BatchStores;
  /** Another process on the same backend. */
  connect(): Promise<BatchStores>;
  id: string;
}

/**
 * For a suite's tests: `setup(n)` opens a fresh backend on a FakeClock at T0 with a batch of `n`
 * loaded items (terms w0, w1, ...); the backend is closed after the test.
 */
export function fixtures(open: OpenBatchBackend): (n: number, id?: string) => Promise<Fixture> {
  const backends: BatchBackend[] = [];
  afterEach(async () => {
    for (const b of backends.splice(0)) await b.close();
  });
  return async (n, id = 'b1') => {
    const clock = new FakeClock(T0);
    const backend = await open(clock);
    backends.push(backend);
    const a = await backend.connect();
    assert.equal(await a.catalog.create(meta(id), 'loader'), true);
    await a.catalog.insertItems(
      id,
      Array.from({ length: n }, (_, i) => ({ idx: i, term: `w${i}`, line: i + 1, context: {} })),
      STAGES,
    );
    await a.catalog.finishLoading(id, n);
    return { clock, a, connect: () => backend.connect(), id };
  };
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
