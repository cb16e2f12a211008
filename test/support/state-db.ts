import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { openSqliteBatchStores } from '../../src/batch/sqlite-stores.ts';
import type { BatchStores } from '../../src/batch/store.ts';
import type { Clock } from '../../src/core/clock.ts';
import { type Db, openDatabase } from '../../src/db/open.ts';

/** The batch stores on one state.db connection, and the connection (for tests that look underneath). */
export interface SqliteStores extends BatchStores {
  db: Db;
}

/**
 * Batch stores on temporary state databases for one test file; call it at the file's top level:
 * every store's queued outcomes are committed and its connection closed, and every folder removed,
 * after the file's tests.
 */
export function stateDbs(): { tempDb(): string; openStores(file: string, clock: Clock): SqliteStores } {
  const dirs: string[] = [];
  const opened: SqliteStores[] = [];
  after(async () => {
    for (const s of opened) {
      await s.results.flush();
      s.db.close();
    }
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  return {
    tempDb() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
      dirs.push(dir);
      return path.join(dir, 'state.db');
    },
    openStores(file, clock) {
      const db = openDatabase(file);
      const stores = { db, ...openSqliteBatchStores(db, clock) };
      opened.push(stores);
      return stores;
    },
  };
}
