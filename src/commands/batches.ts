import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { emptyItemsWarning, exportBatch } from '../batch/export.ts';
import { isOwnerAlive, newOwnerId, ownerPid } from '../batch/owner.ts';
import { type BatchRecord, BatchStore } from '../batch/store.ts';
import { parseSetting, settingDefault } from '../config/index.ts';
import { formatDuration } from '../core/duration.ts';
import { ExitCode, FlashcardsError } from '../core/errors.ts';
import { dataPaths } from '../core/home.ts';
import { openDatabase } from '../db/open.ts';
import { deckMeta } from '../output/deck-meta.ts';
import { outputFormatFromPath, parseOutputFormat } from '../output/index.ts';
import { DEFAULT_PIPELINE, loadPipeline } from '../pipeline/registry.ts';
import type { CommandContext } from './context.ts';

/** Runs `fn` on the batch store, or on undefined when there is no state.db yet (nothing is created). */
async function withStore<T>(
  ctx: CommandContext,
  fn: (store: BatchStore | undefined) => Promise<T> | T,
): Promise<T> {
  const file = dataPaths(ctx.home).stateDb;
  const store = existsSync(file) ? new BatchStore(openDatabase(file), ctx.clock) : undefined;
  try {
    return await fn(store);
  } finally {
    store?.db.close();
  }
}

/** Runs `fn` on one batch, or fails with exit 2 when there is no such batch. */
function withBatch<T>(
  ctx: CommandContext,
  id: string,
  fn: (store: BatchStore, batch: BatchRecord) => Promise<T> | T,
): Promise<T> {
  return withStore(ctx, (store) => {
    const batch = store?.get(id);
    if (!store || !batch) {
      throw new FlashcardsError('usage', `no batch ${id}`, {
        hint: 'list batches with `flashcards batches list`',
      });
    }
    return fn(store, batch);
  });
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? null;
}

async function table(head: string[]): Promise<{ push(row: string[]): void; toString(): string }> {
  const { default: Table } = await import('cli-table3');
  return new Table({ head, style: { head: [], border: [] } });
}

export async function batchesList(ctx: CommandContext, opts: { json: boolean }): Promise<number> {
  return withStore(ctx, async (store) => {
    const rows = (store?.overview() ?? []).map(({ batch: b, ...c }) => ({
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
  return withBatch(ctx, opts.id, async (store, batch) => {
    const db = store.db;
    const stages = (
      db
        .prepare(
          `SELECT stage, count(*) AS total, sum(status = 'done') AS done, sum(status = 'failed') AS failed,
             sum(status = 'pending') AS pending, sum(cached) AS cached, sum(requests) AS requests,
             sum(prompt_tokens) AS promptTokens, sum(completion_tokens) AS completionTokens
           FROM jobs WHERE batch_id = ? GROUP BY stage`,
        )
        .all(batch.id) as Record<string, number | string>[]
    ).sort((a, b) => batch.stages.indexOf(String(a['stage'])) - batch.stages.indexOf(String(b['stage'])));
    const durations = (
      db
        .prepare(
          "SELECT duration_ms AS d FROM jobs WHERE batch_id = ? AND status = 'done' AND cached = 0 AND duration_ms IS NOT NULL ORDER BY d",
        )
        .all(batch.id) as { d: number }[]
    ).map((r) => r.d);
    const timing = {
      p50: percentile(durations, 50),
      p90: percentile(durations, 90),
      p99: percentile(durations, 99),
      max: durations.at(-1) ?? null,
    };
    const failures = store.failures(batch.id, 1000);
    const counts = store.counts(batch.id);
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
        String(s['stage']),
        String(s['done']),
        String(s['failed']),
        String(s['pending']),
        String(s['cached']),
        String(s['requests']),
        `${s['promptTokens']}/${s['completionTokens']}`,
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
  return withBatch(ctx, opts.id, async (store, batch) => {
    const n = store.requeueFailed(batch.id);
    if (n > 0) store.setStatus(batch.id, 'running');
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
  return withBatch(ctx, opts.id, async (store, batch) => {
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
      store,
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
    const counts = store.counts(batch.id);
    ctx.io.err(
      `wrote ${written.cards} cards for ${counts.done} of ${counts.total} items to ${written.path}\n`,
    );
    const empty = emptyItemsWarning(written.tally, pipeline);
    if (empty) ctx.io.err(`warning: ${empty}\n`);
    return ExitCode.ok;
  });
}

export async function batchesRm(ctx: CommandContext, opts: { id: string }): Promise<number> {
  return withBatch(ctx, opts.id, async (store, batch) => {
    // Deleting under a running batch would leave it nothing to write: ask for the run to end first.
    const probe = newOwnerId();
    const conflict = store.joinRun(batch.id, probe, true, 1000, isOwnerAlive);
    if (conflict) {
      throw new FlashcardsError(
        'locked',
        `batch ${batch.id} is being processed (pid ${ownerPid(conflict)})`,
        {
          hint: 'stop that run first (Ctrl-C), then remove the batch',
        },
      );
    }
    store.delete(batch.id);
    ctx.io.err(`deleted batch ${batch.id}\n`);
    return ExitCode.ok;
  });
}
