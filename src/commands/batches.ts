import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { emptyItemsWarning, exportBatch } from '../batch/export.ts';
import { isOwnerAlive, newOwnerId, ownerPid } from '../batch/owner.ts';
import { openSqliteBatchStores } from '../batch/sqlite-stores.ts';
import { type BatchRecord, type BatchStores, joinRun } from '../batch/store.ts';
import { parseSetting, settingDefault } from '../config/index.ts';
import { formatDuration } from '../core/duration.ts';
import { ExitCode, FlashcardsError } from '../core/errors.ts';
import { dataPaths } from '../core/home.ts';
import { openDatabase } from '../db/open.ts';
import { deckMeta } from '../output/deck-meta.ts';
import { outputFormatFromPath, parseOutputFormat } from '../output/index.ts';
import { DEFAULT_PIPELINE, loadPipeline } from '../pipeline/registry.ts';
import type { CommandContext } from './context.ts';

/** Runs `fn` on the batch stores, or on undefined when there is no state.db yet (nothing is created). */
async function withStores<T>(
  ctx: CommandContext,
  fn: (stores: BatchStores | undefined) => Promise<T>,
): Promise<T> {
  const file = dataPaths(ctx.home).stateDb;
  if (!existsSync(file)) return fn(undefined);
  const db = openDatabase(file);
  try {
    const stores = openSqliteBatchStores(db, ctx.clock);
    const result = await fn(stores);
    await stores.results.flush();
    return result;
  } finally {
    db.close();
  }
}

/** Runs `fn` on one batch, or fails with exit 2 when there is no such batch. */
function withBatch<T>(
  ctx: CommandContext,
  id: string,
  fn: (stores: BatchStores, batch: BatchRecord) => Promise<T>,
): Promise<T> {
  return withStores(ctx, async (stores) => {
    const batch = await stores?.catalog.get(id);
    if (!stores || !batch) {
      throw new FlashcardsError('usage', `no batch ${id}`, {
        hint: 'list batches with `flashcards batches list`',
      });
    }
    return fn(stores, batch);
  });
}

async function table(head: string[]): Promise<{ push(row: string[]): void; toString(): string }> {
  const { default: Table } = await import('cli-table3');
  return new Table({ head, style: { head: [], border: [] } });
}

export async function batchesList(ctx: CommandContext, opts: { json: boolean }): Promise<number> {
  return withStores(ctx, async (stores) => {
    const rows = ((await stores?.catalog.overview()) ?? []).map(({ batch: b, ...c }) => ({
      id: b.id,
      input: b.inputName,
      created: new Date(b.createdAt).toISOString(),
      status: b.status,
      done: c.done,
      failed: c.failed,
      total: c.total,
      tokens: c.tokens,
      requests: c.requests,
      model: b.model,
      output: b.outputPath,
    }));
    if (opts.json) {
      ctx.io.out(`${JSON.stringify({ batches: rows })}\n`);
      return ExitCode.ok;
    }
    if (rows.length === 0) {
      ctx.io.err('no batches yet\n');
      return ExitCode.ok;
    }
    const t = await table(['id', 'input', 'created', 'status', 'done/failed/total', 'tokens', 'model']);
    for (const r of rows) {
      t.push([
        r.id,
        r.input,
        r.created.slice(0, 16).replace('T', ' '),
        r.status,
        `${r.done}/${r.failed}/${r.total}`,
        String(r.tokens),
        r.model,
      ]);
    }
    ctx.io.err(`${t.toString()}\n`);
    return ExitCode.ok;
  });
}

export async function batchesShow(ctx: CommandContext, opts: { id: string; json: boolean }): Promise<number> {
  return withBatch(ctx, opts.id, async ({ catalog, results }, batch) => {
    const stages = await catalog.stageStats(batch.id);
    const timing = await catalog.requestTimes(batch.id);
    const failures = await results.failures(batch.id, 1000);
    const counts = await results.counts(batch.id);
    const result = { ...batch, counts, stages, timingMs: timing, failures };
    if (opts.json) {
      ctx.io.out(`${JSON.stringify(result)}\n`);
      return ExitCode.ok;
    }
    ctx.io.err(
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
    ctx.io.err(`${t.toString()}\n`);
    const fmt = (v: number | null): string => (v === null ? '-' : formatDuration(v));
    ctx.io.err(
      `request time: p50 ${fmt(timing.p50)} · p90 ${fmt(timing.p90)} · p99 ${fmt(timing.p99)} · max ${fmt(timing.max)}\n`,
    );
    for (const f of failures.slice(0, 20))
      ctx.io.err(`failed item ${f.item + 1} "${f.term}": ${f.errorKind}: ${f.message}\n`);
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
  return withBatch(ctx, opts.id, async ({ catalog, queue }, batch) => {
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
    ctx.io.err(`deleted batch ${batch.id}\n`);
    return ExitCode.ok;
  });
}
