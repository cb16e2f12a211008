import { Chalk, type ChalkInstance } from 'chalk';
import Table from 'cli-table3';
import { loadSettings } from '../config/index.ts';
import { formatDuration } from '../core/duration.ts';
import { type FlashcardsError, usageError } from '../core/errors.ts';
import { didYouMeanSuffix } from '../core/suggest.ts';
import {
  type BreakerStatus,
  closeBreaker,
  isolateBreaker,
  listBreakers,
  breakerHistory as readHistory,
  removeBreaker,
} from '../resilience/breaker-admin.ts';
import { type BreakerState, defaultBreakerSettings } from '../resilience/breaker-machine.ts';
import type { BreakerAdmin, BreakerStore } from '../resilience/breaker-store.ts';
import type { CommandContext } from './context.ts';
import { parseCount } from './count.ts';
import { withState } from './state.ts';

export interface BreakerStatusOptions {
  json: boolean;
  /** Human output: a full block per breaker instead of one table row each. */
  all?: boolean | undefined;
}

export interface BreakerIsolateOptions {
  reason?: string | undefined;
  /** Provider key (base URL|model|key hash); omitted: every breaker. */
  key?: string | undefined;
  /** The configured provider's key, used when no breaker exists yet so isolating before a run works. */
  defaultKey?: string | undefined;
  /** Isolate `key` even though no breaker has it yet (a provider not configured here, before its first run). */
  create?: boolean | undefined;
}

export interface BreakerRmOptions {
  /** The breaker to forget, by its exact key: `breaker rm <key>`, */
  key?: string | undefined;
  /** or `breaker rm --key <key>` (the spelling isolate and close take). */
  keyOption?: string | undefined;
}

export interface BreakerCloseOptions {
  key?: string | undefined;
  defaultKey?: string | undefined;
}

export interface BreakerHistoryOptions {
  json: boolean;
  /** A number, or the text as typed (checked the same way as on the command line). */
  limit?: number | string | undefined;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** One breaker as `breaker status --json` prints it (times as ISO strings). */
function toJson(s: BreakerStatus, now: number, windowMs: number) {
  return {
    key: s.key,
    state: s.state,
    failureRatio: Math.round(s.failureRatio * 1000) / 1000,
    calls: s.calls,
    failures: s.failures,
    windowSeconds: windowMs / 1000,
    openedAt: iso(s.openedAt),
    retryAfter: iso(s.retryAtMs),
    retryAfterSeconds: s.retryAtMs === null ? null : Math.max(0, Math.ceil((s.retryAtMs - now) / 1000)),
    consecutiveOpens: s.consecutiveOpens,
    reason: s.reason,
    lastError: s.lastError && {
      kind: s.lastError.kind,
      message: s.lastError.message,
      at: iso(s.lastError.at),
    },
    probe: s.probe && { owner: s.probe.owner, until: iso(s.probe.until) },
    lastActiveAt: iso(s.lastActiveAt),
  };
}

type Breakers = BreakerStore & BreakerAdmin;

/** Runs `fn` on the data directory's breakers, or returns `none` when there is no state yet: looking must not create a data directory. */
function readBreakers<T>(ctx: CommandContext, fn: (breakers: Breakers) => Promise<T>, none: T): Promise<T> {
  return withBreakers(ctx, false, fn, none);
}

/** Runs `fn` on the data directory's breakers, creating the state if needed (isolating before any run works). */
function changeBreakers(ctx: CommandContext, fn: (breakers: Breakers) => Promise<void>): Promise<void> {
  return withBreakers(ctx, true, fn, undefined);
}

function withBreakers<T>(
  ctx: CommandContext,
  create: boolean,
  fn: (breakers: Breakers) => Promise<T>,
  none: T,
): Promise<T> {
  return withState(ctx, create, (state) => (state ? fn(state.breaker.store) : Promise.resolve(none)));
}

async function configuredWindowMs(ctx: CommandContext): Promise<number> {
  try {
    const { settings } = await loadSettings({
      cwd: ctx.cwd,
      env: ctx.env,
      configFile: ctx.configFile,
      flags: {},
    });
    return settings.breaker.samplingWindowMs;
  } catch {
    // A broken config file must not hide the breaker's state.
    return defaultBreakerSettings.samplingWindowMs;
  }
}

/** Colours for results on stdout. */
function painter(ctx: CommandContext): { c: ChalkInstance; state: (s: BreakerState) => string } {
  const c = new Chalk({ level: ctx.io.outColor ? 1 : 0 });
  const colours: Record<BreakerState, (t: string) => string> = {
    closed: c.green,
    open: c.red,
    half_open: c.yellow,
    isolated: c.magenta,
  };
  return { c, state: (s) => colours[s](s) };
}

function table(head: string[]): Table.Table {
  return new Table({ head, style: { head: [], border: [] } });
}

function retryText(s: BreakerStatus, now: number): string {
  if (s.retryAtMs === null) return s.state === 'isolated' ? 'until closed by hand' : '-';
  return `${iso(s.retryAtMs)} (in ${formatDuration(Math.max(0, s.retryAtMs - now))})`;
}

function windowText(s: BreakerStatus): string {
  if (s.calls === 0) return 'no calls';
  return `${s.failures}/${s.calls} failed (${Math.round(s.failureRatio * 100)}%)`;
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export async function breakerStatus(ctx: CommandContext, opts: BreakerStatusOptions): Promise<number> {
  const now = ctx.clock.now();
  // The window the runs use (breaker.samplingWindow), not the default: counts must match what opens it.
  const windowMs = await configuredWindowMs(ctx);
  const all = await readBreakers(ctx, (b) => listBreakers(b, windowMs), []);
  if (opts.json) {
    const rows = all.map((s) => toJson(s, now, windowMs));
    ctx.io.out(
      `${JSON.stringify(rows[0] ? { ...rows[0], breakers: rows } : { state: 'closed', breakers: [] })}\n`,
    );
    return 0;
  }
  if (all.length === 0) {
    ctx.io.out(
      'no circuit breaker yet: nothing has been sent to a provider from this data directory (closed)\n',
    );
    return 0;
  }
  const p = painter(ctx);
  if (opts.all) {
    for (const s of all) {
      const lines: [string, string][] = [
        ['breaker', s.key],
        [
          'state',
          `${p.state(s.state)}${s.consecutiveOpens > 0 ? ` (${s.consecutiveOpens} consecutive open${s.consecutiveOpens === 1 ? '' : 's'})` : ''}`,
        ],
        ['window', `${windowText(s)} in the last ${formatDuration(windowMs)}`],
        ['opened at', iso(s.openedAt) ?? '-'],
        ['retry after', retryText(s, now)],
        ['reason', s.reason ?? '-'],
        [
          'last error',
          s.lastError ? `${s.lastError.kind}: ${s.lastError.message} (${iso(s.lastError.at)})` : '-',
        ],
      ];
      if (s.probe) lines.push(['probe', `${s.probe.owner} until ${iso(s.probe.until)}`]);
      ctx.io.out(`${lines.map(([k, v]) => `${p.c.bold(k.padEnd(12))}${v}`).join('\n')}\n\n`);
    }
    return 0;
  }
  const t = table(['key', 'state', 'window', 'opened at', 'retry after', 'opens', 'last error']);
  for (const s of all) {
    t.push([
      s.key,
      p.state(s.state),
      windowText(s),
      iso(s.openedAt) ?? '-',
      retryText(s, now),
      String(s.consecutiveOpens),
      s.lastError ? clip(`${s.lastError.kind}: ${s.lastError.message}`, 50) : '-',
    ]);
  }
  ctx.io.out(`${t.toString()}\n`);
  return 0;
}

/** The keys a manual action applies to: the one given, else every breaker, else the configured provider. */
async function targetKeys(
  breakers: Breakers,
  key: string | undefined,
  defaultKey: string | undefined,
): Promise<string[]> {
  if (key) return [key];
  const keys = (await listBreakers(breakers)).map((s) => s.key);
  if (keys.length > 0) return keys;
  if (defaultKey) return [defaultKey];
  throw usageError(
    'no circuit breaker exists yet and no provider is configured',
    'pass --key <base URL|model|key hash>',
  );
}

/**
 * Refuses a --key no breaker has (and that is not the configured provider's): a typo would
 * otherwise isolate, or act on, a breaker no run ever uses.
 */
function unknownKey(key: string, known: readonly string[], what: string): FlashcardsError {
  return usageError(
    `no circuit breaker with key "${key}"${didYouMeanSuffix(key, known)}`,
    known.length > 0 ? `known keys: ${known.join(', ')}${what}` : `no breaker exists yet${what}`,
  );
}

export async function breakerIsolate(ctx: CommandContext, opts: BreakerIsolateOptions): Promise<number> {
  if (opts.key && !opts.create && opts.key !== opts.defaultKey) {
    // Checked before anything is written: a refused key leaves no data directory behind.
    const known = await readBreakers(ctx, async (b) => (await listBreakers(b)).map((s) => s.key), []);
    if (!known.includes(opts.key)) {
      throw unknownKey(opts.key, known, '; pass --create to isolate a breaker no run has used yet');
    }
  }
  await changeBreakers(ctx, async (breakers) => {
    for (const key of await targetKeys(breakers, opts.key, opts.defaultKey)) {
      const { before } = await isolateBreaker(breakers, key, opts.reason ?? '');
      ctx.io.err(
        `isolated breaker ${key} (was ${before}): running batches stop sending within a second; ` +
          'undo with `flashcards breaker close`\n',
      );
    }
  });
  return 0;
}

export async function breakerClose(ctx: CommandContext, opts: BreakerCloseOptions): Promise<number> {
  await changeBreakers(ctx, async (breakers) => {
    const known = (await listBreakers(breakers)).map((s) => s.key);
    if (opts.key && !known.includes(opts.key) && opts.key !== opts.defaultKey) {
      throw unknownKey(opts.key, known, known.length > 0 ? '' : '; nothing to close');
    }
    for (const key of await targetKeys(breakers, opts.key, opts.defaultKey)) {
      const { before } = await closeBreaker(breakers, key);
      ctx.io.err(
        before === 'closed'
          ? `breaker ${key} was already closed; its statistics were reset\n`
          : `closed breaker ${key} (was ${before})\n`,
      );
    }
  });
  return 0;
}

/**
 * `breaker rm <key>`: forgets one breaker's state and window (its history lines stay), e.g. one
 * left by a provider no longer used or a stray `isolate --create`. A run still using the key
 * starts it again, closed.
 */
export async function breakerRm(ctx: CommandContext, opts: BreakerRmOptions): Promise<number> {
  if (opts.key !== undefined && opts.keyOption !== undefined && opts.key !== opts.keyOption) {
    throw usageError(
      `two different keys given: "${opts.key}" and --key "${opts.keyOption}"`,
      'give the key once',
    );
  }
  const key = opts.key ?? opts.keyOption;
  if (!key) {
    throw usageError('breaker rm needs the key of the breaker to forget', 'see `flashcards breaker status`');
  }
  const removed = await readBreakers(
    ctx,
    async (breakers) => {
      const all = await listBreakers(breakers);
      const found = all.find((s) => s.key === key);
      if (!found)
        throw unknownKey(
          key,
          all.map((s) => s.key),
          all.length > 0 ? '' : '; nothing to remove',
        );
      await removeBreaker(breakers, key);
      return found;
    },
    undefined,
  );
  // No state.db at all: no breaker either.
  if (!removed) throw unknownKey(key, [], '; nothing to remove');
  ctx.io.err(
    `removed breaker ${key} (was ${removed.state}); a run on this provider starts a new one, closed\n`,
  );
  return 0;
}

export async function breakerHistory(ctx: CommandContext, opts: BreakerHistoryOptions): Promise<number> {
  const limit = parseCount('--limit', opts.limit ?? 20);
  const entries = await readBreakers(ctx, (b) => readHistory(b, limit), []);
  if (opts.json) {
    const transitions = entries.map((e) => ({
      at: iso(e.at),
      key: e.key,
      from: e.from,
      to: e.to,
      cause: e.cause,
    }));
    ctx.io.out(`${JSON.stringify({ transitions })}\n`);
    return 0;
  }
  if (entries.length === 0) {
    ctx.io.out('no breaker transitions recorded\n');
    return 0;
  }
  const p = painter(ctx);
  const t = table(['time', 'key', 'transition', 'cause']);
  for (const e of entries) {
    t.push([iso(e.at) ?? '', e.key, `${p.state(e.from)} -> ${p.state(e.to)}`, clip(e.cause, 90)]);
  }
  ctx.io.out(`${t.toString()}\n`);
  return 0;
}
