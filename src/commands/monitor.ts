import { loadSettings } from '../config/index.ts';
import { parseDuration } from '../core/duration.ts';
import { ExitCode, usageError } from '../core/errors.ts';
import { dataPaths } from '../core/home.ts';
import { collectReads, type MonitorSources } from '../monitor/collect.ts';
import { runLive, type Screen } from '../monitor/live.ts';
import { renderTables, snapshotJson } from '../monitor/render.ts';
import { buildSnapshot, type MonitorSnapshot } from '../monitor/snapshot.ts';
import { defaultBreakerSettings } from '../resilience/breaker-machine.ts';
import type { CommandContext } from './context.ts';
import { openCommandState } from './state.ts';

export interface MonitorOptions {
  /** One snapshot as JSON on stdout. */
  json: boolean;
  /** One snapshot as tables on stdout, even in a terminal. */
  once: boolean;
  /** Time between looks in the live view: a duration as typed (`2s`, `500ms`; a bare number is seconds). */
  interval?: string | number | undefined;
  /** Where the live view draws: stdout when it is a terminal; without one, monitor prints one snapshot. */
  screen?: Screen | undefined;
  /** Ends the live view (Ctrl-C); required with a screen. */
  signal?: AbortSignal | undefined;
}

export const DEFAULT_INTERVAL_MS = 1000;
/** Below this a look would follow a look: the stores have better things to do. */
const MIN_INTERVAL_MS = 100;
/** The cache's statistics scan the cache: read them this often in the live view, not every look. */
const CACHE_EVERY_MS = 10_000;
const FAILURES_SHOWN = 3;

function intervalMs(raw: string | number | undefined): number {
  if (raw === undefined) return DEFAULT_INTERVAL_MS;
  const ms = typeof raw === 'number' ? raw : parseDuration(raw, '--interval');
  if (!(ms >= MIN_INTERVAL_MS)) {
    throw usageError(`--interval must be at least ${MIN_INTERVAL_MS}ms, got ${JSON.stringify(raw)}`);
  }
  return ms;
}

/** The breakers' window as the runs use it; a broken config must not hide the state. */
async function breakerWindowMs(ctx: CommandContext): Promise<number> {
  try {
    const { settings } = await loadSettings({ cwd: ctx.cwd, env: ctx.env, configFile: ctx.configFile });
    return settings.breaker.samplingWindowMs;
  } catch {
    return defaultBreakerSettings.samplingWindowMs;
  }
}

function emptySnapshot(ctx: CommandContext): MonitorSnapshot {
  return {
    at: ctx.clock.now(),
    store: { kind: 'sqlite', where: dataPaths(ctx.home).stateDb },
    batches: [],
    limiter: [],
    breakers: [],
    cache: null,
  };
}

/**
 * `flashcards monitor`: batches under way with their runs, rate and ETA, the limiter, the breakers
 * and the cache, on this data directory or the shared store. It only reads (the state is opened
 * without creating it; no lease, no run, no Redis epoch). In a terminal it redraws every interval
 * until Ctrl-C (exit 0); with --once, --json or without a terminal it prints one snapshot.
 */
export async function monitor(ctx: CommandContext, opts: MonitorOptions): Promise<number> {
  const every = intervalMs(opts.interval);
  const live = !opts.json && !opts.once && opts.screen !== undefined;
  const windowMs = await breakerWindowMs(ctx);
  const state = await openCommandState(ctx, false);
  if (!state) {
    if (opts.json) ctx.io.out(`${JSON.stringify(snapshotJson(emptySnapshot(ctx)))}\n`);
    else
      ctx.io.out(`nothing to monitor yet: no state in ${ctx.home} (no run has used this data directory)\n`);
    return ExitCode.ok;
  }
  const cache = state.cache.admin();
  try {
    const sources: MonitorSources = {
      store: { kind: state.kind, where: state.where },
      batches: state.batches,
      limiter: state.limiter.admin,
      breakers: state.breaker.store,
      cache,
      clock: state.clock,
    };
    const collect = (withCache: boolean) =>
      collectReads(sources, { breakerWindowMs: windowMs, withCache, failuresShown: FAILURES_SHOWN });
    const render = (s: MonitorSnapshot) =>
      renderTables(s, { color: ctx.io.outColor, failuresShown: FAILURES_SHOWN });
    if (live && opts.screen) {
      await runLive({
        collect,
        render,
        screen: opts.screen,
        clock: ctx.clock,
        intervalMs: every,
        cacheEveryMs: CACHE_EVERY_MS,
        signal: opts.signal ?? new AbortController().signal,
      });
      return ExitCode.ok;
    }
    // One look has no earlier one to measure a rate against: rates and ETAs are null.
    const snapshot = buildSnapshot(await collect(true));
    ctx.io.out(opts.json ? `${JSON.stringify(snapshotJson(snapshot))}\n` : render(snapshot));
    return ExitCode.ok;
  } finally {
    try {
      await cache.close();
    } finally {
      await state.close();
    }
  }
}
