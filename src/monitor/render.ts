import { Chalk, type ChalkInstance } from 'chalk';
import Table from 'cli-table3';
import { formatDuration } from '../core/duration.ts';
import type { BreakerState } from '../resilience/breaker-machine.ts';
import {
  type BatchView,
  type BreakerView,
  isEmpty,
  type LimiterKeyView,
  type MonitorSnapshot,
} from './snapshot.ts';

/**
 * The monitor's two renderers: tables for people (the same cli-table3 look as `batches list`,
 * `limiter status` and `breaker status`) and one versioned JSON object for programs. Both are pure
 * functions of a snapshot; only the command writes.
 */

export const JSON_VERSION = 1;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const round1 = (n: number): number => Math.round(n * 10) / 10;

/** The snapshot as `monitor --json` prints it: times as ISO strings, durations in seconds. */
export function snapshotJson(s: MonitorSnapshot): Record<string, unknown> {
  return {
    version: JSON_VERSION,
    at: iso(s.at),
    store: s.store,
    batches: s.batches.map((b) => ({
      id: b.id,
      input: b.input,
      model: b.model,
      pipeline: b.pipeline,
      status: b.status,
      total: b.total,
      done: b.done,
      failed: b.failed,
      pending: b.pending,
      inFlight: b.inFlight,
      requests: b.requests,
      tokens: b.tokens,
      cachedJobs: b.cachedJobs,
      ratePerMin: b.ratePerMin === null ? null : round1(b.ratePerMin),
      etaSeconds: b.etaMs === null ? null : Math.ceil(b.etaMs / 1000),
      runs: b.runs.map((r) => ({
        owner: r.owner,
        host: r.host,
        pid: r.pid,
        exclusive: r.exclusive,
        startedAt: iso(r.startedAt),
        aliveUntil: iso(r.aliveUntil),
      })),
      failures: b.failures,
    })),
    limiter: s.limiter.map((k) => ({
      key: k.key,
      buckets: k.buckets.map((b) => ({ ...b, burst: round1(b.burst), available: round1(b.available) })),
      providerRpm: k.providerRpm,
      providerTpm: k.providerTpm,
      learnedRpm: k.learnedRpm === null ? null : round1(k.learnedRpm),
      pausedUntil: iso(k.pausedUntil),
      pauseReason: k.pauseReason,
      updatedAt: iso(k.updatedAt),
    })),
    breakers: s.breakers.map((b) => ({
      key: b.key,
      state: b.state,
      failureRatio: Math.round(b.failureRatio * 1000) / 1000,
      calls: b.calls,
      failures: b.failures,
      windowSeconds: b.windowMs / 1000,
      retryAt: iso(b.retryAt),
      retryInSeconds: b.retryAt === null ? null : Math.max(0, Math.ceil((b.retryAt - s.at) / 1000)),
      reason: b.reason,
      lastError: b.lastError && { ...b.lastError, at: iso(b.lastError.at) },
    })),
    cache: s.cache && {
      ...s.cache,
      hitRatio: s.cache.hitRatio === null ? null : Math.round(s.cache.hitRatio * 1000) / 1000,
    },
  };
}

export interface TableOptions {
  color: boolean;
  /** How many failed items to list under each batch. */
  failuresShown?: number;
}

function table(c: ChalkInstance, head: string[]): Table.Table {
  return new Table({ head: head.map((h) => c.bold(h)), style: { head: [], border: [] } });
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function batchesSection(c: ChalkInstance, batches: readonly BatchView[], failuresShown: number): string {
  if (batches.length === 0) return 'no batch under way\n';
  const t = table(c, [
    'batch',
    'input',
    'status',
    'done/failed/total',
    'in flight',
    'items/min',
    'ETA',
    'runs (host:pid)',
  ]);
  const notes: string[] = [];
  for (const b of batches) {
    const runs =
      b.runs.length === 0
        ? c.yellow('no live run')
        : b.runs.map((r) => `${r.host}:${r.pid ?? '?'}${r.exclusive ? ' (--lock)' : ''}`).join('\n');
    t.push([
      b.id.slice(0, 12),
      clip(b.input, 30),
      b.status,
      `${b.done}/${b.failed > 0 ? c.red(String(b.failed)) : '0'}/${b.total}`,
      String(b.inFlight),
      b.ratePerMin === null ? '-' : fmt(Math.round(b.ratePerMin * 10) / 10),
      b.etaMs === null ? '-' : formatDuration(b.etaMs),
      runs,
    ]);
    for (const f of b.failures.slice(0, failuresShown)) {
      notes.push(
        `${b.id.slice(0, 12)}: failed item ${f.item} "${f.term}": ${clip(`${f.errorKind}: ${f.message}`, 80)}`,
      );
    }
    if (b.failed > Math.min(failuresShown, b.failures.length)) {
      const more = b.failed - Math.min(failuresShown, b.failures.length);
      notes.push(`${b.id.slice(0, 12)}: ${more} more failed (flashcards batches show ${b.id.slice(0, 12)})`);
    }
  }
  return `${t.toString()}\n${notes.map((n) => `${n}\n`).join('')}`;
}

function limiterSection(c: ChalkInstance, keys: readonly LimiterKeyView[], now: number): string {
  if (keys.length === 0) return 'no limiter state\n';
  const t = table(c, ['key', 'rate/min', 'available now', 'provider says', 'learned from 429s', 'pause']);
  for (const k of keys) {
    const rates = k.buckets.map(
      (b) =>
        `${b.kind.toUpperCase()} ${fmt(b.rate)}${b.configured !== null && b.configured !== b.rate ? ` (set ${fmt(b.configured)})` : ''}`,
    );
    const available = k.buckets.map(
      (b) => `${b.kind.toUpperCase()} ${fmt(round1(b.available))}/${fmt(round1(b.burst))}`,
    );
    const provider = [
      k.providerRpm === null ? '' : `RPM ${k.providerRpm}`,
      k.providerTpm === null ? '' : `TPM ${k.providerTpm}`,
    ].filter(Boolean);
    t.push([
      k.key,
      rates.length === 0 ? 'not paced' : rates.join('\n'),
      available.length === 0 ? '-' : available.join('\n'),
      provider.length === 0 ? '-' : provider.join('\n'),
      k.learnedRpm === null ? '-' : `RPM ${fmt(round1(k.learnedRpm))}`,
      k.pausedUntil === null
        ? '-'
        : c.yellow(`${formatDuration(Math.max(0, k.pausedUntil - now))} (${k.pauseReason ?? '429'})`),
    ]);
  }
  return `${t.toString()}\n`;
}

function breakersSection(c: ChalkInstance, breakers: readonly BreakerView[], now: number): string {
  if (breakers.length === 0) return 'no circuit breaker yet\n';
  const colours: Record<BreakerState, (t: string) => string> = {
    closed: c.green,
    open: c.red,
    half_open: c.yellow,
    isolated: c.magenta,
  };
  const t = table(c, ['key', 'state', 'failures in window', 'retry', 'last error']);
  for (const b of breakers) {
    const window =
      b.calls === 0
        ? `no calls (${formatDuration(b.windowMs)})`
        : `${b.failures}/${b.calls} (${Math.round(b.failureRatio * 100)}%) in ${formatDuration(b.windowMs)}`;
    const retry =
      b.retryAt !== null
        ? `${b.state === 'half_open' ? 'probe until ' : 'in '}${formatDuration(Math.max(0, b.retryAt - now))}`
        : b.state === 'isolated'
          ? 'until closed by hand'
          : '-';
    t.push([
      b.key,
      colours[b.state](b.state),
      window,
      retry,
      b.lastError ? clip(`${b.lastError.kind}: ${b.lastError.message}`, 50) : '-',
    ]);
  }
  return `${t.toString()}\n`;
}

function cacheLine(s: MonitorSnapshot): string {
  const k = s.cache;
  if (k === null) return 'cache: not read\n';
  const ratio =
    k.hitRatio === null
      ? 'no lookups yet'
      : `hit ratio ${Math.round(k.hitRatio * 100)}% (${k.hits} hits, ${k.misses} misses in recent runs)`;
  const live = s.batches
    .filter((b) => b.done + b.failed > 0)
    .map((b) => `${b.id.slice(0, 12)} ${b.cachedJobs} jobs from cache`);
  return `cache: ${ratio} · ${k.entries} entries (${k.live} live)${live.length > 0 ? ` · ${live.join(' · ')}` : ''}\n`;
}

/** The snapshot as tables, one section each: batches under way, limiter, breakers, cache. */
export function renderTables(s: MonitorSnapshot, o: TableOptions): string {
  const c = new Chalk({ level: o.color ? 1 : 0 });
  const head = `${c.bold('flashcards monitor')} · ${s.store.where} · ${iso(s.at)}\n`;
  if (isEmpty(s)) {
    return `${head}nothing to monitor yet: no batch under way, and no limiter, breaker or cache state\n`;
  }
  return [
    head,
    `${c.bold('Batches under way')}\n${batchesSection(c, s.batches, o.failuresShown ?? 3)}`,
    `${c.bold('Rate limiter')}\n${limiterSection(c, s.limiter, s.at)}`,
    `${c.bold('Circuit breakers')}\n${breakersSection(c, s.breakers, s.at)}`,
    cacheLine(s),
  ].join('\n');
}
