import type { Clock } from '../core/clock.ts';
import type { RedisConnection } from '../store/redis/connection.ts';
import { decodeRow, type RedisLimiterOptions, toRecord } from './redis-store.ts';
import type { ShardRow } from './schema.ts';
import type { LimiterAdmin, StoredKey } from './store.ts';

/**
 * `limiter status` and `limiter reset` on Redis. The keys are found by SCAN over the namespace
 * (never KEYS, which blocks the server), on every master of a cluster; each limiter key's objects
 * carry its readable name in their `key` field. Reset deletes one limiter key's three objects
 * with one DEL (one slot), key by key: a booking racing a reset either lands before it (and is
 * forgotten) or after it (on a full bucket), as with SQLite.
 */
export function redisLimiterAdmin(conn: RedisConnection, options: RedisLimiterOptions = {}): LimiterAdmin {
  const prefix = options.prefix ?? 'fc:';
  const tagPattern = `${escapeGlob(prefix)}{lim:*}`;
  return {
    async read() {
      const now = await backendNow(conn, options.clock);
      const rowKeys = await scan(conn, `${tagPattern}:row`);
      const keys = await Promise.all(
        rowKeys.map(async (rowKey): Promise<StoredKey | undefined> => {
          const tag = rowKey.slice(0, -':row'.length);
          const [rowReply, tatsReply] = await Promise.all([
            conn.hgetall(rowKey),
            conn.hgetall(`${tag}:tats`),
          ]);
          const name = toRecord(rowReply)['key'];
          const row = name === undefined ? undefined : decodeRow(name, rowReply);
          return row === undefined ? undefined : { row, shards: decodeShards(row.key, toRecord(tatsReply)) };
        }),
      );
      const found = keys.filter((k): k is StoredKey => k !== undefined);
      return { now, keys: found.sort((a, b) => byBytes(a.row.key, b.row.key)) };
    },

    async reset(keyPrefix) {
      const tags = new Set((await scan(conn, `${tagPattern}:*`)).map((k) => k.slice(0, k.lastIndexOf(':'))));
      const removed: string[] = [];
      for (const tag of tags) {
        const objects = [`${tag}:row`, `${tag}:tats`, `${tag}:rates`];
        const names = await Promise.all(objects.map((o) => conn.hget(o, 'key')));
        const name = names.find((n): n is string => n !== null);
        if (name === undefined || !name.startsWith(keyPrefix ?? '')) continue;
        // Listed when it had a row or shards, as SQLite lists limiter_keys and limiter_shards;
        // meters alone are deleted too, without a line.
        if (names[0] !== null || names[1] !== null) removed.push(name);
        await conn.del(...objects);
      }
      return removed.sort(byBytes);
    },
  };
}

/** The backend's time: the injected clock in tests, else Redis TIME (ms, with microseconds). */
async function backendNow(conn: RedisConnection, clock: Clock | undefined): Promise<number> {
  if (clock !== undefined) return clock.now();
  const [seconds, micros] = await conn.time();
  return Number(seconds) * 1000 + Number(micros) / 1000;
}

/** The shards stored in a `tats` hash, sorted by kind, then shard. */
function decodeShards(key: string, fields: Record<string, string>): ShardRow[] {
  const shards: ShardRow[] = [];
  for (const [field, value] of Object.entries(fields)) {
    const m = /^(rpm|tpm):(\d+)$/.exec(field);
    if (m === null) continue;
    const kind = m[1] === 'rpm' ? 'rpm' : 'tpm';
    shards.push({
      key,
      kind,
      shard: Number(m[2]),
      tat: Number(value),
      updated_at: Number(fields[`${field}:at`]),
    });
  }
  return shards.sort((a, b) => (a.kind === b.kind ? a.shard - b.shard : a.kind < b.kind ? -1 : 1));
}

/** Every key matching `pattern`, by SCAN on the server or on each master of a cluster. */
async function scan(conn: RedisConnection, pattern: string): Promise<string[]> {
  const nodes = 'nodes' in conn ? conn.nodes('master') : [conn];
  const found = new Set<string>();
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      for (const k of keys) found.add(k);
      cursor = next;
    } while (cursor !== '0');
  }
  return [...found];
}

/** A literal prefix inside a SCAN pattern: glob's special characters escaped. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/** SQLite's ORDER BY key (BINARY: UTF-8 bytes), so both backends list keys in the same order. */
function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
