import type { HeaderLookup, RateLimitInfo } from '../core/headers.ts';

export type { RateLimitInfo };

/** A response that said nothing about limits (also: an answer that was not a request). */
export const noRateLimitInfo: Readonly<RateLimitInfo> = Object.freeze({
  limitRequests: undefined,
  limitTokens: undefined,
  remainingRequests: undefined,
  remainingTokens: undefined,
  resetRequestsMs: undefined,
  resetTokensMs: undefined,
  retryAfterMs: undefined,
});

/** True when the response carried any limit or remaining count (Retry-After alone does not count). */
export function hasLimitHeaders(info: RateLimitInfo): boolean {
  return (
    info.limitRequests !== undefined ||
    info.limitTokens !== undefined ||
    info.remainingRequests !== undefined ||
    info.remainingTokens !== undefined
  );
}

/**
 * Reads OpenAI/Groq-style `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, the
 * OpenRouter-style `x-ratelimit-{limit,remaining,reset}` (treated as the request budget), the IETF
 * draft `ratelimit-*` names, and `retry-after-ms` / `retry-after`. Unparseable values are ignored.
 */
export function parseRateLimitHeaders(headers: HeaderLookup, nowMs: number): RateLimitInfo {
  const first = (...names: string[]): string | null => {
    for (const name of names) {
      const value = headers.get(name);
      if (value !== null && value.trim() !== '') return value;
    }
    return null;
  };
  return {
    limitRequests: parseCount(first('x-ratelimit-limit-requests', 'x-ratelimit-limit', 'ratelimit-limit')),
    limitTokens: parseCount(first('x-ratelimit-limit-tokens')),
    remainingRequests: parseCount(
      first('x-ratelimit-remaining-requests', 'x-ratelimit-remaining', 'ratelimit-remaining'),
    ),
    remainingTokens: parseCount(first('x-ratelimit-remaining-tokens')),
    resetRequestsMs: parseResetMs(
      first('x-ratelimit-reset-requests', 'x-ratelimit-reset', 'ratelimit-reset'),
      nowMs,
    ),
    resetTokensMs: parseResetMs(first('x-ratelimit-reset-tokens'), nowMs),
    retryAfterMs: parseRetryAfterMs(headers, nowMs),
  };
}

/**
 * The one reading of a provider's wait, for the limiter's pause and the retry's delay alike:
 * `retry-after-ms` (OpenAI, milliseconds), else `retry-after` (seconds, an epoch or a date, see
 * parseResetMs). Milliseconds from `nowMs`, rounded up, never negative; undefined when absent.
 */
export function parseRetryAfterMs(headers: HeaderLookup, nowMs: number): number | undefined {
  const text = (name: string): string | null => {
    const value = headers.get(name);
    return value === null || value.trim() === '' ? null : value;
  };
  const wait = parseCount(text('retry-after-ms')) ?? parseResetMs(text('retry-after'), nowMs);
  return wait === undefined ? undefined : Math.ceil(wait);
}

/** `100`, `99.5`, or the first member of a list such as `100, 100;w=60`. */
function parseCount(value: string | null): number | undefined {
  if (value === null) return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:[;,]|$)/.exec(value);
  return match ? Number(match[1]) : undefined;
}

const unitMs: Record<string, number> = {
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ns: 1e-6,
};

/**
 * A reset time in any of the forms providers send, as milliseconds from now:
 * Go durations (`6m0s`, `1s`, `20ms`, `0.5s`, `1h2m3.5s`), bare numbers (seconds from now;
 * above 1e9 an epoch in seconds, above 1e12 an epoch in milliseconds), or a date
 * (HTTP date or ISO 8601). Times in the past become 0.
 */
export function parseResetMs(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+(?:\.\d+)?$/.test(text)) {
    const n = Number(text);
    if (n >= 1e12) return Math.max(0, n - nowMs);
    if (n >= 1e9) return Math.max(0, n * 1000 - nowMs);
    return n * 1000;
  }
  if (/^(?:\d+(?:\.\d+)?(?:h|ms|m|s|us|µs|μs|ns))+$/.test(text)) {
    let total = 0;
    for (const part of text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|μs|ns)/g)) {
      total += Number(part[1]) * (unitMs[part[2] ?? 's'] ?? 0);
    }
    return total;
  }
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}
