import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type CliResult, cliEnv, repoRoot, runCli, startCli, tempDir } from './support/cli.ts';

/**
 * Every way a user can get it wrong ends the same way: one or two lines on stderr (the error and
 * maybe a hint), exit 2, nothing on stdout and no stack trace unless asked for.
 */

const fixture = join(repoRoot, 'fixtures', 'korean-20.csv');
const stackFrame = /\n\s+at /;

interface Sandbox {
  cwd: string;
  home: string;
  env: NodeJS.ProcessEnv;
}

/** A fresh working directory, data directory and HOME: no config or key from this machine leaks in. */
function sandbox(extra: Record<string, string> = {}): Sandbox {
  const root = tempDir('fc-err-');
  const cwd = join(root, 'work');
  const home = join(root, 'data');
  mkdirSync(cwd);
  return { cwd, home, env: cliEnv({ HOME: root, FLASHCARDS_HOME: home, ...extra }) };
}

function run(box: Sandbox, args: string[], input?: string): Promise<CliResult> {
  return runCli(args, { cwd: box.cwd, env: box.env, ...(input === undefined ? {} : { input }) });
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

/** Exit 2, `error: ...` (+ at most one more line), stdout empty, no stack trace. */
function assertUsageError(r: CliResult, message: RegExp): void {
  assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
  assert.equal(r.stdout, '');
  const err = lines(r.stderr);
  assert.ok(err.length >= 1 && err.length <= 2, `one or two lines on stderr, got:\n${r.stderr}`);
  assert.match(err[0] ?? '', /^error: /);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, stackFrame);
  assert.doesNotMatch(r.stderr, /FlashcardsError|node:internal/);
}

describe('input errors exit 2 with one or two lines and no stack trace', { concurrency: 4 }, () => {
  test('a missing input file is named', async () => {
    const box = sandbox();
    const r = await run(box, ['process', 'nope.csv', '--provider', 'mock']);
    assertUsageError(r, /^error: input file not found: .*nope\.csv$/m);
  });

  test('an empty input file is named as empty, with the expected shape as hint', async () => {
    const box = sandbox();
    const r = await run(box, ['process', join(repoRoot, 'fixtures', 'empty.csv'), '--provider', 'mock']);
    assertUsageError(r, /^error: .*empty\.csv is empty$/m);
    assert.match(r.stderr, /^hint: expected one term per line/m);
  });

  test('empty standard input is called stdin, not a temporary file', async () => {
    const box = sandbox();
    const r = await run(box, ['process', '-', '--provider', 'mock', '-o', '-'], '');
    assertUsageError(r, /^error: stdin is empty$/m);
    assert.deepEqual(readdirSync(join(box.home, 'tmp')), [], 'the copy of stdin is removed');
  });

  test('a usage error on stdin input leaves no copy of stdin behind', async () => {
    const box = sandbox();
    const r = await run(
      box,
      ['process', '-', '--provider', 'mock', '-o', '/nonexistent-dir/x.tsv'],
      '사과\n',
    );
    assertUsageError(r, /directory \/nonexistent-dir\/ does not exist/);
    assert.equal(existsSync(join(box.home, 'tmp')) && readdirSync(join(box.home, 'tmp')).length, false);
  });

  test('a header-only CSV says there are no data rows', async () => {
    const box = sandbox();
    const r = await run(box, [
      'process',
      join(repoRoot, 'fixtures', 'header-only.csv'),
      '--provider',
      'mock',
    ]);
    assertUsageError(r, /^error: .*header-only\.csv has a header row but no data rows$/m);
    assert.match(r.stderr, /^hint: add one row per term below the header$/m);
  });

  test('a directory given as input is named as a directory', async () => {
    const box = sandbox();
    mkdirSync(join(box.cwd, 'words'));
    const r = await run(box, ['process', 'words', '--provider', 'mock']);
    assertUsageError(r, /^error: .*words is a directory, not a (file|word list)$/m);
  });

  test('an unreadable input file says permission denied', {
    skip: process.getuid?.() === 0 ? 'root can read any file' : false,
  }, async () => {
    const box = sandbox();
    const file = join(box.cwd, 'secret.txt');
    writeFileSync(file, '사과\n');
    chmodSync(file, 0o000);
    const r = await run(box, ['process', 'secret.txt', '--provider', 'mock']);
    assertUsageError(r, /^error: cannot read .*secret\.txt: permission denied$/m);
  });

  test('a file that fails while being read names the file and the system error', {
    skip: process.platform === 'linux' ? false : '/proc/self/mem is Linux only',
  }, async () => {
    // Opening /proc/self/mem succeeds, reading offset 0 fails with EIO, even for root.
    const box = sandbox();
    const r = await run(box, ['process', '/proc/self/mem', '--provider', 'mock']);
    assertUsageError(r, /^error: cannot read \/proc\/self\/mem: EIO/m);
  });

  test('a binary file (a spreadsheet saved as .xlsx) is refused with a hint to export CSV', async () => {
    const box = sandbox();
    writeFileSync(
      join(box.cwd, 'words.csv'),
      Buffer.from('PK\x03\x04\x14\x00\x06\x00\xff\xfe\x00\x00', 'latin1'),
    );
    const r = await run(box, ['process', 'words.csv', '--provider', 'mock']);
    assertUsageError(r, /^error: .*words\.csv does not look like UTF-8 text \(found binary data\)$/m);
    assert.match(r.stderr, /^hint: .*zip archive.*CSV UTF-8$/m);
  });

  test('a UTF-16 file is refused with a hint to save it as UTF-8', async () => {
    const box = sandbox();
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('term\n사과\n', 'utf16le')]);
    writeFileSync(join(box.cwd, 'words.txt'), utf16);
    const r = await run(box, ['process', 'words.txt', '--provider', 'mock']);
    assertUsageError(r, /does not look like UTF-8 text/);
    assert.match(r.stderr, /^hint: it looks like UTF-16; save it as UTF-8/m);
  });

  test('a malformed CSV (unclosed quote) names the line', async () => {
    const box = sandbox();
    const r = await run(box, [
      'process',
      join(repoRoot, 'fixtures', 'malformed-quote.csv'),
      '--provider',
      'mock',
    ]);
    assertUsageError(r, /^error: .*malformed-quote\.csv: line 4: unclosed quote$/m);
  });

  test('a CSV row with too many fields names the line and both counts', async () => {
    const box = sandbox();
    writeFileSync(join(box.cwd, 'words.csv'), 'term,type\n사과,noun\n가다,verb,extra\n');
    const r = await run(box, ['process', 'words.csv', '--provider', 'mock']);
    assertUsageError(r, /^error: .*words\.csv: line 3 has 3 fields, the header has 2$/m);
    assert.match(r.stderr, /^hint: put cells that contain commas in quotes/m);
  });
});

describe('flag errors exit 2 with one or two lines', { concurrency: 4 }, () => {
  test('an unknown --format lists the allowed choices', async () => {
    const box = sandbox();
    const r = await run(box, ['process', fixture, '--format', 'xml', '--provider', 'mock']);
    assertUsageError(r, /^error: .*'xml' is invalid\. Allowed choices are anki, csv, jsonl, json, apkg\.$/m);
  });

  test('--concurrency abc says an integer is expected and what was given', async () => {
    const box = sandbox();
    const r = await run(box, ['process', fixture, '--concurrency', 'abc', '--provider', 'mock']);
    assertUsageError(r, /^error: --concurrency must be an integer >= 1, got "abc"$/m);
  });

  test('--timeout soon says a duration is expected, with examples', async () => {
    const box = sandbox();
    const r = await run(box, ['process', fixture, '--timeout', 'soon', '--provider', 'mock']);
    assertUsageError(r, /^error: --timeout must be a duration like 30s, 25m or 2h, got "soon"$/m);
  });

  test('an unknown option is named', async () => {
    const box = sandbox();
    const r = await run(box, ['process', fixture, '--provider', 'mock', '--bogus']);
    assertUsageError(r, /^error: unknown option '--bogus'$/m);
  });

  test('process without an input names the missing argument', async () => {
    const box = sandbox();
    const r = await run(box, ['process']);
    assertUsageError(r, /^error: missing required argument 'input'$/m);
  });
});

describe('database errors name the file and suggest moving it aside', { concurrency: 4 }, () => {
  const garbage = 'this is not sqlite at all, just text\n'.repeat(200);

  test('a corrupt state.db', async () => {
    const box = sandbox();
    mkdirSync(box.home);
    writeFileSync(join(box.home, 'state.db'), garbage);
    const r = await run(box, ['process', fixture, '--provider', 'mock']);
    const file = join(box.home, 'state.db');
    assertUsageError(r, new RegExp(`^error: ${escapeRegExp(file)} is not a valid SQLite database`, 'm'));
    assert.match(
      r.stderr,
      new RegExp(`^hint: move it aside \\(mv ${escapeRegExp(file)} ${escapeRegExp(file)}\\.bad\\)`, 'm'),
    );
  });

  test('a corrupt cache.db', async () => {
    const box = sandbox();
    mkdirSync(box.home);
    writeFileSync(join(box.home, 'cache.db'), garbage);
    const r = await run(box, ['process', fixture, '--provider', 'mock', '-o', join(box.cwd, 'deck.tsv')]);
    const file = join(box.home, 'cache.db');
    assertUsageError(r, new RegExp(`^error: ${escapeRegExp(file)} is not a valid SQLite database`, 'm'));
    assert.match(
      r.stderr,
      new RegExp(`^hint: move it aside \\(mv ${escapeRegExp(file)} ${escapeRegExp(file)}\\.bad\\)`, 'm'),
    );
  });

  test('a corrupt cache.db stops a dry run the same way', async () => {
    const box = sandbox();
    mkdirSync(box.home);
    writeFileSync(join(box.home, 'cache.db'), garbage);
    const r = await run(box, ['process', fixture, '--provider', 'mock', '--dry-run']);
    assertUsageError(r, /cache\.db is not a valid SQLite database/);
    assert.match(r.stderr, /^hint: move it aside/m);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('a missing API key names the variables to set', { concurrency: 4 }, () => {
  test('for the default provider (OpenRouter)', async () => {
    const box = sandbox();
    const r = await run(box, ['process', fixture]);
    assertUsageError(r, /no API key/);
    assert.match(r.stderr, /FLASHCARDS_API_KEY/);
    assert.match(r.stderr, /OPENROUTER_API_KEY/);
  });

  test("for Groq, naming Groq's own variable", async () => {
    const box = sandbox();
    const r = await run(box, ['process', fixture, '--provider', 'groq']);
    assertUsageError(r, /no API key/);
    assert.match(r.stderr, /GROQ_API_KEY/);
  });

  test('without showing credentials written into the base URL', async () => {
    const box = sandbox();
    const url = 'https://user:hunter2@example.com/v1?api-key=hunter3';
    const r = await run(box, ['process', fixture, '--provider', 'custom', '--model', 'm', '--base-url', url]);
    assertUsageError(r, /no API key for custom at https:\/\/example\.com\/v1\?api-key=\*\*\*;/);
    assert.doesNotMatch(r.stderr, /hunter/);
  });
});

describe('config file errors exit 2 and name the file', { concurrency: 4 }, () => {
  function withConfig(name: string, text: string): Sandbox {
    const box = sandbox();
    writeFileSync(join(box.cwd, name), text);
    return box;
  }

  test('invalid JSON gives the line', async () => {
    const box = withConfig('.flashcardrc', '{\n  "provider": "mock",\n}\n');
    const r = await run(box, ['process', fixture, '--dry-run']);
    assertUsageError(r, /^error: \.flashcardrc: invalid JSON at line 3/m);
  });

  test('invalid YAML gives the line', async () => {
    const box = withConfig('.flashcardrc.yaml', 'provider: mock\n  model: [x\n');
    const r = await run(box, ['process', fixture, '--dry-run']);
    assertUsageError(r, /^error: \.flashcardrc\.yaml: invalid YAML at line 2: /m);
  });

  test('an unknown key suggests the closest known one', async () => {
    const box = withConfig('.flashcardrc.json', '{"provider": "mock", "concurency": 4}\n');
    const r = await run(box, ['process', fixture, '--dry-run']);
    assertUsageError(
      r,
      /^error: \.flashcardrc\.json: unknown key "concurency" \(did you mean "concurrency"\?\)$/m,
    );
    assert.match(r.stderr, /^hint: known keys: .*concurrency/m);
  });

  test('an unknown nested key suggests the closest one in its group', async () => {
    const box = withConfig('.flashcardrc.yaml', 'provider: mock\nlimiter:\n  rmp: 60\n');
    const r = await run(box, ['process', fixture, '--dry-run']);
    assertUsageError(
      r,
      /^error: \.flashcardrc\.yaml: unknown key "limiter\.rmp" \(did you mean "limiter\.rpm"\?\)$/m,
    );
    assert.match(r.stderr, /^hint: known keys under limiter: rpm, tpm, burstSeconds, shards$/m);
  });

  test('a negative concurrency says what is allowed and where it came from', async () => {
    const box = withConfig('.flashcardrc.json', '{"provider": "mock", "concurrency": -3}\n');
    const r = await run(box, ['process', fixture, '--dry-run']);
    assertUsageError(r, /^error: \.flashcardrc\.json: concurrency must be an integer >= 1, got -3$/m);
    assert.match(r.stderr, /^hint: fix it in \.flashcardrc\.json, or remove the key to leave it unset$/m);
  });

  test('a bad value in the environment names the variable', async () => {
    const box = sandbox({ FLASHCARDS_CONCURRENCY: '-3' });
    const r = await run(box, ['process', fixture, '--provider', 'mock', '--dry-run']);
    assertUsageError(r, /^error: FLASHCARDS_CONCURRENCY must be an integer >= 1, got "-3"$/m);
  });

  test('--config naming a missing file', async () => {
    const box = sandbox();
    const r = await run(box, ['--config', 'nope.json', 'process', fixture, '--dry-run']);
    assertUsageError(r, /^error: config file .*nope\.json does not exist$/m);
  });
});

describe('stack traces only on request', { concurrency: 2 }, () => {
  const args = ['process', fixture, '--concurrency', '0', '--provider', 'mock', '--dry-run'];

  test('--verbose adds the stack trace after the message', async () => {
    const box = sandbox();
    const r = await run(box, ['--verbose', ...args]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: --concurrency must be an integer >= 1, got "0"$/m);
    assert.match(r.stderr, stackFrame);
  });

  test('FLASHCARDS_DEBUG=1 does the same', async () => {
    const box = sandbox({ FLASHCARDS_DEBUG: '1' });
    const r = await run(box, args);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: --concurrency must be an integer >= 1, got "0"$/m);
    assert.match(r.stderr, stackFrame);
  });
});

describe('usage errors show help and exit 2; asking for help exits 0', { concurrency: 4 }, () => {
  test('no command at all prints the help on stderr and exits 2', async () => {
    const box = sandbox();
    const r = await run(box, []);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^Usage: flashcards /m);
    // The input is optional when --batch <id> names a batch (issue 18).
    assert.match(r.stderr, /^\s+process \[options\] \[input\]/m);
  });

  test('an unknown command is named and exits 2', async () => {
    const box = sandbox();
    const r = await run(box, ['bogus']);
    assertUsageError(r, /^error: unknown command 'bogus'$/m);
  });

  test('a misspelt command gets a suggestion', async () => {
    const box = sandbox();
    const r = await run(box, ['proces', fixture]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: unknown command 'proces'/m);
    assert.match(r.stderr, /Did you mean process\?/);
  });

  test('cache without a subcommand prints its help on stderr and exits 2', async () => {
    const box = sandbox();
    const r = await run(box, ['cache']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^Usage: flashcards cache /m);
    for (const sub of ['stats', 'list', 'show', 'prune', 'clear']) {
      assert.match(r.stderr, new RegExp(`^\\s+${sub}\\b`, 'm'));
    }
  });

  test('an unknown cache subcommand exits 2', async () => {
    const box = sandbox();
    const r = await run(box, ['cache', 'bogus']);
    assertUsageError(r, /^error: unknown command 'bogus'$/m);
  });

  test('--help and help print the help on stdout and exit 0', async () => {
    const box = sandbox();
    for (const args of [['--help'], ['help'], ['cache', '--help'], ['help', 'cache']]) {
      const r = await run(box, args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /^Usage: flashcards/m, args.join(' '));
    }
  });
});

describe('process refuses bad combinations before any request', () => {
  const mock = ['--provider', 'mock'];
  const fixture = join(repoRoot, 'fixtures', 'korean-20.csv');
  const cases: [string, string[], RegExp][] = [
    [
      '--batch with --new',
      ['process', fixture, '--batch', 'b1', '--new', ...mock],
      /--batch resumes a batch and --new starts one/,
    ],
    ['--json with -o -', ['process', fixture, '--json', '-o', '-', ...mock], /both write to stdout/],
    [
      '--refresh with --no-cache',
      ['process', fixture, '--refresh', '--no-cache', ...mock],
      /--refresh rewrites the cache/,
    ],
    [
      'an output directory that does not exist',
      ['process', fixture, '-o', '/nonexistent-dir/x.tsv', ...mock],
      /directory \/nonexistent-dir\/ does not exist/,
    ],
    [
      'an output path that is a directory',
      ['process', fixture, '-o', repoRoot, ...mock],
      /cannot write .*: it is a directory/,
    ],
  ];
  for (const [what, args, message] of cases) {
    test(`${what}: exit 2, one line`, async () => {
      const home = tempDir();
      const r = await runCli(args, { env: cliEnv({ FLASHCARDS_HOME: home }) });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    });
  }

  test('a data directory that cannot be created is named, exit 2', async () => {
    const r = await runCli(['process', fixture, '--home', '/etc/passwd/x', ...mock], { env: cliEnv({}) });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /cannot create the data directory/);
    assert.match(r.stderr, /hint: set --home/);
  });
});

describe('a reader that goes away', () => {
  test('`process --help | head -1`: exit 0, no stack trace (EPIPE on stdout)', async () => {
    const run = startCli(['process', '--help'], { env: cliEnv({}) });
    // Like `head -1` after its line: the pipe is closed before the help is written.
    run.child.stdout?.destroy();
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /EPIPE|\n\s+at /);
  });
});

describe('a provider that is not there', () => {
  test('nothing listens at the base URL: exit 3 in a few lines naming the URL, no stack trace', async () => {
    const home = tempDir();
    const input = join(home, 'words.txt');
    writeFileSync(input, '사과\n배\n포도\n');
    const r = await runCli(
      ['process', input, '-o', join(home, 'deck.tsv'), '--base-url', 'http://127.0.0.1:19/v1'],
      {
        env: cliEnv({ FLASHCARDS_HOME: home, FLASHCARDS_API_KEY: 'sk-test-0123456789' }),
      },
    );
    assert.equal(r.code, 3, r.stderr);
    assert.ok(lines(r.stderr).length <= 4, r.stderr);
    assert.match(
      r.stderr,
      /^error: cannot reach the provider at http:\/\/127\.0\.0\.1:19\/v1: 5 attempts, none answered \(connection refused\)/m,
    );
    assert.match(r.stderr, /^hint: is the server running/m);
    assert.doesNotMatch(r.stderr, stackFrame);
  });
});
