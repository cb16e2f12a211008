import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sqliteCacheAdmin } from '../src/cache/sqlite-admin.ts';
import { SqliteResponseCache } from '../src/cache/sqlite-store.ts';
import { cacheStoreConformance } from './conformance/cache-store.ts';

/** A cache.db in a temp dir per test; every connect() opens it again, like another process. */
cacheStoreConformance('SQLite', async (clock) => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-cache-'));
  const file = join(dir, 'cache.db');
  return {
    async connect(settings, random) {
      return SqliteResponseCache.open(file, settings, { clock, random });
    },
    async admin() {
      return sqliteCacheAdmin(file, { clock });
    },
    async close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
