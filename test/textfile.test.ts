import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FakeClock } from '../src/core/clock.ts';
import { ExitCode, FlashcardsError } from '../src/core/errors.ts';
import {
  formatTextfile,
  lastSuccessIn,
  type RunWork,
  TEXTFILE_METRIC_NAMES,
  TEXTFILE_METRICS,
  type TextfileRun,
} from '../src/telemetry/textfile.ts';
import { exitCodeOfError, RunTextfile } from '../src/telemetry/textfile-writer.ts';
import { tempDir } from './support/cli.ts';

const T0 = Date.UTC(2026, 0, 1, 6, 0, 0);

const work: RunWork = {
  items: { done: 18, failed: 2, pending: 0 },
  requests: 41,
  retries: 3,
  tokens: { input: 12_000, output: 4000 },
  costUsd: 0.0042,
  cacheHits: 5,
  cacheMisses: 15,
  rateLimited: 2,
  breakerState: 'open',
};

const run: TextfileRun = {
  endedAt: T0 + 90_500,
  durationMs: 90_500,
  exitCode: 1,
  status: 'failed',
  model: 'openai/gpt-4o-mini',
  pipeline: 'vocabulary',
  lastSuccessAt: T0 - 3_600_000,
  work,
};

/** The sample lines of a text file, name{labels} -> value, comments left out. */
function samples(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), line.slice(cut + 1));
  }
  return out;
}

describe('Prometheus textfile: the formatter', () => {
  test('a failed run: every figure as a gauge, units in seconds and dollars, labels only outcome and type', () => {
    const text = formatTextfile(run);
    assert.deepEqual(Object.fromEntries(samples(text)), {
      'flashcards_last_run_info{model="openai/gpt-4o-mini",pipeline="vocabulary",status="failed"}': '1',
      flashcards_last_run_timestamp_seconds: '1767247290.5',
      flashcards_last_success_timestamp_seconds: '1767243600',
      flashcards_last_run_duration_seconds: '90.5',
      flashcards_last_run_exit_code: '1',
      'flashcards_last_run_items{outcome="done"}': '18',
      'flashcards_last_run_items{outcome="failed"}': '2',
      'flashcards_last_run_items{outcome="pending"}': '0',
      flashcards_last_run_requests: '41',
      flashcards_last_run_retries: '3',
      'flashcards_last_run_tokens{type="input"}': '12000',
      'flashcards_last_run_tokens{type="output"}': '4000',
      flashcards_last_run_cost_dollars: '0.0042',
      flashcards_last_run_cache_hit_ratio: '0.25',
      flashcards_last_run_rate_limited_responses: '2',
      flashcards_last_run_breaker_state: '2',
    });
    assert.ok(text.endsWith('\n'));
  });

  test('each metric has one HELP and one TYPE gauge line, before its samples', () => {
    const lines = formatTextfile(run).split('\n');
    for (const name of TEXTFILE_METRIC_NAMES) {
      const help = lines.findIndex((l) => l.startsWith(`# HELP ${name} `));
      assert.ok(help >= 0, `${name} has no HELP`);
      assert.equal(lines[help + 1], `# TYPE ${name} gauge`);
      assert.ok(lines[help + 2]?.startsWith(name), `${name}: samples follow its TYPE line`);
      assert.equal(lines.filter((l) => l.startsWith(`# TYPE ${name} `)).length, 1);
    }
  });

  test('names follow Prometheus conventions: prefix flashcards_, no _total on gauges', () => {
    for (const name of TEXTFILE_METRIC_NAMES) {
      assert.match(name, /^flashcards_[a-z0-9_]+$/);
      assert.doesNotMatch(name, /_total$/);
    }
  });

  test('unknown price, no cache lookups, unread breaker, never succeeded: those metrics are left out', () => {
    const text = formatTextfile({
      ...run,
      lastSuccessAt: undefined,
      work: { ...work, costUsd: null, cacheHits: 0, cacheMisses: 0, breakerState: undefined },
    });
    const names = [...samples(text).keys()];
    for (const left of [
      TEXTFILE_METRICS.cost.name,
      TEXTFILE_METRICS.cacheHitRatio.name,
      TEXTFILE_METRICS.breakerState.name,
      TEXTFILE_METRICS.successTimestamp.name,
    ]) {
      assert.equal(
        names.some((n) => n.startsWith(left)),
        false,
        `${left} should be absent`,
      );
      assert.doesNotMatch(text, new RegExp(`# (HELP|TYPE) ${left} `));
    }
  });

  test('a run that ended before its batch was open: only when, how long, how it ended', () => {
    const text = formatTextfile({ ...run, exitCode: 4, status: 'aborted', work: undefined });
    assert.deepEqual(
      [...samples(text).keys()],
      [
        'flashcards_last_run_info{model="openai/gpt-4o-mini",pipeline="vocabulary",status="aborted"}',
        'flashcards_last_run_timestamp_seconds',
        'flashcards_last_success_timestamp_seconds',
        'flashcards_last_run_duration_seconds',
        'flashcards_last_run_exit_code',
      ],
    );
  });

  test('label values are escaped: backslash, double quote, newline', () => {
    const text = formatTextfile({ ...run, model: 'a\\b"c\nd' });
    assert.match(text, /model="a\\\\b\\"c\\nd"/);
  });

  test('lastSuccessIn reads the success time back in ms; absent or garbage gives undefined', () => {
    assert.equal(lastSuccessIn(formatTextfile(run)), T0 - 3_600_000);
    assert.equal(lastSuccessIn(formatTextfile({ ...run, lastSuccessAt: undefined })), undefined);
    assert.equal(lastSuccessIn(''), undefined);
    assert.equal(lastSuccessIn('flashcards_last_success_timestamp_seconds banana\n'), undefined);
  });
});

describe('Prometheus textfile: the writer', () => {
  const workOf = (): Omit<RunWork, 'rateLimited'> => {
    const { rateLimited: _, ...rest } = work;
    return rest;
  };

  test('a success records its end as the last success; a later failure keeps that time', async () => {
    const dir = tempDir('fc-textfile-');
    const path = join(dir, 'flashcards.prom');
    const clock = new FakeClock(T0);
    const options = {
      path,
      clock,
      model: 'mock',
      pipeline: 'vocabulary',
      warn: () => assert.fail('no warning'),
    };
    const first = new RunTextfile({ ...options, startedAt: clock.now() });
    clock.advance(30_000);
    await first.write(ExitCode.ok, workOf());
    assert.equal(lastSuccessIn(readFileSync(path, 'utf8')), T0 + 30_000);

    clock.advance(1_800_000);
    const second = new RunTextfile({ ...options, startedAt: clock.now() });
    clock.advance(10_000);
    await second.write(ExitCode.aborted, workOf());
    const text = readFileSync(path, 'utf8');
    assert.equal(lastSuccessIn(text), T0 + 30_000);
    const s = samples(text);
    assert.equal(s.get('flashcards_last_run_exit_code'), '3');
    assert.equal(s.get('flashcards_last_run_duration_seconds'), '10');
    assert.equal(s.get('flashcards_last_run_timestamp_seconds'), String((T0 + 1_840_000) / 1000));
    assert.equal(s.get('flashcards_last_run_info{model="mock",pipeline="vocabulary",status="aborted"}'), '1');
  });

  test("counts 429s from the run's events: retried attempts and items that failed on one", async () => {
    const dir = tempDir('fc-textfile-');
    const path = join(dir, 'flashcards.prom');
    const clock = new FakeClock(T0);
    const file = new RunTextfile({
      path,
      clock,
      startedAt: T0,
      model: 'mock',
      pipeline: 'vocabulary',
      warn: () => {},
    });
    const retry = (errorKind: string) =>
      ({
        type: 'retry_scheduled',
        batchId: 'b',
        item: 1,
        stage: 'cards',
        attempt: 1,
        delayMs: 10,
        errorKind,
        message: 'x',
      }) as const;
    file.emit(retry('rate_limit'));
    file.emit(retry('server'));
    file.emit(retry('rate_limit'));
    file.emit({
      type: 'job_failed',
      batchId: 'b',
      attempts: 6,
      errorKind: 'rate_limit',
      message: 'x',
      item: 2,
      stage: 'cards',
      durationMs: 1,
      requestMs: 1,
      waitMs: 0,
    });
    await file.write(ExitCode.itemsFailed, workOf());
    assert.equal(samples(readFileSync(path, 'utf8')).get('flashcards_last_run_rate_limited_responses'), '3');
  });

  test('a file that cannot be written is one warning, never an error', async () => {
    const dir = tempDir('fc-textfile-');
    const warnings: string[] = [];
    const file = new RunTextfile({
      path: join(dir, 'missing-dir', 'flashcards.prom'),
      clock: new FakeClock(T0),
      startedAt: T0,
      model: 'mock',
      pipeline: 'vocabulary',
      warn: (m) => warnings.push(m),
    });
    await file.write(ExitCode.ok);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /^warning: cannot write the metrics file .*missing-dir.*does not exist/);
  });

  test('replacing the file keeps no temp file behind', async () => {
    const dir = tempDir('fc-textfile-');
    const path = join(dir, 'flashcards.prom');
    writeFileSync(path, 'old\n');
    const file = new RunTextfile({
      path,
      clock: new FakeClock(T0),
      startedAt: T0,
      model: 'mock',
      pipeline: 'vocabulary',
      warn: () => assert.fail('no warning'),
    });
    await file.write(ExitCode.ok);
    assert.deepEqual(readdirSync(dir), ['flashcards.prom']);
  });

  test('the exit code of an error that ends a run: its own, else 3 as the CLI gives it', () => {
    assert.equal(exitCodeOfError(new FlashcardsError('locked', 'busy')), ExitCode.locked);
    assert.equal(
      exitCodeOfError(new FlashcardsError('cancelled', 'stop', { exitCode: ExitCode.interrupted })),
      130,
    );
    assert.equal(exitCodeOfError(new Error('boom')), ExitCode.aborted);
  });
});
