export {
  hasLimitHeaders,
  parseRateLimitHeaders,
  parseResetMs,
  parseRetryAfterMs,
  type RateLimitInfo,
} from './headers.ts';
export { type BucketPlan, type Plan, planBuckets, shardCount } from './layout.ts';
export {
  createLimiter,
  type Limiter,
  type LimiterDeps,
  type LimiterSettings,
  type LimiterSnapshot,
  type Reservation,
} from './limiter.ts';
export { migrateLimiter } from './schema.ts';
