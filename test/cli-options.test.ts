import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Command } from 'commander';
import { buildProgram, errorLabel } from '../src/cli.ts';
import { addSettingOptions, settingFlags } from '../src/commands/register.ts';
import { defaultHelp, flagName, SETTING_ENTRIES } from '../src/config/settings-table.ts';
import { isFlashcardsError } from '../src/core/errors.ts';

const repoRoot = path.resolve(import.meta.dirname, '..');

/** The subcommand at a path of names: find(program, 'cache', 'list'). */
function find(program: Command, ...names: string[]): Command {
  let cmd = program;
  for (const name of names) {
    const next = cmd.commands.find((c) => c.name() === name);
    assert.ok(next, `no command ${names.join(' ')}`);
    cmd = next;
  }
  return cmd;
}

function everyCommand(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(everyCommand)];
}

/** What --help says about one option of a command. */
function helpOf(cmd: Command, flag: string): string {
  const help = cmd.createHelp();
  const option = help.visibleOptions(cmd).find((o) => o.long === flag);
  assert.ok(option, `${cmd.name()} has ${flag}`);
  return help.optionDescription(option);
}

/** Parses argv with a fresh program; returns the error the parse rejects with. */
async function parseError(argv: string[]): Promise<unknown> {
  try {
    // A data directory of its own, should the command get as far as opening one.
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-cli-'));
    await buildProgram().parseAsync(['--home', home, ...argv], { from: 'user' });
  } catch (e) {
    return e;
  }
  assert.fail(`${argv.join(' ')} should have been refused`);
}

describe('options generated from the settings table', () => {
  const program = buildProgram();
  const processCmd = find(program, 'process');

  test('process has a flag for every setting that has one, with the default from the table', () => {
    for (const [path, spec] of SETTING_ENTRIES) {
      if (!spec.flag) continue;
      const flag = flagName(path) ?? '';
      const shown = defaultHelp(spec);
      // A global flag (--store) is the program's, valid before or after any command name.
      const text = helpOf(spec.flag.global ? program : processCmd, flag);
      assert.ok(text.startsWith(spec.flag.help), `${flag}: ${text}`);
      if (shown !== undefined) assert.ok(text.includes(`(default: ${shown})`), `${flag}: ${text}`);
    }
    assert.equal(
      helpOf(processCmd, '--concurrency'),
      'pin the requests in flight at once (default: steered to the rate limit)',
    );
    assert.equal(
      helpOf(processCmd, '--max-concurrency'),
      'most requests in flight when not pinned (default: 256)',
    );
    assert.equal(helpOf(processCmd, '--deck'), "Anki deck name (default: the pipeline's)");
  });

  test('the provider options are on every command that resolves the provider', () => {
    for (const names of [
      ['breaker', 'isolate'],
      ['breaker', 'close'],
      ['config', 'init'],
      ['config', 'show'],
      ['doctor'],
    ]) {
      const cmd = find(program, ...names);
      for (const flag of ['--provider', '--base-url', '--model']) {
        assert.equal(helpOf(cmd, flag), helpOf(processCmd, flag), `${names.join(' ')} ${flag}`);
      }
    }
  });

  test('every option of every command has a description in --help', () => {
    for (const cmd of everyCommand(program)) {
      for (const option of cmd.createHelp().visibleOptions(cmd)) {
        assert.notEqual(option.description.trim(), '', `${cmd.name()} ${option.flags} has no description`);
      }
    }
    const init = find(program, 'config', 'init');
    assert.equal(
      helpOf(init, '--rpm'),
      "requests per minute allowed by your provider (default: learned from the provider's headers and 429s)",
    );
  });

  test('the typed setting flags reach loadSettings keyed by config path, and nothing else does', () => {
    const cmd = addSettingOptions(new Command('t').option('--other <x>'), 'all').exitOverride();
    cmd.parse(['--rpm', '500', '--no-cache', '--base-url', 'http://x', '--other', 'y'], { from: 'user' });
    assert.deepEqual(settingFlags(cmd), {
      baseUrl: 'http://x',
      'limiter.rpm': '500',
      'cache.enabled': false,
    });
    const none = addSettingOptions(new Command('t'), 'provider').exitOverride();
    none.parse([], { from: 'user' });
    assert.deepEqual(settingFlags(none), {});
  });

  test('there is no --api-key flag: keys come from the environment (or a file), never the command line', () => {
    assert.equal(flagName('apiKey'), undefined);
    for (const cmd of everyCommand(program)) {
      assert.ok(!cmd.options.some((o) => o.long === '--api-key'), `${cmd.name()} has --api-key`);
    }
  });
});

describe('--json subcommands and counts', () => {
  const program = buildProgram();

  test('every listing and showing subcommand takes --json', () => {
    const withJson = [
      ['cache', 'stats'],
      ['cache', 'list'],
      ['cache', 'show'],
      ['breaker', 'status'],
      ['breaker', 'history'],
      ['limiter', 'status'],
      ['batches', 'list'],
      ['batches', 'show'],
      ['pipelines', 'list'],
      ['pipelines', 'show'],
      ['doctor'],
      ['config', 'show'],
      ['config', 'path'],
      ['cache', 'prune'],
      ['cache', 'clear'],
    ];
    for (const names of withJson) {
      assert.ok(
        find(program, ...names).options.some((o) => o.long === '--json'),
        `${names.join(' ')} --json`,
      );
    }
  });

  test('a --limit that is not a whole number >= 1 is refused with the text typed (exit 2)', async () => {
    for (const [argv, got] of [
      [['cache', 'list', '--limit', 'abc'], '"abc"'],
      [['breaker', 'history', '--limit', 'abc'], '"abc"'],
      [['breaker', 'history', '--limit', '2.5'], '"2.5"'],
      [['cache', 'list', '--limit', '0'], '"0"'],
    ] as const) {
      const e = await parseError([...argv]);
      assert.ok(isFlashcardsError(e), String(e));
      assert.equal(e.message, `--limit must be an integer >= 1, got ${got}`);
      assert.equal(e.exitCode, 2);
    }
  });
});

describe('start-up', () => {
  test('building the program loads neither zod nor any handler', () => {
    const script = `
      import { registerHooks } from 'node:module';
      const seen = [];
      registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.push(r.url); return r; } });
      const { buildProgram } = await import(${JSON.stringify(path.join(repoRoot, 'src/cli.ts'))});
      buildProgram();
      console.log(JSON.stringify(seen));
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(run.stderr, '');
    const loaded = (JSON.parse(run.stdout) as string[]).filter((u) => !u.startsWith('node:'));
    assert.deepEqual(
      loaded.filter((u) => u.includes('/node_modules/zod/')),
      [],
    );
    const handlers = ['cache', 'breaker', 'limiter', 'batches', 'pipelines', 'config', 'doctor', 'process'];
    for (const name of handlers) {
      assert.ok(!loaded.some((u) => u.endsWith(`/src/commands/${name}.ts`)), `${name}.ts loaded at start-up`);
    }
    assert.ok(loaded.some((u) => u.endsWith('/src/config/settings-table.ts')));
  });
});

describe('errors', () => {
  test('"error:" is red where colour is allowed (a terminal), plain otherwise', () => {
    assert.equal(errorLabel(true), '\u001b[31merror:\u001b[39m');
    assert.equal(errorLabel(false), 'error:');
  });
});
