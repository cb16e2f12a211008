import { resolve } from 'node:path';
import { emptyItemsWarning, exportBatch } from '../batch/export.ts';
import { formatFailureGroup, readFailures } from '../batch/failure-groups.ts';
import { isOwnerAlive, newOwnerId, ownerPid } from '../batch/owner.ts';
import { type BatchOverview, type BatchRecord, type BatchStores, joinRun } from '../batch/store.ts';
import { isOpen, type Submission } from '../batchapi/submissions.ts';
import { nodeTransport } from '../client/transport.ts';
import {
  costOf,
  DEFAULT_PRICES,
  loadSettings,
  type Price,
  parseSetting,
  settingDefault,
} from '../config/index.ts';
import { formatDuration } from '../core/duration.ts';
import { ExitCode, errorMessage, FlashcardsError } from '../core/errors.ts';
import { deckMeta } from '../output/deck-meta.ts';
import { outputFormatFromPath, parseOutputFormat } from '../output/index.ts';
import { DEFAULT_PIPELINE, loadPipeline } from '../pipeline/registry.ts';
import type { SharedState } from '../store/state.ts';
import type { CommandContext } from './context.ts';
import { settingsInput, withState } from './state.ts';

/** Runs `fn` on the batch stores, or on undefined when there is no state yet (nothing is created). */
function withStores<T>(ctx: CommandContext, fn: (stores: BatchStores | undefined) => Promise<T>): Promise<T> {
  return withState(ctx, false, (state) => fn(state?.batches));
}

/** How many failed items `batches show` lists; --json has them all (up to the store's page). */
const FAILURES_SHOWN = 20;
/** How many failed items --json lists (its failureGroups count up to GROUPED_FAILURES). */
const FAILURES_LISTED = 1000;
/** How many causes of failure `batches show` lists, the most frequent first; --json has them all. */
const GROUPS_SHOWN = 10;
/** How many candidates an ambiguous id prefix names. */
const AMBIGUOUS_SHOWN = 5;

/**
 * Runs `fn` on one batch, named by its id or a unique prefix of it (as `cache show` takes a key
 * prefix); fails with exit 2 when no batch or several match.
 */
function withBatch<T>(
  ctx: CommandContext,
  id: string,
  fn: (stores: BatchStores, batch: BatchRecord, state: SharedState) => Promise<T>,
): Promise<T> {
  return withState(ctx, false, async (state) => {
    const stores = state?.batches;
    const batch = stores && (await findBatch(stores, id));
    if (!state || !stores || !batch) {
      throw new FlashcardsError('usage', `no batch ${id}`, {
        hint: 'list batches with `flashcards batches list`',
      });
    }
    return fn(stores, batch, state);
  });
}

/** The batch with this id, else the one batch whose id starts with it; undefined when none does. */
async function findBatch(stores: BatchStores, id: string): Promise<BatchRecord | undefined> {
  const wanted = id.trim().toLowerCase();
  const exact = await stores.catalog.get(wanted);
  if (exact || wanted === '') return exact;
  const matches = (await stores.catalog.overview()).filter((o) => o.batch.id.startsWith(wanted));
  const [only, second] = matches;
  if (second) {
    const shown = matches.slice(0, AMBIGUOUS_SHOWN).map((m) => `${m.batch.id} (${m.batch.inputName})`);
    throw new FlashcardsError(
      'usage',
      `batch id prefix "${wanted}" is ambiguous: it matches ${shown.join(', ')}${matches.length > AMBIGUOUS_SHOWN ? ', ...' : ''}`,
      { hint: 'give more characters of the id' },
    );
  }
  return only?.batch;
}

async function table(head: string[]): Promise<{ push(row: string[]): void; toString(): string }> {
  const { default: Table } = await import('cli-table3');
  return new Table({ head, style: { head: [], border: [] } });
}

/**
 * What a batch's tokens cost at its model's price (the configured prices over the built-in ones),
 * in USD; null when the model has no price. A broken config file must not hide the batches: then
 * the built-in prices apply, with a warning.
 */
async function batchPricer(ctx: CommandContext): Promise<(b: BatchOverview) => number | null> {
  let prices: Record<string, Price> = { ...DEFAULT_PRICES };
  try {
    ({ prices } = (await loadSettings({ cwd: ctx.cwd, env: ctx.env, configFile: ctx.configFile })).settings);
  } catch (e) {
    ctx.io.err(`warning: costs use the built-in prices: ${errorMessage(e)}\n`);
  }
  return (o) => costOf({ model: o.batch.model, prices }, o.promptTokens, o.completionTokens);
}

/** `batches list [--json]`: every batch, newest first, on stdout. */
export async function batchesList(ctx: CommandContext, opts: { json: boolean }): Promise<number> {
  const overview = await withStores(ctx, async (stores) => (await stores?.catalog.overview()) ?? []);
  // Prices come from the configuration: read only when there is something to price.
  const costOfBatch = overview.length > 0 ? await batchPricer(ctx) : () => null;
  const rows = overview.map((o) => ({
    id: o.batch.id,
    input: o.batch.inputName,
    created: new Date(o.batch.createdAt).toISOString(),
    status: o.batch.status,
    done: o.done,
    failed: o.failed,
    total: o.total,
    tokens: o.tokens,
    promptTokens: o.promptTokens,
    completionTokens: o.completionTokens,
    // USD at the model's price; null when the model has no price.
    cost: costOfBatch(o),
    requests: o.requests,
    model: o.batch.model,
    output: o.batch.outputPath,
  }));
  if (opts.json) {
    ctx.io.out(`${JSON.stringify({ batches: rows })}\n`);
    return ExitCode.ok;
  }
  if (rows.length === 0) {
    ctx.io.out('no batches yet\n');
    return ExitCode.ok;
  }
  const t = await table(['id', 'input', 'created', 'status', 'done/failed/total', 'tokens', 'cost', 'model']);
  for (const r of rows) {
    t.push([
      r.id,
      r.input,
      r.created.slice(0, 16).replace('T', ' '),
      r.status,
      `${r.done}/${r.failed}/${r.total}`,
      String(r.tokens),
      r.cost === null ? '-' : `$${r.cost.toFixed(4)}`,
      r.model,
    ]);
  }
  ctx.io.out(`${t.toString()}\n`);
  return ExitCode.ok;
}

/**
 * `batches show <id> [--json]`: one batch's counts, stages, timings and failures, on stdout. Items
 * are numbered as the user sees them in the input: the first row is item 1, in the text and in
 * the JSON `item` field alike.
 */
export async function batchesShow(ctx: CommandContext, opts: { id: string; json: boolean }): Promise<number> {
  return withBatch(ctx, opts.id, async ({ catalog, results }, batch, state) => {
    const stages = await catalog.stageStats(batch.id);
    const timing = await catalog.requestTimes(batch.id);
    const read = await readFailures(results, batch.id);
    const failures = read.failures.slice(0, FAILURES_LISTED);
    const counts = await results.counts(batch.id);
    // What the batch sent to a provider's batch API (process --batch-api), newest last.
    const remote = (await state.batchApi.list(batch.id)).map(remoteJson);
    const result = {
      ...batch,
      counts,
      stages,
      timingMs: timing,
      failures,
      failureGroups: read.groups,
      remoteBatches: remote,
    };
    if (opts.json) {
      ctx.io.out(`${JSON.stringify(result)}\n`);
      return ExitCode.ok;
    }
    ctx.io.out(
      `batch ${batch.id} (${batch.status}) · input ${batch.inputName} · ${batch.model} · created ${new Date(batch.createdAt).toISOString()}\n` +
        `items: ${counts.done} done, ${counts.failed} failed, ${counts.pending} pending of ${counts.total}\n`,
    );
    const t = await table(['stage', 'done', 'failed', 'pending', 'cached', 'requests', 'tokens in/out']);
    for (const s of stages) {
      t.push([
        s.stage,
        String(s.done),
        String(s.failed),
        String(s.pending),
        String(s.cached),
        String(s.requests),
        `${s.promptTokens}/${s.completionTokens}`,
      ]);
    }
    ctx.io.out(`${t.toString()}\n`);
    const fmt = (v: number | null): string => (v === null ? '-' : formatDuration(v));
    ctx.io.out(
      `request time: p50 ${fmt(timing.p50)} · p90 ${fmt(timing.p90)} · p99 ${fmt(timing.p99)} · max ${fmt(timing.max)}\n`,
    );
    if (remote.length > 0) {
      const r = await table([
        'remote batch',
        'stage',
        'state',
        'requests',
        'answered',
        'failed',
        'submitted',
      ]);
      for (const b of remote) {
        r.push([
          b.remoteId ?? `(${b.state})`,
          b.stage,
          b.remoteState ?? b.state,
          String(b.requests),
          b.counts ? String(b.counts.completed) : '-',
          b.counts ? String(b.counts.failed) : '-',
          b.createdAt,
        ]);
      }
      ctx.io.out(`${r.toString()}\n`);
    }
    if (read.groups.length > 0) {
      ctx.io.out(
        `failures by cause${read.failures.length < counts.failed ? ` (of the first ${read.failures.length})` : ''}:\n`,
      );
      for (const g of read.groups.slice(0, GROUPS_SHOWN)) ctx.io.out(`  ${formatFailureGroup(g)}\n`);
      if (read.groups.length > GROUPS_SHOWN)
        ctx.io.out(`  ... and ${read.groups.length - GROUPS_SHOWN} more causes (see --json)\n`);
    }
    for (const f of failures.slice(0, FAILURES_SHOWN))
      ctx.io.out(`failed item ${f.item} "${f.term}": ${f.errorKind}: ${f.message}\n`);
    if (counts.failed > FAILURES_SHOWN) {
      ctx.io.out(`... and ${counts.failed - FAILURES_SHOWN} more failed items (see --json)\n`);
    }
    return ExitCode.ok;
  });
}

export async function batchesRetry(ctx: CommandContext, opts: { id: string }): Promise<number> {
  return withBatch(ctx, opts.id, async ({ catalog, results }, batch) => {
    const n = await results.requeueFailed(batch.id);
    if (n > 0) await catalog.setStatus(batch.id, 'running');
    ctx.io.err(
      `${n} failed item(s) of ${batch.id} queued again; run \`flashcards process --batch ${batch.id} <input>\` or the original command\n`,
    );
    return ExitCode.ok;
  });
}

export async function batchesExport(
  ctx: CommandContext,
  opts: {
    id: string;
    output: string;
    format?: string | undefined;
    /** As typed: a comma-separated list, checked like the `fields` setting. */
    fields?: string | undefined;
    deck?: string | undefined;
    noteType?: string | undefined;
    /** As typed: a comma-separated list, checked like the `tags` setting. */
    tags?: string | undefined;
  },
): Promise<number> {
  return withBatch(ctx, opts.id, async ({ results }, batch) => {
    const s = batch.settings;
    const format = parseOutputFormat(
      opts.format ?? (opts.output === '-' ? undefined : outputFormatFromPath(opts.output)) ?? batch.format,
    );
    const text = (key: string): string | undefined =>
      typeof s[key] === 'string' ? (s[key] as string) : undefined;
    const list = (key: string): string[] | undefined =>
      Array.isArray(s[key]) ? (s[key] as unknown[]).map(String) : undefined;
    const pipeline = loadPipeline(text('pipelineRef') ?? DEFAULT_PIPELINE, ctx.cwd, {
      // Batches made before languages were stored ran with the defaults.
      sourceLanguage: text('sourceLanguage') ?? String(settingDefault('sourceLanguage')),
      targetLanguage: text('targetLanguage') ?? String(settingDefault('targetLanguage')),
    });
    if (text('pipelineVersion') && text('pipelineVersion') !== pipeline.version) {
      ctx.io.err(
        `warning: the ${pipeline.name} pipeline's prompts or schemas changed since batch ${batch.id} was made; its stored answers are exported with the current card mapping\n`,
      );
    }
    const output = opts.output === '-' ? '-' : resolve(ctx.cwd, opts.output);
    const written = await exportBatch({
      results,
      batchId: batch.id,
      pipeline,
      output,
      format,
      meta: deckMeta(pipeline, {
        deck: opts.deck ?? text('deck'),
        noteType: opts.noteType ?? text('noteType'),
        tags:
          (opts.tags === undefined ? undefined : (parseSetting('tags', opts.tags, '--tags') as string[])) ??
          list('tags') ??
          [],
        fields:
          (opts.fields === undefined
            ? undefined
            : (parseSetting('fields', opts.fields, '--fields') as string[])) ?? list('fields'),
      }),
    });
    const counts = await results.counts(batch.id);
    ctx.io.err(
      `wrote ${written.cards} cards for ${counts.done} of ${counts.total} items to ${written.path}\n`,
    );
    const empty = emptyItemsWarning(written.tally, pipeline);
    if (empty) ctx.io.err(`warning: ${empty}\n`);
    return ExitCode.ok;
  });
}

export async function batchesRm(ctx: CommandContext, opts: { id: string }): Promise<number> {
  return withBatch(ctx, opts.id, async ({ catalog, queue }, batch, state) => {
    // Deleting under a running batch would leave it nothing to write: ask for the run to end first.
    const probe = newOwnerId();
    const conflict = await joinRun(queue, batch.id, probe, { exclusive: true, aliveMs: 1000 }, isOwnerAlive);
    if (conflict) {
      throw new FlashcardsError(
        'locked',
        `batch ${batch.id} is being processed (pid ${ownerPid(conflict)})`,
        {
          hint: 'stop that run first (Ctrl-C), then remove the batch',
        },
      );
    }
    await catalog.delete(batch.id);
    await state.batchApi.remove(batch.id);
    ctx.io.err(`deleted batch ${batch.id}\n`);
    return ExitCode.ok;
  });
}

function remoteJson(s: Submission) {
  return {
    tag: s.tag,
    stage: s.stage,
    state: s.state,
    remoteId: s.remoteId ?? null,
    remoteState: s.remoteState ?? null,
    fileId: s.fileId ?? null,
    requests: s.jobs.length,
    counts: s.counts ?? null,
    createdAt: new Date(s.createdAt).toISOString(),
    error: s.error ?? null,
  };
}

/**
 * `batches cancel <id>`: cancels the batch's remote batches still with the provider (process
 * --batch-api). What they finished is collected by the next run; the rest would be submitted again.
 */
export async function batchesCancel(
  ctx: CommandContext,
  opts: { id: string; flags: Record<string, unknown> },
): Promise<number> {
  const { settings } = await loadSettings(settingsInput(ctx, opts.flags));
  return withBatch(ctx, opts.id, async (_stores, batch, state) => {
    const open = (await state.batchApi.list(batch.id)).filter((s) => isOpen(s) && s.remoteId !== undefined);
    if (open.length === 0) {
      ctx.io.err(`batch ${batch.id} has nothing with a provider's batch API\n`);
      return ExitCode.ok;
    }
    const { openaiBatchApi } = await import('../batchapi/openai.ts');
    const adapter = openaiBatchApi({
      baseUrl: settings.baseUrl,
      apiKey: settings.apiKey,
      transport: nodeTransport(),
      timeoutMs: settings.timeoutMs,
    });
    for (const s of open) {
      const remote = await adapter.cancel(s.remoteId ?? '', AbortSignal.timeout(settings.timeoutMs));
      await state.batchApi.save({ ...s, remoteState: remote.state, updatedAt: ctx.clock.now() });
      ctx.io.err(`${s.remoteId}: ${remote.state}\n`);
    }
    ctx.io.err(
      `cancelled ${open.length} remote batch(es) of ${batch.id}; the next \`process --batch-api\` collects what they finished\n`,
    );
    return ExitCode.ok;
  });
}
