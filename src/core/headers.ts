/**
 * Read access to response headers by (case-insensitive) name: all the client, the limiter and
 * the error classifier need. The web `Headers` class fits it; the node:http transport hands out a
 * view over the parsed headers instead of copying them into a `Headers` for every response.
 */
export interface HeaderLookup {
  get(name: string): string | null;
}

/**
 * What a provider's response says about its rate limits, read once per response by the client
 * and handed as it is to the limiter (pacing) and the retry (Retry-After). Times are milliseconds
 * from when the response arrived (never negative), whatever format the provider used.
 */
export interface RateLimitInfo {
  limitRequests: number | undefined;
  limitTokens: number | undefined;
  remainingRequests: number | undefined;
  remainingTokens: number | undefined;
  /** Until the request budget is back (OpenAI: until the bucket is full again). */
  resetRequestsMs: number | undefined;
  resetTokensMs: number | undefined;
  /** From `retry-after-ms`, else `retry-after` (seconds or an HTTP date). */
  retryAfterMs: number | undefined;
}
