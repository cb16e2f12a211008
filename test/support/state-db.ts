import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { BatchStore } from '../../src/batch/store.ts';
import type { Clock } from '../../src/core/clock.ts';
import { openDatabase } from '../../src/db/open.ts';

/**
 * Batch stores on temporary state databases for one test file; call it at the file's top level:
 * every store is flushed and closed, and every folder removed, after the file's tests.
 */
export function stateDbs(): { tempDb(): string; openStore(file: string, clock: Clock): BatchStore } {
  const dirs: string[] = [];
  const stores: BatchStore[] = [];
  after(() => {
    for (const s of stores) {
      s.flush();
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
    openStore(file, clock) {
      const store = new BatchStore(openDatabase(file), clock);
      stores.push(store);
      return store;
    },
  };
}
