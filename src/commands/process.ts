import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import type { JobContext } from '../batch/execute-job.ts';
import { exportBatch } from '../batch/export.ts';
import { isOwnerAlive, newOwnerId, ownerPid } from '../batch/owner.ts';
import { batchIdFor, hashFile, prepareBatch, spoolStdin } from '../batch/prepare.ts';
import { LEASE_MS, runBatch } from '../batch/runner.ts';
import { type BatchMeta, BatchStore } from '../batch/store.ts';
import { ResponseCache, SingleFlight } from '../cache/index.ts';
import { createChatClient } from '../client/chat-client.ts';
import { createMockFetch } from '../client/mock-fetch.ts';
import { fetchTransport } from '../client/transport.ts';
import type { Settings } from '../config/index.ts';
import { apiKeyVars, loadSettings, needsApiKey, PRESETS, suggestedKeyVar } from '../config/index.ts';
import { ExitCode, type ExitCode as ExitCodeType, FlashcardsError } from '../core/errors.ts';
import { fanOut } from '../core/events.ts';
import { dataPaths } from '../core/home.ts';
import { providerKey } from '../core/provider-key.ts';
import { systemRandom } from '../core/random.ts';
import { openDatabase } from '../db/open.ts';
import { createLimiter } from '../limiter/index.ts';
import { type OutputFormat, parseOutputFormat } from '../output/index.ts';
import { vocabularyPipeline } from '../pipeline/vocabulary.ts';
import { CircuitBreaker, RetryPolicy } from '../resilience/index.ts';
import { openJsonLog } from '../ui/json-log.ts';
import { createProgress } from '../ui/progress.ts';
import { printSummary, type RunSummary } from '../ui/summary.ts';
import type { CommandContext } from './context.ts';

export interface ProcessOptions {
  input: string;
  output?: string | undefined;
  /** Config overrides from flags, keyed by config path (see config/load.ts). */
  flags: Record<string, unknown>;
  json: boolean;
  progress: boolean;
  quiet: boolean;
  newBatch: boolean;
  batch?: string | undefined;
  retryFailed: boolean;
  lock: boolean;
  refresh: boolean;
  /** Graceful stop: no new work (first signal, --max-duration). */
  stopSignal: AbortSignal;
  /** Hard stop: abort in-flight requests (second signal, end of grace). */
  signal: AbortSignal;
  stdin?: NodeJS.ReadableStream;
  fetch?: typeof fetch;
  /** Registers a synchronous cleanup to run if the process must exit at once. */
  onHardExit?: (cleanup: () => void) => void;
}

/** How long requests in flight may finish after --max-duration is reached. */
const DEADLINE_GRACE_MS = 5000;

const extensions: Record<OutputFormat, string> = {
  anki: '.deck.tsv',
  csv: '.cards.csv',
  jsonl: '.cards.jsonl',
};

function defaultOutput(input: string, format: OutputFormat, cwd: string): string {
  const stem = input === '-' ? 'deck' : basename(input, extname(input));
  return resolve(cwd, `${stem}${extensions[format]}`);
}

/** Settings that change what the provider returns: a change means a new batch, not a resume. */
function resultSettings(settings: Settings, pipelineVersion: string): Record<string, unknown> {
  return {
    pipeline: 'vocabulary',
    pipelineVersion,
    baseUrl: settings.baseUrl,
    model: settings.model,
    sourceLanguage: settings.sourceLanguage,
    targetLanguage: settings.targetLanguage,
    temperature: settings.temperature,
    maxTokens: settings.maxTokens,
  };
}

export function costOf(settings: Settings, prompt: number, completion: number): number | null {
  const price = settings.prices[settings.model];
  if (!price) return null;
  return (prompt * price.input + completion * price.output) / 1_000_000;
}

/** `flashcards process`: the whole pipeline, from a word list to a deck. */
export async function processCommand(ctx: CommandContext, o: ProcessOptions): Promise<ExitCodeType> {
  const started = ctx.clock.now();
  const { settings } = await loadSettings({
    cwd: ctx.cwd,
    env: ctx.env,
    configFile: ctx.configFile,
    flags: o.flags,
  });
  const format = parseOutputFormat(settings.format);
  if (needsApiKey(settings.provider, settings.baseUrl) && !settings.apiKey) {
    const where = PRESETS[settings.provider].keyUrl;
    throw new FlashcardsError(
      'config',
      `no API key for ${settings.provider} at ${settings.baseUrl}; looked in ${apiKeyVars(settings.provider).join(', ')}`,
      {
        hint: `export ${suggestedKeyVar(settings.provider)}=<your key>${where ? ` (get one at ${where})` : ''}, or try --provider mock offline`,
      },
    );
  }
  const paths = dataPaths(ctx.home);
  const owner = newOwnerId();
  const pipeline = vocabularyPipeline(settings);
  const lastStage = pipeline.stages[pipeline.stages.length - 1]?.name ?? '';

  let inputPath = o.input === '-' ? undefined : resolve(ctx.cwd, o.input);
  const displayName = o.input === '-' ? 'stdin' : o.input;
  if (!inputPath) inputPath = await spoolStdin(ctx.home, o.stdin ?? process.stdin);
  const spooled = o.input === '-' ? inputPath : undefined;

  const db = openDatabase(paths.stateDb);
  const store = new BatchStore(db, () => ctx.clock.now());
  let cache: ResponseCache | undefined;
  let log: ReturnType<typeof openJsonLog> | undefined;
  let progress: Awaited<ReturnType<typeof createProgress>> | undefined;
  try {
    const output =
      o.output === '-' ? '-' : resolve(ctx.cwd, o.output ?? defaultOutput(o.input, format, ctx.cwd));
    const shaping = resultSettings(settings, pipeline.version);
    const settingsHash = createHash('sha256').update(JSON.stringify(shaping)).digest('hex');
    let batchId: string;
    let inputDigest = '';
    if (o.batch) {
      const named = store.get(o.batch);
      if (!named)
        throw new FlashcardsError('usage', `no batch ${o.batch}`, {
          hint: 'list batches with `flashcards batches list`',
        });
      if (named.settingsHash !== settingsHash) {
        const changed = Object.keys(shaping).filter(
          (k) => JSON.stringify(named.settings[k]) !== JSON.stringify(shaping[k]),
        );
        throw new FlashcardsError(
          'usage',
          `batch ${named.id} was made with other settings (${changed.join(', ') || 'settings'} differ)`,
          {
            hint: 'run it with the settings of its first run (see `flashcards batches show`), or use --new for a fresh batch',
          },
        );
      }
      batchId = named.id;
    } else {
      inputDigest = await hashFile(inputPath);
      batchId = batchIdFor(inputDigest, settingsHash);
      if (o.newBatch) batchId = `${batchId}-${randomBytes(2).toString('hex')}`;
    }
    const meta: BatchMeta = {
      id: batchId,
      inputName: displayName,
      inputDigest,
      settingsHash,
      pipeline: pipeline.name,
      stages: pipeline.stages.map((s) => s.name),
      model: settings.model,
      baseUrl: settings.baseUrl,
      outputPath: output,
      format,
      settings: { ...shaping, deck: settings.deck, noteType: settings.noteType, tags: settings.tags },
    };
    const { batch, resumed } = await prepareBatch({
      store,
      meta,
      inputPath,
      displayName,
      owner,
      clock: ctx.clock,
      signal: o.signal,
    });
    const conflict = store.joinRun(batch.id, owner, o.lock, LEASE_MS, isOwnerAlive);
    if (conflict) {
      throw new FlashcardsError(
        'locked',
        `another run (pid ${ownerPid(conflict)}) is working on batch ${batch.id}`,
        {
          hint: o.lock
            ? 'wait for it to finish, or run without --lock to cooperate with it'
            : 'that run holds --lock; wait for it to finish',
        },
      );
    }
    if (o.retryFailed) store.requeueFailed(batch.id);
    o.onHardExit?.(() => {
      store.releaseLeases(owner);
      store.leaveRun(owner);
    });
    store.setOutput(batch.id, output === '-' ? null : output, format);

    log = openJsonLog(paths.logs, () => ctx.clock.now(), owner.split(':').slice(1).join('-'));
    const mode = o.quiet || o.json || !o.progress ? 'off' : ctx.io.isTTY ? 'spinner' : 'lines';
    progress = await createProgress({
      io: ctx.io,
      mode,
      now: () => ctx.clock.now(),
      intervalMs: settings.progressIntervalMs,
      lastStage,
    });
    const events = fanOut(log, progress);

    const key = providerKey({ baseUrl: settings.baseUrl, model: settings.model, apiKey: settings.apiKey });
    const limiter = createLimiter(
      db,
      key,
      {
        rpm: settings.limiter.rpm,
        tpm: settings.limiter.tpm,
        burstSeconds: settings.limiter.burstSeconds,
        shards: settings.limiter.shards,
        maxRequestTokens: settings.maxTokens + 4000,
      },
      { clock: ctx.clock },
    );
    const breaker = new CircuitBreaker(
      db,
      key,
      {
        samplingWindowMs: settings.breaker.samplingWindowMs,
        failureRatio: settings.breaker.failureRatio,
        minThroughput: settings.breaker.minThroughput,
        breakDurationMs: settings.breaker.breakDurationMs,
        maxBreakDurationMs: settings.breaker.maxBreakDurationMs,
        probeLeaseMs: settings.timeoutMs + 5000,
      },
      {
        clock: ctx.clock,
        ownerId: owner,
        onTransition: (t) =>
          events.emit({ type: 'breaker_transition', key, from: t.from, to: t.to, cause: t.cause }),
      },
    );
    const cacheMode = !settings.cache.enabled ? 'off' : o.refresh ? 'refresh' : 'normal';
    if (cacheMode !== 'off') {
      cache = ResponseCache.open(
        paths.cacheDb,
        {
          ttlMs: settings.cache.ttlMs,
          jitter: settings.cache.jitter,
          compressThresholdBytes: settings.cache.compressThresholdBytes,
        },
        { clock: ctx.clock, random: systemRandom },
      );
    }
    const client = createChatClient({
      baseUrl: settings.baseUrl,
      apiKey: settings.apiKey,
      timeoutMs: settings.timeoutMs,
      transport:
        settings.provider === 'mock'
          ? fetchTransport(createMockFetch())
          : o.fetch
            ? fetchTransport(o.fetch)
            : undefined,
      now: () => ctx.clock.now(),
      onResponse: (status, headers) => limiter.observe({ status, headers }),
    });
    const deadlineMs = settings.maxDurationMs === undefined ? undefined : started + settings.maxDurationMs;
    let deadlineTimer: NodeJS.Timeout | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    const stop = new AbortController();
    const hard = new AbortController();
    const signal = AbortSignal.any([o.signal, hard.signal]);
    const stopSignal = AbortSignal.any([o.stopSignal, signal, stop.signal]);
    if (deadlineMs !== undefined) {
      // At the deadline no new work starts; requests in flight get a short grace, then are cancelled,
      // so a cron run ends close to --max-duration rather than a request timeout later.
      deadlineTimer = setTimeout(
        () => {
          stop.abort();
          graceTimer = setTimeout(() => hard.abort(), Math.min(DEADLINE_GRACE_MS, settings.timeoutMs));
          graceTimer.unref();
        },
        Math.max(0, deadlineMs - ctx.clock.now()),
      );
      deadlineTimer.unref();
    }
    const counters = { requests: 0, retries: 0, cacheHits: 0, cacheMisses: 0 };
    const job: JobContext = {
      batchId: batch.id,
      providerKey: key,
      model: settings.model,
      baseUrl: settings.baseUrl,
      temperature: settings.temperature,
      maxTokens: settings.maxTokens,
      client,
      limiter,
      breaker,
      retry: new RetryPolicy(settings.retry, { random: systemRandom }),
      cache,
      cacheMode,
      staleIfError: settings.cache.staleIfError,
      singleFlight: new SingleFlight(),
      clock: ctx.clock,
      events,
      maxWaitMs: settings.breaker.maxWaitMs,
      deadlineMs,
      signal,
      stopSignal,
      counters,
    };

    const before = store.counts(batch.id);
    events.emit({
      type: 'run_started',
      batchId: batch.id,
      input: displayName,
      total: before.total,
      remaining: before.pending,
      resumed,
      model: settings.model,
      baseUrl: settings.baseUrl,
      concurrency: settings.concurrency,
    });
    if (!o.quiet && !o.json) {
      ctx.io.err(
        `${resumed ? 'resuming' : 'created'} batch ${batch.id}: ${before.total} items (${before.pending} to do) with ${settings.model}\n`,
      );
    }

    const outcome = await runBatch({
      batch,
      store,
      pipeline,
      job,
      owner,
      concurrency: settings.concurrency,
      clock: ctx.clock,
      events,
    });
    clearTimeout(deadlineTimer);
    clearTimeout(graceTimer);
    progress.stop();

    const counts = outcome.counts;
    let written: { cards: number; path: string } | undefined;
    if (outcome.status === 'complete') {
      written = await exportBatch(store, batch.id, pipeline, output, format, {
        deck: settings.deck,
        noteType: settings.noteType,
        tags: settings.tags,
      });
      events.emit({
        type: 'output_written',
        batchId: batch.id,
        path: written.path,
        cards: written.cards,
        format,
      });
    }
    const exitCode: ExitCodeType =
      outcome.status === 'stopped'
        ? outcome.reason.exitCode
        : counts.failed > 0
          ? ExitCode.itemsFailed
          : ExitCode.ok;
    const status =
      outcome.status === 'complete'
        ? counts.failed > 0
          ? 'failed'
          : 'done'
        : outcome.reason.exitCode === ExitCode.interrupted
          ? 'interrupted'
          : 'aborted';
    store.setStatus(batch.id, status);
    if (cache)
      cache.recordRun({
        runId: owner,
        startedAt: started,
        hits: counters.cacheHits,
        misses: counters.cacheMisses,
        model: settings.model,
      });
    const totals = store.totals(batch.id);
    const durationMs = ctx.clock.now() - started;
    events.emit({ type: 'run_finished', batchId: batch.id, status, exitCode, durationMs });

    const summary: RunSummary = {
      batchId: batch.id,
      status,
      exitCode,
      input: displayName,
      output: written ? written.path : null,
      format,
      items: {
        total: counts.total,
        succeeded: counts.done,
        failed: counts.failed,
        pending: counts.pending,
        skipped: before.total - before.pending,
      },
      cards: written?.cards ?? 0,
      requests: counters.requests,
      cacheHits: counters.cacheHits,
      retries: counters.retries,
      tokens: {
        prompt: totals.promptTokens,
        completion: totals.completionTokens,
        total: totals.promptTokens + totals.completionTokens,
      },
      costUsd: costOf(settings, totals.promptTokens, totals.completionTokens),
      durationMs,
      log: log.path,
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
      failures: store.failures(batch.id, 50),
    };
    if (o.json) {
      ctx.io.out(`${JSON.stringify(summary)}\n`);
    } else if (!o.quiet) {
      await printSummary(ctx.io, summary);
    }
    if (outcome.status === 'stopped') {
      const how =
        outcome.reason.kind === 'deadline' || exitCode === ExitCode.interrupted
          ? `run the same command again to resume batch ${batch.id}`
          : (outcome.reason.hint ?? `run the same command again to resume batch ${batch.id}`);
      throw new FlashcardsError(
        outcome.reason.kind,
        `${outcome.reason.message}; ${counts.pending} item(s) left`,
        {
          exitCode: outcome.reason.exitCode,
          hint: how,
        },
      );
    }
    return exitCode;
  } finally {
    progress?.stop();
    store.releaseLeases(owner);
    store.leaveRun(owner);
    log?.close();
    cache?.close();
    db.close();
    if (spooled) rmSync(spooled, { force: true });
  }
}
