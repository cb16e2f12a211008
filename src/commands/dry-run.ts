import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ResponseCache } from '../cache/index.ts';
import { estimateTokens } from '../client/chat-client.ts';
import { costOf, loadSettings } from '../config/index.ts';
import { formatDuration } from '../core/duration.ts';
import { ExitCode } from '../core/errors.ts';
import { dataPaths } from '../core/home.ts';
import { publicUrl } from '../core/provider-key.ts';
import { systemRandom } from '../core/random.ts';
import { openInput } from '../input/index.ts';
import { cacheKeys } from '../job/execute.ts';
import { chooseColumns } from '../output/columns.ts';
import { loadPipeline, pipelineBaseDir } from '../pipeline/registry.ts';
import type { Stage } from '../pipeline/types.ts';
import { validateAnswer } from '../pipeline/validate.ts';
import { keyValueWidths } from '../ui/summary.ts';
import type { CommandContext } from './context.ts';

/** Typical answer sizes of the built-in stages, for estimates before anything was paid for. */
const typicalCompletionTokens: Record<string, number> = { analyze: 450, cards: 350 };
/** A typical request's latency for hosted models, for the duration estimate. */
const ASSUMED_LATENCY_MS = 4000;

export interface DryRunOptions {
  input: string;
  flags: Record<string, unknown>;
  json: boolean;
  stdin?: NodeJS.ReadableStream;
}

/**
 * `process --dry-run`: reads and checks the whole input, counts what the cache already answers,
 * and estimates requests, tokens, cost and time under the configured limits. Calls nothing.
 */
export async function dryRun(ctx: CommandContext, o: DryRunOptions): Promise<number> {
  const { settings, sources } = await loadSettings({
    cwd: ctx.cwd,
    env: ctx.env,
    configFile: ctx.configFile,
    flags: o.flags,
  });
  const pipeline = loadPipeline(settings.pipeline, pipelineBaseDir(sources['pipeline'], ctx.cwd), settings);
  // The output choices are checked too: a dry run that passes must not fail later over --fields.
  chooseColumns(pipeline.fields, settings.fields);
  const source = await openInput(o.input === '-' ? '-' : resolve(ctx.cwd, o.input), { stdin: o.stdin });
  const paths = dataPaths(ctx.home);
  const cache =
    settings.cache.enabled && existsSync(paths.cacheDb)
      ? ResponseCache.open(paths.cacheDb, settings.cache, { clock: ctx.clock, random: systemRandom })
      : undefined;
  const cacheKey = cacheKeys(settings);
  const lookup = (
    stage: Stage,
    previous: Record<string, unknown>,
    item: { term: string; type?: string | undefined; context: Record<string, string> },
  ) => {
    const messages = stage.buildMessages({ item, previous });
    const promptTokens = estimateTokens(messages.map((m) => m.content).join('\n'));
    if (!cache) return { hit: undefined, promptTokens };
    const key = cacheKey(stage, messages);
    const hit = cache.get(key);
    if (!hit) return { hit: undefined, promptTokens };
    // A body that is corrupt or no longer fits the schema is what process would call again.
    const checked = validateAnswer(stage, hit.body);
    return { hit: checked.ok ? checked.value : undefined, promptTokens };
  };

  let items = 0;
  let calls = 0;
  let cacheHits = 0;
  let promptTokens = 0;
  let completionTokens = 0;
  try {
    for await (const item of source.items) {
      items++;
      const previous: Record<string, unknown> = {};
      let known = true;
      for (const stage of pipeline.stages) {
        // A later stage's request depends on the earlier answer: only a cached answer lets us look it up.
        const found = known ? lookup(stage, previous, item) : undefined;
        if (found?.hit !== undefined) {
          cacheHits++;
          previous[stage.name] = found.hit;
          continue;
        }
        known = false;
        calls++;
        promptTokens += found?.promptTokens ?? 900;
        completionTokens += typicalCompletionTokens[stage.name] ?? 400;
      }
    }
  } finally {
    cache?.close();
  }
  // Steered (no --concurrency), a run keeps as many in flight as the rate needs, up to the maximum.
  const byConcurrency = ((settings.concurrency ?? settings.maxConcurrency) * 60_000) / ASSUMED_LATENCY_MS;
  const rpm = Math.min(byConcurrency, settings.limiter.rpm ?? Number.POSITIVE_INFINITY);
  const tokensPerCall = calls ? (promptTokens + completionTokens) / calls : 0;
  const tpmRpm =
    settings.limiter.tpm && tokensPerCall ? settings.limiter.tpm / tokensPerCall : Number.POSITIVE_INFINITY;
  const effectiveRpm = Math.min(rpm, tpmRpm);
  const durationMs = calls ? (calls / effectiveRpm) * 60_000 : 0;
  const cost = costOf(settings, promptTokens, completionTokens);
  const result = {
    input: source.name,
    format: source.format,
    items,
    skippedRows: source.stats().skipped,
    jobs: items * pipeline.stages.length,
    cacheHits,
    calls,
    estimatedTokens: {
      prompt: promptTokens,
      completion: completionTokens,
      total: promptTokens + completionTokens,
    },
    estimatedCostUsd: cost,
    estimatedDurationMs: Math.round(durationMs),
    model: settings.model,
    baseUrl: publicUrl(settings.baseUrl),
    limits: {
      rpm: settings.limiter.rpm ?? null,
      tpm: settings.limiter.tpm ?? null,
      concurrency: settings.concurrency ?? 'steered',
      maxConcurrency: settings.maxConcurrency,
    },
  };
  if (o.json) {
    ctx.io.out(`${JSON.stringify(result)}\n`);
    return ExitCode.ok;
  }
  const { default: Table } = await import('cli-table3');
  const t = new Table({ style: { head: [], border: [] }, ...keyValueWidths(ctx.io.columns) });
  t.push(
    {
      input: `${result.input} (${result.format}), ${items} items${result.skippedRows ? `, ${result.skippedRows} empty rows skipped` : ''}`,
    },
    { jobs: `${result.jobs} (${cacheHits} answered by the cache)` },
    { 'calls needed': String(calls) },
    { tokens: `~${result.estimatedTokens.total} (${promptTokens} in, ${completionTokens} out)` },
    {
      cost:
        cost === null
          ? `unknown price for ${settings.model} (add it under prices in the config)`
          : `~$${cost.toFixed(4)}`,
    },
    { time: `~${formatDuration(durationMs)} at ~${Math.round(effectiveRpm)} requests/min` },
    { model: `${settings.model} at ${publicUrl(settings.baseUrl)}` },
  );
  ctx.io.err(`dry run: nothing was sent\n${t.toString()}\n`);
  return ExitCode.ok;
}
