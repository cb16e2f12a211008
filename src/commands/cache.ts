import { Chalk, type ChalkInstance } from 'chalk';
import Table from 'cli-table3';
import type { CacheAdmin, CacheStats, ClearFilter, Deleted, EntrySummary } from '../cache/admin.ts';
import { decodeBody } from '../cache/codec.ts';
import { sqliteCacheAdmin } from '../cache/sqlite-admin.ts';
import { loadStoreSetting } from '../config/index.ts';
import { parseDuration } from '../core/duration.ts';
import { ExitCode, FlashcardsError, usageError } from '../core/errors.ts';
import { dataPaths } from '../core/home.ts';
import type { CommandContext } from './context.ts';
import { parseCount } from './count.ts';
import { openCommandState } from './state.ts';

/** What every `cache` command may be given besides its own options. */
export interface CacheCommandOptions {
  /**
   * The cache to work on: the store's admin (redisCacheAdmin for --store); by default cache.db in
   * the data directory. Given, it is the caller's to close.
   */
  admin?: CacheAdmin | undefined;
}

export interface CacheStatsOptions extends CacheCommandOptions {
  json?: boolean;
}

export interface CacheListOptions extends CacheCommandOptions {
  /** A number, or the text as typed (checked the same way as on the command line). */
  limit?: number | string;
  json?: boolean;
}

export interface CacheShowOptions extends CacheCommandOptions {
  prefix: string;
  json?: boolean;
}

export interface CachePruneOptions extends CacheCommandOptions {
  json?: boolean;
}

export interface CacheClearOptions extends CacheCommandOptions {
  model?: string;
  /** A duration like 30d, 12h; a bare number means days. */
  olderThan?: string;
  yes?: boolean;
  json?: boolean;
  /** Asks the user; defaults to @inquirer/prompts `confirm` on stderr. Injected by tests. */
  confirm?: (message: string) => Promise<boolean>;
}

const DEFAULT_LIST_LIMIT = 20;
/** How many candidates an ambiguous `show` names. */
const AMBIGUOUS_SHOWN = 5;

export async function cacheStats(ctx: CommandContext, opts: CacheStatsOptions): Promise<number> {
  const now = ctx.clock.now();
  // Read-only command: a missing cache is reported as empty, not created.
  const { stats, size, location, medium } = await withAdmin(ctx, opts, async (admin) => ({
    stats: await admin.stats(),
    size: await admin.footprint(),
    location: admin.location,
    medium: admin.medium,
  }));
  if (opts.json) {
    ctx.io.out(
      `${JSON.stringify({
        file: location,
        fileBytes: size,
        ...stats,
        oldest: iso(stats.oldest),
        newest: iso(stats.newest),
        recentRuns: stats.recentRuns.map((r) => ({ ...r, startedAt: iso(r.startedAt) })),
      })}\n`,
    );
    return ExitCode.ok;
  }
  printStats(
    ctx,
    stats,
    `${location} (${formatBytes(size)} ${medium === 'file' ? 'on disk' : 'in memory'})`,
    now,
  );
  return ExitCode.ok;
}

export async function cacheList(ctx: CommandContext, opts: CacheListOptions): Promise<number> {
  const limit = opts.limit === undefined ? DEFAULT_LIST_LIMIT : parseCount('--limit', opts.limit);
  const now = ctx.clock.now();
  const entries = await withAdmin(ctx, opts, (admin) => admin.list(limit));
  if (opts.json) {
    ctx.io.out(`${JSON.stringify({ entries: entries.map((e) => entryJson(e, now)) })}\n`);
    return ExitCode.ok;
  }
  if (entries.length === 0) {
    ctx.io.out('no cached responses\n');
    return ExitCode.ok;
  }
  const c = colours(ctx.io.outColor);
  const table = newTable(c, ['key', 'model', 'term', 'stage', 'size', 'codec', 'created', 'expires']);
  for (const e of entries) {
    table.push([
      e.key.slice(0, 12),
      e.model,
      e.term ?? '',
      e.stage ?? '',
      `${formatBytes(e.originalBytes)} → ${formatBytes(e.storedBytes)}`,
      e.codec,
      `${formatAge(now - e.createdAt)} ago`,
      expiryText(c, e.expiresAt, now),
    ]);
  }
  ctx.io.out(`${table.toString()}\n`);
  return ExitCode.ok;
}

export async function cacheShow(ctx: CommandContext, opts: CacheShowOptions): Promise<number> {
  const prefix = opts.prefix.trim().toLowerCase();
  if (!/^[0-9a-f]{1,64}$/.test(prefix)) {
    throw usageError(
      `key prefix must be 1 to 64 hex digits, got "${opts.prefix}"`,
      'copy a key from `flashcards cache list`',
    );
  }
  const { matches, location } = await withAdmin(ctx, opts, async (admin) => ({
    matches: await admin.show(prefix, AMBIGUOUS_SHOWN + 1),
    location: admin.location,
  }));
  const [entry, second] = matches;
  if (!entry) {
    throw usageError(
      `no cached response has a key starting with "${prefix}" (in ${location})`,
      'see `flashcards cache list`',
    );
  }
  if (second) {
    const shown = matches.slice(0, AMBIGUOUS_SHOWN).map((m) => m.key.slice(0, prefix.length + 6));
    const more = matches.length > AMBIGUOUS_SHOWN ? ', ...' : '';
    throw usageError(
      `key prefix "${prefix}" is ambiguous: it matches ${shown.join(', ')}${more}`,
      'give more characters of the key',
    );
  }
  const body = decodeBody(entry.codec, entry.body);
  const now = ctx.clock.now();
  if (opts.json) {
    ctx.io.out(`${JSON.stringify({ ...entryJson(entry, now), body })}\n`);
    return ExitCode.ok;
  }
  // The entry's description is for the person reading (stderr); the response itself is the
  // result (stdout), so `cache show 3fa9 > answer.json` saves the answer alone.
  const c = colours(ctx.io.color);
  ctx.io.err(
    [
      `${c.bold('key')}      ${entry.key}`,
      `${c.bold('model')}    ${entry.model}${entry.stage ? `  (stage ${entry.stage})` : ''}`,
      ...(entry.term ? [`${c.bold('term')}     ${entry.term}`] : []),
      `${c.bold('size')}     ${formatBytes(entry.originalBytes)} → ${formatBytes(entry.storedBytes)} (${entry.codec})`,
      `${c.bold('created')}  ${iso(entry.createdAt)} (${formatAge(now - entry.createdAt)} ago)`,
      `${c.bold('expires')}  ${expiryText(c, entry.expiresAt, now)}`,
      '',
    ].join('\n'),
  );
  ctx.io.out(`${prettyIfJson(body)}\n`);
  return ExitCode.ok;
}

export async function cachePrune(ctx: CommandContext, opts: CachePruneOptions): Promise<number> {
  const { before, result, after, medium } = await withAdmin(ctx, opts, async (admin) => {
    const before = await admin.footprint();
    const result = await admin.prune();
    return { before, result, after: await admin.footprint(), medium: admin.medium };
  });
  if (opts.json) {
    ctx.io.out(
      `${JSON.stringify({
        deleted: result.rows,
        originalBytes: result.originalBytes,
        storedBytes: result.storedBytes,
        runsTrimmed: result.runsTrimmed,
        fileBytesBefore: before,
        fileBytesAfter: after,
        freedBytes: Math.max(0, before - after),
      })}\n`,
    );
    return ExitCode.ok;
  }
  ctx.io.err(
    result.rows === 0
      ? `no expired entries; ${medium} ${formatBytes(before)} → ${formatBytes(after)}\n`
      : `deleted ${result.rows} expired ${plural(result.rows, 'entry', 'entries')} (${formatBytes(result.storedBytes)} stored); ` +
          `${medium} ${formatBytes(before)} → ${formatBytes(after)}, freed ${formatBytes(Math.max(0, before - after))}\n`,
  );
  return ExitCode.ok;
}

export async function cacheClear(ctx: CommandContext, opts: CacheClearOptions): Promise<number> {
  // Decided before looking at the data, so a script gets the same answer on every machine.
  if (!opts.yes && !ctx.io.isTTY) {
    throw usageError(
      'cache clear needs confirmation, and there is no terminal to ask on; pass --yes to clear without asking',
      'pass --yes',
    );
  }
  const filter: ClearFilter = {
    model: opts.model,
    olderThanMs:
      opts.olderThan === undefined ? undefined : parseDuration(opts.olderThan, '--older-than', 'd'),
  };
  const what = describeFilter(opts);
  const outcome = await withAdmin(ctx, opts, async (admin) => {
    const before = await admin.footprint();
    const count = await admin.count(filter);
    if (count === 0) return { cleared: false as const, before, count };
    if (!opts.yes) {
      const ask = opts.confirm ?? askOnStderr;
      if (!(await ask(`Delete ${count} cached ${plural(count, 'response', 'responses')}${what}?`))) {
        return { cleared: false as const, before, count };
      }
    }
    const deleted = await admin.clear(filter);
    return { cleared: true as const, before, deleted, after: await admin.footprint(), medium: admin.medium };
  });
  if (!outcome.cleared) {
    if (outcome.count > 0) ctx.io.err('nothing deleted\n');
    else if (opts.json)
      ctx.io.out(
        `${JSON.stringify(clearJson({ rows: 0, originalBytes: 0, storedBytes: 0 }, outcome.before, outcome.before))}\n`,
      );
    else ctx.io.err(`nothing to clear: no cached responses${what}\n`);
    return ExitCode.ok;
  }
  const { deleted, before, after } = outcome;
  if (opts.json) {
    ctx.io.out(`${JSON.stringify(clearJson(deleted, before, after))}\n`);
    return ExitCode.ok;
  }
  ctx.io.err(
    `deleted ${deleted.rows} cached ${plural(deleted.rows, 'response', 'responses')}${what} ` +
      `(${formatBytes(deleted.storedBytes)} stored); ${outcome.medium} ${formatBytes(before)} → ${formatBytes(after)}\n`,
  );
  return ExitCode.ok;
}

/**
 * Runs `fn` on the given admin; on the shared store's cache when one is configured (--store,
 * FLASHCARDS_STORE, the config's `store`); otherwise on cache.db in the data directory, which reads
 * as an empty cache, and is not created, when there is none. Closed again afterwards.
 */
async function withAdmin<T>(
  ctx: CommandContext,
  opts: CacheCommandOptions,
  fn: (admin: CacheAdmin) => Promise<T>,
): Promise<T> {
  if (opts.admin) return fn(opts.admin);
  const store = await loadStoreSetting({
    cwd: ctx.cwd,
    env: ctx.env,
    configFile: ctx.configFile,
    flag: ctx.store,
  });
  if (store?.url) {
    const state = await openCommandState(ctx, true, { store: store.url });
    try {
      return await runOn(state.cache.admin(), fn);
    } finally {
      await state.close();
    }
  }
  return runOn(sqliteCacheAdmin(dataPaths(ctx.home).cacheDb, { clock: ctx.clock }), fn);
}

async function runOn<T>(admin: CacheAdmin, fn: (admin: CacheAdmin) => Promise<T>): Promise<T> {
  try {
    return await fn(admin);
  } finally {
    await admin.close();
  }
}

async function askOnStderr(message: string): Promise<boolean> {
  const { confirm } = await import('@inquirer/prompts');
  try {
    // stderr, because stdout is reserved for results and --json.
    return await confirm({ message, default: false }, { output: process.stderr });
  } catch (e) {
    if (e instanceof Error && e.name === 'ExitPromptError') {
      throw new FlashcardsError('cancelled', 'cache clear cancelled, nothing deleted');
    }
    throw e;
  }
}

function clearJson(d: Deleted, before: number, after: number): Record<string, number> {
  return {
    deleted: d.rows,
    originalBytes: d.originalBytes,
    storedBytes: d.storedBytes,
    fileBytesBefore: before,
    fileBytesAfter: after,
  };
}

function describeFilter(opts: CacheClearOptions): string {
  const parts: string[] = [];
  if (opts.model !== undefined) parts.push(`for model ${opts.model}`);
  if (opts.olderThan !== undefined) parts.push(`older than ${opts.olderThan.trim()}`);
  return parts.length ? ` ${parts.join(' ')}` : '';
}

function printStats(ctx: CommandContext, s: CacheStats, where: string, now: number): void {
  const c = colours(ctx.io.outColor);
  const lookups = s.hits + s.misses;
  const lines = [
    `${c.bold('cache')}     ${where}`,
    `${c.bold('entries')}   ${s.entries} (${s.live} live, ${s.expired} expired)`,
    `${c.bold('bodies')}    ${formatBytes(s.originalBytes)} → ${formatBytes(s.storedBytes)} stored` +
      (s.storedBytes ? ` (ratio ${s.compressionRatio.toFixed(2)})` : ''),
    `${c.bold('oldest')}    ${s.oldest === null ? '-' : `${iso(s.oldest)} (${formatAge(now - s.oldest)} ago)`}`,
    `${c.bold('newest')}    ${s.newest === null ? '-' : `${iso(s.newest)} (${formatAge(now - s.newest)} ago)`}`,
    `${c.bold('recent')}    ${s.hits} hits, ${s.misses} misses over ${s.recentRuns.length} ${plural(s.recentRuns.length, 'run', 'runs')}` +
      (lookups ? ` (${((100 * s.hits) / lookups).toFixed(1)}% hit rate)` : ''),
  ];
  ctx.io.out(`${lines.join('\n')}\n`);
  const models = Object.entries(s.perModel);
  if (models.length) {
    const table = newTable(c, ['model', 'entries', 'live', 'expired', 'original', 'stored']);
    for (const [model, m] of models) {
      table.push([
        model,
        m.entries,
        m.live,
        m.expired,
        formatBytes(m.originalBytes),
        formatBytes(m.storedBytes),
      ]);
    }
    ctx.io.out(`${table.toString()}\n`);
  }
  if (s.recentRuns.length) {
    const table = newTable(c, ['run', 'started', 'model', 'hits', 'misses', 'hit rate']);
    for (const r of s.recentRuns) {
      const total = r.hits + r.misses;
      table.push([
        r.runId,
        `${formatAge(now - r.startedAt)} ago`,
        r.model,
        r.hits,
        r.misses,
        total ? `${((100 * r.hits) / total).toFixed(1)}%` : '-',
      ]);
    }
    ctx.io.out(`${table.toString()}\n`);
  }
}

function entryJson(e: EntrySummary, now: number): Record<string, unknown> {
  return {
    key: e.key,
    model: e.model,
    term: e.term,
    stage: e.stage,
    codec: e.codec,
    originalBytes: e.originalBytes,
    storedBytes: e.storedBytes,
    createdAt: iso(e.createdAt),
    expiresAt: iso(e.expiresAt),
    expired: e.expiresAt !== null && e.expiresAt <= now,
  };
}

/** Colour for the stream written to: `ctx.io.outColor` for results, `ctx.io.color` for stderr. */
function colours(allowed: boolean): ChalkInstance {
  return new Chalk({ level: allowed ? 1 : 0 });
}

function newTable(c: ChalkInstance, head: string[]): Table.Table {
  // cli-table3 colours headers on its own; colour goes through chalk so the Io decides.
  return new Table({
    head: head.map((h) => c.bold(h)),
    style: { head: [], border: [] },
    // No rule between rows: long lists stay readable.
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
}

function expiryText(c: ChalkInstance, expiresAt: number | null, now: number): string {
  if (expiresAt === null) return 'never';
  return expiresAt <= now
    ? c.yellow(`expired ${formatAge(now - expiresAt)} ago`)
    : `in ${formatAge(expiresAt - now)}`;
}

function prettyIfJson(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function plural(n: number, one: string, many: string): string {
  return n === 1 ? one : many;
}

/** Coarse ages for people: 45s, 12m, 5h, 29d. */
function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}
