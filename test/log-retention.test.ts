import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pruneLogs } from '../src/ui/log-retention.ts';

const day = 86_400_000;
const now = Date.UTC(2026, 11, 1);

function logsDir(ages: Record<string, number>): string {
  const dir = mkdtempSync(join(tmpdir(), 'fc-logs-'));
  for (const [name, ageMs] of Object.entries(ages)) {
    writeFileSync(join(dir, name), '{}\n');
    const at = (now - ageMs) / 1000;
    utimesSync(join(dir, name), at, at);
  }
  return dir;
}

test('run logs older than the age limit go; newer ones and other files stay', () => {
  const dir = logsDir({ 'a.jsonl': 20 * day, 'b.jsonl': 13 * day, 'c.jsonl': 0, 'notes.txt': 30 * day });
  assert.equal(pruneLogs(dir, { keepMs: 14 * day, keepFiles: 500, nowMs: now }), 1);
  assert.deepEqual(readdirSync(dir).sort(), ['b.jsonl', 'c.jsonl', 'notes.txt']);
});

test('beyond the file limit the oldest go, whatever their age; an age limit of 0 keeps any age', () => {
  const dir = logsDir({ 'a.jsonl': 3000, 'b.jsonl': 2000, 'c.jsonl': 1000, 'd.jsonl': 0 });
  assert.equal(pruneLogs(dir, { keepMs: 0, keepFiles: 2, nowMs: now }), 2);
  assert.deepEqual(readdirSync(dir).sort(), ['c.jsonl', 'd.jsonl']);
});

test('a missing logs directory is nothing to prune', () => {
  assert.equal(pruneLogs(join(tmpdir(), 'fc-no-such-dir-x'), { keepMs: day, keepFiles: 1, nowMs: now }), 0);
});
