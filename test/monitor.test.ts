import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { BatchOverview } from '../src/batch/store.ts';
import { type CommandContext, memoryIo } from '../src/commands/context.ts';
import { monitor } from '../src/commands/monitor.ts';
import { FakeClock } from '../src/core/clock.ts';
import { defaultRow } from '../src/limiter/schema.ts';
import { clipVisible, frameFor, runLive, SCREEN_END, SCREEN_START } from '../src/monitor/live.ts';
import { renderTables, snapshotJson } from '../src/monitor/render.ts';
import {
  type BatchReads,
  buildSnapshot,
  etaMs,
  type MonitorReads,
  ownerParts,
  RATE_WINDOW_MS,
  type RateHistory,
  ratePerMinute,
  recordSamples,
} from '../src/monitor/snapshot.ts';
import { openState } from '../src/store/state.ts';
import { meta, outcome } from './conformance/batch-fixtures.ts';

const T0 = Date.UTC(2026, 0, 1);
/** Text without terminal control sequences. */
const plain = (t: string): string =>
  t.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g'), '');
const KEY = 'https://api.example.com/v1|test-model|0123456789ab';

function batchReads(id: string, done: number, failed = 0, total = 100): BatchReads {
  const overview: BatchOverview = {
    batch: {
      ...meta(id),
      createdAt: T0 - 60_000,
      updatedAt: T0,
      status: 'running',
      total,
      loader: null,
    },
    total,
    done,
    failed,
    requests: done * 2,
    tokens: done * 30,
    promptTokens: done * 20,
    completionTokens: done * 10,
  };
  return {
    overview,
    counts: { total, done, failed, pending: total - done - failed, leased: 4 },
    totals: { requests: done * 2, promptTokens: done * 20, completionTokens: done * 10, cachedJobs: 3 },
    runs: [
      { owner: 'host-a:4242:cafe0001', exclusive: false, startedAt: T0 - 30_000, aliveUntil: T0 + 30_000 },
    ],
    failures:
      failed > 0 ? [{ item: 6, term: '사과', errorKind: 'invalid_response', message: 'no JSON' }] : [],
  };
}

function reads(now: number, batches: BatchReads[], extra: Partial<MonitorReads> = {}): MonitorReads {
  return {
    now,
    store: { kind: 'sqlite', where: '/data/state.db' },
    batches,
    limiter: { now, keys: [] },
    breakers: [],
    breakerWindowMs: 30_000,
    cache: null,
    ...extra,
  };
}

describe('monitor snapshot: rates and ETAs from successive looks', () => {
  test('one look has no rate and no ETA; two looks 30 s apart give items per minute and the time left', () => {
    const first = reads(T0, [batchReads('b1', 10)]);
    let history: RateHistory = recordSamples({}, first);
    const once = buildSnapshot(first, history).batches[0];
    assert.equal(once?.ratePerMin, null);
    assert.equal(once?.etaMs, null);
    const second = reads(T0 + 30_000, [batchReads('b1', 20, 5)]);
    history = recordSamples(history, second);
    const b = buildSnapshot(second, history).batches[0];
    // 15 items finished (10 done, 5 failed) in 30 s: 30 per minute; 75 pending: 2.5 minutes.
    assert.equal(b?.ratePerMin, 30);
    assert.equal(b?.etaMs, 150_000);
  });

  test('the rate covers the last minute: older looks are dropped once a newer one spans it', () => {
    let history: RateHistory = {};
    // 60 items a minute for two minutes, then 6 a minute.
    for (let s = 0; s <= 120; s += 10)
      history = recordSamples(history, reads(T0 + s * 1000, [batchReads('b1', s)]));
    for (let s = 130; s <= 180; s += 10) {
      history = recordSamples(history, reads(T0 + s * 1000, [batchReads('b1', 120 + (s - 120) / 10)]));
    }
    const samples = history['b1'] ?? [];
    assert.deepEqual(
      samples.map((x) => x.at - T0),
      [120_000, 130_000, 140_000, 150_000, 160_000, 170_000, 180_000],
    );
    assert.equal(ratePerMinute(samples), 6);
    assert.ok((samples.at(-1)?.at ?? 0) - (samples[0]?.at ?? 0) <= RATE_WINDOW_MS);
  });

  test('a batch no longer under way is forgotten; a look at the same instant replaces the last', () => {
    let history = recordSamples({}, reads(T0, [batchReads('b1', 1), batchReads('b2', 1)]));
    history = recordSamples(history, reads(T0, [batchReads('b1', 3)]));
    assert.deepEqual(Object.keys(history), ['b1']);
    assert.deepEqual(history['b1'], [{ at: T0, finished: 3 }]);
  });

  test('requeued failures do not make the rate negative; no rate with no progress means no ETA', () => {
    assert.equal(
      ratePerMinute([
        { at: T0, finished: 10 },
        { at: T0 + 60_000, finished: 4 },
      ]),
      0,
    );
    assert.equal(etaMs(10, 0), null);
    assert.equal(etaMs(0, null), 0);
    assert.equal(etaMs(30, 60), 30_000);
  });

  test('runs show host and pid from the owner id; items are numbered from 1', () => {
    assert.deepEqual(ownerParts('host-a:4242:cafe0001'), { host: 'host-a', pid: 4242 });
    assert.deepEqual(ownerParts('A'), { host: 'A', pid: null });
    const b = buildSnapshot(reads(T0, [batchReads('b1', 10, 1)])).batches[0];
    assert.deepEqual(
      b?.runs.map((r) => [r.host, r.pid, r.exclusive]),
      [['host-a', 4242, false]],
    );
    assert.deepEqual(b?.failures, [
      { item: 7, term: '사과', errorKind: 'invalid_response', message: 'no JSON' },
    ]);
    assert.equal(b?.inFlight, 4);
    assert.equal(b?.cachedJobs, 3);
  });

  test('the limiter key shows its rate, what is available, what the provider said and a pause', () => {
    const row = {
      ...defaultRow(KEY),
      rpm: 60,
      rpm_burst: 10,
      configured_rpm: 60,
      header_rpm: 500,
      header_at: T0 - 5000,
      paused_until: T0 + 12_000,
      pause_reason: '429',
      updated_at: T0 - 1000,
    };
    const s = buildSnapshot(reads(T0, [], { limiter: { now: T0, keys: [{ row, shards: [] }] } }));
    assert.deepEqual(s.limiter, [
      {
        key: KEY,
        buckets: [
          {
            kind: 'rpm',
            rate: 60,
            burst: 10,
            available: s.limiter[0]?.buckets[0]?.available,
            configured: 60,
          },
        ],
        providerRpm: 500,
        providerTpm: null,
        learnedRpm: null,
        pausedUntil: T0 + 12_000,
        pauseReason: '429',
        updatedAt: T0 - 1000,
      },
    ]);
    assert.ok((s.limiter[0]?.buckets[0]?.available ?? 0) > 0);
  });
});

describe('monitor renderers', () => {
  const open = {
    key: KEY,
    state: 'open' as const,
    calls: 10,
    failures: 6,
    failureRatio: 0.6,
    openedAt: T0 - 5000,
    retryAtMs: T0 + 25_000,
    consecutiveOpens: 1,
    reason: 'failure ratio 60%',
    lastError: { kind: 'server', message: 'HTTP 503', at: T0 - 5000 },
    probe: null,
    lastActiveAt: T0 - 5000,
  };
  const cache = {
    entries: 40,
    live: 38,
    expired: 2,
    originalBytes: 1000,
    storedBytes: 500,
    compressionRatio: 2,
    hits: 30,
    misses: 10,
    oldest: T0 - 1000,
    newest: T0,
    perModel: {},
    perCodec: {},
    recentRuns: [],
  };

  test('--json: one versioned object, times as ISO strings, durations in seconds', () => {
    const first = reads(T0, [batchReads('b1', 10)]);
    const second = reads(T0 + 30_000, [batchReads('b1', 20, 5)], { breakers: [open], cache });
    const s = buildSnapshot(second, recordSamples(recordSamples({}, first), second));
    const json = snapshotJson(s);
    assert.deepEqual(JSON.parse(JSON.stringify(json)), {
      version: 1,
      at: '2026-01-01T00:00:30.000Z',
      store: { kind: 'sqlite', where: '/data/state.db' },
      batches: [
        {
          id: 'b1',
          input: 'words.txt',
          model: 'test-model',
          pipeline: 'vocabulary',
          status: 'running',
          total: 100,
          done: 20,
          failed: 5,
          pending: 75,
          inFlight: 4,
          requests: 40,
          tokens: 600,
          cachedJobs: 3,
          ratePerMin: 30,
          etaSeconds: 150,
          runs: [
            {
              owner: 'host-a:4242:cafe0001',
              host: 'host-a',
              pid: 4242,
              exclusive: false,
              startedAt: '2025-12-31T23:59:30.000Z',
              aliveUntil: '2026-01-01T00:00:30.000Z',
            },
          ],
          failures: [{ item: 7, term: '사과', errorKind: 'invalid_response', message: 'no JSON' }],
        },
      ],
      limiter: [],
      breakers: [
        {
          key: KEY,
          state: 'open',
          failureRatio: 0.6,
          calls: 10,
          failures: 6,
          windowSeconds: 30,
          retryAt: '2026-01-01T00:00:25.000Z',
          retryInSeconds: 0,
          reason: 'failure ratio 60%',
          lastError: { kind: 'server', message: 'HTTP 503', at: '2025-12-31T23:59:55.000Z' },
        },
      ],
      cache: { hits: 30, misses: 10, hitRatio: 0.75, entries: 40, live: 38 },
    });
  });

  test('tables: a row per batch with its progress, rate, ETA and runs, then limiter, breakers and cache', () => {
    const first = reads(T0, [batchReads('b1', 10)]);
    const second = reads(T0 + 30_000, [batchReads('b1', 20, 5)], {
      breakers: [{ ...open, retryAtMs: T0 + 45_000 }],
      cache,
    });
    const text = renderTables(buildSnapshot(second, recordSamples(recordSamples({}, first), second)), {
      color: false,
    });
    assert.match(text, /^flashcards monitor · \/data\/state\.db · 2026-01-01T00:00:30\.000Z\n/);
    assert.match(
      text,
      /│ b1\s+│ words\.txt\s+│ running\s+│ 20\/5\/100\s+│ 4\s+│ 30\s+│ 2m30s\s+│ host-a:4242\s+│/,
    );
    assert.match(text, /b1: failed item 7 "사과": invalid_response: no JSON\n/);
    assert.match(text, /b1: 4 more failed \(flashcards batches show b1\)\n/);
    assert.match(text, /no limiter state\n/);
    assert.match(text, /│ open\s+│ 6\/10 \(60%\) in 30\.0s\s+│ in 15\.0s\s+│ server: HTTP 503/);
    assert.match(
      text,
      /cache: hit ratio 75% \(30 hits, 10 misses in recent runs\) · 40 entries \(38 live\) · b1 3 jobs from cache\n$/,
    );
    assert.equal(plain(text), text);
  });

  test('a batch without a live run says so; an empty state says there is nothing to monitor', () => {
    const idle = { ...batchReads('b1', 0), runs: [] };
    assert.match(renderTables(buildSnapshot(reads(T0, [idle])), { color: false }), /│ no live run\s+│/);
    assert.match(
      renderTables(buildSnapshot(reads(T0, [])), { color: false }),
      /nothing to monitor yet: no batch under way, and no limiter, breaker or cache state\n$/,
    );
  });
});

describe('monitor live view', () => {
  test('frames start at the top-left, clear each line and what is below, and fit the terminal', () => {
    const frame = frameFor('one\ntwo\nthree\nfour\nfive\n', { columns: 3, rows: 4 });
    assert.equal(frame, '\u001b[Hone\u001b[K\ntwo\u001b[K\n...\u001b[0m\u001b[K\n\u001b[J');
    assert.equal(clipVisible('\u001b[31mred\u001b[39m text', 5), '\u001b[31mred\u001b[39m t\u001b[0m');
    // Hangul takes two columns.
    assert.equal(clipVisible('사과 apple', 4), '사과\u001b[0m');
  });

  test('redraws every interval with the rate of successive looks, reads the cache less often, and stops on the signal', async () => {
    const clock = new FakeClock(T0);
    const stop = new AbortController();
    const writes: string[] = [];
    const cacheLooks: boolean[] = [];
    let done = 0;
    const live = runLive({
      collect: async (withCache) => {
        cacheLooks.push(withCache);
        done += 2;
        return reads(clock.now(), [batchReads('b1', done)]);
      },
      render: (s) => `rate ${s.batches[0]?.ratePerMin ?? '-'} eta ${s.batches[0]?.etaMs ?? '-'}\n`,
      screen: { write: (t) => void writes.push(t), columns: 80, rows: 24 },
      clock,
      intervalMs: 1000,
      cacheEveryMs: 3000,
      signal: stop.signal,
    });
    const frames = () => writes.filter((w) => w.startsWith('\u001b[H'));
    const waitFrames = async (n: number) => {
      while (frames().length < n) await new Promise((r) => setImmediate(r));
    };
    await waitFrames(1);
    for (let i = 2; i <= 5; i++) {
      await clock.advance(1000);
      await waitFrames(i);
    }
    stop.abort();
    await live;
    assert.equal(writes[0], SCREEN_START);
    assert.equal(writes.at(-1), SCREEN_END);
    assert.deepEqual(
      frames().map((f) => plain(f).trim()),
      // 2 items a second: 120 a minute; 98, 96, ... left.
      [
        'rate - eta -',
        'rate 120 eta 48000',
        'rate 120 eta 47000',
        'rate 120 eta 46000',
        'rate 120 eta 45000',
      ],
    );
    assert.deepEqual(cacheLooks, [true, false, false, true, false]);
  });

  test('a look that fails is shown above the last frame and tried again at the next interval', async () => {
    const clock = new FakeClock(T0);
    const stop = new AbortController();
    const writes: string[] = [];
    let n = 0;
    const live = runLive({
      collect: async () => {
        n++;
        if (n === 2) throw new Error('store not answering');
        return reads(clock.now(), []);
      },
      render: () => `look ${n}\n`,
      screen: { write: (t) => void writes.push(t), columns: 80, rows: 24 },
      clock,
      intervalMs: 1000,
      cacheEveryMs: 10_000,
      signal: stop.signal,
    });
    const frames = () => writes.filter((w) => w.startsWith('\u001b[H'));
    const waitFrames = async (k: number) => {
      while (frames().length < k) await new Promise((r) => setImmediate(r));
    };
    await waitFrames(1);
    await clock.advance(1000);
    await waitFrames(2);
    await clock.advance(1000);
    await waitFrames(3);
    stop.abort();
    await live;
    assert.deepEqual(
      frames().map((f) => plain(f).trim()),
      ['look 1', 'could not read the state: store not answering (trying again)\nlook 1', 'look 3'],
    );
  });
});

describe('flashcards monitor (command, on state.db)', () => {
  function context(home: string, clock: FakeClock) {
    const io = memoryIo();
    const ctx: CommandContext = { home, cwd: home, env: {}, io, clock, verbose: false };
    return { ctx, io };
  }

  test('with no data directory it says so, exits 0 and creates nothing', async () => {
    const home = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-mon-')), 'missing');
    const { ctx, io } = context(home, new FakeClock(T0));
    assert.equal(await monitor(ctx, { json: false, once: true }), 0);
    assert.match(io.stdout.join(''), /^nothing to monitor yet: no state in .*missing/);
    assert.equal(await monitor(ctx, { json: true, once: true }), 0);
    const json = JSON.parse(io.stdout[1] ?? '') as Record<string, unknown>;
    assert.deepEqual([json['version'], json['batches'], json['cache']], [1, [], null]);
    assert.equal(fs.existsSync(home), false);
  });

  test('--json shows the running batch with its run, progress and in-flight items, and not a finished batch', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-mon-'));
    const clock = new FakeClock(T0);
    const state = await openState({ home, clock, create: true });
    const { catalog, queue, results } = state.batches;
    for (const id of ['b1', 'b2']) {
      await catalog.create(meta(id), 'loader');
      await catalog.insertItems(
        id,
        Array.from({ length: 4 }, (_, i) => ({ idx: i, term: `w${i}`, line: i + 1, context: {} })),
        ['analyze', 'cards'],
      );
      await catalog.finishLoading(id, 4);
    }
    await catalog.setStatus('b2', 'done');
    await queue.joinRun('b1', 'host-a:4242:cafe0001', { exclusive: true, aliveMs: 30_000 });
    await queue.claim('b1', 'host-a:4242:cafe0001', 30_000, 2);
    await results.completeJob(outcome('b1', 0, 'analyze'), { ok: 1 }, false);
    await results.completeJob(outcome('b1', 0, 'cards'), { ok: 2 }, true);
    await state.close();

    const { ctx, io } = context(home, clock);
    assert.equal(await monitor(ctx, { json: true, once: true }), 0);
    const json = JSON.parse(io.stdout.join('')) as {
      batches: { id: string; done: number; total: number; inFlight: number; runs: unknown[] }[];
      cache: unknown;
    };
    assert.deepEqual(
      json.batches.map((b) => [b.id, b.done, b.total, b.inFlight]),
      [['b1', 1, 4, 1]],
    );
    assert.deepEqual(json.batches[0]?.runs, [
      {
        owner: 'host-a:4242:cafe0001',
        host: 'host-a',
        pid: 4242,
        exclusive: true,
        startedAt: '2026-01-01T00:00:00.000Z',
        aliveUntil: '2026-01-01T00:00:30.000Z',
      },
    ]);
    // No cache.db: read as empty, and not created.
    assert.deepEqual(json.cache, { hits: 0, misses: 0, hitRatio: null, entries: 0, live: 0 });
    assert.equal(fs.existsSync(path.join(home, 'cache.db')), false);

    // Once the run's registration lapses, the batch is shown with no live run.
    await clock.advance(30_001);
    assert.equal(await monitor(ctx, { json: false, once: true }), 0);
    assert.match(
      io.stdout.at(-1) ?? '',
      /│ b1\s+│ words\.txt\s+│ running\s+│ 1\/0\/4\s+│ 0\s+│ -\s+│ -\s+│ no live run\s+│/,
    );
  });

  test('--interval below 100ms is refused with the value typed', async () => {
    const { ctx } = context(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-mon-')), new FakeClock(T0));
    await assert.rejects(
      monitor(ctx, { json: false, once: true, interval: '10ms' }),
      /--interval must be at least 100ms, got "10ms"/,
    );
  });
});
