import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FakeClock } from '../src/core/clock.ts';
import { openDatabase } from '../src/db/open.ts';
import { GROUP_COMMIT_MS, WriteBehind } from '../src/db/write-behind.ts';

describe('WriteBehind', () => {
  const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'fc-wb-')), 'x.db'));
  db.exec('CREATE TABLE t (v INTEGER NOT NULL)');
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  const count = (): number => (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;

  test('commits queued writes together on flush, and by itself on the next turn', async () => {
    db.exec('DELETE FROM t');
    const writes = new WriteBehind<number>(db, (v) => insert.run(v));
    writes.add(1);
    writes.add(2);
    assert.equal(count(), 0);
    await new Promise((r) => setImmediate(r));
    assert.equal(count(), 2);
  });

  test('with a delay, commits on its clock exactly delayMs after the first queued write', async () => {
    db.exec('DELETE FROM t');
    const clock = new FakeClock(0);
    let flushes = 0;
    const writes = new WriteBehind<number>(db, (v) => insert.run(v), {
      delayMs: GROUP_COMMIT_MS,
      clock,
      afterFlush: () => flushes++,
    });
    writes.add(1);
    await clock.advance(GROUP_COMMIT_MS - 1);
    writes.add(2);
    assert.equal(count(), 0);
    assert.equal(clock.pending, 1, 'one commit scheduled for both writes');
    await clock.advance(1);
    assert.equal(count(), 2);
    assert.equal(flushes, 1);
    assert.equal(clock.pending, 0);
    // The next write starts a new window.
    writes.add(3);
    await clock.advance(GROUP_COMMIT_MS - 1);
    assert.equal(count(), 2);
    await clock.advance(1);
    assert.equal(count(), 3);
    assert.equal(flushes, 2);
  });

  test('an explicit flush commits at once and cancels the scheduled commit', async () => {
    db.exec('DELETE FROM t');
    const clock = new FakeClock(0);
    const writes = new WriteBehind<number>(db, (v) => insert.run(v), { delayMs: GROUP_COMMIT_MS, clock });
    writes.add(1);
    writes.flush();
    assert.equal(count(), 1);
    assert.equal(clock.pending, 0);
  });

  test('a timed commit that fails keeps its writes and reports the error on the next add', async () => {
    db.exec('DELETE FROM t');
    const clock = new FakeClock(0);
    let fail = true;
    const writes = new WriteBehind<number>(
      db,
      (v) => {
        if (fail) throw new Error('SQLITE_BUSY');
        insert.run(v);
      },
      { delayMs: GROUP_COMMIT_MS, clock },
    );
    writes.add(1);
    await clock.advance(GROUP_COMMIT_MS);
    assert.equal(count(), 0);
    fail = false;
    assert.throws(() => writes.add(2), /SQLITE_BUSY/);
    writes.flush();
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
