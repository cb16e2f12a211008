import { FlashcardsError } from '../core/errors.ts';
import type { Random } from '../core/random.ts';
import {
  type CacheStats,
  type CacheTotals,
  type ClearFilter,
  type EntrySummary,
  emptyStats,
} from './admin.ts';
import { type Codec, type CodecName, decodeBody } from './codec.ts';
import type { CacheHit, CacheSettings } from './store.ts';

/**
 * The cache's rules as plain functions over plain values, so every backend follows the same ones:
 * SQLite calls them around its statements, Redis around its scripts (which only store and fetch),
 * and the conformance suite (test/conformance/cache-store.ts) shows both answer alike.
 */

/** An entry as stored, whatever the backend. */
export interface StoredEntry {
  codec: string;
  body: Buffer;
  createdAt: number;
  expiresAt: number | null;
  model: string;
}

/** Settings a cache refuses to open with, each named with the value it got. */
export function checkSettings(s: CacheSettings): void {
  const bad = (what: string, expected: string, got: number): FlashcardsError =>
    new FlashcardsError('config', `cache ${what} must be ${expected}, got ${got}`);
  if (!Number.isFinite(s.ttlMs) || s.ttlMs < 0)
    throw bad('ttl', 'a duration >= 0 (0 = never expires)', s.ttlMs);
  if (!Number.isFinite(s.jitter) || s.jitter < 0) throw bad('jitter', 'a number >= 0', s.jitter);
  if (!Number.isFinite(s.compressThresholdBytes) || s.compressThresholdBytes < 0) {
    throw bad('compression threshold', 'a number of bytes >= 0', s.compressThresholdBytes);
  }
}

/**
 * How long a new entry stays fresh: ttl x U[1, 1 + jitter] in whole ms (one draw of `random`), so a
 * batch written together does not expire together; null when entries never expire (ttl 0).
 */
export function entryLifetime(settings: CacheSettings, random: Random): number | null {
  const { ttlMs, jitter } = settings;
  return ttlMs === 0 ? null : Math.round(ttlMs * (1 + jitter * random()));
}

/** An entry is expired from its expiry on (an entry without one never is). */
export function isExpired(expiresAt: number | null, now: number): boolean {
  return expiresAt !== null && expiresAt <= now;
}

/**
 * The stored form of a body: compressed with `codec` when it is larger than the threshold and
 * compressing makes it smaller (incompressible bodies stay as they are).
 */
export function packBody(
  raw: Buffer,
  codec: Codec,
  thresholdBytes: number,
): { codec: CodecName; body: Buffer } {
  if (raw.length <= thresholdBytes || codec.name === 'identity') return { codec: 'identity', body: raw };
  const packed = codec.encode(raw);
  return packed.length < raw.length ? { codec: codec.name, body: packed } : { codec: 'identity', body: raw };
}

/**
 * What a get answers for a stored entry at `now`: undefined when it is expired (unless `allowStale`)
 * or cannot be decoded here (an unknown codec, a corrupt body), since the fresh response the caller
 * then fetches overwrites it.
 */
export function hitOf(entry: StoredEntry, now: number, allowStale: boolean): CacheHit | undefined {
  const stale = isExpired(entry.expiresAt, now);
  if (stale && !allowStale) return undefined;
  let body: string;
  try {
    body = decodeBody(entry.codec, entry.body);
  } catch {
    return undefined;
  }
  return { body, stale, createdAt: entry.createdAt, expiresAt: entry.expiresAt, model: entry.model };
}

/** Whether `cache clear` with `filter` deletes an entry at `now` (every given condition must hold). */
export function matchesClear(
  entry: Pick<EntrySummary, 'model' | 'createdAt'>,
  filter: ClearFilter,
  now: number,
): boolean {
  if (filter.model !== undefined && entry.model !== filter.model) return false;
  if (filter.olderThanMs !== undefined && !(entry.createdAt < now - filter.olderThanMs)) return false;
  return true;
}

/** Text in SQLite's order (memcmp of UTF-8), which differs from `<` on UTF-16 beyond the BMP. */
export function byteOrder(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * `cache stats` figures over entries read one by one (a backend that cannot aggregate where the
 * data is, like Redis); hits, misses and runs are left to the caller. Models and codecs come out in
 * SQLite's text order, as its GROUP BY ... ORDER BY gives them.
 */
export function summarise(entries: Iterable<EntrySummary>, now: number): CacheStats {
  const perModel = new Map<string, CacheTotals & { oldest: number; newest: number }>();
  const perCodec = new Map<string, number>();
  for (const e of entries) {
    const expired = isExpired(e.expiresAt, now) ? 1 : 0;
    const m = perModel.get(e.model);
    if (m) {
      m.entries++;
      m.live += 1 - expired;
      m.expired += expired;
      m.originalBytes += e.originalBytes;
      m.storedBytes += e.storedBytes;
      m.oldest = Math.min(m.oldest, e.createdAt);
      m.newest = Math.max(m.newest, e.createdAt);
    } else {
      perModel.set(e.model, {
        entries: 1,
        live: 1 - expired,
        expired,
        originalBytes: e.originalBytes,
        storedBytes: e.storedBytes,
        oldest: e.createdAt,
        newest: e.createdAt,
      });
    }
    perCodec.set(e.codec, (perCodec.get(e.codec) ?? 0) + 1);
  }
  const stats: CacheStats = emptyStats();
  for (const model of [...perModel.keys()].sort(byteOrder)) {
    const { oldest, newest, ...totals } = perModel.get(model)!;
    stats.perModel[model] = totals;
    stats.entries += totals.entries;
    stats.live += totals.live;
    stats.expired += totals.expired;
    stats.originalBytes += totals.originalBytes;
    stats.storedBytes += totals.storedBytes;
    stats.oldest = Math.min(stats.oldest ?? oldest, oldest);
    stats.newest = Math.max(stats.newest ?? newest, newest);
  }
  stats.compressionRatio = stats.storedBytes === 0 ? 0 : stats.originalBytes / stats.storedBytes;
  for (const codec of [...perCodec.keys()].sort(byteOrder)) stats.perCodec[codec] = perCodec.get(codec)!;
  return stats;
}
