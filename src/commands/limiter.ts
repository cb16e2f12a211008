import { Chalk, type ChalkInstance } from 'chalk';
import Table from 'cli-table3';
import { formatDuration } from '../core/duration.ts';
import { ExitCode } from '../core/errors.ts';
import { type BucketStatus, type KeyStatus, keyStatuses } from '../limiter/status.ts';
import type { LimiterAdmin } from '../limiter/store.ts';
import type { CommandContext } from './context.ts';
import { withState } from './state.ts';

export interface LimiterStatusOptions {
  json: boolean;
}

export interface LimiterResetOptions {
  /** A provider key or a prefix of one; all keys when omitted. */
  key?: string | undefined;
}

/** `flashcards limiter status [--json]`: every key's buckets and shards as they stand now, on stdout. */
export async function limiterStatus(ctx: CommandContext, opts: LimiterStatusOptions): Promise<number> {
  const stored = await withAdmin(ctx, (admin) => admin.read());
  const now = stored?.now ?? ctx.clock.now();
  const keys = stored === undefined ? [] : keyStatuses(stored.keys, now);
  if (opts.json) {
    ctx.io.out(`${JSON.stringify({ version: 1, now: iso(now), keys: keys.map(toJson) })}\n`);
    return ExitCode.ok;
  }
  if (keys.length === 0) {
    ctx.io.out('no limiter state yet\n');
    return ExitCode.ok;
  }
  const c = new Chalk({ level: ctx.io.outColor ? 1 : 0 });
  for (const k of keys) printKey(ctx, c, k, now);
  return ExitCode.ok;
}

/** `flashcards limiter reset [key]`: forgets buckets, learned limits and pauses. */
export async function limiterReset(ctx: CommandContext, opts: LimiterResetOptions): Promise<number> {
  const removed = await withAdmin(ctx, (admin) => admin.reset(opts.key));
  if (removed === undefined) {
    ctx.io.err('no limiter state yet\n');
    return ExitCode.ok;
  }
  if (removed.length === 0) {
    ctx.io.err(
      opts.key === undefined
        ? 'no limiter state to reset\n'
        : `no limiter state matches "${opts.key}", nothing reset\n`,
    );
    return ExitCode.ok;
  }
  ctx.io.err(`reset limiter state for ${removed.length} key${removed.length === 1 ? '' : 's'}:\n`);
  for (const key of removed) ctx.io.err(`  ${key}\n`);
  return ExitCode.ok;
}

/** Neither command creates the data directory or the database: undefined when there is none. */
async function withAdmin<T>(
  ctx: CommandContext,
  fn: (admin: LimiterAdmin) => Promise<T>,
): Promise<T | undefined> {
  return withState(ctx, false, async (state) => (state ? fn(state.limiter.admin) : undefined));
}

function toJson(k: KeyStatus): Record<string, unknown> {
  return {
    key: k.key,
    shards: k.shards,
    pausedUntil: iso(k.pausedUntil),
    pauseReason: k.pauseReason,
    strikes: k.strikes,
    provider: { rpm: k.provider.rpm, tpm: k.provider.tpm, seenAt: iso(k.provider.seenAt) },
    aimd: k.aimd === null ? null : { rpm: round(k.aimd.rpm), since: iso(k.aimd.since) },
    observedAt: iso(k.observedAt),
    latency: k.latency && {
      p50Ms: Math.round(k.latency.p50Ms),
      p75Ms: Math.round(k.latency.p75Ms),
      at: iso(k.latency.at),
    },
    tokenAccounting: k.tokenAccounting,
    updatedAt: iso(k.updatedAt),
    buckets: k.buckets.map((b) => ({
      kind: b.kind,
      rate: b.rate,
      burst: round(b.burst),
      configured: b.configured,
      available: round(b.available),
      shards: b.shards.map((s) => ({
        shard: s.shard,
        available: round(s.available),
        tat: iso(s.tat),
        updatedAt: iso(s.updatedAt),
      })),
    })),
  };
}

function printKey(ctx: CommandContext, c: ChalkInstance, k: KeyStatus, now: number): void {
  const learned = [
    k.provider.rpm === null ? '' : `${k.provider.rpm} requests/min`,
    k.provider.tpm === null ? '' : `${k.provider.tpm} tokens/min`,
  ].filter(Boolean);
  const lines = [
    c.bold(k.key),
    `  provider says: ${learned.length > 0 ? `${learned.join(', ')} (seen ${ago(k.provider.seenAt, now)})` : k.observedAt === null ? 'nothing yet' : 'no rate-limit headers'}`,
  ];
  if (k.aimd !== null)
    lines.push(`  learned from 429s: ${round(k.aimd.rpm)} requests/min (since ${ago(k.aimd.since, now)})`);
  if (k.tokenAccounting !== null) {
    lines.push(
      `  token budget: ${k.tokenAccounting === 'upfront' ? 'prompt + max_tokens booked when a request arrives' : 'counted by the tokens used'}`,
    );
  }
  if (k.latency !== null) {
    lines.push(
      `  latency: ${formatDuration(k.latency.p50Ms)} median, ${formatDuration(k.latency.p75Ms)} p75 (seen ${ago(k.latency.at, now)})`,
    );
  }
  if (k.pausedUntil !== null) {
    lines.push(
      c.yellow(
        `  paused for ${formatDuration(k.pausedUntil - now)}, until ${iso(k.pausedUntil)} (${k.pauseReason ?? '429'})`,
      ),
    );
  }
  lines.push(`  updated ${ago(k.updatedAt, now)}`);
  ctx.io.out(`${lines.join('\n')}\n`);
  if (k.buckets.length === 0) {
    ctx.io.out('  no buckets: limits unknown, requests are not paced\n\n');
    return;
  }
  const table = new Table({
    head: [
      'bucket',
      'rate/min',
      'configured',
      'burst',
      'available now',
      `shards (${k.shards}): available each`,
    ].map((h) => c.bold(h)),
    style: { head: [], border: [] },
  });
  for (const b of k.buckets) {
    table.push([
      b.kind.toUpperCase(),
      fmt(b.rate),
      b.configured === null ? '-' : fmt(b.configured),
      fmt(b.burst),
      `${fmt(b.available)} / ${fmt(b.burst)}`,
      shardList(b),
    ]);
  }
  ctx.io.out(`${table.toString()}\n\n`);
}

function shardList(b: BucketStatus): string {
  const values = b.shards.map((s) => fmt(s.available));
  return values.length <= 16
    ? values.join(' ')
    : `${values.slice(0, 16).join(' ')} ... (${values.length} shards)`;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

function iso(ms: number | null): string | null {
  return ms === null || ms <= 0 ? null : new Date(ms).toISOString();
}

function ago(ms: number | null, now: number): string {
  return ms === null || ms <= 0 ? 'never' : `${formatDuration(Math.max(0, now - ms))} ago`;
}
