import type { Clock } from '../core/clock.ts';
import type { Db } from '../db/open.ts';
import { hasLimiterTables, hasRatesTable, type KeyRow, type ShardRow } from './schema.ts';
import type { LimiterAdmin, StoredKey } from './store.ts';

/**
 * `limiter status` and `limiter reset` on state.db. Never creates or migrates tables: a database
 * without them (or last migrated by an older release) simply has less to show.
 */
export function sqliteLimiterAdmin(db: Db, deps: { clock: Clock }): LimiterAdmin {
  return {
    async read() {
      const now = deps.clock.now();
      if (!hasLimiterTables(db)) return { now, keys: [] };
      const rows = db.prepare('SELECT * FROM limiter_keys ORDER BY key').all() as KeyRow[];
      const shards = db.prepare('SELECT * FROM limiter_shards ORDER BY key, kind, shard').all() as ShardRow[];
      const keys = rows.map(
        (row): StoredKey => ({
          // Rows of a database not yet migrated to 3 have no max_request_tokens column.
          row: { ...row, max_request_tokens: row.max_request_tokens ?? null },
          shards: shards.filter((s) => s.key === row.key),
        }),
      );
      return { now, keys };
    },

    async reset(prefix) {
      if (!hasLimiterTables(db)) return [];
      return db
        .transaction(() => {
          const match = 'substr(key, 1, length(@prefix)) = @prefix';
          const p = { prefix: prefix ?? '' };
          const keys = db
            .prepare(
              `SELECT key FROM limiter_keys WHERE ${match} UNION SELECT key FROM limiter_shards WHERE ${match}`,
            )
            .pluck()
            .all(p) as string[];
          db.prepare(`DELETE FROM limiter_shards WHERE ${match}`).run(p);
          db.prepare(`DELETE FROM limiter_keys WHERE ${match}`).run(p);
          if (hasRatesTable(db)) db.prepare(`DELETE FROM limiter_rates WHERE ${match}`).run(p);
          return keys.sort();
        })
        .immediate();
    },
  };
}
