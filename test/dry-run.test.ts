import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ResponseCache } from '../src/cache/index.ts';
import { type CommandContext, memoryIo } from '../src/commands/context.ts';
import { estimatePace, type PaceInput } from '../src/commands/dry-run/pace.ts';
import { dryRun } from '../src/commands/dry-run.ts';
import { loadSettings } from '../src/config/index.ts';
import { FakeClock } from '../src/core/clock.ts';
import { dataPaths } from '../src/core/home.ts';
import { providerKey } from '../src/core/provider-key.ts';
import { seededRandom } from '../src/core/random.ts';
import { openDatabase } from '../src/db/open.ts';
import { cacheKeys } from '../src/job/execute.ts';
import { defaultRow, type KeyRow } from '../src/limiter/schema.ts';
import { sqliteLimiterStore } from '../src/limiter/sqlite-store.ts';
import { loadPipeline } from '../src/pipeline/registry.ts';

/** A one-stage pipeline whose only request depends on the term alone, and one word to ask about. */
function project() {
  const dir = mkdtempSync(join(tmpdir(), 'fc-dry-'));
  const home = join(dir, 'home');
  mkdirSync(home);
  writeFileSync(
    join(dir, 'p.yaml'),
    [
      'name: one',
      'stages:',
      '  - name: one',
      '    user: "Term: {{term}}"',
      '    schema: { type: object, properties: { a: { type: string } } }',
      'cards:',
      '  from: one',
      '  fields: { Front: "{{term}}", Back: "{{one.a}}" }',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'words.txt'), '사과\n');
  const clock = new FakeClock();
  const ctx: CommandContext = { home, cwd: dir, env: {}, io: memoryIo(), clock, verbose: false };
  const flags = { pipeline: 'p.yaml', provider: 'mock' };
  /** Stores `body` in cache.db under the key process would look up for the word. */
  const cacheAnswer = async (body: string): Promise<void> => {
    const { settings } = await loadSettings({ cwd: dir, env: {}, flags });
    const pipeline = loadPipeline(settings.pipeline, dir, settings);
    const stage = pipeline.stages[0]!;
    const key = cacheKeys(settings)(
      stage,
      stage.buildMessages({ item: { term: '사과', context: {} }, previous: {} }),
    );
    const cache = ResponseCache.open(dataPaths(home).cacheDb, settings.cache, {
      clock,
      random: seededRandom(1),
    });
    await cache.put(key, { body, model: settings.model, term: '사과', stage: stage.name });
    await cache.close();
  };
  /** Stores what a run would have learned about the key the dry run uses (mock, no API key). */
  const learn = async (limits: { rpm: number | null; tpm: number | null }, latencyMs?: number) => {
    const { settings } = await loadSettings({ cwd: dir, env: {}, flags });
    const key = providerKey({ baseUrl: settings.baseUrl, model: settings.model, apiKey: settings.apiKey });
    const db = openDatabase(dataPaths(home).stateDb);
    const store = sqliteLimiterStore(db, { clock });
    await store.learnLimits(key, limits);
    if (latencyMs !== undefined) await store.recordLatency(key, { p50Ms: latencyMs, p75Ms: latencyMs });
    db.close();
  };
  /** The dry run's JSON object, with extra flags (as typed on the command line) and options. */
  const json = async (
    extra: Record<string, unknown> = {},
    options: { output?: string } = {},
  ): Promise<Record<string, unknown>> => {
    const io = memoryIo();
    const code = await dryRun(
      { ...ctx, io },
      { input: 'words.txt', flags: { ...flags, ...extra }, json: true, ...options },
    );
    assert.equal(code, 0);
    return JSON.parse(io.stdout.join('')) as Record<string, unknown>;
  };
  const estimate = async (): Promise<{ code: number; cacheHits: number; calls: number }> => {
    const io = memoryIo();
    const code = await dryRun({ ...ctx, io }, { input: 'words.txt', flags, json: true });
    const out = JSON.parse(io.stdout.join('')) as { cacheHits: number; calls: number };
    return { code, cacheHits: out.cacheHits, calls: out.calls };
  };
  return { dir, home, ctx, flags, cacheAnswer, estimate, learn, json };
}

describe('process --dry-run and the cache', () => {
  test('a cached answer that fits the stage is a hit, no call needed', async () => {
    const p = project();
    await p.cacheAnswer('{"a":"apple"}');
    assert.deepEqual(await p.estimate(), { code: 0, cacheHits: 1, calls: 0 });
  });

  test('a cached body that is not JSON counts as a call, as process would make one, instead of crashing', async () => {
    const p = project();
    await p.cacheAnswer('{"a":"apple"');
    assert.deepEqual(await p.estimate(), { code: 0, cacheHits: 0, calls: 1 });
  });

  test('a cached answer that no longer fits the stage schema counts as a call', async () => {
    const p = project();
    await p.cacheAnswer('{"b":1}');
    assert.deepEqual(await p.estimate(), { code: 0, cacheHits: 0, calls: 1 });
  });
});

describe('process --dry-run estimates time at the limit the run will go at', () => {
  const row = (fields: Partial<KeyRow>): KeyRow => ({ ...defaultRow('k'), ...fields });
  const DAY = Date.UTC(2026, 2, 1);
  const input = (o: Partial<PaceInput>): PaceInput => ({
    configured: { rpm: undefined, tpm: undefined },
    toldBy: { rpm: 'by default', tpm: 'by default' },
    stored: undefined,
    nowMs: DAY,
    calls: 60,
    tokensPerCall: 2000,
    concurrency: undefined,
    maxConcurrency: 256,
    ...o,
  });

  test('a configured limit: the rate and who told it', () => {
    const pace = estimatePace(
      input({ configured: { rpm: 600, tpm: undefined }, toldBy: { rpm: 'told by --rpm', tpm: '' } }),
    );
    assert.equal(pace.requestsPerMinute, 600);
    assert.equal(pace.durationMs, 6000);
    assert.equal(pace.boundBy, 'rpm');
    assert.equal(pace.said, '600 requests/min, told by --rpm');
  });

  test('limits learned for the key lower a configured one, never raise it', () => {
    const learned = row({ header_rpm: 300, header_at: DAY - 86_400_000 });
    const lower = estimatePace(
      input({
        configured: { rpm: 600, tpm: undefined },
        toldBy: { rpm: 'set in .flashcardrc', tpm: '' },
        stored: learned,
      }),
    );
    assert.equal(lower.requestsPerMinute, 300);
    assert.equal(lower.said, "300 requests/min, learned from the provider's headers on 2026-02-28");
    assert.deepEqual(lower.rpm?.source, { kind: 'headers', at: DAY - 86_400_000 });
    const ceiling = estimatePace(
      input({
        configured: { rpm: 100, tpm: undefined },
        toldBy: { rpm: 'set in .flashcardrc', tpm: '' },
        stored: learned,
      }),
    );
    assert.equal(ceiling.said, '100 requests/min, set in .flashcardrc');
    const aimd = estimatePace(input({ stored: row({ aimd_rpm: 50, aimd_at: DAY }) }));
    assert.equal(aimd.requestsPerMinute, 50);
    assert.equal(aimd.said, "50 requests/min, learned from the provider's 429s since 2026-03-01");
  });

  test('a token budget counts through the tokens a request books', () => {
    const pace = estimatePace(
      input({
        configured: { rpm: 600, tpm: 40_000 },
        toldBy: { rpm: 'told by --rpm', tpm: 'told by --tpm' },
      }),
    );
    assert.equal(pace.boundBy, 'tpm');
    assert.equal(pace.requestsPerMinute, 20);
    assert.equal(pace.durationMs, 180_000);
    assert.equal(pace.said, '40000 tokens/min, told by --tpm; ~2000 tokens booked a request');
  });

  test('steered, the rate alone sets the pace; a pinned concurrency bounds it at concurrency / latency', () => {
    const slow = row({
      header_rpm: 600,
      header_at: DAY,
      latency_p50_ms: 10_000,
      latency_p75_ms: 12_000,
      latency_at: DAY,
    });
    const steered = estimatePace(input({ stored: slow }));
    assert.equal(steered.requestsPerMinute, 600);
    assert.equal(steered.latencyFrom, 'measured');
    const pinned = estimatePace(input({ stored: slow, concurrency: 8 }));
    assert.equal(pinned.boundBy, 'concurrency');
    assert.equal(pinned.requestsPerMinute, 48);
    assert.equal(
      pinned.said,
      '8 requests in flight (--concurrency) at ~10.0s a request (the latency runs on this key saw)',
    );
  });

  test('with no limit known it says what it assumes', () => {
    const pace = estimatePace(input({}));
    assert.equal(pace.boundBy, 'unknown');
    assert.equal(pace.requestsPerMinute, 3840);
    assert.equal(
      pace.said,
      "no limit known: assumes up to 256 requests in flight at ~4.0s a request (assumed); a run learns the limit from the provider's headers",
    );
  });

  test('the dry run reads what runs learned for this key from state.db, and says so in --json', async () => {
    const p = project();
    const before = await p.json();
    assert.equal((before['pace'] as { boundBy: string }).boundBy, 'unknown');
    await p.learn({ rpm: 120, tpm: null }, 500);
    const after = await p.json();
    assert.deepEqual(after['pace'], {
      requestsPerMinute: 120,
      boundBy: 'rpm',
      rpm: { value: 120, from: 'headers', at: '2026-01-01T00:00:00.000Z' },
      tpm: null,
      latencyMs: 500,
      latencyFrom: 'measured',
      said: "120 requests/min, learned from the provider's headers on 2026-01-01",
    });
    assert.equal(after['estimatedDurationMs'], 500);
    const told = await p.json({ 'limiter.rpm': 60 });
    assert.equal((told['pace'] as { said: string }).said, '60 requests/min, told by --rpm');
  });

  test('the dry run checks the output path as the run would', async () => {
    const p = project();
    assert.deepEqual((await p.json())['output'], { path: join(p.dir, 'words.deck.tsv'), format: 'anki' });
    assert.deepEqual((await p.json({}, { output: 'deck.apkg' }))['output'], {
      path: join(p.dir, 'deck.apkg'),
      format: 'apkg',
    });
    await assert.rejects(
      dryRun(
        { ...p.ctx, io: memoryIo() },
        { input: 'words.txt', flags: p.flags, json: true, output: 'no/x.tsv' },
      ),
      /directory no\/ does not exist/,
    );
  });
});
