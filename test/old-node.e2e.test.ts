import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { binPath } from './support/cli.ts';

/** A Node older than the CLI supports, when the machine has one on a usual path (Debian ships 20 here). */
function oldNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node', '/bin/node']) {
    const r = spawnSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' });
    const [major = 0, minor = 0] = (r.stdout ?? '').trim().split('.').map(Number);
    if (r.status === 0 && (major < 22 || (major === 22 && minor < 14))) return candidate;
  }
  return undefined;
}

const node = oldNode();

describe('on a Node older than 22.14', { skip: node ? false : 'no older Node on this machine' }, () => {
  test('the CLI names the Node it needs in one line and exits 2, no stack trace', () => {
    const r = spawnSync(node!, [binPath, 'process', 'words.csv'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(
      r.stderr,
      /^error: flashcards needs Node\.js 22\.14 or newer(?: \([^)]*\))?; this is Node v\d+/,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(r.stdout, '');
  });
});
