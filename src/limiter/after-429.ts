import { type Restart, restartAheadMs } from './gcra.ts';
import { hasLimitHeaders, type RateLimitInfo } from './headers.ts';
import { type Plan, planBuckets } from './layout.ts';
import {
  aimdMinGapMs,
  aimdRate,
  decreasedRate,
  type EffectiveRates,
  effectiveRates,
  pauseAfter429,
} from './learn.ts';
import type { KeyRow } from './schema.ts';
import type { LimiterSettings } from './settings.ts';

/**
 * What a 429 does to a key, as pure functions of the stored row and the observation: the episode,
 * strikes and pause, the AIMD decrease while the rate is unknown, and the restart of the shards
 * after the pause. A backend calls them inside its one atomic 429 operation (SQLite: a BEGIN
 * IMMEDIATE transaction; Redis: the same rules in the 429 script).
 */

/**
 * While learning by AIMD, each instance publishes its meters; a 429's decrease sums the shares
 * written within `ratesFreshMs` (older ones are instances that stopped or moved on), and shares
 * untouched for `ratesKeepMs` are deleted then.
 */
export const ratesFreshMs = 3000;
export const ratesKeepMs = 60_000;

/** A 429 before this much shared history answers one opening burst, which says nothing of the rate. */
export const minHistoryMs = 1000;

/** What every limiter instance on the key admitted and got accepted lately (per minute), and for how long. */
export interface SharedRates {
  accepted: number;
  admitted: number;
  historyMs: number;
}

export interface Decision429 {
  /** The pause end this 429 asks for (the stored pause only ever grows). */
  until: number;
  reason: string;
  strikes: number;
  aimdRpm: number | null;
  aimdAt: number | null;
}

/** The effective rates and the buckets for a stored row, as the booking uses them at `nowMs`. */
export function planFor(
  row: KeyRow,
  settings: LimiterSettings,
  nowMs: number,
): { rates: EffectiveRates; plan: Plan } {
  const rates = effectiveRates({ rpm: settings.rpm, tpm: settings.tpm }, row, nowMs);
  return { rates, plan: planBuckets(rates, settings) };
}

/** True while no limit is configured or reported, so a 429 may set the rate by AIMD. */
export function learningByAimd(configuredRpm: number | undefined, row: KeyRow): boolean {
  return configuredRpm === undefined && row.header_rpm === null;
}

/**
 * Whether this 429 may decrease the AIMD rate, so the store must read the shared meters: only for
 * a provider that tells us nothing, and only once growth has started (aimd_at is when it starts;
 * until then, 429s answer requests booked at the old rate).
 */
export function wantsSharedRates(
  row: KeyRow,
  info: RateLimitInfo,
  configuredRpm: number | undefined,
  nowMs: number,
): boolean {
  return (
    learningByAimd(configuredRpm, row) &&
    !hasLimitHeaders(info) &&
    (row.aimd_at === null || nowMs >= row.aimd_at)
  );
}

/**
 * The decision for one 429. `shared` is null when the store did not read the meters
 * (wantsSharedRates was false); `maxRpmTat` is the latest TAT in the request bucket, so growth
 * waits until every request booked at the old rate has been sent.
 */
export function after429(input: {
  row: KeyRow;
  info: RateLimitInfo;
  nowMs: number;
  settings: LimiterSettings;
  shared: SharedRates | null;
  maxRpmTat: number | null;
}): Decision429 {
  const { row, info, nowMs: now, settings, shared } = input;
  // 429s for requests already in flight when the pause began are the same episode.
  const newEpisode = now >= row.paused_until;
  const strikes = newEpisode ? row.strikes + 1 : row.strikes;
  const pause = pauseAfter429(info, strikes - 1, now, settings.maxRequestTokens);
  const until = newEpisode || pause.source === 'Retry-After' ? now + pause.ms : row.paused_until;
  let aimdRpm = row.aimd_rpm;
  let aimdAt = row.aimd_at;
  if (shared !== null && wantsSharedRates(row, info, settings.rpm, now)) {
    const current = aimdRpm !== null && aimdAt !== null ? aimdRate(aimdRpm, aimdAt, now) : null;
    // Before a second of history the meters have seen one opening burst, not a rate (most
    // answers are still in flight): pace at that burst per second rather than cut below it.
    const decreased =
      shared.historyMs >= minHistoryMs
        ? decreasedRate(current, shared.accepted, shared.admitted)
        : shared.admitted > 0
          ? Math.min(current ?? Number.POSITIVE_INFINITY, shared.admitted)
          : null;
    if (decreased !== null) {
      aimdRpm = decreased;
      aimdAt = Math.max(now, until, bookedUntil(row, settings, now, input.maxRpmTat)) + aimdMinGapMs;
    }
  }
  const reason = `429 from the provider (${pause.source}${strikes > 1 ? `, ${strikes} in a row` : ''})`;
  return { until, reason, strikes, aimdRpm, aimdAt };
}

/** The latest send time already booked in the request bucket (0 when there is none). */
function bookedUntil(
  row: KeyRow,
  settings: LimiterSettings,
  nowMs: number,
  maxRpmTat: number | null,
): number {
  const bucket = planFor(row, settings, nowMs).plan.rpm;
  return bucket === null || maxRpmTat === null ? 0 : maxRpmTat - bucket.tauMs;
}

/**
 * After the pause only one request per shard may go at once, in the buckets of the row as the 429
 * left it: every shard's TAT is raised to the pause end plus tau less one request.
 */
export function restartsAfter429(
  row: KeyRow,
  settings: LimiterSettings,
  nowMs: number,
  until: number,
): Restart[] {
  const { plan } = planFor(row, settings, nowMs);
  const restarts: Restart[] = [];
  for (const bucket of [plan.rpm, plan.tpm]) {
    if (bucket === null) continue;
    const unit = bucket.kind === 'rpm' ? 1 : settings.maxRequestTokens;
    restarts.push({
      kind: bucket.kind,
      shards: bucket.shards,
      aheadMs: until - nowMs + restartAheadMs(bucket, unit),
    });
  }
  return restarts;
}
