import { accessSync, constants, rmSync, statSync } from 'node:fs';
import { basename, dirname, extname, resolve } from 'node:path';
import { composeJobContext } from '../batch/compose.ts';
import {
  batchCards,
  type ExportResult,
  type ExportTally,
  emptyItemsWarning,
  exportBatch,
  type LiveExport,
  startLiveExport,
} from '../batch/export.ts';
import { identifyBatch } from '../batch/identify.ts';
import { isOwnerAlive, newOwnerId, ownerPid } from '../batch/owner.ts';
import { prepareBatch, spoolStdin } from '../batch/prepare.ts';
import { DEADLINE_GRACE_MS, runSignals } from '../batch/run-signals.ts';
import { LEASE_MS, type RunOutcome, runBatch } from '../batch/runner.ts';
import { type BatchRecord, BatchStore } from '../batch/store.ts';
import { fetchTransport } from '../client/transport.ts';
import type { Settings } from '../config/index.ts';
import { apiKeyVars, costOf, loadSettings, needsApiKey, PRESETS, suggestedKeyVar } from '../config/index.ts';
import {
  ExitCode,
  type ExitCode as ExitCodeType,
  errorMessage,
  FlashcardsError,
  usageError,
} from '../core/errors.ts';
import { type EventSink, fanOut, type PushSummary } from '../core/events.ts';
import { dataPaths } from '../core/home.ts';
import { publicUrl } from '../core/provider-key.ts';
import { systemRandom } from '../core/random.ts';
import { openDatabase } from '../db/open.ts';
import { type DeckChoice, deckMeta } from '../output/deck-meta.ts';
import {
  type DeckMeta,
  type OutputFormat,
  outputFormatFromPath,
  parseOutputFormat,
} from '../output/index.ts';
import { loadPipeline, pipelineBaseDir, pipelineRef } from '../pipeline/registry.ts';
import type { Pipeline } from '../pipeline/types.ts';
import { openJsonLog } from '../ui/json-log.ts';
import { createProgress, progressMode } from '../ui/progress.ts';
import { printSummary, type RunSummary } from '../ui/summary.ts';
import type { CommandContext } from './context.ts';

export interface ProcessOptions {
  input: string;
  output?: string | undefined;
  /** Where the cards go: a file (default), or a running Anki through AnkiConnect. */
  to?: 'file' | 'anki-connect' | undefined;
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

const extensions: Record<OutputFormat, string> = {
  anki: '.deck.tsv',
  csv: '.cards.csv',
  jsonl: '.cards.jsonl',
  json: '.cards.json',
  apkg: '.apkg',
};

function writableDir(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** words.csv -> words.deck.tsv (or .cards.csv, .apkg, ...); stdin -> deck.tsv / cards.csv / ... */
function defaultOutput(input: string, format: OutputFormat, cwd: string): string {
  const name =
    input === '-' ? extensions[format].slice(1) : `${basename(input, extname(input))}${extensions[format]}`;
  return resolve(cwd, name);
}

/** Options that contradict each other are a usage error, not a silent choice. */
function checkOptions(o: ProcessOptions, settings: Settings): void {
  if (o.batch && o.newBatch)
    throw usageError('--batch resumes a batch and --new starts one; use one of them');
  if (o.refresh && !settings.cache.enabled) {
    throw usageError('--refresh rewrites the cache and --no-cache turns it off; use one of them');
  }
  if (o.json && o.output === '-') {
    throw usageError(
      '--json and -o - both write to stdout',
      'write the deck to a file with -o, or drop --json',
    );
  }
}

function requireApiKey(settings: Settings): void {
  if (!needsApiKey(settings.provider, settings.baseUrl) || settings.apiKey) return;
  const where = PRESETS[settings.provider].keyUrl;
  throw new FlashcardsError(
    'config',
    `no API key for ${settings.provider} at ${publicUrl(settings.baseUrl)}; looked in ${apiKeyVars(settings.provider).join(', ')}`,
    {
      hint: `export ${suggestedKeyVar(settings.provider)}=<your key>${where ? ` (get one at ${where})` : ''}, or try --provider mock offline`,
    },
  );
}

interface Finished {
  ctx: CommandContext;
  o: ProcessOptions;
  settings: Settings;
  store: BatchStore;
  batch: BatchRecord;
  pipeline: Pipeline;
  events: EventSink;
  outcome: RunOutcome;
  /** null when the cards go to AnkiConnect only. */
  output: string | null;
  format: OutputFormat;
  meta: DeckMeta;
  started: number;
  skipped: number;
  counters: { requests: number; retries: number; cacheHits: number };
  log: string;
  /** The deck file being written during the run (absent for stdout and AnkiConnect only). */
  live: LiveExport | undefined;
}

function isDefault(sources: Record<string, { kind: string } | undefined>, key: string): boolean {
  return (sources[key]?.kind ?? 'default') === 'default';
}

/** Fails before any work when Anki is not listening: a closed Anki must not surface after the run. */
async function checkAnkiConnect(url: string): Promise<void> {
  const { ankiConnectVersion } = await import('../output/anki-connect.ts');
  await ankiConnectVersion(url);
}

async function pushBatch(f: Finished, url: string, tally: ExportTally): Promise<PushSummary> {
  const { pushToAnkiConnect } = await import('../output/anki-connect.ts');
  const talk = !f.o.quiet && !f.o.json;
  const result = await pushToAnkiConnect(batchCards(f.store, f.batch.id, f.pipeline, tally), f.meta, {
    url,
    signal: f.o.signal,
    // A big deck takes a while to add: a line every 10 batches (1,000 notes) says it moves.
    onBatch: (p) => {
      if (talk && p.batches % 10 === 0) f.ctx.io.err(`AnkiConnect: ${p.sent} cards sent, ${p.added} added\n`);
    },
  });
  if (talk) {
    f.ctx.io.err(
      `AnkiConnect: added ${result.added} note(s) to "${f.meta.deck}"${result.duplicates ? `, ${result.duplicates} already there` : ''}${result.repeated ? `, ${result.repeated} skipped (same first field as an earlier card)` : ''}${result.failed ? `, ${result.failed} refused` : ''}\n`,
    );
    for (const failure of result.failures.slice(0, 5))
      f.ctx.io.err(`  refused ${failure.term}: ${failure.reason}\n`);
  }
  return {
    url: publicUrl(url),
    cards: result.added + result.duplicates + result.repeated + result.failed,
    added: result.added,
    duplicates: result.duplicates,
    repeated: result.repeated,
    failed: result.failed,
  };
}

/** After the run: the deck (when the batch is finished), the batch's status, and the summary. */
async function finishRun(f: Finished): Promise<ExitCodeType> {
  const { ctx, o, settings, store, batch, outcome, events } = f;
  const counts = outcome.counts;
  let written: ExportResult | undefined;
  let pushed: PushSummary | undefined;
  let tally: ExportTally | undefined;
  if (outcome.status !== 'complete') {
    f.live?.feed.abort();
    await f.live?.result.catch(() => {});
  } else if (f.output !== null) {
    f.live?.feed.end();
    // A live write that failed (a disk full for a while, say) gets one more try from the database.
    const live = await f.live?.result.catch(() => undefined);
    written =
      live ??
      (await exportBatch({
        store,
        batchId: batch.id,
        pipeline: f.pipeline,
        output: f.output,
        format: f.format,
        meta: f.meta,
      }));
    tally = written.tally;
    events.emit({
      type: 'output_written',
      batchId: batch.id,
      path: written.path,
      cards: written.cards,
      format: f.format,
    });
  }
  if (outcome.status === 'complete' && o.to === 'anki-connect') {
    const pushTally: ExportTally = { items: 0, withoutCards: 0 };
    pushed = await pushBatch(f, settings.ankiConnectUrl, pushTally);
    tally ??= pushTally;
    events.emit({ type: 'anki_connect_pushed', batchId: batch.id, ...pushed });
  }
  const emptyWarning = tally ? emptyItemsWarning(tally, f.pipeline) : undefined;
  if (emptyWarning && !o.json) ctx.io.err(`warning: ${emptyWarning}\n`);
  // Items that all came back without a single card mean the pipeline made nothing: not a success.
  const madeNothing = tally !== undefined && tally.items > 0 && tally.withoutCards === tally.items;
  const exitCode: ExitCodeType =
    outcome.status === 'stopped'
      ? outcome.reason.exitCode
      : counts.failed > 0 || (pushed?.failed ?? 0) > 0 || madeNothing
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
  const totals = store.totals(batch.id);
  const durationMs = ctx.clock.now() - f.started;
  events.emit({ type: 'run_finished', batchId: batch.id, status, exitCode, durationMs });

  const summary: RunSummary = {
    batchId: batch.id,
    status,
    exitCode,
    input: batch.inputName,
    output: written ? written.path : null,
    format: f.format,
    items: {
      total: counts.total,
      succeeded: counts.done,
      failed: counts.failed,
      pending: counts.pending,
      skipped: f.skipped,
    },
    cards: written?.cards ?? pushed?.cards ?? 0,
    itemsWithoutCards: tally?.withoutCards ?? 0,
    ...(pushed ? { ankiConnect: pushed } : {}),
    requests: f.counters.requests,
    cacheHits: f.counters.cacheHits,
    retries: f.counters.retries,
    tokens: {
      prompt: totals.promptTokens,
      completion: totals.completionTokens,
      total: totals.promptTokens + totals.completionTokens,
    },
    costUsd: costOf(settings, totals.promptTokens, totals.completionTokens),
    durationMs,
    log: f.log,
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    failures: store.failures(batch.id, 50),
  };
  if (o.json) ctx.io.out(`${JSON.stringify(summary)}\n`);
  else if (!o.quiet) await printSummary(ctx.io, summary);

  if (outcome.status === 'stopped') {
    const resume = o.newBatch
      ? `resume it with --batch ${batch.id} instead of --new (--new would start yet another batch)`
      : `run the same command again to resume batch ${batch.id}`;
    const hint =
      outcome.reason.kind === 'deadline' || exitCode === ExitCode.interrupted
        ? resume
        : (outcome.reason.hint ?? resume);
    throw new FlashcardsError(
      outcome.reason.kind,
      `${outcome.reason.message}; ${counts.pending} item(s) left`,
      {
        exitCode: outcome.reason.exitCode,
        hint,
      },
    );
  }
  return exitCode;
}

/** `flashcards process`: the whole pipeline, from a word list to a deck. */
export async function processCommand(ctx: CommandContext, o: ProcessOptions): Promise<ExitCodeType> {
  const started = ctx.clock.now();
  const { settings, sources } = await loadSettings({
    cwd: ctx.cwd,
    env: ctx.env,
    configFile: ctx.configFile,
    flags: o.flags,
  });
  // `-o deck.apkg` means apkg whatever the config file or environment say: the path is the more
  // specific wish. Only --format on the same command line overrides it.
  const fromPath = o.output && o.output !== '-' ? outputFormatFromPath(o.output) : undefined;
  const format =
    fromPath && sources['format']?.kind !== 'flag' ? fromPath : parseOutputFormat(settings.format);
  checkOptions(o, settings);
  // A pipeline file's problems are reported before anything else is asked of the user.
  const pipeline = loadPipeline(settings.pipeline, pipelineBaseDir(sources['pipeline'], ctx.cwd), settings);
  requireApiKey(settings);
  const paths = dataPaths(ctx.home);
  const owner = newOwnerId();
  const choice: DeckChoice = {
    deck: isDefault(sources, 'deck') ? undefined : settings.deck,
    noteType: isDefault(sources, 'noteType') ? undefined : settings.noteType,
    tags: settings.tags,
    fields: settings.fields,
  };
  const meta = deckMeta(pipeline, choice);
  if (o.to === 'anki-connect') await checkAnkiConnect(settings.ankiConnectUrl);
  const displayName = o.input === '-' ? 'stdin' : o.input;
  const spooled = o.input === '-' ? await spoolStdin(ctx.home, o.stdin ?? process.stdin) : undefined;
  const inputPath = spooled ?? resolve(ctx.cwd, o.input);
  const output =
    o.output === '-'
      ? '-'
      : o.to === 'anki-connect' && o.output === undefined
        ? null
        : resolve(ctx.cwd, o.output ?? defaultOutput(o.input, format, ctx.cwd));
  if (output === '-' && format === 'apkg')
    throw usageError('an .apkg package cannot be written to stdout', 'give a file with -o deck.apkg');
  // Checked before anything is paid for: a typo in -o must not surface after the whole run.
  if (
    output !== null &&
    output !== '-' &&
    !statSync(dirname(output), { throwIfNoEntry: false })?.isDirectory()
  ) {
    throw usageError(
      `cannot write ${basename(output)}: directory ${dirname(output)}/ does not exist`,
      `mkdir -p ${dirname(output)}`,
    );
  }
  if (output !== null && output !== '-' && statSync(output, { throwIfNoEntry: false })?.isDirectory()) {
    throw usageError(
      `cannot write ${o.output ?? output}: it is a directory`,
      'name a file inside it, e.g. -o deck.tsv',
    );
  }
  if (output !== null && output !== '-' && !writableDir(dirname(output))) {
    throw usageError(
      `cannot write ${basename(output)}: permission denied in ${dirname(output)}/`,
      `check the directory's permissions: ls -ld ${dirname(output)}`,
    );
  }

  const db = openDatabase(paths.stateDb);
  const store = new BatchStore(db, () => ctx.clock.now());
  const cleanup: (() => void)[] = [];
  try {
    const identity = await identifyBatch(store, {
      settings,
      pipeline,
      inputPath,
      batch: o.batch,
      newBatch: o.newBatch,
    });
    const { batch, resumed } = await prepareBatch({
      store,
      meta: {
        id: identity.id,
        inputName: displayName,
        inputDigest: identity.inputDigest,
        settingsHash: identity.settingsHash,
        pipeline: pipeline.name,
        stages: pipeline.stages.map((s) => s.name),
        model: settings.model,
        baseUrl: publicUrl(settings.baseUrl),
        outputPath: output,
        format,
        settings: {
          ...identity.shaping,
          pipelineRef: pipelineRef(settings.pipeline, pipelineBaseDir(sources['pipeline'], ctx.cwd)),
          ...choice,
        },
      },
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
    // Hand back this run's leases and registration, at the end or on a second Ctrl-C.
    const leave = (): void => {
      store.releaseLeases(owner);
      store.leaveRun(owner);
    };
    cleanup.push(leave);
    o.onHardExit?.(leave);
    if (o.retryFailed) store.requeueFailed(batch.id);
    store.setOutput(batch.id, output === '-' ? null : output, format);
    // JSON merge patch: null removes a key, so a choice dropped since the last run is forgotten.
    store.patchSettings(batch.id, {
      deck: choice.deck ?? null,
      noteType: choice.noteType ?? null,
      tags: choice.tags,
      fields: choice.fields ?? null,
    });

    const log = openJsonLog(
      paths.logs,
      () => ctx.clock.now(),
      owner.split(':').slice(1).join('-'),
      (e) =>
        ctx.io.err(`warning: cannot write the run's log (${errorMessage(e)}); the run goes on without it\n`),
    );
    cleanup.push(() => log.close());
    const progress = await createProgress({
      io: ctx.io,
      mode: progressMode(ctx.io, o),
      now: () => ctx.clock.now(),
      intervalMs: settings.progressIntervalMs,
      lastStage: pipeline.stages[pipeline.stages.length - 1]?.name ?? '',
      maxWaitMs: settings.breaker.maxWaitMs,
    });
    cleanup.push(() => progress.stop());
    const events = fanOut(log, progress);

    const deadlineMs = settings.maxDurationMs === undefined ? undefined : started + settings.maxDurationMs;
    const signals = runSignals({
      signal: o.signal,
      stopSignal: o.stopSignal,
      deadlineInMs: deadlineMs === undefined ? undefined : deadlineMs - ctx.clock.now(),
      graceMs: Math.min(DEADLINE_GRACE_MS, settings.timeoutMs),
    });
    cleanup.push(() => signals.dispose());
    // The offline mock (and its schema sampler) loads only when asked for.
    const transport =
      settings.provider === 'mock'
        ? fetchTransport((await import('../client/mock-fetch.ts')).createMockFetch())
        : o.fetch
          ? fetchTransport(o.fetch)
          : undefined;
    const job = composeJobContext({
      db,
      paths,
      settings,
      batchId: batch.id,
      owner,
      refresh: o.refresh,
      transport,
      events,
      signals,
      deadlineMs,
      clock: ctx.clock,
      random: systemRandom,
    });
    cleanup.push(() => job.cache?.close());

    const before = store.counts(batch.id);
    events.emit({
      type: 'run_started',
      batchId: batch.id,
      input: displayName,
      total: before.total,
      remaining: before.pending,
      resumed,
      model: settings.model,
      baseUrl: publicUrl(settings.baseUrl),
      concurrency: settings.concurrency,
    });
    if (!o.quiet && !o.json) {
      ctx.io.err(
        `${resumed ? 'resuming' : 'created'} batch ${batch.id}: ${before.total} items (${before.pending} to do) with ${settings.model}\n`,
      );
    }
    // A deck file is written while the run goes on, so the end of a run waits for its last few
    // items, not for the whole deck. Not stdout (a stopped run must print no partial deck), and not
    // an .apkg (its scratch collection would outlive a run killed with -9).
    const live =
      output !== null && output !== '-' && format !== 'apkg'
        ? startLiveExport({ store, batchId: batch.id, pipeline, output, format, meta })
        : undefined;
    if (live) cleanup.push(() => live.feed.abort());
    const outcome = await runBatch({
      batch,
      store,
      pipeline,
      job,
      owner,
      concurrency: settings.concurrency,
      clock: ctx.clock,
      events,
      feed: live?.feed,
    });
    signals.dispose();
    progress.stop();
    job.breaker.flush();
    job.cache?.recordRun({
      runId: owner,
      startedAt: started,
      hits: job.counters.cacheHits,
      misses: job.counters.cacheMisses,
      model: settings.model,
    });
    return await finishRun({
      ctx,
      o,
      settings,
      store,
      batch,
      pipeline,
      events,
      outcome,
      output,
      format,
      meta,
      started,
      skipped: before.total - before.pending,
      counters: job.counters,
      log: log.path,
      live,
    });
  } finally {
    for (const fn of cleanup.reverse()) fn();
    db.close();
    if (spooled) rmSync(spooled, { force: true });
  }
}
