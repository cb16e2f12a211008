export type { Reservation } from './booking.ts';
export {
  hasLimitHeaders,
  parseRateLimitHeaders,
  parseResetMs,
  parseRetryAfterMs,
  type RateLimitInfo,
} from './headers.ts';
export { type BucketPlan, type Plan, planBuckets, shardCount } from './layout.ts';
export { createLimiter, type Limiter, type LimiterDeps, type LimiterSnapshot } from './limiter.ts';
export type { LimiterSettings } from './settings.ts';
export { sqliteLimiterAdmin } from './sqlite-admin.ts';
export { sqliteLimiterStore } from './sqlite-store.ts';
export type { LimiterAdmin, LimiterStore } from './store.ts';
