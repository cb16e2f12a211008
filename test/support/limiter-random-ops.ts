/**
 * Random LimiterStore operations for the differential test (test/limiter-store-redis.test.ts):
 * the same seeded sequence runs on two backends, and every answer must be identical. The inputs
 * reach every branch of the rules: fractional times and costs, refunds, refusals, pauses, limit
 * headers, configured and unknown rates, AIMD decreases from several instances' meters.
 */
import type { FakeClock } from '../../src/core/clock.ts';
import type { BookRequest, BucketCost, Charge, Refund, Restart } from '../../src/limiter/gcra.ts';
import { parseRateLimitHeaders } from '../../src/limiter/headers.ts';
import type { LimiterSettings } from '../../src/limiter/settings.ts';
import type { LimiterStore } from '../../src/limiter/store.ts';

export type Op =
  | { op: 'advance'; ms: number }
  | { op: 'readKey'; key: string }
  | { op: 'book'; key: string; req: BookRequest }
  | { op: 'cancel'; key: string; booking: number }
  | { op: 'charge'; key: string; kind: 'rpm' | 'tpm'; shard: number; costMs: number }
  | { op: 'restart'; key: string; restarts: Restart[] }
  | { op: 'learnLimits'; key: string; rpm: number | null; tpm: number | null }
  | { op: 'markObserved' | 'clearStrikes'; key: string }
  | { op: 'pause'; key: string; forMs: number; reason: string }
  | { op: 'setTokenAccounting'; key: string; accounting: 'upfront' | 'usage' | null }
  | { op: 'recordLatency'; key: string; p50Ms: number; p75Ms: number }
  | { op: 'writeLayout'; key: string; shards: number; rpm: number | null }
  | {
      op: 'publishRates';
      key: string;
      instance: string;
      accepted: number;
      admitted: number;
      measuringMs: number;
    }
  | {
      op: 'record429';
      key: string;
      headers: Record<string, string>;
      settings: LimiterSettings;
      share: number[];
    };

const keys = ['https://api.a/v1|m|k1', 'https://api.b/v1|m|k2'];
const headerSets: Record<string, string>[] = [
  {},
  {},
  { 'retry-after': '2' },
  { 'retry-after-ms': '1500.5' },
  {
    'x-ratelimit-limit-requests': '600',
    'x-ratelimit-remaining-requests': '0',
    'x-ratelimit-reset-requests': '1.5s',
  },
  { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '20s' },
  {
    'x-ratelimit-limit-tokens': '90000',
    'x-ratelimit-remaining-tokens': '0',
    'x-ratelimit-reset-tokens': '7.66s',
  },
  {
    'x-ratelimit-remaining-requests': '0',
    'x-ratelimit-reset-requests': '300ms',
    'x-ratelimit-remaining-tokens': '0',
    'x-ratelimit-reset-tokens': '2s',
  },
];
const settingsSets: LimiterSettings[] = [
  { burstSeconds: 1, shards: 'auto', maxRequestTokens: 1000 },
  { burstSeconds: 1, shards: 'auto', maxRequestTokens: 1000 },
  { burstSeconds: 2.5, shards: 'auto', maxRequestTokens: 700, tpm: 90_000 },
  { rpm: 600, burstSeconds: 1, shards: 'auto', maxRequestTokens: 1000 },
  { rpm: 1200, tpm: 60_000, burstSeconds: 1, shards: 4, maxRequestTokens: 1000 },
  { rpm: 100_000, burstSeconds: 0.5, shards: 'auto', maxRequestTokens: 333 },
];

export function randomOps(random: () => number, count: number): Op[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const int = (n: number): number => Math.floor(random() * n);
  const ops: Op[] = [];
  let bookings = 0;
  for (let i = 0; i < count; i++) {
    const key = pick(keys);
    const r = random();
    if (r < 0.12)
      ops.push({ op: 'advance', ms: pick([0, 1, 37.25, 99.9, 250, 1000, 1000 / 3, 3001, 20_000]) });
    else if (r < 0.45) {
      const buckets: BucketCost[] = [];
      if (random() < 0.8)
        buckets.push({ kind: 'rpm', costMs: pick([100, 60_000 / 7, 33.3]), tauMs: pick([800, 250.5, 2000]) });
      if (random() < 0.5)
        buckets.push({ kind: 'tpm', costMs: int(1200) * pick([1, 0.37]), tauMs: pick([1000, 5000]) });
      const refunds: Refund[] = Array.from({ length: int(3) }, () => ({
        kind: pick(['rpm', 'tpm'] as const),
        shard: int(4),
        ms: pick([10, 333.3, 1e9]),
      }));
      const a = int(4);
      const shards: [number, number] = [a, random() < 0.3 ? a : int(4)];
      ops.push({
        op: 'book',
        key,
        req: { shards, buckets, maxWaitMs: pick([0, 300, 1500, Infinity]), refunds },
      });
      bookings++;
    } else if (r < 0.52 && bookings > 0) ops.push({ op: 'cancel', key, booking: int(bookings) });
    else if (r < 0.57)
      ops.push({ op: 'charge', key, kind: pick(['rpm', 'tpm']), shard: int(4), costMs: pick([1, 250.75]) });
    else if (r < 0.61) {
      const restarts: Restart[] = [{ kind: 'rpm', shards: 1 + int(4), aheadMs: pick([0, 500, 1234.5]) }];
      if (random() < 0.5) restarts.push({ kind: 'tpm', shards: 1 + int(3), aheadMs: pick([100, 800]) });
      ops.push({ op: 'restart', key, restarts });
    } else if (r < 0.65)
      ops.push({ op: 'learnLimits', key, rpm: pick([null, 300, 1200]), tpm: pick([null, 90_000]) });
    else if (r < 0.67) ops.push({ op: pick(['markObserved', 'clearStrikes'] as const), key });
    else if (r < 0.71)
      ops.push({ op: 'pause', key, forMs: pick([0, 500, 2000.5]), reason: pick(['p1', 'p2']) });
    else if (r < 0.73)
      ops.push({ op: 'setTokenAccounting', key, accounting: pick(['upfront', 'usage', null]) });
    else if (r < 0.75) ops.push({ op: 'recordLatency', key, p50Ms: int(4000), p75Ms: 4000 + int(1000) });
    else if (r < 0.77)
      ops.push({ op: 'writeLayout', key, shards: 1 + int(4), rpm: pick([null, 600, 1234.5]) });
    else if (r < 0.84)
      ops.push({
        op: 'publishRates',
        key,
        instance: pick(['a', 'b', 'c']),
        accepted: int(3000),
        admitted: int(3000),
        measuringMs: int(6000),
      });
    else if (r < 0.92)
      ops.push({
        op: 'record429',
        key,
        headers: pick(headerSets),
        settings: pick(settingsSets),
        share: [int(3000), int(3000), pick([0, 180, 999, 5000])],
      });
    else ops.push({ op: 'readKey', key });
  }
  return ops;
}

/**
 * Runs one store operation; bookings made so far are kept in `booked` (for cancel). Returns its
 * answer. 'advance' is the caller's (the clock is shared by both backends).
 */
export async function runOp(
  store: LimiterStore,
  clock: FakeClock,
  op: Exclude<Op, { op: 'advance' }>,
  booked: (Charge[] | null)[],
): Promise<unknown> {
  switch (op.op) {
    case 'readKey':
      return store.readKey(op.key);
    case 'book': {
      const booking = await store.book(op.key, op.req);
      booked.push(booking.ok ? booking.charges : null);
      return booking;
    }
    case 'cancel':
      return store.cancel(op.key, booked[op.booking] ?? []);
    case 'charge':
      return store.charge(op.key, op.kind, op.shard, op.costMs);
    case 'restart':
      return store.restart(op.key, op.restarts);
    case 'learnLimits':
      return store.learnLimits(op.key, { rpm: op.rpm, tpm: op.tpm });
    case 'markObserved':
      return store.markObserved(op.key);
    case 'clearStrikes':
      return store.clearStrikes(op.key);
    case 'pause':
      return store.pause(op.key, op.forMs, op.reason);
    case 'setTokenAccounting':
      return store.setTokenAccounting(op.key, op.accounting);
    case 'recordLatency':
      return store.recordLatency(op.key, { p50Ms: op.p50Ms, p75Ms: op.p75Ms });
    case 'writeLayout':
      return store.writeLayout(op.key, {
        shards: op.shards,
        rpm: op.rpm,
        rpmBurst: op.rpm === null ? null : op.rpm / 60,
        tpm: null,
        tpmBurst: null,
        configuredRpm: op.rpm,
        configuredTpm: null,
        maxRequestTokens: 1000,
      });
    case 'publishRates':
      return store.publishRates(op.key, {
        instance: op.instance,
        accepted: op.accepted,
        admitted: op.admitted,
        measuringMs: op.measuringMs,
      });
    case 'record429': {
      const [accepted = 0, admitted = 0, measuringMs = 0] = op.share;
      return store.record429(op.key, {
        info: parseRateLimitHeaders(new Headers(op.headers), clock.now()),
        settings: op.settings,
        share: { instance: 'self', accepted, admitted, measuringMs },
      });
    }
  }
}
