import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { namedBatch, noBatch } from '../batch/identify.ts';
import type { BatchRecord, BatchResults, ItemData } from '../batch/store.ts';
import { checkBatchApiProvider } from '../batchapi/provider-check.ts';
import { ResponseCache } from '../cache/index.ts';
import { estimateTokens } from '../client/chat-client.ts';
import { costOf, loadSettings, type Settings } from '../config/index.ts';
import type { ValueSource } from '../config/sources.ts';
import { formatDuration } from '../core/duration.ts';
import { ExitCode } from '../core/errors.ts';
import { dataPaths } from '../core/home.ts';
import { providerKey, publicUrl } from '../core/provider-key.ts';
import { systemRandom } from '../core/random.ts';
import { openInput } from '../input/index.ts';
import { cacheKeys } from '../job/execute.ts';
import type { KeyRow } from '../limiter/schema.ts';
import type { LimiterAdmin } from '../limiter/store.ts';
import { chooseColumns } from '../output/columns.ts';
import { loadPipeline, pipelineBaseDir } from '../pipeline/registry.ts';
import type { Pipeline, Stage, StageItem } from '../pipeline/types.ts';
import { validateAnswer } from '../pipeline/validate.ts';
import { keyValueWidths } from '../ui/summary.ts';
import type { CommandContext } from './context.ts';
import { estimatePace, type LimitSource, type Pace } from './dry-run/pace.ts';
import { deckFormat, deckOutput } from './process/deck-output.ts';
import { openCommandState, settingsInput } from './state.ts';

/** Typical answer sizes of the built-in stages, for estimates before anything was paid for. */
const typicalCompletionTokens: Record<string, number> = { analyze: 450, cards: 350 };

export interface DryRunOptions {
  /** The word list ('-' for stdin); undefined with `batch`. */
  input: string | undefined;
  /** `--batch <id>`: estimate what that batch has still to do, from state.db; its input is not read. */
  batch?: string | undefined;
  /** With `batch`: its failed items count as work too, as `--retry-failed` queues them again. */
  retryFailed?: boolean | undefined;
  /** -o as typed ('-' for stdout), and --to: the deck's path is checked as the run would check it. */
  output?: string | undefined;
  to?: 'file' | 'anki-connect' | undefined;
  flags: Record<string, unknown>;
  json: boolean;
  /** --batch-api: the cost at the provider's batch discount beside the ordinary one. */
  batchApi?: boolean | undefined;
  stdin?: NodeJS.ReadableStream;
}

/** What the run would have to do: its items, jobs, and the calls the cache does not answer. */
interface Work {
  items: number;
  jobs: number;
  cacheHits: number;
  calls: number;
  promptTokens: number;
  completionTokens: number;
}

/** One item to do, with the results of the stages it has finished (none for a fresh input). */
interface ToDo {
  item: StageItem;
  done: Record<string, unknown>;
}

/**
 * `process --dry-run`: reads and checks the whole input (or, with `--batch <id>`, that batch's
 * unfinished items in state.db), counts what the cache already answers, and estimates requests,
 * tokens, cost and time at the limit the run will go at. Calls nothing, and creates nothing in
 * the data directory.
 */
export async function dryRun(ctx: CommandContext, o: DryRunOptions): Promise<number> {
  const { settings, sources } = await loadSettings(settingsInput(ctx, o.flags));
  if (o.batchApi) checkBatchApiProvider(settings);
  const pipeline = loadPipeline(settings.pipeline, pipelineBaseDir(sources['pipeline'], ctx.cwd), settings);
  // The output choices are checked too: a dry run that passes must not fail later over --fields.
  chooseColumns(pipeline.fields, settings.fields);
  // Read when it exists (batches, learned limits), never created: a dry run leaves no trace.
  const state = await openCommandState(ctx, false, settings);
  try {
    const stores = o.batch !== undefined ? state?.batches : undefined;
    let named: BatchRecord | undefined;
    if (o.batch !== undefined) {
      if (!stores) throw noBatch(o.batch);
      named = await namedBatch(stores.catalog, o.batch, settings, pipeline);
    }
    const format = deckFormat(o, settings, sources, named);
    const output = await deckOutput(ctx, o, format, named);

    let source: { name: string; format: string | null; skipped: () => number };
    let todo: AsyncIterable<ToDo>;
    let progress: { total: number; done: number; failed: number } | undefined;
    if (named && stores) {
      const counts = await stores.results.counts(named.id);
      progress = { total: counts.total, done: counts.done, failed: counts.failed };
      source = { name: named.inputName, format: null, skipped: () => 0 };
      todo = unfinished(stores.results, named.id, Boolean(o.retryFailed));
    } else {
      const input = o.input ?? '-';
      const opened = await openInput(input === '-' ? '-' : resolve(ctx.cwd, input), { stdin: o.stdin });
      source = { name: opened.name, format: opened.format, skipped: () => opened.stats().skipped };
      todo = fresh(opened.items);
    }
    // The cache is read when there is one, never created: a dry run leaves no trace.
    const cache = !settings.cache.enabled
      ? undefined
      : state
        ? state.cache.open(settings.cache, { random: systemRandom }, { create: false })
        : existingCacheDb(ctx, settings);
    const work = await countWork(settings, pipeline, todo, cache);
    const stored = state ? await storedKey(state.limiter.admin, settings) : undefined;
    const promptPerCall = work.calls ? work.promptTokens / work.calls : 0;
    const completionPerCall = work.calls ? work.completionTokens / work.calls : 0;
    const pace = estimatePace({
      configured: { rpm: settings.limiter.rpm, tpm: settings.limiter.tpm },
      toldBy: { rpm: toldBy(sources['limiter.rpm']), tpm: toldBy(sources['limiter.tpm']) },
      stored: stored?.row,
      nowMs: stored?.now ?? ctx.clock.now(),
      calls: work.calls,
      // What the limiter books: prompt + max_tokens, unless the provider is known to count usage.
      tokensPerCall:
        promptPerCall +
        (stored?.row?.token_accounting === 'usage' ? completionPerCall : work.calls ? settings.maxTokens : 0),
      concurrency: settings.concurrency,
      maxConcurrency: settings.maxConcurrency,
    });
    const cost = costOf(settings, work.promptTokens, work.completionTokens);
    // Through the batch API: the same tokens at its discount, answered within its window (24 h).
    const batchCost =
      o.batchApi && cost !== null ? Math.round(cost * (1 - settings.batchApi.discount) * 1e6) / 1e6 : null;
    const result = {
      input: source.name,
      format: source.format,
      items: work.items,
      skippedRows: source.skipped(),
      jobs: work.jobs,
      cacheHits: work.cacheHits,
      calls: work.calls,
      estimatedTokens: {
        prompt: work.promptTokens,
        completion: work.completionTokens,
        total: work.promptTokens + work.completionTokens,
      },
      estimatedCostUsd: cost,
      ...(o.batchApi
        ? { batchApi: { estimatedCostUsd: batchCost, discount: settings.batchApi.discount } }
        : {}),
      estimatedDurationMs: Math.round(pace.durationMs),
      model: settings.model,
      baseUrl: publicUrl(settings.baseUrl),
      limits: {
        rpm: settings.limiter.rpm ?? null,
        tpm: settings.limiter.tpm ?? null,
        concurrency: settings.concurrency ?? 'steered',
        maxConcurrency: settings.maxConcurrency,
      },
      pace: paceJson(pace),
      output: { path: output, format },
      batch:
        named && progress
          ? { id: named.id, ...progress, toDo: work.items, retryFailed: Boolean(o.retryFailed) }
          : null,
    };
    if (o.json) {
      ctx.io.out(`${JSON.stringify(result)}\n`);
      return ExitCode.ok;
    }
    const { default: Table } = await import('cli-table3');
    const t = new Table({ style: { head: [], border: [] }, ...keyValueWidths(ctx.io.outColumns) });
    const failedLeft = progress && !o.retryFailed && progress.failed > 0 ? progress.failed : 0;
    t.push(
      {
        input:
          named && progress
            ? `batch ${named.id} (${named.inputName}): ${work.items} of ${progress.total} items to do${failedLeft ? ` (${failedLeft} failed, not counted: add --retry-failed)` : ''}`
            : `${result.input} (${result.format}), ${work.items} items${result.skippedRows ? `, ${result.skippedRows} empty rows skipped` : ''}`,
      },
      { jobs: `${work.jobs} (${work.cacheHits} answered by the cache)` },
      { 'calls needed': String(work.calls) },
      {
        tokens: `~${result.estimatedTokens.total} (${work.promptTokens} in, ${work.completionTokens} out)`,
      },
      {
        cost:
          cost === null
            ? `unknown price for ${settings.model} (add it under prices in the config)`
            : `~$${cost.toFixed(4)}${batchCost === null ? '' : ` as ordinary requests; ~$${batchCost.toFixed(4)} through the batch API (answers within 24 h)`}`,
      },
      { time: `~${formatDuration(pace.durationMs)} at ~${Math.round(pace.requestsPerMinute)} requests/min` },
      { limit: pace.said },
      {
        output:
          output === null ? 'AnkiConnect' : output === '-' ? `stdout (${format})` : `${output} (${format})`,
      },
      { model: `${settings.model} at ${publicUrl(settings.baseUrl)}` },
    );
    // The estimate is the command's result (stdout, like every table); the note is about the doing.
    ctx.io.err('dry run: nothing was sent\n');
    ctx.io.out(`${t.toString()}\n`);
    return ExitCode.ok;
  } finally {
    await state?.close();
  }
}

async function* fresh(items: AsyncIterable<StageItem>): AsyncGenerator<ToDo> {
  for await (const item of items) yield { item, done: {} };
}

async function* unfinished(results: BatchResults, batchId: string, failed: boolean): AsyncGenerator<ToDo> {
  for await (const row of results.unfinishedItems(batchId, { failed })) {
    yield { item: asStageItem(row.item), done: row.results };
  }
}

function asStageItem(item: ItemData): StageItem {
  return { term: item.term, type: item.type, position: item.position, context: item.context };
}

/** cache.db when there is one but no state.db (a data directory from before state.db, or tidied by hand). */
function existingCacheDb(ctx: CommandContext, settings: Settings): ResponseCache | undefined {
  const { cacheDb } = dataPaths(ctx.home);
  return existsSync(cacheDb)
    ? ResponseCache.open(cacheDb, settings.cache, { clock: ctx.clock, random: systemRandom })
    : undefined;
}

/**
 * Each item's stages that are not done, as the run would do them: a stage's request depends on
 * the earlier answers, so only a cached (or finished) answer lets the next one be looked up.
 */
async function countWork(
  settings: Settings,
  pipeline: Pipeline,
  todo: AsyncIterable<ToDo>,
  cache: ResponseCache | undefined,
): Promise<Work> {
  const cacheKey = cacheKeys(settings);
  const lookup = async (stage: Stage, previous: Record<string, unknown>, item: StageItem) => {
    const messages = stage.buildMessages({ item, previous });
    const promptTokens = estimateTokens(messages.map((m) => m.content).join('\n'));
    if (!cache) return { hit: undefined, promptTokens };
    const hit = await cache.get(cacheKey(stage, messages));
    if (!hit) return { hit: undefined, promptTokens };
    // A body that is corrupt or no longer fits the schema is what process would call again.
    const checked = validateAnswer(stage, hit.body);
    return { hit: checked.ok ? checked.value : undefined, promptTokens };
  };
  const work: Work = { items: 0, jobs: 0, cacheHits: 0, calls: 0, promptTokens: 0, completionTokens: 0 };
  try {
    for await (const { item, done } of todo) {
      work.items++;
      const previous: Record<string, unknown> = { ...done };
      let known = true;
      for (const stage of pipeline.stages) {
        if (stage.name in done) continue;
        work.jobs++;
        const found = known ? await lookup(stage, previous, item) : undefined;
        if (found?.hit !== undefined) {
          work.cacheHits++;
          previous[stage.name] = found.hit;
          continue;
        }
        known = false;
        work.calls++;
        work.promptTokens += found?.promptTokens ?? 900;
        work.completionTokens += typicalCompletionTokens[stage.name] ?? 400;
      }
    }
  } finally {
    await cache?.close();
  }
  return work;
}

/** This provider key's limiter row (limits learned, latency seen), through the limiter's admin reads. */
async function storedKey(
  admin: LimiterAdmin,
  settings: Settings,
): Promise<{ row: KeyRow | undefined; now: number }> {
  const key = providerKey({ baseUrl: settings.baseUrl, model: settings.model, apiKey: settings.apiKey });
  const { now, keys } = await admin.read();
  return { row: keys.find((k) => k.row.key === key)?.row, now };
}

/** How to say where a configured limit came from. */
function toldBy(source: ValueSource | undefined): string {
  switch (source?.kind) {
    case 'flag':
    case 'env':
      return `told by ${source.detail}`;
    case 'file':
      return `set in ${source.detail}`;
    case 'preset':
      return `the ${source.detail} preset's`;
    default:
      return 'by default';
  }
}

function sourceJson(source: LimitSource): Record<string, unknown> {
  switch (source.kind) {
    case 'setting':
      return { from: 'setting', said: source.said };
    case 'headers':
      return { from: 'headers', at: new Date(source.at).toISOString() };
    case '429s':
      return { from: '429s', at: new Date(source.at).toISOString() };
  }
}

function paceJson(pace: Pace): Record<string, unknown> {
  const limit = (l: Pace['rpm']) => l && { value: Math.round(l.value * 10) / 10, ...sourceJson(l.source) };
  return {
    requestsPerMinute: Math.round(pace.requestsPerMinute * 10) / 10,
    boundBy: pace.boundBy,
    rpm: limit(pace.rpm),
    tpm: limit(pace.tpm),
    latencyMs: Math.round(pace.latencyMs),
    latencyFrom: pace.latencyFrom,
    said: pace.said,
  };
}
