import type { RateLimitInfo } from './headers.ts';

/** After a 429 with no limit headers, the request rate drops to this share of what the provider accepted. */
export const aimdDecrease = 0.7;
/**
 * After a decrease, 429s are ignored (and growth waits) until every request booked at the old
 * rate has been sent, plus this long for its answer to come back.
 */
export const aimdMinGapMs = 1000;
/** ...and then grows back by this share of the decreased rate per second without a 429. */
export const aimdIncreasePerSecond = 0.05;
/** Growth stops after this long, so a rate learned days ago is not read as unlimited. */
export const aimdGrowthCapMs = 300_000;
/** A 429 without Retry-After pauses 1 s, then 2, 4, ... up to this, while 429s keep coming. */
export const maxDefaultPauseMs = 30_000;
export const firstDefaultPauseMs = 1000;

export interface LearnedState {
  header_rpm: number | null;
  header_tpm: number | null;
  aimd_rpm: number | null;
  aimd_at: number | null;
}

export interface EffectiveRates {
  rpm: number | null;
  tpm: number | null;
  /** True when a learned value (headers or AIMD) is what limits, not the configuration. */
  learned: boolean;
}

/** The AIMD request rate at `nowMs`: the decreased rate plus linear growth since the decrease. */
export function aimdRate(base: number, at: number, nowMs: number): number {
  const elapsed = Math.min(aimdGrowthCapMs, Math.max(0, nowMs - at));
  return base * (1 + (aimdIncreasePerSecond * elapsed) / 1000);
}

/**
 * The multiplicative decrease, applied to what got through: the rate the provider accepted
 * (non-429 answers), or half of what was admitted when answers are still in flight (right after
 * a burst, acceptances lag behind). Never above the current AIMD rate. Null when there is
 * nothing to go on.
 */
export function decreasedRate(
  current: number | null,
  acceptedPerMinute: number,
  admittedPerMinute: number,
): number | null {
  const observed = Math.max(acceptedPerMinute, admittedPerMinute / 2);
  if (!(observed > 0)) return current === null ? null : Math.max(1, current * aimdDecrease);
  return Math.max(1, aimdDecrease * Math.min(current ?? Number.POSITIVE_INFINITY, observed));
}

/**
 * Configured limits are a ceiling: what the provider reports can only lower them. With nothing
 * configured, the learned value is used as is, and with nothing learned either there is no limit.
 */
export function effectiveRates(
  configured: { rpm: number | undefined; tpm: number | undefined },
  state: LearnedState,
  nowMs: number,
): EffectiveRates {
  const learnedRpm =
    state.header_rpm ??
    (state.aimd_rpm !== null && state.aimd_at !== null
      ? aimdRate(state.aimd_rpm, state.aimd_at, nowMs)
      : null);
  const pick = (
    conf: number | undefined,
    learned: number | null,
  ): { rate: number | null; learned: boolean } => {
    if (learned === null) return { rate: conf ?? null, learned: false };
    if (conf === undefined || learned < conf) return { rate: learned, learned: true };
    return { rate: conf, learned: false };
  };
  const rpm = pick(configured.rpm, learnedRpm);
  const tpm = pick(configured.tpm, state.header_tpm);
  return { rpm: rpm.rate, tpm: tpm.rate, learned: rpm.learned || tpm.learned };
}

/**
 * Limits from headers, read as per-minute budgets. A reset more than a minute away means a longer
 * window (Groq's requests-per-day), which is not a rate we can pace by; those are left out and
 * only their "remaining 0" pause applies.
 */
export function headerLimits(info: RateLimitInfo): { rpm: number | undefined; tpm: number | undefined } {
  const perMinute = (limit: number | undefined, resetMs: number | undefined): number | undefined =>
    limit !== undefined && limit > 0 && (resetMs === undefined || resetMs <= 61_000) ? limit : undefined;
  return {
    rpm: perMinute(info.limitRequests, info.resetRequestsMs),
    tpm: perMinute(info.limitTokens, info.resetTokensMs),
  };
}

/**
 * "remaining 0" means the provider has nothing left until its reset. OpenAI's reset is the time
 * until the bucket is *full* again, so with a known per-minute limit we wait only until one
 * request's worth is back (60 s / limit for requests, one largest request for tokens); without a
 * limit we wait for the whole reset. Returns the pause end, or undefined when there is none.
 */
export function exhaustedUntil(
  info: RateLimitInfo,
  nowMs: number,
  maxRequestTokens: number,
): { untilMs: number; reason: string } | undefined {
  const limits = headerLimits(info);
  let until: number | undefined;
  let reason = '';
  if (info.remainingRequests === 0 && info.resetRequestsMs !== undefined) {
    const wait =
      limits.rpm === undefined ? info.resetRequestsMs : Math.min(info.resetRequestsMs, 60_000 / limits.rpm);
    until = nowMs + wait;
    reason = 'provider reported 0 requests remaining';
  }
  if (info.remainingTokens === 0 && info.resetTokensMs !== undefined) {
    const wait =
      limits.tpm === undefined
        ? info.resetTokensMs
        : Math.min(info.resetTokensMs, (60_000 * maxRequestTokens) / limits.tpm);
    if (until === undefined || nowMs + wait > until) {
      until = nowMs + wait;
      reason = 'provider reported 0 tokens remaining';
    }
  }
  return until === undefined ? undefined : { untilMs: until, reason };
}

/** How long a 429 pauses the key: Retry-After, else the reset of an exhausted budget, else 1 s doubling. */
export function pauseAfter429(
  info: RateLimitInfo,
  strikes: number,
  nowMs: number,
  maxRequestTokens: number,
): { ms: number; source: string } {
  if (info.retryAfterMs !== undefined) return { ms: info.retryAfterMs, source: 'Retry-After' };
  const exhausted = exhaustedUntil(info, nowMs, maxRequestTokens);
  if (exhausted !== undefined) return { ms: exhausted.untilMs - nowMs, source: exhausted.reason };
  return {
    ms: Math.min(maxDefaultPauseMs, firstDefaultPauseMs * 2 ** Math.min(strikes, 10)),
    source: 'no Retry-After',
  };
}

/**
 * How a provider counts a request against its token budget, read off one answered request's
 * headers: OpenAI books prompt + max_tokens when the request arrives and gives nothing back when
 * the answer is shorter; others count the tokens used. `x-ratelimit-reset-tokens` says how long
 * until the token bucket is full again, so limit x reset / 1 min is what the bucket lacks right
 * after this request: at least its prompt + max_tokens when booked up front, nearer prompt +
 * completion when counted by use. Undefined when the headers or the answer cannot tell (no limit
 * or reset, or an answer that used nearly all of max_tokens).
 */
export function tokenAccounting(
  info: RateLimitInfo,
  answer: { promptTokens: number; totalTokens: number; maxTokens: number },
): 'upfront' | 'usage' | undefined {
  const limit = info.limitTokens;
  const reset = info.resetTokensMs;
  if (limit === undefined || reset === undefined || !(limit > 0)) return undefined;
  const upfront = answer.promptTokens + answer.maxTokens;
  const used = answer.totalTokens;
  if (upfront - used < answer.maxTokens * 0.2) return undefined;
  const lacking = (limit * reset) / 60_000;
  return lacking < (upfront + used) / 2 ? 'usage' : 'upfront';
}
