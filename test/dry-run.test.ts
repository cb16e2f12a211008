import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ResponseCache } from '../src/cache/index.ts';
import { type CommandContext, memoryIo } from '../src/commands/context.ts';
import { dryRun } from '../src/commands/dry-run.ts';
import { loadSettings } from '../src/config/index.ts';
import { FakeClock } from '../src/core/clock.ts';
import { dataPaths } from '../src/core/home.ts';
import { seededRandom } from '../src/core/random.ts';
import { cacheKeys } from '../src/job/execute.ts';
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
    cache.put(key, { body, model: settings.model, term: '사과', stage: stage.name });
    cache.close();
  };
  const estimate = async (): Promise<{ code: number; cacheHits: number; calls: number }> => {
    const io = memoryIo();
    const code = await dryRun({ ...ctx, io }, { input: 'words.txt', flags, json: true });
    const out = JSON.parse(io.stdout.join('')) as { cacheHits: number; calls: number };
    return { code, cacheHits: out.cacheHits, calls: out.calls };
  };
  return { cacheAnswer, estimate };
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
