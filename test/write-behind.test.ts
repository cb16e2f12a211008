import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { openDatabase } from '../src/db/open.ts';
import { WriteBehind } from '../src/db/write-behind.ts';

describe('WriteBehind', () => {
  const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'fc-wb-')), 'x.db'));
  db.exec('CREATE TABLE t (v INTEGER NOT NULL)');
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  const count = (): number => (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;

  test('commits queued writes together on flush, and by itself on the next turn', async () => {
    const writes = new WriteBehind<number>(db, (v) => insert.run(v));
    writes.add(1);
    writes.add(2);
    assert.equal(count(), 0);
    await new Promise((r) => setImmediate(r));
    assert.equal(count(), 2);
  });

  test('a failed flush keeps its writes for the next one instead of dropping them', () => {
    db.exec('DELETE FROM t');
    let fail = true;
    const writes = new WriteBehind<number>(db, (v) => {
      if (fail) throw new Error('SQLITE_FULL');
      insert.run(v);
    });
    writes.add(1);
    writes.add(2);
    assert.throws(() => writes.flush(), /SQLITE_FULL/);
    fail = false;
    writes.flush();
    assert.equal(count(), 2);
  });
});
